"""Bronze-layer ingestion assets and the engine behind them."""

import os

# Arrow's default allocator (mimalloc) keeps the pages of freed batches, so the
# resident size of a long extract creeps up; the system allocator (tuned in
# ingestion.memory) returns them. Set before pyarrow is first imported; an explicit
# ARROW_DEFAULT_MEMORY_POOL wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
