"""The magics that show the protocol and check it, and the cluster-side plot:
`%ddb_sequence`, `%ddb_check`, `%ddb_plot` (and `%ddb log`, a subcommand of `%ddb`).

Registered next to `DdbMagic` by `load_ipython_extension`; each one runs through the
`DdbMagic` of the same shell (its clusters, its settings, its one-line errors), and its
logic lives in its own module: `sequence.py`, `check.py`, `plot.py`, `log_grid.py`.
"""
from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class


@magics_class
class ProtocolMagics(Magics):
    def __init__(self, shell, ddb):
        super().__init__(shell=shell)
        self.ddb = ddb

    @line_magic
    def ddb_sequence(self, line):
        """%ddb_sequence [--last N] [--node A,B] [--no-heartbeats]: a sequence (Lamport)
        diagram of the cluster's recent messages, role changes and commits."""
        from . import sequence
        return self.ddb._guard(sequence.command, self.ddb, line)

    @line_magic
    def ddb_check(self, line):
        """%ddb_check [--workload [--ops N] [--clients C] [--keys K]] [--reset]: is this
        session's register history (or a short workload's) linearizable? Drawn as a timeline."""
        from . import check
        return self.ddb._guard(check.command, self.ddb, line)

    @line_magic
    def ddb_plot(self, line):
        """%ddb_plot hist|box|bar COLUMN --table T [--where C] [--bins N]: a plot computed in
        the cluster (only aggregates travel); returns the matplotlib Axes."""
        from . import plot
        return self.ddb._guard(plot.command, self.ddb, line)
