"""Authentication and authorization, pure: no sockets, no frames' bytes, testable by calling functions.

* ``credentials``: scrypt password hashes and token digests, compared in constant time
* ``config``: the ``[auth]`` table of the broker's TOML file, as ``AuthConfig``
* ``authenticator``: credentials (token, username/password, client certificate) -> ``Principal``
* ``acl``: ``authorize(principal, operation, topic)``, the one decision point; deny by default

The server calls the authenticator at the handshake (and for each HTTP
request) and the core calls ``authorize`` before every operation.
"""

from tidings.core.auth.acl import UNRESTRICTED, Operation, Principal, allowed, authorize, pattern_covers
from tidings.core.auth.authenticator import Authenticator, Credentials
from tidings.core.auth.config import AuthConfig, Grant, parse_auth
from tidings.core.auth.credentials import hash_password, new_token, verify_password

__all__ = [
    "UNRESTRICTED",
    "AuthConfig",
    "Authenticator",
    "Credentials",
    "Grant",
    "Operation",
    "Principal",
    "allowed",
    "authorize",
    "hash_password",
    "new_token",
    "parse_auth",
    "pattern_covers",
    "verify_password",
]
