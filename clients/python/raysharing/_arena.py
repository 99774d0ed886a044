"""The worker's shared-memory arena, mapped by a client on its host (protos/SHARED_MEMORY.md)."""

from __future__ import annotations

import mmap
import os
import stat
from typing import Optional

_MAGIC = b"RSARENA1"
_SECRET = slice(32, 64)


class Arena:
    """A read-write mapping of the worker's arena, opened through ``/proc/<worker pid>/fd/<arena fd>``."""

    def __init__(self, mapping: mmap.mmap) -> None:
        self._mapping = mapping

    @staticmethod
    def try_open(worker_pid: int, arena_fd: int, arena_bytes: int) -> Optional["Arena"]:
        """Maps the arena the worker offers, or ``None`` when this process cannot (another host, PID namespace or user).

        A file that opens but is not the worker's arena (another process with that pid) is caught by the header's
        magic here, or by the worker refusing the secret.
        """
        path = f"/proc/{worker_pid}/fd/{arena_fd}"
        try:
            # Look before opening: in another PID namespace the pid names some other process, whose descriptor may be a
            # FIFO, a terminal or a device, which even an open could disturb. The arena is a regular file of that size.
            found = os.stat(path)
            if not stat.S_ISREG(found.st_mode) or found.st_size < arena_bytes:
                return None
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < arena_bytes:
                return None
            mapping = mmap.mmap(fd, arena_bytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        if mapping[0:8] != _MAGIC:
            mapping.close()
            return None
        return Arena(mapping)

    @property
    def secret(self) -> bytes:
        """The 32 bytes that prove to the worker that this process mapped its arena."""
        return bytes(self._mapping[_SECRET])

    def view(self, offset: int, size: int) -> memoryview:
        """The ``size`` bytes at ``offset``, in place; release the view (``with``) before the arena closes."""
        return memoryview(self._mapping)[offset:offset + size]

    def write(self, offset: int, data: memoryview) -> None:
        """Writes ``data`` at ``offset``."""
        self._mapping[offset:offset + len(data)] = data

    def close(self) -> None:
        """Unmaps the arena. Reads after this fail."""
        try:
            self._mapping.close()
        except BufferError:
            # A memoryview of the mapping is still alive somewhere; the mapping goes with the process.
            pass
