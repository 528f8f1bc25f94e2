"""`python -m ddb_node.cli ARGS`: the `ddb` command without its console script."""
import sys

from ddb_node.cli.main import main

sys.exit(main())
