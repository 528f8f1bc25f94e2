"""HTTP Basic authentication with an rqlite-style users file.

The file is a JSON array::

    [{"username": "bob", "password": "scrypt$16384$8$1$<salt b64>$<hash b64>", "perms": ["all"]},
     {"username": "mary", "password": "plain text works too", "perms": ["query", "status"]},
     {"username": "*", "perms": ["status", "ready"]}]

``*`` gives permissions to everyone, with or without credentials. Passwords are plain text
(rqlite's default), ``scrypt$N$r$p$salt$hash`` (``hash_password`` makes one, stdlib only), or
bcrypt ``$2a$``/``$2b$`` hashes when the optional ``bcrypt`` package is installed. Hash
checks run in a worker thread (scrypt releases the GIL) and successful checks are cached,
so a verification never holds up the node's event loop.

Permissions (rqlite's): all, execute, query, load, backup, status, ready, join,
join-read-only (join as a non-voter only; ``join-read-replica`` is accepted as another name),
remove, leader-ops, snapshot, ui; ddb adds ``faults`` (fault injection and process control
from the dashboard).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import threading

PERMS = {"all", "execute", "query", "load", "backup", "status", "ready", "join", "join-read-only",
         "join-read-replica",
         "remove", "leader-ops", "snapshot", "ui", "faults"}

SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = os.urandom(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return "scrypt${}${}${}${}${}".format(n, r, p, base64.b64encode(salt).decode(),
                                         base64.b64encode(dk).decode())


def _verify(stored: str, password: str) -> bool:
    if stored.startswith("scrypt$"):
        try:
            _, n, r, p, salt, want = stored.split("$")
            dk = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(base64.b64decode(want)), maxmem=256 << 20)
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(dk, base64.b64decode(want))
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        try:
            import bcrypt
        except ImportError:
            return False
        try:
            return bcrypt.checkpw(password.encode(), stored.encode())
        except ValueError:
            return False
    return hmac.compare_digest(stored.encode(), password.encode())


class UsersFileError(ValueError):
    pass


class CredentialStore:
    def __init__(self, entries: list):
        self.users: dict[str, tuple[str | None, frozenset]] = {}
        if not isinstance(entries, list):
            raise UsersFileError("the users file must hold a JSON array")
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or not isinstance(e.get("username"), str):
                raise UsersFileError(f"entry {i} needs a username")
            perms = e.get("perms") or []
            if not isinstance(perms, list) or any(p not in PERMS for p in perms):
                raise UsersFileError(f"entry {i}: perms must be a list drawn from {sorted(PERMS)}")
            pw = e.get("password")
            if e["username"] != "*" and not isinstance(pw, str):
                raise UsersFileError(f"entry {i} ({e['username']}) needs a password")
            self.users[e["username"]] = (pw, frozenset(perms))
        self._ok: dict[tuple[str, bytes], bool] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str) -> "CredentialStore":
        with open(path) as f:
            try:
                data = json.load(f)
            except ValueError as e:
                raise UsersFileError(f"users file {path} is not JSON: {e}") from None
        return cls(data)

    def _anon(self, perm: str) -> bool:
        star = self.users.get("*")
        return bool(star) and (perm in star[1] or "all" in star[1])

    async def check(self, username: str | None, password: str | None, perms: tuple[str, ...]) -> bool:
        """True when the request may go ahead: every perm is held by `*` or by the user, whose
        password must match whenever credentials were sent."""
        if username is None:
            return all(self._anon(p) for p in perms)
        entry = self.users.get(username)
        if entry is None or entry[0] is None:
            return False
        if not await self._password_ok(username, entry[0], password or ""):
            return False
        held = entry[1]
        return all(p in held or "all" in held or self._anon(p) for p in perms)

    async def _password_ok(self, username: str, stored: str, password: str) -> bool:
        key = (username, hashlib.sha256(password.encode()).digest())
        hit = self._ok.get(key)
        if hit is not None:
            return hit
        if stored.startswith(("scrypt$", "$2")):
            ok = await asyncio.get_running_loop().run_in_executor(None, _verify, stored, password)
        else:
            ok = _verify(stored, password)
        if ok:
            with self._lock:
                if len(self._ok) > 1024:
                    self._ok.clear()
                self._ok[key] = True
        return ok


def parse_basic(header: str | None) -> tuple[str | None, str | None]:
    """'Basic base64(user:pass)' -> (user, pass); anything malformed -> (None, None)."""
    if not header or not header[:6].lower() == "basic ":
        return None, None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None, None
    user, sep, pw = raw.partition(":")
    if not sep:
        return None, None
    return user, pw


def main(argv=None) -> int:
    """python -m ddb_node.server.http.auth PASSWORD -> a scrypt hash for the users file."""
    import sys
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ddb_node.server.http.auth PASSWORD", file=sys.stderr)
        return 2
    print(hash_password(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
