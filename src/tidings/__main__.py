"""``python -m tidings``: the same command line as ``tidings``, for subprocesses and fixtures."""

from tidings.cli.main import main

main()
