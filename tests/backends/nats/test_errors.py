"""nats-py's exceptions -> ``tidings.errors``: one table, checked entry by entry."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from tidings.backends.nats.errors import translate, translated
from tidings.errors import (
    BrokerError,
    ConnectFailed,
    ConnectionLost,
    InvalidArgument,
    NoResponders,
    NotAuthorized,
    NotConnected,
    PublishError,
    RequestTimeout,
    TidingsError,
    UnknownGroup,
    UnknownTopic,
)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (nats.errors.NoRespondersError(), NoResponders),
        (nats.js.errors.NoStreamResponseError(), NoResponders),
        (nats.errors.TimeoutError(), RequestTimeout),
        (nats.errors.FlushTimeoutError(), ConnectionLost),
        (nats.errors.StaleConnectionError(), ConnectionLost),
        (nats.errors.OutboundBufferLimitError(), ConnectionLost),
        (nats.errors.AuthorizationError(), NotAuthorized),
        (nats.errors.NoServersError(), ConnectFailed),
        (ConnectionRefusedError(), ConnectFailed),
        (nats.errors.ConnectionClosedError(), NotConnected),
        (nats.errors.MaxPayloadError(), PublishError),
        (nats.errors.BadSubjectError(), InvalidArgument),
        (
            nats.js.errors.NotFoundError(code=404, err_code=10059, description="stream not found"),
            UnknownTopic,
        ),
        (
            nats.js.errors.NotFoundError(code=404, err_code=10014, description="consumer not found"),
            UnknownGroup,
        ),
        (nats.js.errors.BadRequestError(code=400, err_code=10052, description="bad"), BrokerError),
    ],
)
def test_translation(raised: BaseException, expected: type[TidingsError]) -> None:
    translated_error = translate(raised, "doing it")
    assert type(translated_error) is expected
    assert str(translated_error).startswith("doing it")


def test_publish_error_says_why() -> None:
    error = translate(nats.errors.MaxPayloadError(), "publishing")
    assert isinstance(error, PublishError) and error.reason == "message_too_large"


def test_the_context_manager_chains_the_original() -> None:
    with pytest.raises(NoResponders) as caught, translated("asking"):
        raise nats.errors.NoRespondersError
    assert isinstance(caught.value.__cause__, nats.errors.NoRespondersError)
