"""Regenerate the golden files of the invalid corpus: `invalid/X.cep` → `invalid/X.expected`.

Golden files are never edited by hand: change the checker, run this, and
review the diff (`git diff tests/corpus`) as part of the change.

    .venv/bin/python tests/corpus/regen.py          # rewrite every .expected
    .venv/bin/python tests/corpus/regen.py --check  # exit 1 if any is stale

Each golden file holds exactly what `cep check tests/corpus/invalid/X.cep`
prints on stderr, run from the repository root: the path as given, then the
§8 diagnostics.  `stderr_of` mirrors `runtime.cli.check` (read the file —
undecodable bytes are a diagnostic without a source line — then check and
render every diagnostic) without importing the CLI, which lives above
`cepdsl` in the layering.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cepdsl.diagnostics import CheckError, render_all  # noqa: E402
from cepdsl.frontend import check_source, read_rule_file  # noqa: E402

CORPUS = Path(__file__).resolve().parent
INVALID = CORPUS / "invalid"
VALID = CORPUS / "valid"


def relative(path: Path) -> str:
    """The path as a user types it from the repository root."""
    return path.resolve().relative_to(ROOT).as_posix()


def stderr_of(path: Path) -> str:
    """What `cep check PATH` prints on stderr (empty when the file is clean)."""
    name = relative(path)
    with contextlib.chdir(ROOT):  # the CLI names the file as given, relative to the cwd
        try:
            text = read_rule_file(name)
        except CheckError as e:
            return render_all(e.diagnostics, {}) + "\n"
    _, diags = check_source(text, name)
    return render_all(diags, {name: text}) + "\n" if diags else ""


def golden_path(cep: Path) -> Path:
    return cep.with_suffix(".expected")


def main(argv: list[str]) -> int:
    check_only = "--check" in argv
    stale = []
    for cep in sorted(INVALID.glob("*.cep")):
        out = stderr_of(cep)
        gold = golden_path(cep)
        if check_only:
            if not gold.exists() or gold.read_text(encoding="utf-8") != out:
                stale.append(gold)
            continue
        gold.write_text(out, encoding="utf-8")
    for orphan in sorted(INVALID.glob("*.expected")):
        if not orphan.with_suffix(".cep").exists():
            stale.append(orphan)
            if not check_only:
                orphan.unlink()
    if check_only and stale:
        print("stale golden files:\n  " + "\n  ".join(relative(p) for p in stale))
        return 1
    if not check_only:
        print(f"wrote {len(list(INVALID.glob('*.expected')))} golden files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
