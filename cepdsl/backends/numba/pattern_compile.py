"""A pattern's regex over step names → a backtracking program (three int32 arrays).

Instructions (`op`, `a`, `b`):

    STEP  k          the row must satisfy step k; take it and go on with the next row
    SPLIT a b        try `a` first, on failure `b` (greedy quantifiers, left alternatives)
    JMP   a
    SAVE  r          remember the current row in register r
    CHECK r          fail unless a row was taken since SAVE r
    MATCH            success (if at least one row was taken)

Bounded repeats are unrolled (`e{2,4}` = e e (e (e)?)?), so the program has no
counters and a (pc, row) pair is the whole matcher state: that is what makes the
failure memo valid and the search polynomial.

Like ECMAScript (and the reference interpreter), an iteration beyond a repeat's
minimum that takes no row fails.  That can only happen when the repeated item can
match nothing (`(a?)*`, `(a|b?){0,3}`); only then is the iteration wrapped in
SAVE/CHECK.  The matcher does not memoise inside such wrapped regions, because
there the outcome also depends on the register.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cepdsl.plan import MAX_PATTERN_PROGRAM, PAlt, PatternSpec, PNode, PRepeat, PSeq, PStep
from cepdsl.plan import pattern_nullable as nullable

STEP, SPLIT, JMP, SAVE, CHECK, MATCH = range(6)
OP_NAMES = ("STEP", "SPLIT", "JMP", "SAVE", "CHECK", "MATCH")

#: Unrolling a bound like {1000} makes a program of thousands of instructions; the checker
#: refuses patterns over this size (plan.pattern_program_size), so this is a last guard.
MAX_PROGRAM = MAX_PATTERN_PROGRAM


@dataclass(frozen=True)
class Program:
    op: np.ndarray  # int32
    a: np.ndarray  # int32
    b: np.ndarray  # int32
    memo: np.ndarray  # bool: whether (pc, row) may be memoised (outside SAVE/CHECK regions)
    n_registers: int
    first: np.ndarray  # bool[n_steps]: steps a match can begin with (a superset)

    def __len__(self) -> int:
        return int(self.op.shape[0])

    def listing(self) -> str:
        """Human-readable program (for `cep explain` and tests)."""
        lines = []
        for pc in range(len(self)):
            op = int(self.op[pc])
            args = {
                STEP: f" {self.a[pc]}",
                SPLIT: f" {self.a[pc]} {self.b[pc]}",
                JMP: f" {self.a[pc]}",
                SAVE: f" {self.a[pc]}",
                CHECK: f" {self.a[pc]}",
            }.get(op, "")
            lines.append(f"{pc:3d} {OP_NAMES[op]}{args}{'' if self.memo[pc] else '  (no memo)'}")
        return "\n".join(lines)


class _Emitter:
    def __init__(self, steps: tuple[str, ...]) -> None:
        self.step_index = {s: i for i, s in enumerate(steps)}
        self.code: list[list[int]] = []  # [op, a, b, guard depth]
        self.depth = 0
        self.registers = 0

    def emit(self, op: int, a: int = 0, b: int = 0) -> int:
        if len(self.code) >= MAX_PROGRAM:
            raise ValueError(f"pattern too large once bounded repeats are unrolled (> {MAX_PROGRAM} instructions)")
        self.code.append([op, a, b, self.depth])
        return len(self.code) - 1

    def node(self, node: PNode) -> None:
        if isinstance(node, PStep):
            self.emit(STEP, self.step_index[node.name])
        elif isinstance(node, PSeq):
            for item in node.items:
                self.node(item)
        elif isinstance(node, PAlt):
            self.alternation(node.options)
        elif isinstance(node, PRepeat):
            self.repeat(node)
        else:
            raise TypeError(f"unknown pattern node {type(node).__name__}")

    def alternation(self, options: tuple[PNode, ...]) -> None:
        jumps = []
        for i, option in enumerate(options):
            if i < len(options) - 1:
                split = self.emit(SPLIT)
                self.code[split][1] = split + 1
                self.node(option)
                jumps.append(self.emit(JMP))
                self.code[split][2] = len(self.code)
            else:
                self.node(option)
        for j in jumps:
            self.code[j][1] = len(self.code)

    def guarded(self, item: PNode, guard: bool) -> None:
        """One optional iteration's body; with `guard`, it must take a row."""
        if not guard:
            self.node(item)
            return
        r = self.registers
        self.registers += 1
        self.depth += 1
        self.emit(SAVE, r)
        self.node(item)
        self.emit(CHECK, r)
        self.depth -= 1

    def repeat(self, node: PRepeat) -> None:
        for _ in range(node.min):
            self.node(node.item)
        guard = nullable(node.item)
        if node.max is None:
            loop = self.emit(SPLIT)
            self.code[loop][1] = loop + 1
            self.guarded(node.item, guard)
            self.emit(JMP, loop)
            self.code[loop][2] = len(self.code)
            return
        splits = []
        for _ in range(node.max - node.min):
            split = self.emit(SPLIT)
            self.code[split][1] = split + 1
            splits.append(split)
            self.guarded(node.item, guard)
        for s in splits:  # every "stop repeating" exit goes past the whole nest
            self.code[s][2] = len(self.code)


def first_steps(code: np.ndarray, n_steps: int) -> np.ndarray:
    """Steps reachable from pc 0 without taking a row (SPLIT/JMP/SAVE/CHECK followed; CHECK
    counted as passable, so this is a superset).  A start row that satisfies none of
    them cannot begin a match: the search from it fails at once, so the matcher skips it."""
    first = np.zeros(n_steps, dtype=np.bool_)
    seen = set()
    todo = [0]
    while todo:
        pc = todo.pop()
        if pc in seen or pc >= len(code):
            continue
        seen.add(pc)
        op, a, b = int(code[pc, 0]), int(code[pc, 1]), int(code[pc, 2])
        if op == STEP:
            first[a] = True
        elif op == SPLIT:
            todo += [a, b]
        elif op == JMP:
            todo.append(a)
        elif op in (SAVE, CHECK):
            todo.append(pc + 1)
    return first


def compile_pattern(spec: PatternSpec) -> Program:
    e = _Emitter(spec.steps)
    e.node(spec.regex)
    e.emit(MATCH)
    code = np.array(e.code, dtype=np.int32).reshape(-1, 4)
    return Program(
        first=first_steps(code, len(spec.steps)),
        op=np.ascontiguousarray(code[:, 0]),
        a=np.ascontiguousarray(code[:, 1]),
        b=np.ascontiguousarray(code[:, 2]),
        memo=np.ascontiguousarray(code[:, 3] == 0),
        n_registers=e.registers,
    )
