"""The `ddb` command line: `main.py` parses and dispatches; each subcommand lives in a module
of its own (`cluster.py`: `ddb cluster up/status/down` and `StateCluster`, the cluster a
directory describes; `cluster_control.py`: the dashboard's control process of such a cluster;
`sql.py`: `ddb sql/query`; `shell.py`: the interactive shell; `bench.py`; `tour.py`), with
`output.py` formatting tables, CSV and JSON for all of them."""
from ddb_node.cli.main import main

__all__ = ["main"]
