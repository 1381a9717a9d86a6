"""Does the server fsync each write before it acknowledges it? Checked once at connect.

JetStream's default ``sync_interval`` is two minutes: an acknowledged publish
sits in the page cache until then, and Jepsen (2025) showed acknowledged
writes lost on a power failure or kernel crash that way. Tidings promises
``persistent`` only "within the server's own fsync policy", so the adapter
says loudly when that policy is the weak default.

No client API tells: ``$JS.API.INFO`` (account info) has no storage
settings, and a client sees nothing in the ``INFO`` line either. The
server's configuration is visible in ``varz`` (``jetstream.config.sync_always``)
through two doors, tried in order:

1. the HTTP monitoring port, when ``NatsConfig.monitor_url`` names it;
2. ``$SYS.REQ.SERVER.PING.VARZ``, which answers only connections of the
   system account (elsewhere: no responders, at once).

If neither answers, the setting "cannot be verified", and that is said just
as loudly. ``sync_check="require"`` refuses to connect instead of warning;
``"off"`` skips the check (for a server known to be configured well).
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Mapping
from typing import Any, Final

import nats.errors
from nats.aio.client import Client as NatsClient

from tidings.errors import InvalidBackendConfig

log = logging.getLogger("tidings.backends.nats")

VARZ_TIMEOUT: Final = 2.0


def verdict(jetstream_config: Mapping[str, Any] | None, where: str) -> str | None:
    """Why the server's JetStream config (varz ``jetstream.config``) is not fsync-per-write; None if it is.

    ``None`` for the config means it could not be read.
    """
    if jetstream_config is None:
        return (
            f"cannot verify that the NATS server at {where} fsyncs each write (sync_interval: always): "
            "its varz is not reachable (set monitor_url to its HTTP monitoring port, or connect as a "
            "system-account user); acknowledged publishes may be lost on a machine crash if it syncs "
            "on the default 2 minute interval"
        )
    if jetstream_config.get("sync_always"):
        return None
    interval = jetstream_config.get("sync_interval")
    shown = f"{int(interval) / 1e9:g} s" if isinstance(interval, int | float) else "the default (2 min)"
    return (
        f"the NATS server at {where} does not fsync each write (sync_interval is {shown}, not 'always'): "
        "acknowledged publishes may be lost if the machine crashes before the next sync "
        "(set `jetstream { sync_interval: always }` in its config)"
    )


async def read_jetstream_config(nc: NatsClient, monitor_url: str | None) -> Mapping[str, Any] | None:
    """The server's varz ``jetstream.config``, from the monitoring port or the system account; else None."""
    if monitor_url:
        try:
            varz = await asyncio.to_thread(_http_varz, monitor_url)
            return _jetstream_config(varz)
        except (OSError, ValueError) as exc:
            log.debug("varz from %s failed: %s", monitor_url, exc)
    try:
        answer = await nc.request("$SYS.REQ.SERVER.PING.VARZ", b"", timeout=VARZ_TIMEOUT)
        return _jetstream_config(json.loads(answer.data).get("data", {}))
    except (nats.errors.Error, ValueError, TimeoutError) as exc:
        log.debug("varz over $SYS failed: %s", exc)
        return None


async def check_sync(nc: NatsClient, monitor_url: str | None, mode: str, where: str) -> str | None:
    """Warn (``mode="warn"``) or refuse (``"require"``) unless the server syncs every write."""
    if mode == "off":
        return None
    problem = verdict(await read_jetstream_config(nc, monitor_url), where)
    if problem is None:
        return None
    if mode == "require":
        raise InvalidBackendConfig(f"{problem} (sync_check='require')")
    log.warning("DURABILITY: %s", problem)
    return problem


def _http_varz(monitor_url: str) -> Mapping[str, Any]:
    url = monitor_url.rstrip("/") + "/varz"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"monitor_url must be http:// or https://, not {monitor_url!r}")
    with urllib.request.urlopen(url, timeout=VARZ_TIMEOUT) as response:
        data: Mapping[str, Any] = json.loads(response.read())
        return data


def _jetstream_config(varz: Mapping[str, Any]) -> Mapping[str, Any] | None:
    jetstream = varz.get("jetstream")
    if not isinstance(jetstream, Mapping):
        return None
    config = jetstream.get("config")
    return config if isinstance(config, Mapping) else None
