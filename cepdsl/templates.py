"""Message templates: sandboxed Jinja2 with bounded time and output.

`message "..."` templates are written by rule authors, rendered with a match
record (LANGUAGE.md §7) and sent to people. They must not reach Python
internals (the sandbox), must not silently print "" for a misspelt name
(StrictUndefined, and the checker rejects unknown names up front with
`template_variables`), and a runaway template (nested loops, string doubling,
huge widths) must fail fast with a `TemplateError` instead of stalling the
notifier or eating memory.

The time bound is CPU time of the rendering thread and cooperative: it is checked on every loop step of `range`,
every call, filter, intercepted operator, concatenation and output chunk.
Single C-level operations are bounded by size checks on their arguments
instead (a width or repeat count above `max_chars` is refused).

Pure module: no runtime imports (cepdsl must not depend on runtime).
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, _PassArg

DEFAULT_MAX_CHARS = 16_000  # a message longer than this is a bug, not an alert
DEFAULT_MAX_SECONDS = 0.25
_RANGE_CHECK_EVERY = 256  # loop steps between two clock reads
_MAX_POW_BITS = 4096  # `2 ** 10 ** 9` would pin a core inside one C call


#: Nesting limits of a template (checked before Jinja parses it, so no input reaches Python's
#: recursion limit or the compiler's "too many statically nested blocks"): `{% for %}`, `{% if %}`
#: and other block tags inside each other; brackets inside one expression; depth of the
#: parsed template as a tree (long operator chains such as `not not ... x`).
MAX_BLOCK_NESTING = 12
MAX_BRACKET_NESTING = 32
MAX_TREE_DEPTH = 64


class TemplateError(ValueError):
    """A template that does not parse, names an unknown variable, or runs away.

    `lineno` is the line inside the template; `near` a regular expression that finds the
    offending text in it (for the checker's caret); `hints` what to do instead."""

    def __init__(self, message: str, lineno: int | None = None, near: str | None = None, hints: tuple[str, ...] = ()) -> None:
        super().__init__(message if lineno is None else f"line {lineno}: {message}")
        self.message = message
        self.lineno = lineno
        self.near = near
        self.hints = hints


# --------------------------------------------------------------------------- budget


class _Budget:
    """Limits of the render in progress.

    `deadline` is in thread CPU time; `wall_deadline` (same length, in wall time) is read
    first: CPU time cannot run out before wall time does, and the wall clock is a vDSO
    read while the thread CPU clock is a system call (microseconds on a busy machine).
    """

    __slots__ = ("deadline", "max_chars", "steps", "wall_deadline")

    def __init__(self, deadline: float, max_chars: int, wall_deadline: float) -> None:
        self.deadline = deadline
        self.max_chars = max_chars
        self.wall_deadline = wall_deadline
        self.steps = 0

    @classmethod
    def starting_now(cls, max_seconds: float, max_chars: int) -> _Budget:
        return cls(_clock() + max_seconds, max_chars, _wall() + max_seconds)

    def expired(self) -> bool:
        return _wall() > self.wall_deadline and _clock() > self.deadline


_local = threading.local()

# CPU time of this thread, not wall time: a render must not fail because the process was
# descheduled on a busy machine, only because the template itself burns CPU.
_clock = time.thread_time
_wall = time.perf_counter
_CHUNK_CHECK_EVERY = 16  # output chunks between two clock reads
_UNTIMED = float("inf")


def _budget() -> _Budget:
    b = getattr(_local, "budget", None)
    if b is None:  # rendering outside render(): still bounded, by the defaults
        b = _Budget.starting_now(DEFAULT_MAX_SECONDS, DEFAULT_MAX_CHARS)
        _local.budget = b
    return b


def _tick() -> _Budget:
    b = _budget()
    if b.expired():
        raise TemplateError("template took too long to render (time limit exceeded)")
    return b


def _check_size(value: Any, what: str) -> Any:
    if isinstance(value, (str, list, tuple, bytes)) and len(value) > _budget().max_chars:
        raise TemplateError(f"{what} produced {len(value)} characters/items, more than the limit")
    return value


def _refuse_size(size: int, what: str) -> None:
    """Refuse, before anything is allocated, a result computed to be `size` long."""
    limit = _budget().max_chars
    if size > limit:
        raise TemplateError(f"{what} would produce {size} characters/items, more than the limit ({limit})")


def _check_int_args(name: str, args: Iterable[Any]) -> None:
    limit = _budget().max_chars
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > limit:
            raise TemplateError(f"argument {a} to {name} is larger than the output limit ({limit})")


# --------------------------------------------------------------------------- printing and sizes
#
# Values a message may print: data, never objects (a function's or a class's repr holds a
# memory address: `{{ range }}` printed "<function ... at 0x7f...>"). Containers are sized
# before `str()` is called on them, so a list of 16,000 references to a 16,000-character
# string is refused instead of becoming 256 MB of text.

_SCALARS = (str, int, float, bool, type(None), decimal.Decimal, dt.date, dt.time, dt.timedelta)
_CONTAINERS = (list, tuple, dict, set, frozenset)


def text_size(value: Any, limit: int) -> int:
    """An upper bound of `len(str(value))`, or a number over `limit` once it is clear the text
    would pass it (stops early; iterative). Raises `TemplateError` for a value that is not data."""
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v) + 2  # quotes inside a container's repr
        elif isinstance(v, bool) or v is None:
            total += 5
        elif isinstance(v, int):
            total += v.bit_length() // 3 + 2  # digits ≤ bits·log10(2) < bits/3
        elif isinstance(v, _SCALARS):
            total += 64  # floats, decimals, times: short fixed-size texts
            if isinstance(v, decimal.Decimal) and v.is_finite():
                total += len(v.as_tuple().digits) + abs(int(v.as_tuple().exponent))
        elif isinstance(v, dict):
            total += 2 + 4 * len(v)
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, _CONTAINERS):
            total += 2 + 2 * len(v)
            stack.extend(v)
        elif isinstance(v, Undefined):
            total += len(str(v))  # StrictUndefined: raises the usual "is undefined" error
        else:
            raise TemplateError(f"cannot print a {_kind(v)} in a message (only text, numbers, times and lists of them)")
        if total > limit:
            return total
    return total


def _kind(v: Any) -> str:
    if isinstance(v, LoopContext):
        return "loop object"
    if callable(v):
        return "function" if not isinstance(v, type) else "class"
    return type(v).__name__.lstrip("_") or "object"


#: Printed as they are, no check: scalars whose text is short (or, for str, already sized).
PLAIN_TYPES = frozenset({str, int, float, bool, type(None), decimal.Decimal, dt.datetime, dt.date, dt.time, dt.timedelta})


def finalize(value: Any) -> Any:
    """What `{{ value }}` prints, checked: text and numbers as they are; containers only when
    their text fits the limit; anything else (functions, loop objects, namespaces) refused."""
    if value.__class__ in PLAIN_TYPES:
        return value
    limit = _budget().max_chars
    size = text_size(value, limit)
    if size > limit and not isinstance(value, str):
        raise TemplateError(f"printing this value would produce over {limit} characters")
    return value


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def _percent_size(fmt: str, args: Any) -> int:
    """An upper bound of `len(fmt % args)`: widths and precisions are read from the format
    (`'%200000000d'` is refused before Python pads anything), the arguments are sized."""
    limit = _budget().max_chars
    size = len(fmt)
    for m in _PERCENT_SPEC.finditer(fmt):
        for part in (m.group(1), m.group(2)):
            if part == "*":
                raise TemplateError("`*` widths are not available in templates; write the width in the format")
            if part is not None and int(part) > limit:
                raise TemplateError(f"format width {part} is larger than the output limit ({limit})")
            size += int(part or 0)
    values = args if isinstance(args, tuple) else (args,)
    for v in values[0].values() if len(values) == 1 and isinstance(values[0], dict) else values:
        size += text_size(v, limit) + 330  # '%f' of 1e308 has 316 digits
    return size


def _join_size(items: Any, sep: Any) -> tuple[list[Any], int]:
    """The items of a join (materialised, at most limit + 1 of them) and its text size."""
    limit = _budget().max_chars
    out = []
    size = 0
    for i, item in enumerate(items):
        if i > limit:
            raise TemplateError(f"join of more than {limit} items")
        if i % 64 == 63:
            _tick()
        out.append(item)
        size += text_size(item, limit) + text_size(sep, limit)
        if size > limit:
            raise TemplateError(f"join would produce over {limit} characters")
    return out, size


def _replace_size(s: str, old: str, new: str, count: int = -1) -> int:
    n = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        n = min(n, count)
    return len(s) + n * (len(new) - len(old))


def _pre_filter(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Size the result of a filter from its arguments before it runs (see module doc)."""
    if not args:
        return args, kwargs
    value, rest = args[0], args[1:]
    limit = _budget().max_chars
    if name == "format" and isinstance(value, str):
        _refuse_size(_percent_size(value, rest or tuple(kwargs.values())), "filter format")
    elif name == "join":
        sep = rest[0] if rest else kwargs.get("d", "")
        if not isinstance(value, str):
            items, _ = _join_size(value, sep)
            args = (items, *rest)
        else:
            _refuse_size(len(value) * (1 + text_size(sep, limit)), "filter join")
    elif name == "replace" and isinstance(value, str) and len(rest) >= 2:
        old, new = str(rest[0]), str(rest[1])
        count = rest[2] if len(rest) > 2 else kwargs.get("count")
        _refuse_size(_replace_size(value, old, new, count if isinstance(count, int) else -1), "filter replace")
    elif name == "indent" and isinstance(value, str):
        width = rest[0] if rest else kwargs.get("width", 4)
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        _refuse_size(len(value) + (value.count("\n") + 1) * pad, "filter indent")
    elif name in ("string", "tojson", "list", "pprint"):
        _refuse_size(text_size(value, limit) * (6 if name == "tojson" else 1), f"filter {name}")
    elif name == "sum":
        start = rest[1] if len(rest) > 1 else kwargs.get("start", 0)
        if not isinstance(start, (int, float)):
            _refuse_size(text_size(value, limit), "filter sum")
    return args, kwargs


def _pre_str_method(s: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Size a str method's result from its arguments before the call; the arguments to call
    it with (a joined iterable comes back materialised: it was consumed to be sized)."""
    if name in ("center", "ljust", "rjust", "zfill"):
        width = args[0] if args else kwargs.get("width", 0)
        if isinstance(width, int):
            _refuse_size(max(width, len(s)), f"str.{name}")
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tab, int):
            _refuse_size(len(s) + s.count("\t") * max(tab, 0), "str.expandtabs")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        _refuse_size(_replace_size(s, args[0], args[1], count if isinstance(count, int) else -1), "str.replace")
    elif name == "join" and args:
        items, _ = _join_size(args[0], s)
        args = (items, *args[1:])
    elif name in ("format", "format_map"):
        raise SecurityError("str.format is not available in templates; use the format filter")
    elif name in ("__mod__", "__rmod__") and args:
        _refuse_size(_percent_size(s, args[0]), "%-format")
    elif name in ("__mul__", "__rmul__") and args and isinstance(args[0], int):
        _refuse_size(len(s) * args[0], "repetition")
    elif name == "__add__" and args and isinstance(args[0], str):
        _refuse_size(len(s) + len(args[0]), "+")
    _check_int_args(f"str.{name}", (*args, *kwargs.values()))
    return args


# --------------------------------------------------------------------------- sandbox


def _bounded_range(*args: int) -> Iterable[int]:
    rng = range(*args)
    b = _budget()
    if len(rng) > b.max_chars * 8:
        raise TemplateError(f"range of {len(rng)} items is too large")

    def steps() -> Iterable[int]:
        for i, v in enumerate(rng):
            if i % _RANGE_CHECK_EVERY == 0:
                _tick()
            yield v

    return steps()


_LOOP_CHECK_EVERY = 64  # iterations of a `{% for %}` between two clock reads
#: The filter every `{% for %}` iterable is wrapped in (see `_BoundedSandbox._parse`).
_LOOP_FILTER = "_cep_loop"


def _bounded_loop(iterable: Any) -> Iterable[Any]:
    """Every `{% for %}` goes through this: each step counts against the time budget, whatever
    is iterated (a string, a list, a dict), so `{% for a in x %}{% for b in x %}...` stops."""
    _tick()

    def steps() -> Iterable[Any]:
        for i, v in enumerate(iterable):
            if i % _LOOP_CHECK_EVERY == _LOOP_CHECK_EVERY - 1:
                _tick()
            yield v

    if isinstance(iterable, _CONTAINERS + (str,)) and len(iterable) < _LOOP_CHECK_EVERY:
        return iterable  # short: ticked once above, Jinja keeps its len() for `loop.length`
    return steps()


class _BoundedNamespace(Namespace):
    """`namespace()` whose attributes cannot grow past the output limit (string doubling in a loop)."""

    def __setitem__(self, name: str, value: Any) -> None:
        _tick()
        _check_size(value, "namespace assignment")
        super().__setitem__(name, value)


#: Filters whose result size `_pre_filter` computes before they run.
_SIZED_FILTERS = frozenset({"format", "join", "replace", "indent", "string", "tojson", "list", "pprint", "sum"})


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    # Context-taking filters get it first: size the call from the value onwards.
    skip = 1 if _PassArg.from_obj(func) is not None else 0

    if name not in _SIZED_FILTERS:

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            _tick()
            _check_int_args(f"filter {name}", (*args, *kwargs.values()))
            return _check_size(func(*args, **kwargs), f"filter {name}")

        return guarded

    @functools.wraps(func)
    def sized(*args: Any, **kwargs: Any) -> Any:
        _tick()
        _check_int_args(f"filter {name}", (*args, *kwargs.values()))
        value_args, kwargs = _pre_filter(name, args[skip:], kwargs)
        return _check_size(func(*args[:skip], *value_args, **kwargs), f"filter {name}")

    return sized


class _BoundedCodeGenerator(CodeGenerator):
    """Routes `~` concatenation through the environment, so it can be size-checked."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset(("*", "**", "+", "%", "//"))

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
        return tree

    def bounded_concat(self, parts: Iterable[Any]) -> str:
        _tick()
        parts = list(parts)
        limit = _budget().max_chars
        _refuse_size(sum(text_size(p, limit) for p in parts), "concatenation")
        return _check_size("".join(str(finalize(p)) for p in parts), "concatenation")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # str.format / format_map take widths inside the format string that no size check sees;
        # the `format` filter (size-checked) covers the need.
        if getattr(value, "__name__", None) in ("format", "format_map") and isinstance(getattr(value, "__self__", None), str):
            raise SecurityError("str.format is not available in templates; use the format filter")
        return super().wrap_str_format(value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        b = _tick()
        if operator == "**":
            if isinstance(left, int) and isinstance(right, int):
                if right > 0 and abs(left) > 1 and right * max(abs(left).bit_length(), 1) > _MAX_POW_BITS:
                    raise TemplateError("power too large")
            return left**right
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > b.max_chars:
                    raise TemplateError("repetition larger than the output limit")
            return left * right
        if operator == "%" and isinstance(left, str):
            _refuse_size(_percent_size(left, right), "%-format")
            return _check_size(left % right, "%-format")
        if operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                _refuse_size(len(left) + len(right), "+")
            return _check_size(left + right, "+")
        if operator == "//":
            return left // right
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            args = _pre_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        return _check_size(super().call(__context, __obj, *args, **kwargs), "call")


def sandbox_environment() -> ImmutableSandboxedEnvironment:
    """A fresh sandboxed environment: no internals, StrictUndefined, no autoescape (text output),
    every printed value through `finalize`, every loop through `_bounded_loop`."""
    from jinja2 import StrictUndefined

    env = _BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=finalize)
    env.globals.pop("lipsum", None)  # lipsum(n) generates arbitrary amounts of text
    env.globals["range"] = _bounded_range
    env.globals["namespace"] = _BoundedNamespace
    env.filters.pop("pprint", None)  # a debugging aid whose output size nobody bounds
    env.filters = {name: _guard_filter(name, f) for name, f in env.filters.items()}
    env.filters[_LOOP_FILTER] = _bounded_loop
    return env


_ENV = sandbox_environment()


_BLOCK_TAGS = frozenset({"for", "if", "macro", "call", "filter", "with", "block", "autoescape", "trans"})
_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")
_UNKNOWN = re.compile(r"^No (filter|test) named '([^']*)'")


def _syntax_error(exc: TemplateSyntaxError) -> TemplateError:
    unknown = _UNKNOWN.match(exc.message or "")
    if unknown:
        what, name = unknown.groups()
        known = sorted(k for k in (_ENV.filters if what == "filter" else _ENV.tests) if not k.startswith("_"))
        near = (r"\|\s*" if what == "filter" else r"\bis\s+(?:not\s+)?") + re.escape(name) + r"\b"
        from cepdsl.diagnostics import did_you_mean

        hints = did_you_mean(name, known) or (f"the {what}s are {', '.join(known)}",)
        return TemplateError(f"unknown {what} `{name}`", exc.lineno, near, hints)
    return TemplateError(f"template syntax error: {exc.message}", exc.lineno)


def _too_deep(what: str, limit: int, lineno: int | None) -> TemplateError:
    return TemplateError(
        f"template nested too deeply: more than {limit} {what}",
        lineno,
        hints=("split it: compute values in the rule (`having`, aggregates) or use fewer levels",),
    )


def _prescan(text: str) -> None:
    """Refuse nesting past the limits from the token stream (flat: no recursion on input size)."""
    blocks = brackets = 0
    tag: str | None = None  # name of the block tag being read
    tag_has_assign = False
    try:
        for lineno, kind, value in _ENV.lex(text):
            if kind == "block_begin":
                tag, tag_has_assign = "", False
            elif kind == "name" and tag == "":
                tag = value
                if value in _BLOCK_TAGS:
                    blocks += 1
                elif value.startswith("end") and value != "endset":
                    blocks -= 1
                if blocks > MAX_BLOCK_NESTING:
                    raise _too_deep("nested block tags (`{% for %}`, `{% if %}`, ...)", MAX_BLOCK_NESTING, lineno)
            elif kind == "operator":
                if value in _OPEN:
                    brackets += 1
                    if brackets > MAX_BRACKET_NESTING:
                        raise _too_deep("nested brackets", MAX_BRACKET_NESTING, lineno)
                elif value in _CLOSE:
                    brackets = max(brackets - 1, 0)
                elif value == "=" and tag == "set":
                    tag_has_assign = True
            elif kind == "block_end":
                if tag == "set" and not tag_has_assign:  # `{% set x %}...{% endset %}`
                    blocks += 1
                elif tag == "endset":
                    blocks -= 1
                if blocks > MAX_BLOCK_NESTING:
                    raise _too_deep("nested block tags (`{% for %}`, `{% if %}`, ...)", MAX_BLOCK_NESTING, lineno)
                tag = None
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc) from None


def _tree_depth(tree: nodes.Node) -> tuple[int, int | None]:
    """How deep the parsed template is, and the line of its deepest node (iterative)."""
    best, line = 0, None
    stack: list[tuple[nodes.Node, int]] = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        if d > best:
            best, line = d, getattr(node, "lineno", line)
            if best > MAX_TREE_DEPTH:
                break
        stack.extend((c, d + 1) for c in node.iter_child_nodes())
    return best, line


@functools.lru_cache(maxsize=4096)
def parse_template(text: str) -> nodes.Template:
    """The Jinja tree of `text`, or `TemplateError` (syntax, nesting past the limits): never a
    RecursionError, whatever the input."""
    _prescan(text)
    try:
        tree = _ENV.parse(text)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc) from None
    except RecursionError:
        raise _too_deep("levels", MAX_TREE_DEPTH, None) from None
    depth, line = _tree_depth(tree)
    if depth > MAX_TREE_DEPTH:
        raise _too_deep("levels of expressions and tags", MAX_TREE_DEPTH, line)
    return tree


@functools.lru_cache(maxsize=4096)
def compile_template(text: str) -> Any:
    """The compiled template for `text` (cached: the same rule renders thousands of times).

    Everything that can go wrong while compiling (syntax, an unknown filter or test, nesting,
    Python's own compiler limits) is a `TemplateError`: the checker calls this too, so a
    template `cep check` accepts always compiles in the engine."""
    tree = parse_template(text)  # the limits first; Jinja then parses its own copy (its optimiser edits trees)
    # Jinja defers an unknown filter or test inside `{% if %}` to render time: name it now.
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known = _ENV.filters if isinstance(node, nodes.Filter) else _ENV.tests
        if node.name not in known:
            what = "filter" if isinstance(node, nodes.Filter) else "test"
            raise _syntax_error(TemplateSyntaxError(f"No {what} named '{node.name}'.", node.lineno))
    try:
        return _ENV.from_string(text)
    except TemplateSyntaxError as exc:  # TemplateAssertionError too: unknown filter or test
        raise _syntax_error(exc) from None
    except (RecursionError, SyntaxError, MemoryError):  # IndentationError is a SyntaxError
        raise _too_deep("levels for Python's compiler", MAX_TREE_DEPTH, None) from None


def precompile(text: str) -> None:
    """Compile `text` now (into the same caches `render` uses), so the first render is not slower.
    Raises `TemplateError` for a template that does not parse."""
    if _fast_renderer(text) is None:
        compile_template(text)


def template_variables(text: str) -> set[str]:
    """Names the template reads from the record (globals such as `range` excluded).

    Raises `TemplateError` for any template the engine could not compile (see
    `compile_template`). A dotted record field `data.avg` is read as `data` here;
    `template_context` nests such fields so `{{ data.avg }}` works.
    """
    try:
        names = meta.find_undeclared_variables(parse_template(text))
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc) from None
    except (RecursionError, SyntaxError, MemoryError):
        raise _too_deep("levels", MAX_TREE_DEPTH, None) from None
    compile_template(text)
    return set(names) - set(_ENV.globals)


def template_context(record: Mapping[str, Any]) -> dict[str, Any]:
    """The render context of a record: its columns, with dotted names also nested (`data.avg` → data["avg"])."""
    ctx = dict(record)
    for key, value in record.items():
        if "." not in key:
            continue
        parts = key.split(".")
        node = ctx
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = {}
                node[p] = nxt
            node = nxt
        node[parts[-1]] = value
    return ctx


# --------------------------------------------------------------------------- fast path
#
# Most alert templates are text with `{{ name }}`, `{{ a.b }}`, `{{ name|upper }}` holes. For
# those, Jinja's machinery (a Context object per render, a generator per template) costs more
# than the work itself. Such a template is turned, once, into a list of parts rendered by a
# plain loop that performs the same operations Jinja's compiled code would: the same name
# resolution (record, then globals, else `undefined(name=...)`), the sandbox's own
# `getattr`/`getitem`, the same (guarded) filter functions, and `str()` of each value. So the
# output, the errors and the sandbox are identical; anything else takes the Jinja path.

_Part = Any  # str (literal) | tuple[name, ((op, arg), ...)] (a lookup, then attribute/item/filter steps)


def _fast_steps(node: nodes.Node, steps: list[tuple[str, Any]]) -> str | None:
    """The variable name at the root of `node`, appending the steps applied to it; None if not simple."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        root = _fast_steps(node.node, steps)
        steps.append(("attr", node.attr))
        return root
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        root = _fast_steps(node.node, steps)
        steps.append(("item", node.arg.value))
        return root
    if (
        isinstance(node, nodes.Filter)
        and node.node is not None
        and node.dyn_args is None
        and node.dyn_kwargs is None
        and all(isinstance(a, nodes.Const) for a in node.args)
        and all(isinstance(k.value, nodes.Const) for k in node.kwargs)
    ):
        func = _ENV.filters.get(node.name)
        if func is None or _PassArg.from_obj(func) is not None:  # needs the context: Jinja path
            return None
        root = _fast_steps(node.node, steps)
        args = tuple(a.value for a in node.args)
        kwargs = {k.key: k.value.value for k in node.kwargs}
        steps.append(("filter", (func, args, kwargs, node.name)))
        return root
    return None


def _fast_parts(text: str) -> list[_Part] | None:
    try:
        ast = parse_template(text)
    except TemplateError:
        return None  # the Jinja path reports it
    parts: list[_Part] = []
    for stmt in ast.body:
        if not isinstance(stmt, nodes.Output):
            return None
        for child in stmt.nodes:
            if isinstance(child, (nodes.TemplateData, nodes.Const)):
                literal = child.data if isinstance(child, nodes.TemplateData) else str(child.value)
                if parts and isinstance(parts[-1], str):
                    parts[-1] += literal
                else:
                    parts.append(literal)
                continue
            steps: list[tuple[str, Any]] = []
            name = _fast_steps(child, steps)
            if name is None:
                return None
            parts.append((name, tuple(steps)))
    return parts


def _lookup(name: str) -> Any:
    """A name the record does not have: a global (`range`, ...) or Jinja's undefined (strict: raises when used)."""
    if name in _ENV.globals:
        return _ENV.globals[name]
    return _ENV.undefined(name=name)


@functools.lru_cache(maxsize=4096)
def _fast_renderer(text: str) -> Callable[[Mapping[str, Any]], str] | None:
    """A straight-line template as one Python function `ctx -> str`, or None (use Jinja).

    The generated source holds only fixed code and indexes into `_c`: every piece of the
    template (literals, names, filter arguments) reaches it as a constant, never as code.
    """
    parts = _fast_parts(text)
    if parts is None:
        return None
    consts: list[Any] = []

    def const(value: Any) -> str:
        consts.append(value)
        return f"_c[{len(consts) - 1}]"

    exprs = []
    for part in parts:
        if isinstance(part, str):
            exprs.append(const(part))
            continue
        name, steps = part
        n = const(name)
        expr = f"(ctx[{n}] if {n} in ctx else _look({n}))"
        for op, arg in steps:
            if op == "attr":
                expr = f"_ga({expr}, {const(arg)})"
            elif op == "item":
                expr = f"_gi({expr}, {const(arg)})"
            else:
                func, args, kwargs, _name = arg
                expr = f"{const(func)}({expr}, *{const(args)}, **{const(kwargs)})"
        # str() of finalize(), as Jinja's generated code does (text passes straight through).
        exprs.append(f"(_v if (_v := {expr}).__class__ is _s else _s(_v) if _v.__class__ in _P else _s(_fin(_v)))")
    if not exprs:  # "" or a template of nothing but `{% raw %}{% endraw %}`, comments, ...
        exprs.append(const(""))
    source = "def _render(ctx):\n    return ''.join((" + ", ".join(exprs) + ",))\n"
    namespace: dict[str, Any] = {
        "_c": tuple(consts),
        "_s": str,
        "_fin": finalize,
        "_P": PLAIN_TYPES,
        "_ga": _ENV.getattr,
        "_gi": _ENV.getitem,
        "_look": _lookup,
    }
    exec(compile(source, "<cep template>", "exec"), namespace)  # noqa: S102 - fixed code, data via _c
    return namespace["_render"]  # type: ignore[no-any-return]


#: Filters whose time and size follow from their input alone (no loop over an argument, no
#: width): a straight-line template using only these is safe to render in-process.
INLINE_FILTERS = frozenset({
    "upper", "lower", "title", "capitalize", "trim", "round", "int", "float", "abs", "default", "d",
    "length", "count", "first", "last", "e", "escape", "string", "truncate", "safe", "striptags",
})  # fmt: skip


@functools.lru_cache(maxsize=4096)
def is_straight_line(text: str) -> bool:
    """Whether `text` is text with `{{ name }}`, `{{ a.b }}`, `{{ x|upper }}` holes only (filters
    from INLINE_FILTERS): no loop, no call, no operator, so rendering it costs time and memory
    in proportion to the template and the record. Everything else may run away and is what a
    caller should render in a worker it can stop (runtime/notify/render_worker.py)."""
    parts = _fast_parts(text)
    if parts is None:
        return False
    for part in parts:
        if isinstance(part, tuple):
            for op, arg in part[1]:
                if op == "filter" and arg[3] not in INLINE_FILTERS:
                    return False
    return True


def render(
    text: str,
    record: Mapping[str, Any],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> str:
    """Render `text` with `record`; a bad or runaway template raises `TemplateError`, never hangs."""
    fast = _fast_renderer(text)
    template = compile_template(text) if fast is None else None
    # Straight-line text (the fast path) has no loops: its time is bounded by its length, so
    # no clock is read for it; sizes are still checked by every filter and on the result.
    budget = _Budget(_UNTIMED, max_chars, _UNTIMED) if template is None else _Budget.starting_now(max_seconds, max_chars)
    previous = getattr(_local, "budget", None)
    _local.budget = budget
    try:
        if template is None:
            # ("." in the joined keys: one C-level scan for a dotted field name)
            result = fast(template_context(record) if "." in "".join(record) else record)  # type: ignore[misc]
            if len(result) > max_chars:
                raise TemplateError(f"rendered message is longer than {max_chars} characters")
            return result
        out: list[str] = []
        size = 0
        for i, chunk in enumerate(template.root_render_func(template.new_context(template_context(record)))):
            size += len(chunk)
            if size > max_chars:
                raise TemplateError(f"rendered message is longer than {max_chars} characters")
            if i % _CHUNK_CHECK_EVERY == _CHUNK_CHECK_EVERY - 1 and budget.expired():
                raise TemplateError("template took too long to render (time limit exceeded)")
            out.append(chunk)
        return "".join(out)
    except TemplateError:
        raise
    except UndefinedError as exc:
        raise TemplateError(f"undefined variable: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateError(f"not allowed in a template: {exc}") from None
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc) from None
    except RecursionError:
        raise TemplateError("template recursion too deep") from None
    except MemoryError:
        raise TemplateError("template used too much memory") from None
    except Exception as exc:  # a template bug (1/0, "a" < 1) is the template's error, not ours
        raise TemplateError(f"{type(exc).__name__}: {exc}") from None
    finally:
        _local.budget = previous
