"""``python -m parity.cli``: the same as the ``parity`` command."""

from parity.cli.app import main

main()
