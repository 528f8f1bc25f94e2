"""`ddb query`, `ddb exec` and `ddb keygen`: the script-friendly commands.

Output is a bordered table on a terminal and JSON otherwise, unless --format says which
(table, json or csv). JSON is one object: {"results": [{"columns", "decltypes", "rows",
...}], "node", "term", "index", "level", "time"}; blobs appear as {"$base64": "..."}.
"""
from __future__ import annotations

import json
import os
import sys

from ddb_node.cli.cluster import CliError, resolve_addresses
from ddb_node.cli.output import box_style, dumps, format_csv, format_result, response_json
from ddb_node.client import Client


def _split_args(args) -> tuple[list[str], str]:
    *addrs, sql = args.args
    if sql == "-":
        sql = sys.stdin.read()
    if not sql.strip():
        raise CliError("no SQL given")
    return resolve_addresses(addrs, args.dir), sql


def _params(text: str | None):
    if not text:
        return None
    if text.startswith("@"):
        with open(text[1:]) as f:
            text = f.read()
    try:
        params = json.loads(text)
    except ValueError as e:
        raise CliError(f"--params is not JSON: {e}") from None
    if not isinstance(params, (list, dict)):
        raise CliError("--params is a JSON list (positional ?) or object (named :name)")
    return params


def _print(resp, fmt: str | None, out=sys.stdout) -> None:
    fmt = fmt or ("table" if out.isatty() else "json")
    if fmt == "json":
        out.write(dumps(response_json(resp), pretty=out.isatty()) + "\n")
    elif fmt == "csv":
        out.write(format_csv(resp.results))
    else:
        style = box_style(out)
        out.write("\n".join(format_result(r, style=style) for r in resp.results) + "\n")


def _client(addrs: list[str], args) -> Client:
    c = Client(addrs, timeout=args.timeout, level=getattr(args, "level", "weak") or "weak")
    try:
        c.refresh(min(args.timeout, 3.0))     # an unreachable cluster fails fast, clearly
    except BaseException:
        c.close()
        raise
    return c


def query(args) -> int:
    addrs, sql = _split_args(args)
    params = _params(args.params)
    with _client(addrs, args) as c:
        resp = c.query(sql, params, level=args.level, timeout=args.timeout,
                       freshness=args.freshness)
    _print(resp, args.format)
    return 0


def execute(args) -> int:
    addrs, sql = _split_args(args)
    params = _params(args.params)
    with _client(addrs, args) as c:
        resp = c.execute(sql, params, transaction=args.transaction, timeout=args.timeout)
    _print(resp, args.format)
    return 0


def keygen(args) -> int:
    import zmq
    if not zmq.has("curve"):
        raise CliError("this libzmq was built without CURVE support")
    public, secret = zmq.curve_keypair()
    data = {"public": public.decode("ascii"), "secret": secret.decode("ascii")}
    text = json.dumps(data, indent=2) + "\n"
    if not args.out or args.out == "-":
        sys.stdout.write(text)
        return 0
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if args.force else os.O_EXCL)
    try:
        fd = os.open(args.out, flags, 0o600)
    except FileExistsError:
        raise CliError(f"{args.out} exists (use --force to overwrite)") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
    print(f"wrote a CURVE keypair to {args.out} (public key {data['public']})", file=sys.stderr)
    return 0
