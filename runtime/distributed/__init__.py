"""The same compiled rules on Bytewax workers, keyed by group, with recovery (docs/distributed.md).

`cepdsl` knows nothing of this package: it builds a Bytewax dataflow around the
single-process engine's sessions and executors (flow.py), reads input
partitions (inputs.py), routes rows by group key (routing.py), keeps one
session per key partition (keyed.py), follows a control feed for rule changes
(control.py) and runs it all for `cep replay/run --workers` (runner.py).
"""
