"""Result -> pandas.DataFrame without losing what SQLite returned.

Integers become nullable ``Int64`` (exact, also beyond 2**53), reals ``Float64``, text
``string``, blobs and mixed columns stay ``object``. An empty result keeps its columns and
the dtypes its affinities imply. Violations and types go to ``df.attrs``.
"""
from __future__ import annotations

_EMPTY_DTYPE = {"INTEGER": "Int64", "REAL": "Float64", "TEXT": "string", "NUMERIC": "object",
                "BLOB": "object"}


def _column(pd, values, affinity, seen):
    kinds = set(seen) - {"null"}
    if not values:
        return pd.array([], dtype=_EMPTY_DTYPE.get(affinity, "object"))
    if kinds == {"integer"}:
        return pd.array(values, dtype="Int64")
    if kinds == {"real"}:
        return pd.array(values, dtype="Float64")
    if kinds == {"text"}:
        return pd.array(values, dtype="string")
    if not kinds:   # only NULLs
        return pd.array(values, dtype=_EMPTY_DTYPE.get(affinity, "object"))
    return pd.array(values, dtype=object)


def to_pandas(result):
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas() needs pandas, which a bare install leaves out: "
                          "pip install 'ddb[notebook]'") from None

    if result.error is not None:
        raise ValueError(f"result holds an error: {result.error}")
    data = {}
    names = []
    for i, name in enumerate(result.columns):
        key = name if name not in data else f"{name}_{i}"
        names.append(key)
        data[key] = _column(pd, result.values[i], result.affinities[i], result.types_seen[i])
    df = pd.DataFrame(data, columns=names)
    if names != result.columns:
        df.columns = result.columns
    df.attrs["decltypes"] = list(result.decltypes)
    df.attrs["affinities"] = list(result.affinities)
    df.attrs["types_seen"] = list(result.types_seen)
    df.attrs["violations"] = list(result.violations)
    df.attrs["truncated"] = result.truncated
    return df
