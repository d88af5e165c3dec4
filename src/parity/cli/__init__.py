"""The ``parity`` command line: a thin layer over the public API, one module per command group.

``app`` holds the root group and the one error handler every command shares; the other modules
add their commands to it. Modules whose extras may be missing are added only when importable.
"""

from parity.cli.app import main

__all__ = ["main"]
