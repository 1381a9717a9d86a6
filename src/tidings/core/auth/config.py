"""``AuthConfig``: the identities a broker knows, read from the ``[auth]`` table of its TOML file.

::

    [auth]
    enabled = true

    [[auth.tokens]]                 # a service's token (or token_sha256 = "<hex digest>")
    service = "inventory"
    token = "Jx4...random..."
    publish = ["inventory.>"]
    subscribe = ["orders.*"]

    [[auth.users]]                  # a person or a tool: password hashed with scrypt
    username = "ops"
    password = "scrypt$16384$8$1$...$..."   # `tidings auth hash-password`
    role = "read"                   # the dashboard's read-only role; "admin" for everything

    [[auth.certs]]                  # a client certificate whose CN (or a DNS SAN) is the subject
    subject = "payment"
    publish = ["payments.>"]
    subscribe = ["payments.requests"]

Each entry grants a ``Principal``: ``service`` (default: the username or the
subject; ``"*"`` lets the holder claim any service name), ``publish`` and
``subscribe`` patterns, ``role`` (``service``, the default, ``read`` or
``admin``) and ``admin = true`` as a shorthand. Nothing is granted that is
not written. Errors name the entry and the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tidings.core.auth.acl import ANY_SERVICE, UNRESTRICTED, Principal
from tidings.core.auth.credentials import check_password_hash, token_digest
from tidings.errors import BrokerConfigError
from tidings.protocol.names import NAME, is_topic_pattern

ROLES: Final = ("service", "read", "admin")
_NAME_RE: Final = re.compile(NAME)
_COMMON: Final = {"service", "publish", "subscribe", "role", "admin"}
_KINDS: Final = {
    "tokens": {"token", "token_sha256"},
    "users": {"username", "password"},
    "certs": {"subject"},
}


@dataclass(frozen=True, slots=True)
class Grant:
    """One configured identity: exactly one kind of credential, and the principal it authenticates as."""

    principal: Principal
    token_digest: bytes | None = None
    username: str | None = None
    password_hash: str | None = None
    subject: str | None = None

    def __repr__(self) -> str:  # never print a secret, even a digest
        kind = "token" if self.token_digest else "user" if self.username else "cert"
        return f"<Grant {kind} {self.principal!r}>"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """``enabled`` and the grants. Off by default: the broker binds to loopback unless told otherwise."""

    enabled: bool = False
    grants: tuple[Grant, ...] = ()

    def with_shared_token(self, token: str) -> AuthConfig:
        """The older single ``auth_token`` setting: one token for every right, any service name."""
        return AuthConfig(True, (*self.grants, Grant(UNRESTRICTED, token_digest=token_digest(token))))


def parse_auth(table: Mapping[str, Any], source: str) -> AuthConfig:
    """The ``[auth]`` table as an ``AuthConfig``; ``BrokerConfigError`` naming the bad entry and key."""
    unknown = sorted(set(table) - {"enabled", *_KINDS})
    if unknown:
        raise BrokerConfigError(f"{source}: auth: unknown key(s) {', '.join(unknown)}")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise BrokerConfigError(f"{source}: auth.enabled: must be true or false")
    grants: list[Grant] = []
    for kind in _KINDS:
        entries = table.get(kind, [])
        if not isinstance(entries, list):
            raise BrokerConfigError(f"{source}: auth.{kind}: must be an array of tables ([[auth.{kind}]])")
        for index, entry in enumerate(entries):
            where = f"{source}: auth.{kind}[{index}]"
            if not isinstance(entry, dict):
                raise BrokerConfigError(f"{where}: must be a table")
            grants.append(_grant(kind, entry, where))
    _check_unique(grants, source)
    if enabled and not grants:
        raise BrokerConfigError(
            f"{source}: auth is enabled but grants nothing: add [[auth.tokens]] or [[auth.users]]"
        )
    return AuthConfig(enabled, tuple(grants))


def _grant(kind: str, entry: Mapping[str, Any], where: str) -> Grant:
    unknown = sorted(set(entry) - _COMMON - _KINDS[kind])
    if unknown:
        raise BrokerConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if kind == "tokens":
        digest = _token(entry, where)
        default_name = None
        extra: dict[str, Any] = {"token_digest": digest}
    elif kind == "users":
        username = _text(entry, "username", where)
        password = check_password_hash_at(_text(entry, "password", where), where)
        default_name = username
        extra = {"username": username, "password_hash": password}
    else:
        subject = _text(entry, "subject", where)
        default_name = subject
        extra = {"subject": subject}
    return Grant(_principal(entry, where, default_name), **extra)


def check_password_hash_at(stored: str, where: str) -> str:
    try:
        return check_password_hash(stored)
    except BrokerConfigError as exc:
        raise BrokerConfigError(f"{where}: password: {exc}") from None


def _token(entry: Mapping[str, Any], where: str) -> bytes:
    if ("token" in entry) == ("token_sha256" in entry):
        raise BrokerConfigError(f"{where}: give exactly one of token and token_sha256")
    if "token" in entry:
        token = _text(entry, "token", where)
        if len(token) < 16:
            raise BrokerConfigError(
                f"{where}: token: at least 16 characters (`tidings auth new-token` makes one)"
            )
        return token_digest(token)
    text = _text(entry, "token_sha256", where)
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise BrokerConfigError(f"{where}: token_sha256: must be 64 hex digits")
    return digest


def _principal(entry: Mapping[str, Any], where: str, default_name: str | None) -> Principal:
    name = entry.get("service", default_name)
    if not isinstance(name, str) or not (name == ANY_SERVICE or _NAME_RE.match(name)):
        raise BrokerConfigError(f'{where}: service: a service name (or "*" for any) is required')
    role = entry.get("role", "service")
    if role not in ROLES:
        raise BrokerConfigError(f"{where}: role: must be one of {', '.join(ROLES)}, not {role!r}")
    admin = entry.get("admin", False)
    if not isinstance(admin, bool):
        raise BrokerConfigError(f"{where}: admin: must be true or false")
    return Principal(
        name,
        publish=_patterns(entry, "publish", where),
        subscribe=_patterns(entry, "subscribe", where),
        read=role in ("read", "admin"),
        admin=admin or role == "admin",
    )


def _patterns(entry: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and is_topic_pattern(v) for v in value):
        raise BrokerConfigError(
            f"{where}: {key}: must be a list of topic names or patterns (orders.*, shop.>)"
        )
    return tuple(value)


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise BrokerConfigError(f"{where}: {key}: a non-empty string is required")
    return value


def _check_unique(grants: Sequence[Grant], source: str) -> None:
    """Two grants for one credential would make the principal depend on the order: refuse the file."""
    seen: set[object] = set()
    for grant in grants:
        key = grant.token_digest or (grant.username and ("user", grant.username)) or ("cert", grant.subject)
        if key in seen:
            raise BrokerConfigError(f"{source}: auth: the same token, username or subject is granted twice")
        seen.add(key)
