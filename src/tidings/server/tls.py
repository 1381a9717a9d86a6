"""TLS for both of the broker's ports: the server's ``SSLContext``, and who a client certificate names.

One context serves the binary protocol and the HTTP API, built once at
start-up from the ``[tls]`` settings, so a bad path or a key that does not
match its certificate stops the broker with a clear message instead of
failing the first client. TLS 1.2 is the floor.

Client certificates: with ``client_ca`` set, a client may present a
certificate signed by that CA (``require_client_cert`` makes it mandatory).
The TLS layer verifies it; ``subjects`` then reads the names it holds, the
subject's common name first and then its DNS subject-alternative names, and
the authenticator looks them up in ``[[auth.certs]]``.
"""

from __future__ import annotations

import ssl
from typing import Any

from tidings.errors import BrokerConfigError
from tidings.server.config import BrokerConfig


def server_context(config: BrokerConfig) -> ssl.SSLContext | None:
    """The context both ports use, or ``None`` when TLS is off; ``BrokerConfigError`` if it cannot load."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerConfigError(
            f"tls: cannot load the certificate {config.tls_cert} "
            f"with the key {config.tls_key}: {_reason(exc)}"
        ) from exc
    if config.tls_client_ca is not None:
        try:
            context.load_verify_locations(cafile=config.tls_client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerConfigError(
                f"tls: cannot load client_ca {config.tls_client_ca}: {_reason(exc)}"
            ) from exc
        context.verify_mode = ssl.CERT_REQUIRED if config.tls_require_client_cert else ssl.CERT_OPTIONAL
    return context


def subjects(peercert: Any) -> tuple[str, ...]:
    """The names of a verified peer certificate (``SSLObject.getpeercert()``): CN first, then DNS SANs."""
    if not isinstance(peercert, dict):
        return ()
    names: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.append(str(value))
    for kind, value in peercert.get("subjectAltName", ()):
        if kind == "DNS" and value not in names:
            names.append(str(value))
    return tuple(names)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)
