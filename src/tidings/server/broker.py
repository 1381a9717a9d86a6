"""``BrokerServer``: the asyncio shell around ``BrokerCore``: listener, sessions, commits, timers.

Theory of operation
-------------------
Everything runs on one event loop, and everything that blocks runs in a
thread: opening and closing logs, group-commit fsyncs (their own pool of
``fsync_threads``), saving group progress, retention, producer snapshots.

The flows, from a session's point of view:

* **frames**: a session decodes frames and hands each to ``on_frame``, which
  calls the core; after each read the session calls ``pump``, which writes
  the core's outbox to the sessions it names, starts group commits for the
  partitions appended to, and re-arms the core's timer at ``next_wakeup``.
* **produce**: ``core.handle`` appends and returns a ticket; the server
  waits on the partitions' committers and only then sends the ProduceResult.
  A committer that finishes calls ``partition_durable``, which lets the
  engine deliver the new records: acked and delivered mean durable.
* **HTTP** (``start(http=True)``): the JSON API, ``/metrics`` and health
  (``tidings.server.http``) on ``http_port``, same host, same loop. Off by
  default for an embedded broker (tests, ``memory://``), so it never claims
  a port by surprise; ``tidings broker`` turns it on.
* **deliveries**: a session gets ``DELIVERY_BURST_BYTES`` of Deliver frames
  per pump; the core then holds it and ``_release_burst`` lets it take more
  on the next loop turn. A session whose transport paused writing (the
  client does not read) is held until it resumes: no frames are built for
  it meanwhile, and the slow-consumer timeout ends it if it never drains.
* **topology**: every ``TOPOLOGY_SAVE_INTERVAL_S`` the flow map's silent
  entries age out and, if it changed, it is saved (in a thread).
* **shutdown** (``stop``): stop accepting; send every session Close and let
  clients flush their last acks for up to ``shutdown_grace_ms``; finish
  pending commits; save group progress, producer snapshots and the flow
  map; close the logs (each fsyncs); release the data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from tidings.core.broker import BrokerCore
from tidings.core.limits import ConnectionCounter
from tidings.core.produce import ProduceTicket
from tidings.errors import ListenError, TidingsError, UnknownTopic
from tidings.protocol import AckMode, BatchResult, Close, Error, Frame, Hello, Produce, State
from tidings.server.committer import Committer
from tidings.server.config import BrokerConfig, is_loopback
from tidings.server.housekeeping import Housekeeping
from tidings.server.http import HttpApi, Metrics
from tidings.server.session import ReadScratch, Session, SessionLimits, SessionState
from tidings.server.tls import server_context
from tidings.storage.log import Clock, wall_clock_ms

log = logging.getLogger(__name__)

TOPOLOGY_SAVE_INTERVAL_S: Final = 5.0
"""How often the flow map ages out and is saved when it changed (and at shutdown)."""

LIVENESS_SLICE: Final = 16
"""Sessions checked (and maybe refused or dropped) per turn of the event loop in a liveness sweep."""


class BrokerServer:
    def __init__(self, config: BrokerConfig, *, clock: Clock = wall_clock_ms) -> None:
        self.config = config.validate()
        self.clock = clock
        self.core: BrokerCore | None = None
        self.sessions: dict[str, Session] = {}
        self.committers: dict[tuple[str, int], Committer] = {}
        self._limits = SessionLimits(
            max_frame_size=config.max_frame_size,
            write_buffer_high=config.write_buffer_high,
            write_buffer_low=config.write_buffer_low,
            slow_consumer_timeout_ms=config.slow_consumer_timeout_ms,
            max_inflight_produce_bytes=config.max_inflight_produce_bytes,
            handshake_timeout_ms=config.handshake_timeout_ms,
            heartbeat_interval_ms=config.heartbeat_interval_ms,
            idle_timeout_ms=config.idle_timeout_ms,
            max_send_buffer=config.max_send_buffer,
        )
        self.connections = ConnectionCounter(config.max_connections, config.max_connections_per_ip)
        self._scratch = ReadScratch()
        """One read buffer for every session: they all run on this server's loop."""
        self._liveness: asyncio.Task[None] | None = None
        self._fsync_pool = ThreadPoolExecutor(config.fsync_threads, thread_name_prefix="tidings-fsync")
        self._io_pool = ThreadPoolExecutor(4, thread_name_prefix="tidings-io")
        self._listener: asyncio.Server | None = None
        self._housekeeping: Housekeeping | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tick_due: int | None = None
        self._session_ids = itertools.count(1)
        self._incarnation = secrets.token_hex(3)
        self._stopped = asyncio.Event()
        self._stopping = False
        self.metrics = Metrics(lambda: self.core, lambda: len(self.sessions))
        self.http: HttpApi | None = None
        self._topology_task: asyncio.Task[None] | None = None
        self.started_at = time.monotonic()

    def __repr__(self) -> str:
        return f"<BrokerServer {self.url} sessions={len(self.sessions)} committers={len(self.committers)}>"

    # -- lifecycle -----------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        if self._listener is None or not self._listener.sockets:
            return self.config.host, self.config.port
        host, port = self._listener.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        scheme = "tidings+tls" if self.config.tls else "tidings"
        return f"{scheme}://{host}:{port}"

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def http_url(self) -> str | None:
        return None if self.http is None else self.http.url

    async def start(self, *, listen: bool = True, http: bool = False) -> None:
        """Open the data directory and the logs (in a thread), then listen. Raises ``TidingsError``.

        ``listen=False`` opens no socket: connections then come only through
        ``accept`` (the in-process broker of ``memory://``). ``http=True``
        also serves the HTTP API on ``config.http_port`` (with ``listen`` only).
        """
        loop = asyncio.get_running_loop()
        try:
            if listen:
                self.config.check_exposure()
                if not self.config.auth_enabled and not is_loopback(self.config.host):
                    log.warning("listening on %s WITHOUT authentication (insecure)", self.config.host)
            tls = server_context(self.config)
            core = await loop.run_in_executor(self._io_pool, self._open_core)
        except BaseException:
            self._fsync_pool.shutdown(wait=False)
            self._io_pool.shutdown(wait=False)
            raise
        self.core = core
        try:
            if listen:
                self._listener = await loop.create_server(
                    self._new_session,
                    self.config.host,
                    self.config.port,
                    reuse_address=True,
                    backlog=1024,
                    ssl=tls,
                    ssl_handshake_timeout=self.config.handshake_timeout_ms / 1000 if tls else None,
                )
        except OSError as exc:
            await loop.run_in_executor(self._io_pool, core.close)
            where = f"{self.config.host}:{self.config.port}"
            if isinstance(exc, socket.gaierror) or not exc.errno:  # an unknown host name, ...
                reason = exc.strerror or str(exc)
            else:  # asyncio's own message repeats the address
                reason = os.strerror(exc.errno)
            raise ListenError(f"cannot listen on {where}: {reason.lower()}") from exc
        if listen and http:
            api = HttpApi(self)
            try:
                await api.start(self.config.host, self.config.http_port, ssl_context=tls)
            except BaseException:
                if self._listener is not None:
                    self._listener.close()
                await loop.run_in_executor(self._io_pool, core.close)
                raise
            self.http = api
        self.started_at = time.monotonic()
        self._topology_task = loop.create_task(self._topology_job(), name="topology")
        self._housekeeping = Housekeeping(core, self.config, self._io_pool)
        self._housekeeping.start()
        self._liveness = loop.create_task(self._check_liveness(), name="liveness")
        await loop.run_in_executor(self._io_pool, core.datadir.empty_trash)
        log.info("broker %s listening on %s, data in %s", core.broker_id, self.url, core.datadir.root)

    def _open_core(self) -> BrokerCore:
        core = BrokerCore(self.config.core(), clock=self.clock)
        core.open()
        return core

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        """Shut down cleanly (see the module docstring). Idempotent."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        loop = asyncio.get_running_loop()
        try:
            if self._listener is not None:
                self._listener.close()
            if self.http is not None:  # live streams end now; /readyz says 503 while sessions drain
                self.http.closing.set()
            if self._liveness is not None:
                self._liveness.cancel()
            if self._topology_task is not None:
                self._topology_task.cancel()
            await self._drain_sessions()
            if self.http is not None:
                await self.http.stop()
            if self._tick_handle is not None:
                self._tick_handle.cancel()
            for committer in list(self.committers.values()):
                await committer.drain()
            if self._housekeeping is not None:
                await self._housekeeping.stop()
                await self._housekeeping.save_progress()
                await self._housekeeping.write_snapshots()
            if self.core is not None:
                await self._save_topology()
                await loop.run_in_executor(self._io_pool, self.core.close)
        finally:
            self._fsync_pool.shutdown(wait=False)
            self._io_pool.shutdown(wait=False)
            self._stopped.set()
        log.info("broker stopped")

    async def _drain_sessions(self) -> None:
        for session in list(self.sessions.values()):
            session.drain("broker shutting down")
        deadline = asyncio.get_running_loop().time() + self.config.shutdown_grace_ms / 1000
        while self.sessions and asyncio.get_running_loop().time() < deadline:
            for session in list(self.sessions.values()):
                if not session.pending and session.conn.state is State.CLOSED:
                    session.close("broker shutting down")
            await asyncio.sleep(0.01)
        for session in list(self.sessions.values()):
            session.close("broker shutting down", abort=bool(session.pending))
            self.session_lost(session)
        if self._listener is not None:
            await self._listener.wait_closed()

    # -- sessions ------------------------------------------------------------------

    def accept(self, transport: asyncio.BaseTransport) -> Session:
        """Serve a connection that did not come through the listener (an in-memory pipe)."""
        if self.core is None or self._stopping:
            raise ListenError("the broker is not running")
        session = self._new_session()
        session.connection_made(transport)
        return session

    def _new_session(self) -> Session:
        session_id = f"{self._incarnation}-{next(self._session_ids)}"
        session = Session(self, session_id, self._limits, admit=self.admit, scratch=self._scratch)
        self.sessions[session_id] = session
        return session

    def admit(self, session: Session) -> TidingsError | None:
        refusal = self.connections.admit(session.ip)
        session.admitted = refusal is None
        return refusal

    def on_frame(self, session: Session, frame: Frame) -> None:
        core = self.core
        assert core is not None
        if isinstance(frame, Hello):
            try:
                version = session.conn.protocol_version or 1
                welcome = core.hello(session.id, frame, version, subjects=session.subjects)
            except TidingsError as exc:
                log.info("%r: handshake refused: %s", session, exc)
                session.refuse(exc)
                return
            except Exception:  # a bug: refuse this client, keep the broker up
                log.exception("%r: handshake failed", session)
                session.refuse(TidingsError("internal error during the handshake"))
                return
            session.send(welcome)
            session.opened()
            return
        try:
            ticket = core.handle(session.id, frame)
        except Exception as exc:  # a bug in the core: answer it, log it, keep the broker up
            log.exception("%r: %s failed", session, type(frame).__name__)
            request_id = getattr(frame, "request_id", None)
            if request_id is not None:
                session.send(Error(code="internal_error", message=str(exc)[:200], request_id=request_id))
            return
        if ticket is not None:
            self._produced(session, ticket)
        if isinstance(frame, Close) or (isinstance(frame, Error) and frame.fatal):
            session.closing()
            self.pump()
            asyncio.get_running_loop().create_task(self._close_after_pending(session))

    async def _check_liveness(self) -> None:
        """Every quarter of the shortest timeout, check every session, ``LIVENESS_SLICE`` per loop turn.

        A flood of connections that all time out together (1,200 refused in one
        sweep in scenario 8) would otherwise stall every other client for
        the whole sweep: 80-150 ms (the canary's worst samples, with the handshake timeout
        inside its measurement), about 0.1 ms per refused connection, mostly writing its Error frame.
        """
        c = self.config
        period = min(c.handshake_timeout_ms, c.heartbeat_interval_ms) / 4000
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for index, session in enumerate(list(self.sessions.values()), start=1):
                session.check_liveness(now)
                if index % LIVENESS_SLICE == 0:
                    await asyncio.sleep(0)  # let the other connections' reads and commits run

    async def _close_after_pending(self, session: Session) -> None:
        while session.pending:
            await asyncio.gather(*session.pending, return_exceptions=True)
        session.close("closed by the client")

    def writing_paused(self, session: Session, paused: bool) -> None:
        """Hold deliveries to a client whose socket does not drain; resume once it drained to the low mark."""
        if self.core is None or session.id not in self.sessions:
            return
        if paused:
            self.core.hold_deliveries(session.id)
        else:
            with self._guard(f"releasing deliveries to {session.id}"):
                self.core.release_deliveries(session.id)
            self.pump()

    def _release_burst(self, session_id: str) -> None:
        """A later loop turn after a delivery burst: the session may take more, unless it stopped draining."""
        session = self.sessions.get(session_id)
        if self.core is None or session is None or not session.writable or self._stopped.is_set():
            return
        with self._guard(f"releasing deliveries to {session_id}"):
            self.core.release_deliveries(session_id)
        self.pump()

    def session_lost(self, session: Session) -> None:
        if session.admitted:
            session.admitted = False
            self.connections.release(session.ip)
        if self.sessions.pop(session.id, None) is None:
            return
        if self.core is not None:
            with self._guard(f"closing session {session.id}"):
                self.core.session_closed(session.id)
            self.pump()

    # -- producing -----------------------------------------------------------------

    def _produced(self, session: Session, ticket: ProduceTicket) -> None:
        if ticket.ack is AckMode.NONE or not ticket.waits:
            self.pump()  # start the commits anyway: consumers wait for them
            frame = ticket.frame()
            if frame is not None:
                session.send(frame)
            return
        self.pump()
        waits = {}
        for partition, offset in ticket.waits.items():
            committer = self._committer(ticket.topic, partition)
            if committer is None:
                ticket.fail(partition, UnknownTopic(f"topic {ticket.topic!r} was deleted"))
            else:
                waits[partition] = committer.wait(offset)
        if all(future.done() and future.exception() is None for future in waits.values()):
            frame = ticket.frame()
            if frame is not None:
                session.send(frame)
            return
        session.produce_started(ticket.size)
        if len(waits) == 1:  # the usual case: answer from the commit's own callback, no task
            ((partition, durable),) = waits.items()
            answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            session.pending.add(answered)
            durable.add_done_callback(
                lambda future: self._answer_produce(session, ticket, partition, future, answered)
            )
            return
        task = asyncio.get_running_loop().create_task(self._finish_produce(session, ticket, waits))
        session.pending.add(task)
        task.add_done_callback(session.pending.discard)

    def _answer_produce(
        self,
        session: Session,
        ticket: ProduceTicket,
        partition: int,
        durable: asyncio.Future[None],
        answered: asyncio.Future[None],
    ) -> None:
        """A one-partition Produce's batches are durable (or failed): send its result now.

        A task awaiting a gather would take two more turns of the event loop
        after the fsync, each a wait behind whatever else the loop runs.
        """
        try:
            outcome = None if durable.cancelled() else durable.exception()
            if isinstance(outcome, TidingsError):
                ticket.fail(partition, outcome)
            elif outcome is not None or durable.cancelled():
                log.error("produce commit of %s/%s failed: %r", ticket.topic, partition, outcome)
                return
            frame = ticket.frame()
            if frame is not None:
                session.send(frame)
        finally:
            session.produce_finished(ticket.size)
            session.pending.discard(answered)
            answered.set_result(None)

    async def _finish_produce(
        self, session: Session, ticket: ProduceTicket, waits: dict[int, asyncio.Future[None]]
    ) -> None:
        try:
            outcomes = await asyncio.gather(*waits.values(), return_exceptions=True)
            for partition, outcome in zip(waits, outcomes, strict=True):
                if isinstance(outcome, TidingsError):
                    ticket.fail(partition, outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome
            frame = ticket.frame()
            if frame is not None:
                session.send(frame)
        finally:
            session.produce_finished(ticket.size)

    async def produce_local(self, service: str, frame: Produce) -> list[BatchResult]:
        """Produce from inside the broker (the HTTP API): the same path as a session's, durable on return."""
        assert self.core is not None
        ticket = self.core.produce_as(service, frame)
        self.pump()
        waits = {}
        for partition, offset in ticket.waits.items():
            committer = self._committer(ticket.topic, partition)
            if committer is None:
                ticket.fail(partition, UnknownTopic(f"topic {ticket.topic!r} was deleted"))
            else:
                waits[partition] = committer.wait(offset)
        outcomes = await asyncio.gather(*waits.values(), return_exceptions=True)
        for partition, outcome in zip(waits, outcomes, strict=True):
            if isinstance(outcome, TidingsError):
                ticket.fail(partition, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        return ticket.results

    # -- the flow map --------------------------------------------------------------

    async def _topology_job(self) -> None:
        while True:
            await asyncio.sleep(TOPOLOGY_SAVE_INTERVAL_S)
            try:
                await self._save_topology()
            except asyncio.CancelledError:
                raise
            except Exception:  # observability must never take the broker down; it is logged
                log.exception("saving the flow map failed")

    async def _save_topology(self) -> None:
        """Age out silent entries; save the flow map if it changed (encoded here, written in a thread)."""
        core = self.core
        if core is None:
            return
        core.topology.expire()
        if not core.topology.dirty:
            return
        data = core.topology.encode()
        try:
            await asyncio.get_running_loop().run_in_executor(self._io_pool, core.topology_store.save, data)
        except OSError as exc:
            core.topology.dirty = True
            log.warning("cannot save the flow map to %s: %s", core.topology_store.path, exc)

    def _committer(self, topic: str, partition: int) -> Committer | None:
        assert self.core is not None
        found = self.core.topics.find(topic)
        if found is None or partition >= found.partitions:
            return None
        partition_log = found.logs[partition]
        committer = self.committers.get((topic, partition))
        if committer is None or committer.log is not partition_log:  # new, or the topic was re-created
            committer = Committer(
                partition_log,
                self._fsync_pool,
                lambda: self.partition_durable(topic, partition),
                on_fsync=self.metrics.observe_fsync,
            )
            self.committers[topic, partition] = committer
        return committer

    def partition_durable(self, topic: str, partition: int) -> None:
        if self.core is not None and not self._stopped.is_set():
            with self._guard(f"records_durable({topic}, {partition})"):
                self.core.records_durable(topic, partition)
            self.pump()

    # -- pumping -------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Log a failure of the core in a callback (a bug), instead of losing a timer or a committer."""
        try:
            yield
        except Exception:
            log.exception("broker core failed in %s", what)

    def pump(self) -> None:
        """Flush what the last core calls caused: commits to start, frames to send, a timer to arm."""
        core = self.core
        if core is None:
            return
        for (topic, partition), offset in core.take_appended().items():
            committer = self._committer(topic, partition)
            if committer is not None:
                committer.kick(offset)
        for session_id, frame in core.take_outbox():
            session = self.sessions.get(session_id)
            if session is not None and session.state is not SessionState.CLOSED:
                session.send(frame)
        held = core.take_burst_held()
        if held:
            loop = asyncio.get_running_loop()
            for session_id in held:  # the rest of a backlog goes out on later turns, between others' work
                loop.call_soon(self._release_burst, session_id)
        self._arm_timer()

    def _arm_timer(self) -> None:
        assert self.core is not None
        due = self.core.next_wakeup()
        if due is None or (
            self._tick_handle is not None and self._tick_due is not None and self._tick_due <= due
        ):
            return
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        delay = max(0, due - self.clock()) / 1000
        self._tick_due = due
        self._tick_handle = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._tick_handle = None
        self._tick_due = None
        if self.core is not None and not self._stopped.is_set():
            with self._guard("tick"):
                self.core.tick()
            self.pump()  # re-arms the timer even after a failure
