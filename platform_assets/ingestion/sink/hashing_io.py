"""File objects that compute the MD5 of the bytes passing through them.

The checksum of a source file and of the Parquet file written are computed while
the bytes are read or written anyway, instead of reading each file once more.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any


class HashingReader(io.RawIOBase):
    """Reads a file and hashes every byte read."""

    def __init__(self, path: Path):
        self._file = path.open("rb")
        self.md5 = hashlib.md5()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)
        if count:
            self.md5.update(memoryview(buffer)[:count])
        return count

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self.md5.update(data)
        return data

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._file.close()


class HashingWriter(io.RawIOBase):
    """Writes to a file and hashes every byte written; ``tell`` is the bytes written."""

    def __init__(self, path: Path):
        self._file = path.open("wb")
        self.md5 = hashlib.md5()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.md5.update(data)
        written = self._file.write(data)
        self.size += written
        return written

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._file.close()
