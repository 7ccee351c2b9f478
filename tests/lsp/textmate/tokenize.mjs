// Tokenizes .cep files with vscode-textmate (VS Code's TextMate engine) and the
// grammar in editors/textmate; prints, per file, every token with its scopes as JSON:
// {"file": [[line, startCol, endCol, [scopes...]], ...]}.  Used by tests/lsp/test_textmate.py.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import vsctm from "vscode-textmate";
import oniguruma from "vscode-oniguruma";

const require = createRequire(import.meta.url);
const [grammarPath, ...files] = process.argv.slice(2);
const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm")).buffer;
await oniguruma.loadWASM(wasm);
const registry = new vsctm.Registry({
  onigLib: Promise.resolve({
    createOnigScanner: (sources) => new oniguruma.OnigScanner(sources),
    createOnigString: (s) => new oniguruma.OnigString(s),
  }),
  loadGrammar: async () => vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
});
const grammar = await registry.loadGrammar("source.cep");
const out = {};
for (const file of files) {
  const lines = fs.readFileSync(file, "utf8").split("\n");
  let stack = vsctm.INITIAL;
  const tokens = [];
  lines.forEach((line, i) => {
    const r = grammar.tokenizeLine(line, stack);
    for (const t of r.tokens) tokens.push([i + 1, t.startIndex, Math.min(t.endIndex, line.length), t.scopes]);
    stack = r.ruleStack;
  });
  out[path.resolve(file)] = tokens;
}
process.stdout.write(JSON.stringify(out));
