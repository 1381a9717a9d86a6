"""The broker's asyncio shell: listener, sessions, group commit, timers, configuration.

Only the CLI (``tidings broker``) and tests import this package; everything
the broker decides lives in ``tidings.core``, and everything it says on the
wire in ``tidings.protocol``. Modules:

* ``config``: ``BrokerConfig``, from defaults, a TOML file and flags
* ``session``: one connection, a pump between its socket and a ``Connection``
* ``committer``: group-commit fsyncs of one partition log, in a thread
* ``housekeeping``: periodic jobs (group progress, retention, snapshots, interval fsync)
* ``broker``: ``BrokerServer``, which ties them to ``BrokerCore``
* ``run``: the process: event loop (uvloop), signals, the ready line
"""

from tidings.server.broker import BrokerServer
from tidings.server.config import BrokerConfig, load_file
from tidings.server.run import run, serve

__all__ = ["BrokerConfig", "BrokerServer", "load_file", "run", "serve"]
