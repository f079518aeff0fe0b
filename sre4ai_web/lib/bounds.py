"""Numeric bounds that keep values inside their columns, shared by ingest, scoring and rollups.

Inputs are bounded per span; sums (a trace, a minute, an hour) saturate at what their columns hold instead of
failing the write."""

# bigint token columns.
MAX_TOKENS_SUM = 2**63 - 1
