"""Editor support: the `.cep` language server behind `cep lsp` (pygls over stdio).

Modules by what they hold: `documents` (the document store, positions), `incremental`
(parsing a document declaration by declaration), `program` (a program's files checked
together), `diagnostics` (checker diagnostics as LSP ones), `occurrences` (the names
under a cursor), `completion`, `hover`, `navigation` (definition, references),
`symbols`, `formatting`, `code_actions`, `signatures` (signature help), `vocabulary`
(function signatures), `rule_cache` (per-rule check results), `server` (wiring).
"""
