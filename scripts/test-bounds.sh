#!/usr/bin/env bash
# The engine's differential and conformance tests at the lowest and the highest
# polars and numba that pyproject.toml allows (CI and the README test at the
# versions in constraints.txt).  Usage: scripts/test-bounds.sh [lowest|highest|both]
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-both}"
run_at() {  # $1 = label, rest = pip requirement specifiers
    local label="$1"; shift
    local venv=".venv-bounds-$label"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -e '.[test]' "$@"
    "$venv/bin/python" -c 'import polars, numba, numpy; print(f"{polars.__version__=} {numba.__version__=} {numpy.__version__=}")'
    "$venv/bin/python" -m pytest -q -x tests/differential tests/conformance tests/engine -p no:randomly
}
if [[ "$which" == lowest || "$which" == both ]]; then
    run_at lowest "polars==2.0.0" "numba==0.67.0" "numpy==2.2.6"
fi
if [[ "$which" == highest || "$which" == both ]]; then
    run_at highest --upgrade "polars<3" "numba<0.69" "numpy<2.5"
fi
