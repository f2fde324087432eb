"""The run store: one SQLite file (WAL) that the worker writes and every reader polls (see core.RunStore).

    files    the file itself: refusing a damaged one, creating one atomically, clear errors
    schema   the tables, the schema version and the in-place upgrade of an older store
    core     RunStore: the connection, runs and stages
    records  metrics, traces, events, pairs, artifacts, commands
    evals    evaluations, their sources, generations
"""

from engine.store.core import ACTIVE, NO_ERROR, RunStore
from engine.store.files import damaged_store, describe_store_error, process_alive
from engine.store.schema import _SCHEMA, SCHEMA_VERSION, backup_path, source_row, split_error

__all__ = ["ACTIVE", "NO_ERROR", "SCHEMA_VERSION", "_SCHEMA", "RunStore", "backup_path", "damaged_store",
           "describe_store_error", "process_alive", "source_row", "split_error"]
