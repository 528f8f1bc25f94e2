"""Size limits on requests and results, each with its own clear error."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_statements: int = 10_000          # statements per request
    max_sql_length: int = 1_000_000       # characters per statement's SQL text
    max_params: int = 32_766              # parameters per statement (SQLite's own default)
    max_param_bytes: int = 16 * 1024 * 1024   # one str/bytes parameter, in bytes
    max_entry_bytes: int = 64 * 1024 * 1024   # the whole encoded entry
    max_result_rows: int | None = None    # rows kept per result on apply (None: all)
    max_result_bytes: int | None = None   # approximate bytes kept per result on apply


DEFAULT_LIMITS = Limits()
