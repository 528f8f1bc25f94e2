#!/usr/bin/env python3
"""Where a node's CPU goes: py-spy's collapsed stacks (``http_wrk.py --profile DIR``) summed
by layer, so the HTTP layer's share can be told from the node's request path and Raft.

Each sample is charged to the innermost frame that belongs to a named layer (a frame of the
stdlib called from tornado counts as tornado, ``json.dumps`` called from http_format counts as
the HTTP layer's JSON), so the shares add up to 100 %. py-spy samples a running *or runnable*
thread: on a loaded machine the socket write that wakes the client is where the node is
preempted, so that layer is shown apart and left out of the per-request split. With
``--us-per-op`` (the leader's *user* CPU per request from the same run; the system CPU is
mostly that write and the reads) the other layers' shares are given in µs per request.

    python benchmarks/profile_summary.py DIR/get_none-16.txt [--us-per-op 618] [--top 25]
"""
from __future__ import annotations

import argparse
import collections
import re

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")

# (layer, file pattern, function pattern): first match from the innermost frame outwards
WRITE = "socket write to the client (wall time: includes being preempted by the woken client)"
LAYERS = [
    ("idle (epoll wait)", r"selectors\.py$", r"select$"),
    (WRITE, r"(ddb_node/server/http/server\.py|tornado/iostream\.py|asyncio/selector_events\.py)$",
     r"^(HttpProtocol\._write|IOStream\.write_to_fd|_SelectorSocketTransport\.write)$"),
    ("json encode/decode", r"^(json/|orjson)", r""),
    ("http: request handling (ddb)", r"ddb_node/server/http_(api|format|server|routes|io|ws|auth)\.py$", r""),
    ("http: server library", r"(tornado/|httptools|h11/|wsproto/|uvloop)", r""),
    ("node: request path (api.py)", r"ddb_node/server/api\.py$", r""),
    ("sql: state machine (classify, query, apply)", r"ddb_node/sql/", r""),
    ("raft core", r"ddb_node/raft/", r""),
    ("log storage (save, fsync)", r"ddb_node/storage/", r""),
    ("transport (zmq, msgpack)", r"(ddb_node/net/|zmq/|msgpack)", r""),
    ("node: loop glue (node.py)", r"ddb_node/server/node\.py$", r""),
    ("asyncio event loop", r"(asyncio/|selectors\.py$)", r""),
]


def parse(path: str):
    """-> list of (frames innermost-last, count) for the main thread."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            frames = []
            for part in stack.split(";"):
                m = _FRAME.match(part.strip())
                if m:
                    frames.append((m.group("fn"), m.group("file")))
            out.append((frames, int(n)))
    return out


def layer_of(frames) -> str:
    for fn, file in reversed(frames):
        for name, fpat, npat in LAYERS:
            if re.search(fpat, file) and re.search(npat, fn):
                return name
    return "other"


def summarize(path: str, us_per_op: float | None, top: int) -> str:
    samples = parse(path)
    total = sum(n for _, n in samples) or 1
    by_layer = collections.Counter()
    self_fn = collections.Counter()
    incl = collections.Counter()
    for frames, n in samples:
        by_layer[layer_of(frames)] += n
        if frames:
            fn, file = frames[-1]
            self_fn[f"{fn} ({file})"] += n
        for key in {f"{fn} ({file})" for fn, file in frames}:
            incl[key] += n
    busy = total - by_layer.get("idle (epoll wait)", 0)
    working = busy - by_layer.get(WRITE, 0)
    lines = [f"## {path}: {total} samples, {busy} busy", "",
             "| layer | share of busy samples | share without the write | user µs/request |",
             "|---|---|---|---|"]
    for name, n in by_layer.most_common():
        if name.startswith("idle"):
            continue
        if name == WRITE:
            lines.append(f"| {name} | {n * 100 / max(busy, 1):.1f} % | - | - |")
            continue
        share = n / max(working, 1)
        us = f"{share * us_per_op:.0f}" if us_per_op else "-"
        lines.append(f"| {name} | {n * 100 / max(busy, 1):.1f} % | {share * 100:.1f} % | {us} |")
    lines += ["", f"top {top} functions by self samples:", ""]
    for k, n in self_fn.most_common(top):
        lines.append(f"    {n * 100 / total:5.1f} %  {k}")
    lines += ["", f"top {top} functions by inclusive samples:", ""]
    for k, n in incl.most_common(top + 12)[12:]:    # skip the loop's outer frames
        lines.append(f"    {n * 100 / total:5.1f} %  {k}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--us-per-op", type=float, default=None)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    for f in args.files:
        print(summarize(f, args.us_per_op, args.top))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
