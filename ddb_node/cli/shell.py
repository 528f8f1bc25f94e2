"""`ddb shell`: interactive SQL against a ddb cluster.

On a terminal: prompt_toolkit with a history file, SQL highlighting (pygments' SqlLexer) and
multi-line input until the statement is complete (ends with `;`). When stdin is not a
terminal it reads statements and dot-commands from stdin and prints the same tables, so it
can be scripted and tested: `printf 'SELECT 1;\\n' | ddb shell`.
"""
from __future__ import annotations

import os
import sys
import time

import apsw

from ddb_node.cli.cluster import CliError, StateCluster, ddb_home, status_rows, STATUS_COLUMNS
from ddb_node.cli.output import box_style, error_line, format_result, format_table, result_rows
from ddb_node.client import LEVELS, Client
from ddb_node.errors import DdbError

HELP = """\
Enter SQL ending with ';' (it may span lines). Dot-commands:
  .help                 this text
  .level [LEVEL]        show or set the read consistency: none, weak, linearizable, strong, auto
  .timer on|off         print how long each statement took, and where it ran
  .status               a table of the nodes (role, term, leader, commit/applied/last index)
  .nodes                the members and their addresses
  .leader [N]           show the leader, or transfer leadership to node N
  .tables               list the tables
  .schema [TABLE]       show CREATE statements
  .partition 1,2 / 3    split the network into groups (faults apply to reachable nodes)
  .isolate N            cut node N off from every other node
  .drop RATE            drop that fraction of peer messages (0..1)
  .delay MS [JITTER]    delay peer messages
  .heal                 remove every network fault
  .kill N               SIGKILL node N      (only a cluster started by `ddb cluster up`)
  .restart N            start node N again  (only a cluster started by `ddb cluster up`)
  .quit                 leave (also .exit, Ctrl-D)"""


def statement_complete(text: str) -> bool:
    t = text.strip()
    return not t or t.startswith(".") or apsw.complete(text)


def parse_groups(spec: str) -> list[list[int]]:
    """'1,2 / 3' -> [[1, 2], [3]]"""
    groups = []
    for part in spec.split("/"):
        ids = [x for x in part.replace(",", " ").split() if x]
        if not ids:
            raise CliError("empty group: use .partition 1,2 / 3")
        try:
            groups.append([int(x) for x in ids])
        except ValueError:
            raise CliError(f"node ids are numbers: {part.strip()!r}") from None
    if len(groups) < 2:
        raise CliError("give at least two groups: .partition 1,2 / 3")
    return groups


def _node_arg(args: list[str], cmd: str) -> int:
    if len(args) != 1 or not args[0].isdigit():
        raise CliError(f"usage: {cmd} N (a node id)")
    return int(args[0])


class Shell:
    def __init__(self, addresses: list[str], *, state_dir: str | None = None,
                 from_state: bool = False, level: str = "weak", timeout: float = 10.0,
                 out=None, err=None, ascii_only: bool = False, bail: bool = False):
        self.addresses = addresses
        self.state_dir = state_dir
        self.from_state = from_state
        self.level = level
        self.timeout = timeout
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.style = box_style(self.out, ascii_only)
        self.timer = False
        self.bail = bail
        self.errors = 0
        self.client = Client(addresses, timeout=timeout, level=level, raise_on_error=False)
        self._control = None

    # ---- output ----
    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def error(self, e) -> None:
        self.errors += 1
        msg = e if isinstance(e, str) else error_line(e)
        self.out.flush()
        print(f"error: {msg}" if isinstance(e, str) else msg, file=self.err, flush=True)

    # ---- the cluster ----
    @property
    def control(self):
        if self._control is None:
            if self.from_state:
                self._control = StateCluster(self.state_dir)
            else:
                from ddb_node.cluster import AttachedCluster
                self._control = AttachedCluster(self.addresses)
        return self._control

    def local(self) -> StateCluster:
        if not self.from_state:
            raise CliError("only for a cluster started by `ddb cluster up` (run `ddb shell` "
                           "without addresses, or with --dir)")
        return self.control

    def close(self) -> None:
        if self._control is not None:
            self._control.close()
        self.client.close()

    # ---- one input ----
    def handle(self, text: str) -> bool:
        """Run one statement (or several) or one dot-command; False means quit."""
        t = text.strip()
        if not t:
            return True
        try:
            if t.startswith("."):
                return self.dot(t)
            self.sql(text)
        except (CliError, DdbError, ValueError) as e:
            self.error(str(e) if isinstance(e, (CliError, ValueError)) else e)
        except KeyboardInterrupt:
            self.error("interrupted")
        return True

    def sql(self, text: str) -> None:
        t0 = time.perf_counter()
        resp = self.client.request([text], level=self.level, timeout=self.timeout)
        elapsed = time.perf_counter() - t0
        for r in resp.results:
            if r.error:
                self.error(f"{r.error}")
            else:
                self.say(format_result(r, style=self.style))
        if self.timer:
            self.say(f"time: {elapsed * 1000:.1f} ms (node {resp.node}, index {resp.index}, "
                     f"level {resp.level})")

    def dot(self, line: str) -> bool:
        parts = line.split()
        cmd, args = parts[0].lower(), parts[1:]
        if cmd in (".quit", ".exit", ".q"):
            return False
        fn = getattr(self, "cmd_" + cmd[1:], None)
        if fn is None:
            raise CliError(f"unknown command {cmd} (try .help)")
        if cmd == ".partition":
            fn(line[len(parts[0]):].strip())
        else:
            fn(args)
        return True

    # ---- dot-commands ----
    def cmd_help(self, args) -> None:
        self.say(HELP)

    def cmd_level(self, args) -> None:
        if args:
            lvl = args[0].lower()
            if lvl not in LEVELS:
                raise CliError(f"unknown level {lvl!r}; use one of {', '.join(LEVELS)}")
            self.level = lvl
        self.say(f"level: {self.level}")

    def cmd_timer(self, args) -> None:
        if args and args[0].lower() in ("on", "off"):
            self.timer = args[0].lower() == "on"
        elif args:
            raise CliError("usage: .timer on|off")
        self.say(f"timer: {'on' if self.timer else 'off'}")

    def cmd_status(self, args) -> None:
        self.say(format_table(STATUS_COLUMNS, status_rows(self.control), style=self.style,
                              footer=False, null=""))

    def cmd_nodes(self, args) -> None:
        info = self.client.refresh()
        voters, learners = set(info.get("voters") or []), set(info.get("learners") or [])
        leader = info.get("leader")
        rows = []
        for k, m in sorted((info.get("members") or {}).items(), key=lambda kv: int(kv[0])):
            nid = int(k)
            kind = "voter" if nid in voters else "learner" if nid in learners else "removed"
            rows.append([nid, kind, "*" if nid == leader else "", m.get("client"), m.get("peer"),
                         m.get("http")])
        self.say(format_table(["id", "kind", "leader", "client", "peer", "http"], rows,
                              style=self.style, footer=False, null=""))

    def cmd_leader(self, args) -> None:
        if args:
            nid = _node_arg(args, ".leader")
            new = self.client.transfer_leader(nid, timeout=self.timeout)
            self.say(f"leader: node {new}")
            return
        lid = self.client.leader()
        self.say(f"leader: node {lid}" if lid else "leader: none (electing, or no quorum)")

    def cmd_tables(self, args) -> None:
        self.sql("SELECT name FROM sqlite_schema WHERE type = 'table' "
                 "AND name NOT LIKE 'sqlite^_%' ESCAPE '^' AND name NOT LIKE '^_ddb^_%' ESCAPE '^' "
                 "ORDER BY name")

    def cmd_schema(self, args) -> None:
        where = "sql IS NOT NULL AND name NOT LIKE '^_ddb^_%' ESCAPE '^'"
        params = None
        if args:
            where += " AND tbl_name = ?"
            params = [args[0]]
        resp = self.client.request([(f"SELECT sql FROM sqlite_schema WHERE {where} "
                                     "ORDER BY tbl_name, type DESC, name", params)],
                                   level=self.level, timeout=self.timeout)
        r = resp.results[0]
        if r.error:
            raise CliError(r.error)
        for (sql,) in result_rows(r):
            self.say(sql + ";")

    def _fault_report(self, what: str, res: dict) -> None:
        bad = {k: v for k, v in res.items() if isinstance(v, dict) and "error" in v}
        ok = sorted(k for k in res if k not in bad)
        if ok:
            self.say(f"{what} (on node{'s' if len(ok) != 1 else ''} {', '.join(map(str, ok))})")
        for k in sorted(bad):
            err = bad[k]["error"]
            err = err.get("message", err) if isinstance(err, dict) else err
            self.error(f"node {k} did not take it: {err}")

    def cmd_partition(self, spec) -> None:
        groups = parse_groups(spec)
        self._fault_report("partitioned: " + " / ".join(",".join(map(str, g)) for g in groups),
                           self.control.partition(groups))

    def cmd_isolate(self, args) -> None:
        nid = _node_arg(args, ".isolate")
        self._fault_report(f"isolated node {nid}", self.control.isolate(nid))

    def cmd_heal(self, args) -> None:
        self._fault_report("healed", self.control.heal())

    def cmd_drop(self, args) -> None:
        try:
            rate = float(args[0])
        except (IndexError, ValueError):
            raise CliError("usage: .drop RATE (0..1)") from None
        if not 0.0 <= rate <= 1.0:
            raise CliError("the drop rate is a fraction between 0 and 1")
        self._fault_report(f"dropping {rate:g} of peer messages", self.control.drop(rate))

    def cmd_delay(self, args) -> None:
        try:
            ms = float(args[0])
            jitter = float(args[1]) if len(args) > 1 else 0.0
        except (IndexError, ValueError):
            raise CliError("usage: .delay MS [JITTER]") from None
        self._fault_report(f"delaying peer messages {ms:g} ms ± {jitter:g}",
                           self.control.delay(ms, jitter))

    def cmd_kill(self, args) -> None:
        nid = _node_arg(args, ".kill")
        self.local().kill(nid)
        self.say(f"killed node {nid}")

    def cmd_restart(self, args) -> None:
        nid = _node_arg(args, ".restart")
        self.local().restart(nid)
        self.say(f"restarted node {nid}")

    # ---- loops ----
    def run_script(self, stream) -> int:
        """Statements and dot-commands from a stream; exit status 1 if anything failed."""
        buf: list[str] = []
        for line in stream:
            if not buf and line.strip().startswith("."):
                if not self.handle(line):
                    break
            else:
                buf.append(line)
                text = "".join(buf)
                if not statement_complete(text):
                    continue
                buf = []
                self.handle(text)
            if self.bail and self.errors:
                break
        else:
            if "".join(buf).strip():
                self.handle("".join(buf))     # a last statement without its ';'
        return 1 if self.errors else 0

    def run_interactive(self) -> int:
        try:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory, InMemoryHistory
            from prompt_toolkit.key_binding import KeyBindings
            from prompt_toolkit.lexers import PygmentsLexer
            from pygments.lexers.sql import SqlLexer
        except ImportError:
            self.err.write("the interactive shell needs prompt_toolkit and pygments, which a bare "
                           "install leaves out: pip install 'ddb[shell]' (piped input works "
                           "without them: echo 'SELECT 1;' | ddb shell)\n")
            return 2

        history = InMemoryHistory()
        try:
            os.makedirs(ddb_home(), exist_ok=True)
            history = FileHistory(os.path.join(ddb_home(), "history"))
        except OSError:
            pass
        kb = KeyBindings()

        @kb.add("enter")
        def _enter(event):
            b = event.current_buffer
            if statement_complete(b.text):
                b.validate_and_handle()
            else:
                b.insert_text("\n")

        @kb.add("escape", "enter")
        def _force(event):           # Alt-Enter: send as it is
            event.current_buffer.validate_and_handle()

        session = PromptSession(history=history, lexer=PygmentsLexer(SqlLexer), multiline=True,
                                key_bindings=kb,
                                prompt_continuation=lambda w, n, soft: "...> ".rjust(w))
        self.say(self._banner())
        while True:
            try:
                text = session.prompt("ddb> ")
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            if not self.handle(text):
                break
        return 0

    def _banner(self) -> str:
        try:
            info = self.client.refresh()
            n = len(self.client.members)
            lead = info.get("leader")
            where = f"{n} node{'s' if n != 1 else ''}, leader " + (f"node {lead}" if lead else "unknown")
        except DdbError as e:
            where = f"no node answered yet ({error_line(e)})"
        return f"ddb shell: {where}; level {self.level}. Type .help for commands."


def main(args) -> int:
    from ddb_node.cli.cluster import resolve_addresses
    from_state = not args.addresses
    addrs = resolve_addresses(args.addresses, args.dir)
    if args.level not in LEVELS:
        raise CliError(f"unknown level {args.level!r}; use one of {', '.join(LEVELS)}")
    sh = Shell(addrs, state_dir=args.dir, from_state=from_state, level=args.level,
               timeout=args.timeout, ascii_only=args.ascii, bail=args.bail)
    try:
        if sys.stdin.isatty() and sys.stdout.isatty():
            return sh.run_interactive()
        return sh.run_script(sys.stdin)
    finally:
        sh.close()
