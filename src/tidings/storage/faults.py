"""A file system that fails on purpose: a full disk, a failing write, a failing fsync.

Why it exists: the log's answers to a sick disk (roll an append back and
raise ``DiskFullError`` on ENOSPC; stop with ``LogFailedError`` after EIO) are
the code paths a healthy disk never runs, and the ones that lose data when
they are wrong. ``FaultyFileSystem`` wraps a real ``FileSystem`` (``OsFileSystem``
by default) and every ``File`` it opens, passes everything through, and breaks
exactly what a test or a reliability script asks it to break::

    fs = FaultyFileSystem()
    log = PartitionLog(directory, fs=fs)
    fs.fill(after=100)   # 100 more bytes fit, then ENOSPC (the crossing write is partial)
    fs.refill()          # space returns
    fs.fail_syncs()      # the next fsync raises EIO
    fs.fail_writes()     # the next write raises EIO, having written nothing

Space is a budget of bytes that may still be written, counted on every file
alike (overwrites included; truncating returns nothing, ``refill`` does). A
write that needs more than the budget writes the bytes that fit, as a real
full disk does (``pwritev`` returns short, the retry gets ENOSPC), then raises
``OSError(ENOSPC)``. Faults on writes and fsyncs can be limited to paths
ending with a suffix (``".log"``, ``".index"``, ``"recovery-checkpoint.tmp"``).

``FaultyFileSystem(lose_unsynced=True)`` models a power cut for a process
that is then killed: bytes reach the real file only when their file is synced
(see ``FaultyFile``). ``power_cut()`` does it in-process, at the moment it is
called: every byte not yet synced, in every file, is dropped, as if the
machine lost power; the reliability suite then reopens the directory with a
plain file system and counts what survived. ``writeback()`` first is the
kernel's flusher having run: every written byte reached the disk, synced or
not (the durable mark, ``tidings.storage.mark``, is never fsynced and relies
on it). Directory changes (create, rename, remove) are applied at once, as a
journaling file system makes them durable by the directory fsync.
"""

from __future__ import annotations

import errno
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from tidings.records import Buffer
from tidings.storage.fileio import File, FileSystem, OsFileSystem


@dataclass(slots=True)
class _Fault:
    """Raise ``OSError(code)`` on the next ``count`` operations on paths ending with ``suffix``."""

    code: int
    count: int
    suffix: str

    def trip(self, path: str) -> None:
        if self.count > 0 and path.endswith(self.suffix):
            self.count -= 1
            raise OSError(self.code, os.strerror(self.code), path)


class FaultyFile:
    """A ``File`` that consults its ``FaultyFileSystem`` before every write and fsync.

    With ``lose_unsynced``, written bytes wait in memory (reads see them, as
    they see the page cache) and reach the real file only at ``sync``: a
    SIGKILL then loses them as a power cut loses unsynced pages, and one that
    lands during a ``sync`` leaves a torn write.
    """

    __slots__ = ("__weakref__", "_faults", "_inner", "_lock", "_pending", "path")

    def __init__(self, inner: File, faults: FaultyFileSystem) -> None:
        self._inner = inner
        self._faults = faults
        self._lock = threading.Lock()  # the log syncs outside its own lock, while appending
        self._pending: list[tuple[int, bytes]] = []  # (position, bytes) not yet in the real file
        self.path = inner.path

    def write_at(self, parts: Sequence[Buffer], position: int) -> None:
        faults = self._faults
        faults.write_fault.trip(self.path)
        data = b"".join(bytes(part) for part in parts)
        fits = len(data) if faults.space is None else min(faults.space, len(data))
        if fits:
            self._put(data[:fits], position)
            faults.consume(fits)
        if fits < len(data):
            faults.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)

    def _put(self, data: bytes, position: int) -> None:
        if not self._faults.lose_unsynced:
            self._inner.write_at([data], position)
            return
        with self._lock:
            self._pending.append((position, data))

    def read_at(self, size: int, position: int) -> bytes:
        with self._lock:
            data = bytearray(self._inner.read_at(size, position))
            end = position + size
            for at, chunk in self._pending:
                low, high = max(at, position), min(at + len(chunk), end)
                if low < high:
                    data.extend(bytes(max(0, high - position - len(data))))
                    data[low - position : high - position] = chunk[low - at : high - at]
            return bytes(data)

    def sync(self) -> None:
        self._faults.sync_fault.trip(self.path)
        self._apply()
        self._inner.sync()
        self._faults.syncs += 1

    def drop_unsynced(self) -> int:
        """Forget every byte not yet synced (a power cut); returns how many were dropped."""
        with self._lock:
            dropped = sum(len(chunk) for _, chunk in self._pending)
            self._pending.clear()
            return dropped

    def write_back(self) -> None:
        """Hand the pending writes to the real file, without an fsync (see ``FaultyFileSystem.writeback``)."""
        self._apply()

    def _apply(self) -> None:
        with self._lock:
            for at, chunk in self._pending:
                self._inner.write_at([chunk], at)
            self._pending.clear()

    def truncate(self, size: int) -> None:
        with self._lock:
            self._inner.truncate(size)
            self._pending = [(at, chunk[: size - at]) for at, chunk in self._pending if at < size]

    def size(self) -> int:
        with self._lock:
            return max([self._inner.size(), *(at + len(chunk) for at, chunk in self._pending)])

    def close(self) -> None:
        self._apply()  # the process lives on: its writes stay in the page cache, unsynced
        self._inner.close()

    def __repr__(self) -> str:
        return f"<FaultyFile {self.path} pending={len(self._pending)}>"


class FaultyFileSystem:
    """A ``FileSystem`` whose writes and fsyncs fail when told to; see the module docstring."""

    def __init__(self, inner: FileSystem | None = None, *, lose_unsynced: bool = False) -> None:
        self.inner = inner or OsFileSystem()
        self.lose_unsynced = lose_unsynced  # keep writes in memory until their file is synced
        self.space: int | None = None  # bytes that may still be written; None: unlimited
        self.written = 0  # bytes written through this file system, for tests to measure
        self.syncs = 0  # successful File.sync calls
        self.refused = 0  # writes that met a full disk
        self.write_fault = _Fault(errno.EIO, 0, "")
        self.sync_fault = _Fault(errno.EIO, 0, "")
        self._open: weakref.WeakSet[FaultyFile] = weakref.WeakSet()

    def __repr__(self) -> str:
        space = "unlimited" if self.space is None else f"{self.space} bytes"
        return (
            f"<FaultyFileSystem space={space} written={self.written} refused={self.refused} "
            f"failing: writes={self.write_fault.count} syncs={self.sync_fault.count}>"
        )

    # -- the faults ----------------------------------------------------------------

    def fill(self, after: int = 0) -> None:
        """The disk is full once ``after`` more bytes are written."""
        self.space = after

    def refill(self) -> None:
        """Space returns: writes succeed again."""
        self.space = None

    def fail_writes(self, code: int = errno.EIO, *, count: int = 1, suffix: str = "") -> None:
        """The next ``count`` writes to paths ending with ``suffix`` raise ``OSError(code)``, unwritten."""
        self.write_fault = _Fault(code, count, suffix)

    def fail_syncs(self, code: int = errno.EIO, *, count: int = 1, suffix: str = "") -> None:
        """The next ``count`` fsyncs of paths ending with ``suffix`` raise ``OSError(code)``."""
        self.sync_fault = _Fault(code, count, suffix)

    def heal(self) -> None:
        """Forget every fault: unlimited space, writes and fsyncs succeed."""
        self.refill()
        self.fail_writes(count=0)
        self.fail_syncs(count=0)

    def power_cut(self) -> int:
        """Drop every unsynced byte of every open file, now; returns how many bytes were lost.

        Only meaningful with ``lose_unsynced``. The caller abandons the log
        that used this file system (as the cut process would) and reopens
        the directory with a healthy one.
        """
        return sum(file.drop_unsynced() for file in list(self._open))

    def writeback(self, suffix: str = "") -> None:
        """Put every pending write of files whose path ends with ``suffix`` on disk, unsynced.

        What the kernel's writeback does a few seconds after a write: a later
        ``power_cut`` then loses only what was written since.
        """
        for file in list(self._open):
            if file.path.endswith(suffix):
                file.write_back()

    def consume(self, size: int) -> None:
        self.written += size
        if self.space is not None:
            self.space -= size

    # -- FileSystem ----------------------------------------------------------------

    def open(self, path: str) -> File:
        file = FaultyFile(self.inner.open(path), self)
        self._open.add(file)
        return file

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def listdir(self, path: str) -> list[str]:
        return self.inner.listdir(path)

    def makedirs(self, path: str) -> None:
        self.inner.makedirs(path)

    def remove(self, path: str) -> None:
        self.inner.remove(path)

    def replace(self, source: str, target: str) -> None:
        self.inner.replace(source, target)

    def sync_dir(self, path: str) -> None:
        self.inner.sync_dir(path)

    def read_file(self, path: str) -> bytes:
        return self.inner.read_file(path)

    def free_space(self, path: str) -> int:
        """What the real disk has, or less: the budget left after ``fill``."""
        real = self.inner.free_space(path)
        return real if self.space is None else min(real, max(self.space, 0))
