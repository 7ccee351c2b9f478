"""The reference the LALR driver in `cepdsl.parser` is held to: Lark's own LALR parser
with the same grammar, building the AST through an inline transformer that calls the
same `_ToAst` methods.  Lark does the tree shaping (token filtering, `?rule`
inlining, placeholders, positions); the driver claims to reproduce it exactly."""

from __future__ import annotations

from typing import Any

from lark import Lark, Transformer, v_args

from cepdsl import ast, parser


def _method(name: str) -> Any:
    def call(self: Any, meta: Any, children: list[Any]) -> Any:
        pos = None if meta.empty else (meta.line, meta.column, meta.end_line, meta.end_column)
        return getattr(self.builder, name)(pos, children)

    return call


def lark_parser() -> tuple[Lark, type]:
    """Lark's parser over the packaged grammar and a transformer class for it."""
    grammar = parser.grammar()
    names = {r.alias or r.options.template_source or r.origin.name for r in grammar.rules}
    methods = {n: _method(n) for n in names if not n.startswith("_") and hasattr(parser._ToAst, n)}
    transformer_cls = v_args(meta=True)(type("LarkToAst", (Transformer,), methods))
    return grammar, transformer_cls


def lark_parse(text: str, file: str = "<string>") -> Any:
    """The AST's declarations as Lark's own parser + transformer builds them."""
    grammar, transformer_cls = lark_parser()
    builder = parser._ToAst(file)
    t = transformer_cls()
    t.builder = builder
    tree = grammar.parse(text)
    return t.transform(tree)


def driver_parse(text: str, file: str = "<string>") -> Any:
    """The same through the project's driver (no tree), or None on a syntax error."""
    builder = parser._ToAst(file)
    try:
        return parser._driver().parse(text, builder).value
    except parser._SyntaxError:
        return None


__all__ = ["ast", "driver_parse", "lark_parse", "lark_parser"]
