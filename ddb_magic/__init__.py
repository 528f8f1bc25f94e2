"""ddb in Jupyter: `%load_ext ddb_magic`, then `%ddb launch` and `%%ddb` cells.

Loading twice (say, automatically by the DDB SQL kernel and then by `%load_ext`) is
harmless and silent.
"""
from __future__ import annotations

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

_KEY = "_ddb_magic_instance"


def load_ipython_extension(shell) -> None:
    if getattr(shell, _KEY, None) is None:
        from .magics import DdbMagic
        from .protocol_magics import ProtocolMagics
        magics = DdbMagic(shell=shell)
        shell.register_magics(magics)
        shell.register_magics(ProtocolMagics(shell, magics))
        setattr(shell, _KEY, magics)
    # IPython remembers loaded extensions and prints "already loaded" on a second
    # %load_ext (which would break nbval's output comparison). Forget it before the next
    # cell runs: the next %load_ext then lands here again, where nothing happens.
    _forget_after_this_cell(shell)


def _forget_after_this_cell(shell) -> None:
    events = getattr(shell, "events", None)
    manager = getattr(shell, "extension_manager", None)
    if events is None or manager is None:
        return

    def forget(*_args):
        manager.loaded.discard(__name__)
        try:
            events.unregister("pre_run_cell", forget)
        except ValueError:
            pass

    events.register("pre_run_cell", forget)


def unload_ipython_extension(shell) -> None:
    magics = getattr(shell, _KEY, None)
    if magics is None:
        return
    from . import lifecycle
    for b in list(magics.clusters.values()):
        lifecycle.untrack(b)
        b.close()
    magics.clusters.clear()
    setattr(shell, _KEY, None)


def magics_of(shell):
    """The DdbMagic instance of a shell (None before the extension is loaded)."""
    return getattr(shell, _KEY, None)
