"""The one Arrow schema of checkpoint parts and merged files (never inferred from rows)."""

from __future__ import annotations

import pyarrow as pa

UTC_US = pa.timestamp("us", tz="UTC")

ROW_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("shard", pa.int32()),
        pa.field("status", pa.string()),  # "ok" | "error"
        pa.field("attempts", pa.int32()),
        pa.field("error", pa.string()),  # null when ok
        pa.field("result", pa.string()),  # JSON text; null on error
        pa.field("started_at", UTC_US),
        pa.field("finished_at", UTC_US),
        pa.field("worker", pa.string()),
    ]
)

STATUS_OK = "ok"
STATUS_ERROR = "error"
