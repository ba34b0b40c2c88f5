"""Data: the HDF5 shard format, rank row assignment, budgeted readers, and the data tool."""
from .assign import assign_rows, rank_range
from .batches import epoch_plan
from .format import MODEL_TASKS, RATINGS, Schema, read_schema, resolve_paths, write_shard
from .reader import ShardReader

__all__ = ["assign_rows", "rank_range", "epoch_plan", "MODEL_TASKS", "RATINGS", "Schema", "read_schema",
           "resolve_paths", "write_shard", "ShardReader"]
