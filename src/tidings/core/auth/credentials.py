"""Secrets at rest and their checks: scrypt password hashes and token digests, compared in constant time.

Password hash format (one ASCII string, safe in a TOML file)::

    scrypt$<N>$<r>$<p>$<salt, urlsafe base64>$<hash, urlsafe base64>

``N`` (CPU/memory cost, a power of two), ``r`` (block size) and ``p``
(parallelism) are stored with each hash, so raising the defaults later does
not invalidate hashes already written in config files. The defaults (N=2**14,
r=8, p=1: 16 MiB and tens of milliseconds per check) follow the stdlib's
``hashlib.scrypt`` guidance for interactive logins; a handshake pays it once
per connection, never per frame.

Tokens are high-entropy random strings, so they need no slow KDF: the
broker keeps only their SHA-256 digest and compares digests with
``hmac.compare_digest``, which takes the same time whatever prefix matches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

from tidings.errors import BrokerConfigError

SCHEME: Final = "scrypt"
DEFAULT_N: Final = 2**14
DEFAULT_R: Final = 8
DEFAULT_P: Final = 1
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32
_MAX_MEM: Final = 256 * 1024 * 1024
"""OpenSSL's default scrypt memory cap (32 MiB) is below what larger N need; this lets N go to 2**17."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    """The ``scrypt$N$r$p$salt$hash`` string to store for ``password`` (a fresh random salt each call)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEM, dklen=HASH_BYTES)
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def check_password_hash(stored: str) -> str:
    """``stored`` if it is a well-formed hash string, else ``BrokerConfigError`` saying what is wrong.

    Called when the configuration is loaded, so a typo in a hash is a start-up
    error rather than a user who can never log in.
    """
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise BrokerConfigError(
            "a password must be a scrypt$N$r$p$salt$hash string (make one with `tidings auth hash-password`)"
        )
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise BrokerConfigError("a password hash has a non-numeric cost or bad base64") from None
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or not salt or not digest:
        raise BrokerConfigError(
            "a password hash has impossible scrypt parameters (N a power of 2, r, p >= 1)"
        )
    return stored


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a string ``check_password_hash`` accepted)."""
    _, n, r, p, salt, digest = stored.split("$")
    expected = _unb64(digest)
    try:
        actual = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAX_MEM,
            dklen=len(expected),
        )
    except ValueError:  # parameters this OpenSSL refuses: no password can match
        return False
    return hmac.compare_digest(actual, expected)


def token_digest(token: str) -> bytes:
    """What the broker keeps of a token: its SHA-256, so a leaked config dump holds no usable token."""
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    """A fresh random token (256 bits), for ``tidings auth new-token`` and the docs' examples."""
    return secrets.token_urlsafe(32)
