"""Numeric bounds that keep values inside their columns, one definition for ingest, scoring and rollups.

Inputs are checked against them per span or score; sums (a trace, a minute, an hour) saturate at what their
columns hold instead of failing the write."""

from decimal import Decimal

# A span's token count: far beyond any real call, and a sum of many still fits a bigint column.
MAX_TOKENS = 10**12
# bigint token columns.
MAX_TOKENS_SUM = 2**63 - 1
# USD, for a span, a trace and a rollup bucket alike: below numeric(20, 10)'s limit by a margin that a float keeps
# (SQLite stores decimals as REAL, and 9999999999.99… reads back as 1e10, which no longer fits the column). A
# span reporting more has no cost (unknown); a trace or a bucket summing to more is capped.
MAX_COST = Decimal(9_000_000_000)
# Score values are finite and within ±SCORE_VALUE_LIMIT (docs/security.md), so that sums over any window stay far
# from float overflow.
SCORE_VALUE_LIMIT = 1e9
