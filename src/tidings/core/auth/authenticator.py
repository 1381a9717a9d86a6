"""``Authenticator``: credentials in, a ``Principal`` out, or ``NotAuthorized`` saying why not.

One object serves both doors, the binary handshake (``Hello``) and the HTTP
API (``Authorization`` header), so a token means the same on either.

Which credential counts: a token if one is presented, else a username and
password, else a client certificate's subjects (its CN and DNS SANs, which
the TLS layer has already verified against the configured CA). Presenting a
wrong credential fails even when a certificate would have passed: a client
that sends a token means that token.

Messages do not tell an attacker which half was wrong (unknown user and bad
password read the same), and an unknown username still costs one scrypt, so
timing does not reveal which usernames exist.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from tidings.core.auth.acl import UNRESTRICTED, Principal
from tidings.core.auth.config import AuthConfig, Grant
from tidings.core.auth.credentials import hash_password, token_digest, verify_password
from tidings.errors import NotAuthorized


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client presented. Empty when it presented nothing."""

    token: str | None = None
    username: str | None = None
    password: str | None = None
    subjects: tuple[str, ...] = ()
    """Names from a verified client certificate (CN first, then DNS SANs)."""


class Authenticator:
    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self._tokens = [g for g in config.grants if g.token_digest is not None]
        self._users = {g.username: g for g in config.grants if g.username is not None}
        self._subjects = {g.subject: g for g in config.grants if g.subject is not None}
        self._decoy = hash_password("decoy") if self._users else ""

    def __repr__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"<Authenticator {state} grants={len(self.config.grants)}>"

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def authenticate(self, credentials: Credentials, *, service: str | None = None) -> Principal:
        """The principal for ``credentials``; a Hello's claimed ``service`` must be one it may claim."""
        if not self.enabled:
            return UNRESTRICTED
        grant = self._grant(credentials)
        principal = grant.principal
        if service is not None and not principal.may_claim(service):
            raise NotAuthorized(
                f"these credentials are for service {principal.name!r}, not {service!r}: "
                f"connect with service={principal.name!r} or use that service's credentials"
            )
        return principal

    def _grant(self, credentials: Credentials) -> Grant:
        if credentials.token:
            digest = token_digest(credentials.token)
            found = None
            for grant in self._tokens:  # no early exit: every token costs the same compare
                assert grant.token_digest is not None
                if hmac.compare_digest(grant.token_digest, digest):
                    found = grant
            if found is None:
                raise NotAuthorized("the token is not valid on this broker")
            return found
        if credentials.username is not None or credentials.password is not None:
            user = self._users.get(credentials.username or "")
            stored = user.password_hash if user is not None else self._decoy
            assert stored is not None
            matched = verify_password(credentials.password or "", stored) if stored else False
            if user is None or not matched:
                raise NotAuthorized("unknown username or wrong password")
            return user
        for subject in credentials.subjects:
            by_subject = self._subjects.get(subject)
            if by_subject is not None:
                return by_subject
        if credentials.subjects:
            names = ", ".join(credentials.subjects)
            raise NotAuthorized(f"the client certificate ({names}) is not granted anything on this broker")
        raise NotAuthorized(
            "authentication is required: present a token, a username and password, or a client certificate"
        )
