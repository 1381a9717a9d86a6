"""The broker's data directory: its layout, its lock, and small files written atomically.

Layout (``--data``, default ``./.tidings``)::

    <data>/lock                          held (flock) by the running broker; holds its pid
    <data>/broker-id                     the broker's id, created on first start (hex text)
    <data>/producer-ids                  the next unreserved producer id block (see core.producers)
    <data>/groups/                       consumer-group progress (tidings.core.groups.FileGroupStore)
    <data>/topics/<topic>/topic.json     a topic's partition count and settings (core.topic_config)
    <data>/topics/<topic>/<partition>/   one PartitionLog per partition (docs/format.md)
    <data>/trash/                        deleted topics, renamed here, then removed off the event loop

Why a lock: two brokers appending to the same partition logs would interleave
offsets and destroy both. ``flock`` is released by the kernel when the
process dies, kill -9 included, so a crashed broker never leaves a stale lock.

Small metadata files (``topic.json``, ``broker-id``, ``producer-ids``) are
replaced atomically: written to ``NAME.tmp``, fsynced, renamed over ``NAME``,
and the directory fsynced, so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from typing import Final

from tidings.errors import DataDirError

TOPICS: Final = "topics"
TRASH: Final = "trash"
GROUPS: Final = "groups"


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data``: the old or the new content survives any crash, never a mix."""
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    sync_dir(os.path.dirname(path) or ".")


def sync_dir(path: str) -> None:
    """fsync a directory, so the names created, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_optional(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


class DataDir:
    """An open, locked data directory. ``close`` releases the lock."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.topics = os.path.join(self.root, TOPICS)
        self.trash = os.path.join(self.root, TRASH)
        self.groups = os.path.join(self.root, GROUPS)
        self._lock_fd = -1
        try:
            for path in (self.root, self.topics, self.trash, self.groups):
                os.makedirs(path, exist_ok=True)
            self._lock()
            self.broker_id = self._broker_id()
        except OSError as exc:
            self.close()
            raise DataDirError(f"cannot use data directory {self.root}: {exc.strerror or exc}") from exc
        except DataDirError:
            self.close()
            raise

    def __repr__(self) -> str:
        state = "locked" if self._lock_fd >= 0 else "released"
        return f"<DataDir {self.root} {state}>"

    def path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def _lock(self) -> None:
        fd = os.open(self.path("lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirError(
                f"data directory {self.root} is in use by another broker (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _broker_id(self) -> str:
        path = self.path("broker-id")
        data = read_optional(path)
        if data is not None and data.strip():
            return data.decode(errors="replace").strip()
        broker_id = uuid.uuid4().hex[:16]
        write_atomic(path, broker_id.encode() + b"\n")
        return broker_id

    def empty_trash(self) -> None:
        """Remove deleted topics for good. Slow for big topics, so the server runs it in a thread."""
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.trash):
                shutil.rmtree(os.path.join(self.trash, name), ignore_errors=True)

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = -1
