"""Credentials, the ``[auth]`` table and the authenticator: what a broker accepts and what it refuses."""

from __future__ import annotations

import hashlib
import tomllib

import pytest

from tidings.core.auth import Authenticator, Credentials, parse_auth
from tidings.core.auth.acl import UNRESTRICTED
from tidings.core.auth.config import AuthConfig
from tidings.core.auth.credentials import check_password_hash, hash_password, verify_password
from tidings.errors import BrokerConfigError, NotAuthorized

FAST = {"n": 2**10}  # the stored parameters travel with the hash; tests need not pay 16 MiB each time
INVENTORY_TOKEN = "inventory-token-0123456789"


def test_password_hash_round_trip():
    stored = hash_password("correct horse", **FAST)
    assert stored.startswith("scrypt$1024$8$1$")
    assert check_password_hash(stored) == stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert hash_password("correct horse", **FAST) != stored  # a fresh salt each time


def test_the_default_hash_uses_the_recommended_cost():
    assert hash_password("x").split("$")[1:4] == ["16384", "8", "1"]


@pytest.mark.parametrize("bad", ["plain", "scrypt$x$8$1$AA$AA", "scrypt$1000$8$1$AA$AA", "bcrypt$1$2$3$4$5"])
def test_malformed_hashes_are_refused_at_load(bad):
    with pytest.raises(BrokerConfigError, match="hash"):
        check_password_hash(bad)


def auth_table(text: str) -> AuthConfig:
    return parse_auth(tomllib.loads(text)["auth"], "test.toml")


def authenticator() -> Authenticator:
    ops = hash_password("ops-password", **FAST)
    return Authenticator(
        auth_table(f"""
            [auth]
            [[auth.tokens]]
            service = "inventory"
            token = "{INVENTORY_TOKEN}"
            publish = ["inventory.>"]
            subscribe = ["orders.*"]

            [[auth.tokens]]
            service = "*"
            token_sha256 = "{hashlib.sha256(b"tools-token-0123456789").hexdigest()}"
            admin = true

            [[auth.users]]
            username = "ops"
            password = "{ops}"
            role = "read"

            [[auth.certs]]
            subject = "payment"
            publish = "payments.>"
        """)
    )


def test_a_token_authenticates_its_service_only():
    auth = authenticator()
    principal = auth.authenticate(Credentials(token=INVENTORY_TOKEN), service="inventory")
    assert principal.name == "inventory"
    assert principal.publish == ("inventory.>",) and principal.subscribe == ("orders.*",)
    assert not principal.admin and not principal.read
    with pytest.raises(NotAuthorized, match="for service 'inventory', not 'payment'"):
        auth.authenticate(Credentials(token=INVENTORY_TOKEN), service="payment")


def test_a_star_token_may_claim_any_service():
    auth = authenticator()
    principal = auth.authenticate(Credentials(token="tools-token-0123456789"), service="tidings-cli")
    assert principal.admin


def test_users_and_certificates():
    auth = authenticator()
    reader = auth.authenticate(Credentials(username="ops", password="ops-password"))
    assert reader.read and not reader.admin and reader.name == "ops"
    assert auth.authenticate(Credentials(subjects=("payment", "payment.internal"))).publish == ("payments.>",)


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (Credentials(), "authentication is required"),
        (Credentials(token="wrong-token-0123456789"), "token is not valid"),
        (Credentials(username="ops", password="nope"), "unknown username or wrong password"),
        (Credentials(username="who", password="ops-password"), "unknown username or wrong password"),
        (Credentials(subjects=("stranger",)), r"certificate \(stranger\) is not granted"),
        # a wrong token is not rescued by a certificate that would pass
        (Credentials(token="wrong-token-0123456789", subjects=("payment",)), "token is not valid"),
    ],
)
def test_refusals(credentials, message):
    with pytest.raises(NotAuthorized, match=message):
        authenticator().authenticate(credentials)


def test_auth_off_means_unrestricted():
    assert Authenticator(AuthConfig()).authenticate(Credentials()) is UNRESTRICTED


def test_the_shared_token_setting_still_works():
    auth = Authenticator(AuthConfig().with_shared_token("s3cret"))
    assert auth.authenticate(Credentials(token="s3cret"), service="anything").admin
    with pytest.raises(NotAuthorized):
        auth.authenticate(Credentials(token="other"))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[auth]\nenabled = true", "grants nothing"),
        ('[auth]\n[[auth.tokens]]\nservice = "a"\ntoken = "short"', "at least 16"),
        ('[auth]\n[[auth.tokens]]\ntoken = "0123456789abcdefgh"', "service"),
        ('[auth]\n[[auth.tokens]]\nservice = "a"\ntoken = "0123456789abcdefgh"\nrole = "god"', "role"),
        (
            '[auth]\n[[auth.tokens]]\nservice = "a"\ntoken = "0123456789abcdefgh"\npublish = ["a..b"]',
            "publish",
        ),
        ('[auth]\n[[auth.tokens]]\nservice = "a"\ntoken = "0123456789abcdefgh"\ncolour = 1', "colour"),
        ('[auth]\n[[auth.users]]\nusername = "u"\npassword = "hunter2"', r"auth.users\[0\]: password"),
        (
            '[auth]\n[[auth.tokens]]\nservice = "a"\ntoken = "0123456789abcdefgh"\n'
            '[[auth.tokens]]\nservice = "b"\ntoken = "0123456789abcdefgh"',
            "granted twice",
        ),
    ],
)
def test_bad_tables_name_the_entry_and_key(table, message):
    with pytest.raises(BrokerConfigError, match=message):
        auth_table(table)


def test_grants_never_show_secrets():
    auth = authenticator()
    text = repr(auth.config)
    assert INVENTORY_TOKEN not in text and "scrypt$" not in text
