"""What the server promises about acknowledged writes, read once at ``open`` and warned about loudly.

Redis acknowledges a write once it is in memory; whether it survives a
crash is the server's persistence setting, not the adapter's: with
``appendonly yes`` and ``appendfsync always`` every write is in the AOF and
fsynced before the reply; ``everysec`` may lose the last second; ``no``
(or ``appendonly no``, RDB snapshots only) may lose minutes. The adapter
reads ``CONFIG GET appendonly appendfsync`` and logs a warning unless it is
``yes``/``always``. ``CONFIG`` may be renamed or denied (managed services,
``rename-command``, ACLs): then the settings are unknown, and that is
warned about too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis import exceptions as redis_errors
from redis.asyncio import Redis

logger = logging.getLogger("tidings.backends.redis")


@dataclass(frozen=True, slots=True)
class Durability:
    """The server's persistence settings; None where ``CONFIG GET`` was not allowed."""

    appendonly: str | None
    appendfsync: str | None

    @property
    def known(self) -> bool:
        return self.appendonly is not None and self.appendfsync is not None

    @property
    def acks_durable(self) -> bool:
        """True only when every acknowledged write is fsynced to the AOF first."""
        return self.appendonly == "yes" and self.appendfsync == "always"

    def describe(self) -> str:
        if not self.known:
            return "unknown persistence settings (CONFIG GET is renamed, disabled or denied)"
        return f"appendonly {self.appendonly}, appendfsync {self.appendfsync}"


async def read_durability(client: Redis) -> Durability:
    """The server's settings; unknown (not an error) where ``CONFIG`` is renamed or denied."""
    try:
        settings = await client.config_get("append*")
    except redis_errors.ResponseError:  # unknown command (renamed), NOPERM: not ours to fix
        return Durability(None, None)
    values = {_text(name): _text(value) for name, value in settings.items()}
    return Durability(values.get("appendonly"), values.get("appendfsync"))


def warn_if_not_durable(durability: Durability, url: str) -> None:
    if durability.acks_durable:
        return
    logger.warning(
        "REDIS MAY LOSE ACKNOWLEDGED MESSAGES: %s has %s. A publish returns once Redis holds the "
        "message in memory; a crash loses what was not yet fsynced. Set 'appendonly yes' and "
        "'appendfsync always' for the durability the tidings:// broker gives.",
        url,
        durability.describe(),
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
