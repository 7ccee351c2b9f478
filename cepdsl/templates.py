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

import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, _PassArg

DEFAULT_MAX_CHARS = 16_000  # a message longer than this is a bug, not an alert
DEFAULT_MAX_SECONDS = 0.25
_RANGE_CHECK_EVERY = 256  # loop steps between two clock reads
_MAX_POW_BITS = 4096  # `2 ** 10 ** 9` would pin a core inside one C call


class TemplateError(ValueError):
    """A template that does not parse, names an unknown variable, or runs away."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message if lineno is None else f"line {lineno}: {message}")
        self.lineno = lineno


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


def _check_int_args(name: str, args: Iterable[Any]) -> None:
    limit = _budget().max_chars
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > limit:
            raise TemplateError(f"argument {a} to {name} is larger than the output limit ({limit})")


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


class _BoundedNamespace(Namespace):
    """`namespace()` whose attributes cannot grow past the output limit (string doubling in a loop)."""

    def __setitem__(self, name: str, value: Any) -> None:
        _tick()
        _check_size(value, "namespace assignment")
        super().__setitem__(name, value)


_PERCENT_WIDTH = re.compile(r"%[-#0 +]*(\*|\d{5,})")


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        _check_int_args(f"filter {name}", (*args, *kwargs.values()))
        return _check_size(func(*args, **kwargs), f"filter {name}")

    return guarded


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

    def bounded_concat(self, parts: Iterable[Any]) -> str:
        _tick()
        return _check_size("".join(map(str, parts)), "concatenation")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # str.format / format_map take widths inside the format string that no size check sees;
        # the `format` filter (size-checked) covers the need.
        if getattr(value, "__name__", None) in ("format", "format_map") and isinstance(
            getattr(value, "__self__", None), str
        ):
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
            if _PERCENT_WIDTH.search(left):
                raise TemplateError("%-format width too large")
            return _check_size(left % right, "%-format")
        if operator == "+":
            return _check_size(left + right, "+")
        if operator == "//":
            return left // right
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _tick()
        return _check_size(super().call(__context, __obj, *args, **kwargs), "call")


def sandbox_environment() -> ImmutableSandboxedEnvironment:
    """A fresh sandboxed environment: no internals, StrictUndefined, no autoescape (text output)."""
    from jinja2 import StrictUndefined

    env = _BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals.pop("lipsum", None)  # lipsum(n) generates arbitrary amounts of text
    env.globals["range"] = _bounded_range
    env.globals["namespace"] = _BoundedNamespace
    env.filters = {name: _guard_filter(name, f) for name, f in env.filters.items()}
    return env


_ENV = sandbox_environment()


def _syntax_error(exc: TemplateSyntaxError) -> TemplateError:
    return TemplateError(f"template syntax error: {exc.message}", exc.lineno)


@functools.lru_cache(maxsize=4096)
def compile_template(text: str) -> Any:
    """The compiled template for `text` (cached: the same rule renders thousands of times)."""
    try:
        return _ENV.from_string(text)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc) from None


def precompile(text: str) -> None:
    """Compile `text` now (into the same caches `render` uses), so the first render is not slower.
    Raises `TemplateError` for a template that does not parse."""
    if _fast_renderer(text) is None:
        compile_template(text)


def template_variables(text: str) -> set[str]:
    """Names the template reads from the record (globals such as `range` excluded).

    A dotted record field `data.avg` is read as `data` here; `template_context`
    nests such fields so `{{ data.avg }}` works.
    """
    try:
        ast = _ENV.parse(text)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc) from None
    return set(meta.find_undeclared_variables(ast)) - set(_ENV.globals)


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
    if isinstance(node, nodes.Filter) and node.node is not None and node.dyn_args is None \
            and node.dyn_kwargs is None and all(isinstance(a, nodes.Const) for a in node.args) \
            and all(isinstance(k.value, nodes.Const) for k in node.kwargs):
        func = _ENV.filters.get(node.name)
        if func is None or _PassArg.from_obj(func) is not None:  # needs the context: Jinja path
            return None
        root = _fast_steps(node.node, steps)
        args = tuple(a.value for a in node.args)
        kwargs = {k.key: k.value.value for k in node.kwargs}
        steps.append(("filter", (func, args, kwargs)))
        return root
    return None


def _fast_parts(text: str) -> list[_Part] | None:
    try:
        ast = _ENV.parse(text)
    except TemplateSyntaxError:
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
                func, args, kwargs = arg
                expr = f"{const(func)}({expr}, *{const(args)}, **{const(kwargs)})"
        exprs.append(f"_str({expr})")  # str(), as Jinja's generated code does without autoescape
    # An empty template has no parts: `(,)` would not compile.
    source = "def _render(ctx):\n    return ''.join((" + "".join(e + ", " for e in exprs) + "))\n"
    namespace: dict[str, Any] = {"_c": tuple(consts), "_str": str, "_ga": _ENV.getattr, "_gi": _ENV.getitem,
                                 "_look": _lookup}
    exec(compile(source, "<cep template>", "exec"), namespace)  # noqa: S102 - fixed code, data via _c
    return namespace["_render"]  # type: ignore[no-any-return]


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
    budget = _Budget(_UNTIMED, max_chars, _UNTIMED) if template is None else \
        _Budget.starting_now(max_seconds, max_chars)
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
