"""The service framework's building blocks: typed events, their codec, retry policy and the clock.

The App (``tidings.App``, ``@app.subscribe``) is built on these and on
``tidings.backends.base``; it never reaches the broker's client, protocol or
core directly (an import-linter contract keeps it so). The service's
database (inbox, outbox, relay) is ``tidings.app.store``, imported on its
own so that declaring events does not load SQLAlchemy.

    events   Event, @event, EventInfo, event_schema     what an event class declares
    codec    encode / decode, Envelope                  JSON data + CloudEvents headers
    ids      uuid7                                      event ids
    backoff  Exponential, Fixed, NoBackoff              how long a failed event waits
    runner   decide -> Ack | Nack | DeadLetter          the one place that settles an event
    clock    is_replay, event_now, ReplayPolicy         what ctx.now() returns
    context  Context                                    what a handler gets besides its event
    handlers Runner, chain, settle                      decode -> handler -> decide -> settle
    application App                                     subscriptions, store, lifecycle
"""

from tidings.app.application import App
from tidings.app.backoff import Backoff, Exponential, Fixed, NoBackoff
from tidings.app.clock import ReplayPolicy, event_now, is_replay
from tidings.app.codec import Decoded, Encoded, Envelope, decode, decode_data, encode, read_envelope
from tidings.app.context import Context
from tidings.app.events import Event, EventInfo, event, event_info, event_schema, is_event_class
from tidings.app.ids import uuid7
from tidings.app.runner import Ack, DeadLetter, Decision, Nack, decide

__all__ = [
    "Ack",
    "App",
    "Backoff",
    "Context",
    "DeadLetter",
    "Decision",
    "Decoded",
    "Encoded",
    "Envelope",
    "Event",
    "EventInfo",
    "Exponential",
    "Fixed",
    "Nack",
    "NoBackoff",
    "ReplayPolicy",
    "decide",
    "decode",
    "decode_data",
    "encode",
    "event",
    "event_info",
    "event_now",
    "event_schema",
    "is_event_class",
    "is_replay",
    "read_envelope",
    "uuid7",
]
