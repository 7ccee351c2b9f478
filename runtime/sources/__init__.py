"""The input edge: Parquet history for replay, live micro-batch sources for streaming.

Submodules are imported lazily by `open_source` so replay never pays for
redis/httpx imports.
"""

from runtime.sources.batch import Batch, Clock, ManualClock, Source, SystemClock
from runtime.sources.errors import NoInputError, SchemaError, SourceError, SourceSpecError
from runtime.sources.parquet import count_rows, iter_parquet, resolve_paths
from runtime.sources.records import Rejected, parse_json_lines, records_to_frame
from runtime.sources.spec import open_source, parse_duration_s

__all__ = [
    "Batch",
    "Clock",
    "ManualClock",
    "NoInputError",
    "Rejected",
    "SchemaError",
    "Source",
    "SourceError",
    "SourceSpecError",
    "SystemClock",
    "count_rows",
    "iter_parquet",
    "open_source",
    "parse_duration_s",
    "parse_json_lines",
    "records_to_frame",
    "resolve_paths",
]
