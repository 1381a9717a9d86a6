"""One exception hierarchy for everything Tidings raises.

Users catch ``TidingsError`` (or a subclass) and never see an ``OSError``,
a ``struct.error`` or a third-party client's exception: each layer translates
its failures once, at its boundary, into one of these.  Every message names
the thing that went wrong (file, offset, position, topic) so that a log line
alone is enough to act on.
"""

from __future__ import annotations

from typing import ClassVar


class TidingsError(Exception):
    """Base class of every error Tidings raises on purpose."""


# -- record batches ---------------------------------------------------------------


class InvalidBatchError(TidingsError):
    """Bytes that claim to be a record batch are not one (bad length, magic, CRC, records)."""


class CorruptBatchError(InvalidBatchError):
    """A batch's CRC32C does not match its contents: the bytes were damaged."""


# -- storage ----------------------------------------------------------------------


class StorageError(TidingsError):
    """A partition log cannot do what was asked of it."""


class LogCorruptedError(StorageError):
    """Corruption was found inside data the log had already made durable.

    The log keeps serving everything before the damaged batch and refuses to
    serve past it, or to append, until an operator decides what to do (see
    ``PartitionLog.truncate_corrupt``): nothing is deleted behind their back.
    """

    def __init__(self, message: str, *, path: str, position: int, offset: int) -> None:
        super().__init__(message)
        self.path = path
        self.position = position
        self.offset = offset


class LogFailedError(StorageError):
    """A write or fsync failed in a way that may have lost data (EIO and the like).

    After a failed fsync the kernel may have dropped dirty pages and cleared the
    error (the PostgreSQL fsync lesson), so retrying the fsync could falsely
    report success. The log stops accepting writes until it is reopened, which
    re-reads what actually reached the disk.
    """


class DiskFullError(StorageError):
    """The file system has no space left. The append was rolled back; reads go on."""


class OffsetOutOfRangeError(StorageError):
    """The requested offset is before the log start or after the log end."""


class LogClosedError(StorageError):
    """The log was closed; it must be reopened before use."""


# -- protocol ---------------------------------------------------------------------


class ProtocolError(TidingsError):
    """The wire conversation broke its rules, so the connection cannot go on.

    ``code`` is a stable string, sent in the fatal Error frame that tells the
    peer why the connection is closing. The peer's code can also tell which
    error to raise on its side. Codes never change once released; messages may.
    """

    code: ClassVar[str] = "protocol_error"


class FrameTooLarge(ProtocolError):
    """A frame is longer than the receiver's limit.

    Raised from the length prefix alone, before any of the frame is buffered,
    so a peer cannot make us hold more than one maximum-size frame. Also raised
    by ``send`` when the peer's announced limit is too small for the frame.
    """

    code: ClassVar[str] = "frame_too_large"


class MalformedFrame(ProtocolError):
    """The bytes do not decode as a frame: bad msgpack, unknown kind, wrong types, bad lengths."""

    code: ClassVar[str] = "malformed_frame"


class UnexpectedFrame(ProtocolError):
    """A well-formed frame that the connection's state or the sender's role forbids.

    For example: a frame before the handshake, a server sending Produce, or
    anything sent after Close.
    """

    code: ClassVar[str] = "unexpected_frame"


class HandshakeRejected(ProtocolError):
    """The handshake failed. The peer refused it, or no protocol version suits both sides.

    ``reason`` holds the code the refusing side gave, such as ``not_authorized``
    from a broker that rejected the token, or ``handshake_rejected`` itself.
    """

    code: ClassVar[str] = "handshake_rejected"

    def __init__(self, message: str, *, reason: str = "handshake_rejected") -> None:
        super().__init__(message)
        self.reason = reason


# -- core -------------------------------------------------------------------------
#
# Request-scoped errors of the broker core. Each ``code`` is sent in an Error
# frame (with the request's id) or a ``Rejected`` produce result, so it is part
# of the wire contract: codes never change once released; messages may.


class BrokerError(TidingsError):
    """The broker refused or failed one request; the connection goes on."""

    code: ClassVar[str] = "broker_error"


class UnknownTopic(BrokerError):
    """The topic does not exist (and was not auto-created)."""

    code: ClassVar[str] = "unknown_topic"


class TopicExists(BrokerError):
    code: ClassVar[str] = "topic_exists"


class InvalidTopicName(BrokerError):
    """A name that is not a valid concrete topic name (see ``tidings.protocol.names``)."""

    code: ClassVar[str] = "invalid_topic_name"


class InvalidTopicConfig(BrokerError):
    """A topic setting with an unknown key or a bad value; the message names both."""

    code: ClassVar[str] = "invalid_config"


class UnknownPartition(BrokerError):
    code: ClassVar[str] = "unknown_partition"


class NotAuthorized(BrokerError):
    """Missing or wrong credentials (the handshake is refused), or an operation the principal's grants
    do not allow; the message names the service, the operation and the topic."""

    code: ClassVar[str] = "not_authorized"


class LimitExceeded(BrokerError):
    """A configured limit of the broker refused the operation; the message names the limit."""

    code: ClassVar[str] = "limit_exceeded"


class ProducerFenced(BrokerError):
    """A producer id now belongs to a newer session or epoch; this one may not write with it."""

    code: ClassVar[str] = "producer_fenced"


class RequestTimeout(BrokerError):
    """No reply came back within the request's ``timeout_ms``."""

    code: ClassVar[str] = "request_timeout"


class ResponderGone(BrokerError):
    """The connection a request was forwarded to closed before it replied."""

    code: ClassVar[str] = "responder_gone"


class TooManyRequests(BrokerError):
    """A session has too many requests awaiting replies; it should wait for some first."""

    code: ClassVar[str] = "too_many_requests"


class DataDirError(BrokerError):
    """The data directory cannot be used: locked by another broker, unreadable, or damaged metadata."""

    code: ClassVar[str] = "data_dir_error"


# -- core: consumer groups (tidings.core.groups) ------------------------------------


class GroupModeConflict(BrokerError):
    """A Subscribe asked for a mode (partitioned or shared) other than the one its group already has."""

    code: ClassVar[str] = "group_mode_conflict"


class UnknownGroup(BrokerError):
    """No consumer group of that name: it has no member and no saved progress."""

    code: ClassVar[str] = "unknown_group"


class UnknownSubscription(BrokerError):
    """The session has no active subscription with that id (never made, or already ended)."""

    code: ClassVar[str] = "unknown_subscription"


class SubscriptionExists(BrokerError):
    """The session already has an active subscription with that id."""

    code: ClassVar[str] = "subscription_exists"


class GroupStoreCorrupted(StorageError):
    """The saved group progress is damaged (bad magic, length or CRC32C).

    The broker refuses to start rather than silently reset every group to
    its start position, which would redeliver or skip whole topics.
    """

    code: ClassVar[str] = "group_store_corrupted"


# -- server -----------------------------------------------------------------------


class BrokerConfigError(TidingsError):
    """A bad broker setting (config file or command line); the message names the key."""

    code: ClassVar[str] = "invalid_broker_config"


class ListenError(TidingsError):
    """The broker cannot listen on its address (in use, not permitted, unknown host)."""

    code: ClassVar[str] = "listen_failed"


# -- client -----------------------------------------------------------------------
#
# What the client SDK raises on its own account. Errors the broker sends back
# (request-scoped Error frames) become the ``BrokerError`` subclass of their
# code, above; ``tidings.client.channel.broker_error`` does that translation.


class ClientError(TidingsError):
    """Base class of what the client SDK raises on its own account."""


class NotConnected(ClientError):
    """The client is closed, or was never opened: nothing can be sent through it."""


class ConnectionLost(ClientError):
    """There is no connection to the broker, and none came back in time.

    The client reconnects on its own; an operation fails with this only when
    it has waited ``reconnect_timeout`` for a connection. A publish that fails
    so may or may not have been stored: the broker never said.
    """


class ConnectFailed(ConnectionLost):
    """The broker could not be reached at all (refused, unreachable, no answer to Hello)."""


class InvalidName(ClientError, ValueError):
    """A topic, pattern, group or service name the wire protocol would refuse.

    Checked in the client, because a frame with a bad name is malformed and
    the broker would end the whole connection over it.
    """


class NoResponders(BrokerError):
    """A request found no subscriber to answer it, so it failed at once instead of timing out."""

    code: ClassVar[str] = "no_responders"


class PublishError(BrokerError):
    """A publish was refused, by the broker or by the client before anything was sent.

    ``reason`` holds the refusing side's code: the broker's (``disk_full``,
    ``unknown_topic``, ``not_authorized``, ...) or the client's
    (``message_too_large``).
    """

    code: ClassVar[str] = "publish_failed"

    def __init__(self, message: str, *, reason: str = "publish_failed") -> None:
        super().__init__(message)
        self.reason = reason


class SubscriptionClosed(BrokerError):
    """The broker ended a subscription or refused it; ``reason`` holds its code."""

    code: ClassVar[str] = "subscription_closed"

    def __init__(self, message: str, *, reason: str = "subscription_closed") -> None:
        super().__init__(message)
        self.reason = reason


# -- backends ---------------------------------------------------------------------
#
# What ``tidings.backends`` raises on its own account. Each backend maps its
# server's and its client library's failures into the classes above
# (``ConnectionLost``, ``PublishError``, ``RequestTimeout``, ...) once, at its
# boundary; these are the few that belong to the contract itself.


class BackendError(TidingsError):
    """Base class of what the backend layer raises on its own account."""


class UnknownBackend(BackendError, ValueError):
    """A URL whose scheme no backend is registered for; the message names the URL and the known schemes."""


class InvalidBackendConfig(BackendError, ValueError):
    """A backend URL or option that its backend cannot use; the message names it and what is allowed."""


class InvalidArgument(BackendError, ValueError):
    """An argument the backend contract refuses (a start position, a mode, a delay); named in the message."""


class NotSupported(BackendError):
    """The backend declares the capability this call needs missing (``Capabilities``); says which and why."""

    def __init__(self, message: str, *, capability: str) -> None:
        super().__init__(message)
        self.capability = capability


# -- service framework (tidings.app) ----------------------------------------------------------


class EventValidationError(TidingsError, ValueError):
    """A received event cannot become the typed event its handler takes.

    Its headers are not a CloudEvent (a required ``ce_*`` attribute missing or
    malformed), its data is not JSON, or the JSON does not match the event's
    schema. Retrying cannot fix any of these, so the handler runner sends the
    event straight to the dead-letter topic with ``detail`` as the reason; it
    never reaches the handler and never holds up the events behind it.
    """

    code: ClassVar[str] = "event_validation_failed"

    def __init__(self, message: str, *, event_type: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.event_type = event_type
        self.detail = detail or message


class StoreError(TidingsError):
    """The service's own database (``App(store=...)``) cannot be opened: bad URL, driver or server."""

    code: ClassVar[str] = "store_error"


class HandlerFailed(TidingsError):
    """A responder (``@app.respond``) raised while answering a request; ``reason`` is its error's text.

    The requester gets this instead of waiting for its timeout: the responder replied with the reason.
    """

    code: ClassVar[str] = "handler_failed"

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message
