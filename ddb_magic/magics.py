"""The magics: `%ddb` / `%%ddb`, the fault magics and the simulator's stepping magics."""
from __future__ import annotations

import time

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Bool, Float, Int, Unicode

from ddb_node.errors import (BadRequest, ConnectionFailed, DdbError, NoLeader, NotLeader, Stale,
                             StatementError, Timeout, Unavailable)

from . import check, lifecycle, persist, snippets, watch
from . import transactions as txmagic
from .parsing import (CELL_USAGE, LEVELS, UsageProblem, arg_parser, bind_parameters, parse_cell,
                      parse_groups, parse_node_list, render_template, split_args,
                      split_statements)
from .picture import ClusterPicture
from .render import CellResult, ErrorView, Note, ReadResult, WriteResult

DDB_USAGE = """\
%ddb launch [-n 3] [--dir PATH] [--name NAME] [--sim [--seed S]]   start a cluster here
%ddb attach ADDR [ADDR...] [--name NAME]                           use a running cluster
%ddb status [--watch SECONDS]      the cluster picture        %ddb nodes    one row per node
%ddb leader [N]                    show the leader, or move leadership to node N
%ddb level [LEVEL]                 default read level: none, weak, linearizable, strong, auto
%ddb add-node | remove-node N      membership          %ddb wait leader|commit|quiet [--timeout S]
%ddb stop [--name NAME | --all]    stop a cluster      %ddb list     the clusters of this session
%ddb log [N]                       every node's last N log entries side by side
%ddb_sequence [--last N] [--node A,B]   sequence diagram of the recent messages
%ddb_check [--workload]            check the session's register reads/writes for linearizability
%ddb_plot hist|box|bar COL --table T   a plot computed in the cluster (matplotlib Axes)
%ddb SELECT ...                    a line of SQL (x = %ddb SELECT ... keeps the DataFrame)
%%ddb --begin [--tx NAME] SQL      begin a transaction   %%ddb --tx NAME SQL   run in it
%ddb commit [NAME] | rollback [NAME]                               end it
%%ddb [--node N] [--level L] [--transaction] [--name C] [--map-reduce] [VAR <<] SQL ...
%%ddb --save NAME | --with NAME | --file PATH    compose queries    %ddb --persist DF [TABLE]"""

SUBCOMMANDS = ("launch", "attach", "status", "nodes", "stop", "add-node", "remove-node", "leader",
               "level", "wait", "list", "help", "log", "commit", "rollback")


def _short(sql: str, n: int = 60) -> str:
    s = " ".join(sql.split())
    return s if len(s) <= n else s[:n - 1] + "\u2026"


@magics_class
class DdbMagic(Magics):
    displaylimit = Int(10, help="Rows shown per result (the full result is kept). "
                                "0 or a negative number shows every row.").tag(config=True)
    fetchlimit = Int(100_000, help="Rows fetched of a long read (with its row count) unless the "
                                   "cell says --all; 0 fetches every row.").tag(config=True)
    timeout = Float(10.0, help="Seconds a cell waits for the cluster before giving up.").tag(config=True)
    level = Unicode("weak", help="Default read consistency level of %%ddb cells.").tag(config=True)
    raise_errors = Bool(False, help="Raise (stop Run All) on errors instead of showing one "
                                    "line.").tag(config=True)
    launch_timeout = Float(60.0, help="Seconds %ddb launch waits for a leader.").tag(config=True)
    autopandas = Bool(False, help="A %%ddb cell ending in a read returns its DataFrame as the "
                                  "cell's value (shown by pandas, kept in _) instead of "
                                  "displaying it with its caption.").tag(config=True)

    def __init__(self, shell=None, **kw):
        super().__init__(shell=shell, **kw)
        self.clusters: dict = {}
        self.current: str | None = None

    # ================================================================ plumbing
    def _ns(self) -> dict:
        return self.shell.user_ns if self.shell is not None else {}

    def _backend(self, name: str | None = None):
        if name is None:
            name = self.current
        if name is None or name not in self.clusters:
            if name is not None and self.clusters:
                raise UsageProblem(f"no cluster named {name!r} (clusters: {', '.join(self.clusters)})")
            raise UsageProblem("no cluster yet: run %ddb launch (or %ddb launch --sim, "
                               "or %ddb attach ADDRESS) first")
        self.current = name
        return self.clusters[name]

    def _fail(self, e: BaseException):
        """Show an expected failure as one line (or raise it, if configured)."""
        view = ErrorView(*_describe_error(e, self.timeout))
        if self.raise_errors:
            from IPython.core.error import UsageError
            raise UsageError(repr(view)) from None
        display(view)
        return None

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except (UsageProblem, DdbError, ValueError, RuntimeError) as e:
            return self._fail(e)
        except KeyboardInterrupt:
            display(Note("interrupted"))
            return None

    def _picture(self, backend, title=None):
        return ClusterPicture(backend.observe(), title)

    # ================================================================ %ddb / %%ddb
    @line_cell_magic
    def ddb(self, line="", cell=None):
        """Launch/attach/inspect clusters (line) or run SQL (cell). `%ddb help` for more."""
        if cell is None:
            words = line.strip().split(None, 1)
            if words and words[0] in SUBCOMMANDS:
                rest = words[1] if len(words) > 1 else ""
                return self._guard(getattr(self, "_cmd_" + words[0].replace("-", "_")), rest)
            if not line.strip():
                display(Note(DDB_USAGE))
                return None
        return self._guard(self._run_sql, line, cell)

    # ---------------------------------------------------------------- SQL
    def _run_sql(self, line, cell):
        opts = parse_cell(line, cell)
        if opts.persist or opts.append:
            return persist.command(self, opts)
        opts.sql = snippets.prepare(self, opts)
        if opts.save and opts.no_execute:
            display(Note(f"saved {opts.save!r} (use it with %%ddb --with {opts.save})"))
            return None
        if not opts.sql:
            raise UsageProblem("no SQL to run\n" + CELL_USAGE)
        backend = self._backend(opts.name)
        ns = self._ns()
        sql = render_template(opts.sql, ns)
        statements = split_statements(sql)
        if not statements:
            raise UsageProblem("no SQL to run (only comments)")
        level = opts.level or self.level
        timeout = opts.timeout or self.timeout
        limit = opts.limit if opts.limit is not None else self.displaylimit
        limit = None if limit is not None and limit <= 0 else limit
        if opts.map_reduce:
            if len(statements) > 2:
                raise UsageProblem("--map-reduce takes a map query and an optional reduce query "
                                   "(over a table named map)")
            params = bind_parameters(statements[0], ns) or {}
            reply = backend.map_reduce(statements[0], statements[1] if len(statements) > 1 else None,
                                       params, timeout)
            statements = statements[:1]
        elif opts.begin or opts.tx:
            reply = txmagic.execute(backend, opts, [(s, bind_parameters(s, ns)) for s in statements],
                                    timeout)
        else:
            bound = [(s, bind_parameters(s, ns)) for s in statements]
            try:
                fetch = None if opts.fetch_all or self.fetchlimit <= 0 else self.fetchlimit
                reply = check.recorded(
                    self, backend, bound, level, opts.node, lambda: backend.execute(
                        bound, level=level, transaction=opts.transaction, node=opts.node,
                        timeout=timeout, no_wait=opts.no_wait, fetch_rows=fetch))
            except BadRequest as e:
                raise _with_statement(e, statements) from None
        outputs = []
        failed = False
        for i, r in enumerate(reply.results):
            meta = {"node": reply.node, "level": reply.level, "index": reply.index,
                    "time": getattr(r, "time", None) or reply.time}
            k = getattr(r, "statement", i)
            k = k if isinstance(k, int) and 0 <= k < len(statements) else min(i, len(statements) - 1)
            if r.error is not None:
                failed = True
                where = f"statement {k + 1} " if len(statements) > 1 else ""
                outputs.append(ErrorView(f"{where}`{_short(statements[k])}`: {r.error}", "SQL error"))
            elif r.columns:
                outputs.append(ReadResult(r.to_pandas(), r, meta, limit))
            else:
                outputs.append(WriteResult(r, meta))
        if failed and opts.transaction:
            outputs.append(Note("transaction rolled back: no statement of this cell took effect"))
        if reply.note:
            outputs.append(Note(reply.note))
        result = CellResult(outputs, statements, reply)
        ns["_ddb"] = result
        value = result.value()
        if opts.target:
            ns[opts.target] = value
            if not opts.display_too:
                return None
        if cell is None and not opts.target:
            return value          # the line form: x = %ddb SELECT ...
        if self.autopandas and not failed and outputs and isinstance(outputs[-1], ReadResult):
            for o in outputs[:-1]:
                display(o)
            return value          # the cell's value is the DataFrame itself (Out[n], _)
        for o in outputs:
            display(o)
        if failed and self.raise_errors:
            from IPython.core.error import UsageError
            raise UsageError("a statement failed (see above)")
        return None

    # ---------------------------------------------------------------- subcommands
    def _cmd_log(self, rest):
        from . import log_grid
        return log_grid.command(self, rest)

    def _cmd_commit(self, rest):
        display(Note(txmagic.end(self._backend(None), rest, commit=True)))

    def _cmd_rollback(self, rest):
        display(Note(txmagic.end(self._backend(None), rest, commit=False)))

    def _cmd_help(self, rest):
        display(Note(DDB_USAGE))

    def _cmd_launch(self, rest):
        p = arg_parser("%ddb launch",
                    (["-n", "--nodes"], dict(type=int, default=3)),
                    (["--dir"], dict(default=None)),
                    (["--name"], dict(default="default")),
                    (["--sim"], dict(action="store_true")),
                    (["--seed"], dict(type=int, default=0)),
                    (["--storage"], dict(choices=["disk", "memory"], default="disk")),
                    (["--snapshot-entries"], dict(type=int, default=None)))
        a = p.parse_args(split_args(rest))
        if not 1 <= a.nodes <= 9:
            raise UsageProblem("a cluster has 1 to 9 nodes")
        if a.name in self.clusters:
            old = self.clusters.pop(a.name)
            lifecycle.untrack(old)
            old.close()
        t0 = time.monotonic()
        if a.sim:
            from .sim import SimBackend
            backend = SimBackend(a.name, a.nodes, seed=a.seed)
            msg = (f"simulated cluster {a.name!r}: {a.nodes} nodes, seed {a.seed}, virtual time "
                   "(nothing runs until you step it or send SQL)")
        else:
            from .backends import LiveBackend, notebook_cluster_class
            cls = notebook_cluster_class()
            extra = {"snapshot_entries": a.snapshot_entries} if a.snapshot_entries else {}
            cluster = cls(a.nodes, data_dir=a.dir, storage=a.storage, timeout=self.launch_timeout,
                          **extra)
            backend = LiveBackend(a.name, cluster, "local", timeout=self.timeout)
            lid = cluster.leader()
            msg = (f"cluster {a.name!r}: {a.nodes} nodes on 127.0.0.1, leader n{lid}, "
                   f"ready in {time.monotonic() - t0:.1f}s")
        self.clusters[a.name] = backend
        self.current = a.name
        backend.observe()
        lifecycle.track(backend)
        lifecycle.hook_kernel(self.shell)
        display(Note(msg))

    def _cmd_attach(self, rest):
        p = arg_parser("%ddb attach", (["addresses"], dict(nargs="+")),
                    (["--name"], dict(default="default")))
        a = p.parse_args(split_args(rest))
        from ddb_node.cluster import Cluster

        from .backends import LiveBackend
        cluster = Cluster.attach([x for addr in a.addresses for x in addr.split(",") if x])
        if a.name in self.clusters:
            self.clusters.pop(a.name).close()
        backend = LiveBackend(a.name, cluster, "attached", timeout=self.timeout)
        self.clusters[a.name] = backend
        self.current = a.name
        display(Note(f"attached {a.name!r}: nodes {', '.join(map(str, cluster.node_ids()))}"))

    def _cmd_list(self, rest):
        if not self.clusters:
            display(Note("no clusters (run %ddb launch)"))
            return
        lines = [("* " if n == self.current else "  ") + b.describe() for n, b in self.clusters.items()]
        display(Note("\n".join(lines)))

    def _cmd_status(self, rest):
        p = arg_parser("%ddb status", (["--watch"], dict(type=float, default=None)),
                    (["--every"], dict(type=float, default=0.5)),
                    (["--name"], dict(default=None)))
        a = p.parse_args(split_args(rest))
        backend = self._backend(a.name)
        if not a.watch:
            return self._picture(backend)
        handle = display(self._picture(backend), display_id=True)
        deadline = time.monotonic() + a.watch
        try:
            while time.monotonic() < deadline:
                time.sleep(max(0.05, min(a.every, deadline - time.monotonic())))
                handle.update(self._picture(backend))
        except KeyboardInterrupt:
            pass
        return None

    def _cmd_nodes(self, rest):
        a = arg_parser("%ddb nodes", (["--name"], dict(default=None))).parse_args(split_args(rest))
        return self._backend(a.name).nodes_table()

    def _cmd_stop(self, rest):
        p = arg_parser("%ddb stop", (["--name"], dict(default=None)), (["--all"], dict(action="store_true")))
        a = p.parse_args(split_args(rest))
        names = list(self.clusters) if a.all else [self._backend(a.name).name]
        for n in names:
            b = self.clusters.pop(n)
            lifecycle.untrack(b)
            b.close()
        self.current = next(reversed(self.clusters), None) if self.clusters else None
        display(Note("stopped " + ", ".join(repr(n) for n in names)))

    def _cmd_add_node(self, rest):
        a = arg_parser("%ddb add-node", (["--name"], dict(default=None))).parse_args(split_args(rest))
        b = self._backend(a.name)
        nid = b.add_node()
        b.timeline.add(f"n{nid} joined")
        display(self._picture(b, f"node {nid} added (learner first, then voter)"))

    def _cmd_remove_node(self, rest):
        a = arg_parser("%ddb remove-node", (["node"], dict(type=int)),
                    (["--name"], dict(default=None))).parse_args(split_args(rest))
        b = self._backend(a.name)
        what = b.remove_node(a.node)
        b.timeline.add(what)
        display(self._picture(b, what))

    def _cmd_leader(self, rest):
        a = arg_parser("%ddb leader", (["node"], dict(type=int, nargs="?")),
                    (["--name"], dict(default=None))).parse_args(split_args(rest))
        b = self._backend(a.name)
        if a.node is None:
            lid = b.leader()
            if lid is None:
                display(Note("no leader right now (an election is under way, or there is no quorum)"))
            return lid                 # old = %ddb leader
        what = b.elect(a.node, timeout=self.timeout)
        b.timeline.add(what)
        display(self._picture(b, what))

    def _cmd_level(self, rest):
        rest = rest.strip()
        if not rest:
            display(Note(f"default level: {self.level}"))
            return
        if rest not in LEVELS:
            raise UsageProblem(f"usage: %ddb level {'|'.join(LEVELS)}")
        self.level = rest
        display(Note(f"default level: {self.level}"))

    def _cmd_wait(self, rest):
        p = arg_parser("%ddb wait", (["what"], dict(choices=["leader", "commit", "quiet"])),
                    (["--timeout"], dict(type=float, default=None)),
                    (["--not"], dict(type=int, action="append", default=[])),
                    (["--name"], dict(default=None)))
        a = p.parse_args(split_args(rest))
        b = self._backend(a.name)
        msg = b.wait(a.what, a.timeout or max(self.timeout, 10.0), exclude=tuple(a.__dict__["not"]))
        b.observe()
        display(Note(msg))

    # ================================================================ fault magics
    def _fault(self, fn, title_of=None):
        def run():
            b = self._backend(self._name)
            b.observe()
            what = fn(b)
            b.timeline.add(what)
            display(self._picture(b, what))   # shown even when not the cell's last line
        return self._guard(run)

    def _parse_fault(self, prog, line, *args):
        p = arg_parser(prog, *args, (["--name"], dict(default=None)))
        a = p.parse_args(split_args(line))
        self._name = a.name
        return a

    @line_magic
    def ddb_partition(self, line):
        """%ddb_partition 1,2 / 3   or   %ddb_partition --isolate N"""
        def run():
            words = split_args(line)
            self._name = None
            if "--name" in words:
                k = words.index("--name")
                if k + 1 >= len(words):
                    raise UsageProblem("--name needs a cluster name")
                self._name = words[k + 1]
                del words[k:k + 2]
            if words[:1] == ["--isolate"]:
                if len(words) != 2:
                    raise UsageProblem("usage: %ddb_partition --isolate N")
                node = parse_node_list(words[1])
                if len(node) != 1:
                    raise UsageProblem("usage: %ddb_partition --isolate N")
                return lambda b: b.isolate(node[0])
            groups = parse_groups(" ".join(words))
            return lambda b: b.partition(groups)
        try:
            fn = run()
        except UsageProblem as e:
            return self._fail(e)
        return self._fault(fn)

    @line_magic
    def ddb_heal(self, line):
        """%ddb_heal: undo every network fault (partitions, drops, delays)."""
        try:
            self._parse_fault("%ddb_heal", line)
        except UsageProblem as e:
            return self._fail(e)
        return self._fault(lambda b: b.heal())

    def _one_node(self, prog, line):
        return self._parse_fault(prog, line, (["node"], dict(type=int)))

    @line_magic
    def ddb_kill(self, line):
        """%ddb_kill N: SIGKILL node N (it keeps only what it had on disk)."""
        try:
            a = self._one_node("%ddb_kill", line)
        except UsageProblem as e:
            return self._fail(e)
        return self._fault(lambda b: b.kill(a.node))

    @line_magic
    def ddb_restart(self, line):
        """%ddb_restart N: start node N again from its data."""
        try:
            a = self._one_node("%ddb_restart", line)
        except UsageProblem as e:
            return self._fail(e)
        return self._fault(lambda b: b.restart(a.node))

    @line_magic
    def ddb_pause(self, line):
        """%ddb_pause N: freeze node N (SIGSTOP): alive but silent."""
        try:
            a = self._one_node("%ddb_pause", line)
        except UsageProblem as e:
            return self._fail(e)
        return self._fault(lambda b: b.pause(a.node))

    @line_magic
    def ddb_resume(self, line):
        """%ddb_resume N: let a paused node run again."""
        try:
            a = self._one_node("%ddb_resume", line)
        except UsageProblem as e:
            return self._fail(e)
        return self._fault(lambda b: b.resume(a.node))

    @line_magic
    def ddb_elect(self, line):
        """%ddb_elect N: transfer leadership to node N."""
        try:
            a = self._one_node("%ddb_elect", line)
        except UsageProblem as e:
            return self._fail(e)
        return self._fault(lambda b: b.elect(a.node, timeout=self.timeout))

    @line_magic
    def ddb_drop(self, line):
        """%ddb_drop RATE [--link A-B]: lose a share of the messages (0.3 or 30%)."""
        try:
            a = self._parse_fault("%ddb_drop", line, (["rate"], dict()), (["--link"], dict(default=None)))
            rate = _rate(a.rate)
            link = None
            if a.link:
                ids = parse_node_list(a.link.replace("-", ","))
                if len(ids) != 2:
                    raise UsageProblem("usage: %ddb_drop RATE --link A-B")
                link = (ids[0], ids[1])
        except UsageProblem as e:
            return self._fail(e)
        return self._fault(lambda b: b.drop(rate, link))

    @line_magic
    def ddb_delay(self, line):
        """%ddb_delay MS [--jitter MS]: slow every message down."""
        try:
            a = self._parse_fault("%ddb_delay", line, (["ms"], dict(type=float)),
                                  (["--jitter"], dict(type=float, default=0.0)))
            if a.ms < 0 or a.jitter < 0:
                raise UsageProblem("usage: %ddb_delay MS [--jitter MS] (non-negative)")
        except UsageProblem as e:
            return self._fail(e)
        return self._fault(lambda b: b.delay(a.ms, a.jitter))

    # ================================================================ simulator stepping
    def _sim(self, prog, name):
        b = self._backend(name)
        if b.kind != "sim":
            raise UsageProblem(f"{prog} drives a simulated cluster: start one with %ddb launch --sim")
        return b

    @line_magic
    def ddb_step(self, line):
        """%ddb_step [N] [--node I]: fire the next N events of the simulation (default 1)."""
        def run():
            a = arg_parser("%ddb_step", (["n"], dict(type=int, nargs="?", default=1)),
                        (["--node"], dict(type=int, default=None)),
                        (["--name"], dict(default=None))).parse_args(split_args(line))
            b = self._sim("%ddb_step", a.name)
            lines = b.step(a.n, node=a.node)
            return self._picture_with_log(b, lines)
        return self._guard(run)

    @line_magic
    def ddb_tick(self, line):
        """%ddb_tick [N]: let N ticks of virtual time pass (default 1)."""
        def run():
            a = arg_parser("%ddb_tick", (["n"], dict(type=int, nargs="?", default=1)),
                        (["--name"], dict(default=None))).parse_args(split_args(line))
            b = self._sim("%ddb_tick", a.name)
            lines = b.tick(a.n)
            return self._picture_with_log(b, lines)
        return self._guard(run)

    @line_magic
    def ddb_run_until(self, line):
        """%ddb_run_until leader|commit|quiet|campaign [--max-steps N]"""
        def run():
            a = arg_parser("%ddb_run_until", (["what"], dict(choices=["leader", "commit", "quiet", "campaign"])),
                        (["--max-steps"], dict(type=int, default=100_000)),
                        (["--name"], dict(default=None))).parse_args(split_args(line))
            b = self._sim("%ddb_run_until", a.name)
            lines = b.run_until(a.what, a.max_steps)
            return self._picture_with_log(b, lines)
        return self._guard(run)

    @line_magic
    def ddb_watch(self, line):
        """%ddb_watch TABLE [--since N] [--rows R] [--stop]: follow TABLE's changes (watch.py)."""
        return self._guard(watch.magic, self, line)

    def _picture_with_log(self, b, lines):
        from .sim import StepLog
        display(StepLog(lines, self._picture(b)))


def _with_statement(e: BadRequest, statements: list[str]) -> BadRequest:
    """'statement 1 failed: …' (0-based, from the node) -> the statement's number and text."""
    import re
    msg = str(e)
    m = re.search(r"statement (\d+)( failed)?: ", msg)
    if not m or int(m.group(1)) >= len(statements):
        return e
    k = int(m.group(1))
    head = msg[:m.start()]
    tail = msg[m.end():]
    where = f"statement {k + 1} " if len(statements) > 1 else ""
    out = StatementError(f"{head}{where}`{_short(statements[k])}`: {tail}", k)
    return out


def _rate(text: str) -> float:
    t = text.strip()
    try:
        r = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise UsageProblem(f"bad rate {text!r}: use 0.3 or 30%") from None
    if not 0 <= r <= 1:
        raise UsageProblem("a drop rate is between 0 and 1 (or 0% and 100%)")
    return r


def _describe_error(e: BaseException, timeout: float) -> tuple[str, str]:
    """-> (message, kind) for one short line."""
    import re
    msg = str(e)
    if isinstance(e, UsageProblem):
        return msg, "usage"
    if isinstance(e, StatementError):
        return msg, "SQL error"
    if isinstance(e, BadRequest):
        m = re.match(r"statement (\d+): (.*)", msg, re.S)
        if m:
            return f"statement {int(m.group(1)) + 1}: {m.group(2)}", "SQL error"
        return msg, "refused"
    if isinstance(e, Timeout):
        msg = msg.replace(" (no quorum?)", "")
        return (f"no quorum \u2014 {msg} (a majority of the nodes must be reachable to commit "
                "a write or to confirm a linearizable read)", "timeout")
    if isinstance(e, NoLeader):
        return msg, "no leader"
    if isinstance(e, NotLeader):
        return f"not leader: {msg}", "unavailable"
    if isinstance(e, Stale):
        return msg, "stale"
    if isinstance(e, Unavailable):
        return msg, "unavailable"
    if isinstance(e, ConnectionFailed):
        return f"cannot reach the cluster: {msg}", "connection"
    if isinstance(e, DdbError):
        return msg, "error"
    return f"{type(e).__name__}: {msg}", "error"
