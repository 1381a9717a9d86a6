"""``Capabilities``: what a backend guarantees, declared field by field, and the docs of each field.

A backend declares what it does; everything defaults to False. Each field's
docstring is the guarantee a backend makes by declaring it, word for word:
the conformance suite checks exactly that, and prints the first sentence
when it skips a scenario for a capability a backend lacks. ``reasons`` says
why a capability is missing (shown in skips and in ``NotSupported``).

Part of the backend contract: re-exported by ``tidings.backends.base``.
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from tidings.errors import InvalidBackendConfig, NotSupported


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend guarantees. Every field defaults to False: a backend declares what it does.

    ``reasons`` says, for capabilities left False, why (shown when a
    conformance scenario is skipped and in ``NotSupported`` errors).
    """

    persistent: bool = False
    """A message acknowledged to ``publish``, and each group's committed position, survive a restart of
    the server (within the server's own fsync policy)."""
    ordered_per_key: bool = False
    """In a ``partitioned`` group, messages with the same key are delivered in the order they were stored
    (publish order from one publisher), and never to two members at once while unsettled."""
    consumer_groups: bool = False
    """Every group receives every message of the topic (fan-out across groups); inside a group, each
    message goes to one member at a time (competing consumers)."""
    shared_groups: bool = False
    """``mode="shared"``: any member takes any message, with no order, for the most parallelism."""
    replay_from_earliest: bool = False
    """A new group with ``start="earliest"`` receives every message still retained, oldest first."""
    replay_by_offset: bool = False
    """A new group with ``start=<int>`` begins at that offset of every partition (clamped to what is
    retained); offsets are the ``Receipt.offset`` and ``Delivery.offset`` values."""
    replay_by_time: bool = False
    """A new group with ``start=<datetime>`` begins, on every partition, at the first message the server
    stored at or after that time (its ``append_time``)."""
    request_reply: bool = False
    """``request`` reaches one subscriber of the topic, which answers with ``Delivery.reply``; no answer
    within the timeout raises ``RequestTimeout``."""
    no_responders: bool = False
    """A request to a topic nobody subscribes to fails at once with ``NoResponders``, not at its timeout."""
    ack_deadline: bool = False
    """A delivery not settled within the subscription's ``ack_deadline`` is delivered again, with
    ``delivery_count`` one higher."""
    nack_delay: bool = False
    """``nack(delay)`` redelivers the message no sooner than ``delay`` seconds later (and soon after);
    meanwhile later messages are delivered: a delayed message does not hold up its partition."""
    max_deliveries: bool = False
    """The backend counts deliveries and stops redelivering after the subscription's ``max_deliveries``
    (with ``native_dead_letters`` it moves the message to the dead-letter topic; without, the framework
    does when it sees ``delivery_count`` reach the limit)."""
    native_dead_letters: bool = False
    """The backend (the server itself, or its adapter on the server's behalf) moves a message past
    ``max_deliveries``, or one ``term``-inated, to ``dead_letter_topic(topic, group)`` with the ``DLQ_*``
    headers (original topic, partition, offset, group, deliveries, reason), and stops delivering it to
    the group."""
    idempotent_publish: bool = False
    """A publish the backend retries on its own (after a lost connection or a lost acknowledgement) is
    stored once: every publish that returned a ``Receipt`` is stored exactly once, even across a crash
    and restart of the server."""
    dedupe_by_id: bool = False
    """Publishing a ``msg_id`` already stored (within the backend's dedupe window) stores nothing new and
    returns a ``Receipt`` with ``duplicate=True``. Without it, ``msg_id`` is still delivered
    (``Delivery.msg_id``) so consumers can deduplicate."""
    reconnects: bool = False
    """After the server restarts, the backend reconnects on its own: publishes made meanwhile wait and then
    succeed, every subscription resumes from its group's committed position, and requests are answered
    again once their responders are back (until then, ``NoResponders`` or ``RequestTimeout``)."""
    topic_patterns: bool = False
    """``subscribe`` takes a pattern: ``*`` stands for one dot-separated token, a final ``>`` for one or
    more; topics created later that match are taken too."""
    reasons: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        unknown = set(self.reasons) - set(capability_names())
        if unknown:
            raise InvalidBackendConfig(f"reasons for unknown capabilities: {sorted(unknown)}")

    def missing(self) -> list[str]:
        """The capabilities this backend does not declare."""
        return [name for name in capability_names() if not getattr(self, name)]

    def why(self, name: str) -> str:
        """Why capability ``name`` is missing: the backend's reason, else a generic one."""
        return self.reasons.get(name, "the backend does not declare it")

    def require(self, name: str, what: str) -> None:
        """``NotSupported`` (naming ``what``, the capability and the reason) unless ``name`` is declared."""
        if not getattr(self, name):
            raise NotSupported(f"{what} needs the {name!r} capability: {self.why(name)}", capability=name)


@functools.cache
def capability_names() -> tuple[str, ...]:
    """The capability fields of ``Capabilities``, in declaration order."""
    return tuple(f.name for f in fields(Capabilities) if f.name != "reasons")


@functools.cache
def capability_docs() -> Mapping[str, str]:
    """Each capability's docstring (the guarantee it makes), read from this module's source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(Capabilities)))
    except (OSError, TypeError):  # no source shipped: names only
        return {}
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs
