// Starts `cep lsp` (the language server of the cep project) for .cep files.
"use strict";
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("cep");
  const [command, ...args] = config.get("server.command", ["cep", "lsp"]);
  const serverOptions = { command, args, transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "cep" },
      { scheme: "untitled", language: "cep" },
    ],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.cep") },
    initializationOptions: {
      program: config.get("program", "directory"),
      debounceMs: config.get("debounceMs", 50),
    },
  };
  client = new LanguageClient("cep", "cep language server", serverOptions, clientOptions);
  context.subscriptions.push(
    vscode.commands.registerCommand("cep.restartServer", () => client.restart()),
  );
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
