"""Every function and aggregate the checker knows has a written signature here, and
the channel options offered are the checker's."""

from __future__ import annotations

from cepdsl.typecheck import AGGREGATES, SCALAR_FUNCTIONS
from runtime.lsp import vocabulary


def test_every_function_and_aggregate_has_a_signature() -> None:
    for name in SCALAR_FUNCTIONS.names():
        sig, doc = vocabulary.FUNCTIONS[name]
        assert sig.startswith(f"{name}(") and sig != f"{name}(...)" and doc != "function", name
    for name in AGGREGATES.names():
        sig, doc = vocabulary.AGGREGATE_DOCS[name]
        assert sig.startswith(f"{name}(") and sig != f"{name}(...)" and doc != "aggregate", name
    assert set(vocabulary.FUNCTIONS) == set(SCALAR_FUNCTIONS.names())
    assert set(vocabulary.AGGREGATE_DOCS) == set(AGGREGATES.names())


def test_anomaly_methods_are_the_checkers() -> None:
    from cepdsl.checker import _ANOMALY_PARAMS

    assert set(vocabulary.ANOMALY_METHODS) == set(_ANOMALY_PARAMS)
    for method, params in _ANOMALY_PARAMS.items():
        for p, default in params.items():
            assert f"{p} = {default}" in vocabulary.ANOMALY_METHODS[method]
