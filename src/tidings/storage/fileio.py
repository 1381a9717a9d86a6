"""The storage engine's only door to the operating system's files.

Everything the log does to a file goes through ``FileSystem`` and ``File``,
so tests can put a fault-injecting layer in their place (ENOSPC on the next
write, EIO on fsync, losing writes that were never synced) and check the log's
answer without a broken disk. ``OsFileSystem`` is the real thing: positional
``pwritev``/``pread`` on raw file descriptors, ``fdatasync`` for data and
``fsync`` on the directory after a file is created, renamed or removed, so
that the file's existence is as durable as its bytes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Protocol

from tidings.records import Buffer


class File(Protocol):
    """An open file the log writes at positions it tracks itself."""

    path: str

    def write_at(self, parts: Sequence[Buffer], position: int) -> None:
        """Write all of ``parts`` at ``position``; raises OSError, never writes short silently."""

    def read_at(self, size: int, position: int) -> bytes: ...

    def sync(self) -> None:
        """Make every byte written so far durable (fdatasync)."""

    def truncate(self, size: int) -> None: ...

    def size(self) -> int: ...

    def close(self) -> None: ...


class FileSystem(Protocol):
    def open(self, path: str) -> File:
        """Open for reading and writing, creating the file when missing."""

    def exists(self, path: str) -> bool: ...

    def listdir(self, path: str) -> list[str]: ...

    def makedirs(self, path: str) -> None: ...

    def remove(self, path: str) -> None: ...

    def replace(self, source: str, target: str) -> None: ...

    def sync_dir(self, path: str) -> None: ...

    def read_file(self, path: str) -> bytes: ...

    def free_space(self, path: str) -> int:
        """Bytes an unprivileged writer may still use on the file system holding ``path``.

        Only sizes the log's preallocation (``PartitionLog.preallocate``), so
        that zero-filled room never takes more than a small part of what is left.
        """


class OsFile:
    __slots__ = ("_fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write_at(self, parts: Sequence[Buffer], position: int) -> None:
        views = [memoryview(part) for part in parts]
        while views:
            written = os.pwritev(self._fd, views, position)
            if written == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
            position += written
            while views and written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            if views and written:
                views[0] = views[0][written:]

    def read_at(self, size: int, position: int) -> bytes:
        return os.pread(self._fd, size, position)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __repr__(self) -> str:
        return f"<OsFile {self.path} fd={self._fd}>"


class OsFileSystem:
    def open(self, path: str) -> File:
        return OsFile(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def remove(self, path: str) -> None:
        os.remove(path)

    def replace(self, source: str, target: str) -> None:
        os.replace(source, target)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_file(self, path: str) -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    def free_space(self, path: str) -> int:
        stats = os.statvfs(path)
        return stats.f_bavail * stats.f_frsize
