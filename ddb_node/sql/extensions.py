"""SQLite loadable extensions (rqlite's `-extensions-path`): found once at start, loaded into
every connection a node opens (the apply connection and the readers), the same on every
node.

Determinism: a function an extension registers without SQLITE_DETERMINISTIC may give each
replica a different value, so it is refused in any statement that writes (at
classification, and again at apply); reads may call it. SQLite's `PRAGMA function_list`
says which functions an extension added and with which flags.
"""
from __future__ import annotations

import os
import tarfile
import zipfile

import apsw

SQLITE_DETERMINISTIC = 0x800


class ExtensionError(ValueError):
    pass


def resolve(paths: str, unpack_dir: str) -> list[str]:
    """The extension files that `paths` (comma-separated, as rqlite's) name, in order."""
    out: list[str] = []
    for i, path in enumerate(p.strip() for p in paths.split(",")):
        if path:
            out += _resolve_one(os.path.expanduser(path), os.path.join(unpack_dir, str(i)))
    if not out:
        raise ExtensionError(f"extensions path {paths!r} names no extension")
    return out


def _resolve_one(path: str, unpack_dir: str) -> list[str]:
    """A loadable file; every file of a directory (sorted; rqlite loads them all); or every
    file of a zip archive or a (gzipped) tarball, flattened into `unpack_dir`."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if not f.startswith(".") and os.path.isfile(os.path.join(path, f)))
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            files = _unpack(((i.filename, not i.is_dir(), lambda i=i: z.open(i)) for i in z.infolist()),
                            unpack_dir)
    elif path.endswith((".tar.gz", ".tgz", ".tar")) and tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            files = _unpack(((m.name, m.isfile(), lambda m=m: t.extractfile(m)) for m in t.getmembers()),
                            unpack_dir)
    elif os.path.isfile(path):
        files = [path]
    else:
        raise ExtensionError(f"extensions path {path}: no such file or directory")
    if not files:
        raise ExtensionError(f"extensions path {path} holds no file to load")
    return [os.path.abspath(f) for f in files]


def _unpack(members, unpack_dir: str) -> list[str]:
    """Write an archive's regular, non-hidden files (name, is_file, open) flat into
    `unpack_dir`; their paths, sorted."""
    os.makedirs(unpack_dir, exist_ok=True)
    files = []
    for member_name, is_file, open_member in members:
        name = os.path.basename(member_name)
        if not is_file or not name or name.startswith("."):
            continue
        dest = os.path.join(unpack_dir, name)
        with open_member() as src, open(dest, "wb") as out:
            out.write(src.read())
        files.append(dest)
    return sorted(files)


def _user_functions(conn: apsw.Connection) -> dict[str, int]:
    """name -> flags of every function that is not SQLite's own."""
    out: dict[str, int] = {}
    for name, flags in conn.execute("SELECT name, flags FROM pragma_function_list WHERE builtin = 0"):
        out[name.lower()] = out.get(name.lower(), SQLITE_DETERMINISTIC) & flags
    return out


def load(conn: apsw.Connection, files: list[str]) -> set[str]:
    """Load `files` into `conn`; return the names of the non-deterministic functions they
    added. load_extension() stays unreachable from SQL (policy.py refuses it)."""
    if not files:
        return set()
    before = _user_functions(conn)
    conn.enable_load_extension(True)
    try:
        for f in files:
            try:
                conn.load_extension(f)
            except apsw.Error as e:
                raise ExtensionError(f"cannot load extension {f}: {e}") from None
    finally:
        conn.enable_load_extension(False)
    after = _user_functions(conn)
    return {n for n, flags in after.items()
            if n not in before and not flags & SQLITE_DETERMINISTIC}


def refusal(name: str | None, nondeterministic: set[str]) -> str | None:
    """Why a write may not call this function, or None."""
    if name and name.lower() in nondeterministic:
        return (f"{name}() comes from an extension that does not declare it deterministic "
                "(SQLITE_DETERMINISTIC): every replica could compute a different value, so "
                "it may be used in reads only")
    return None
