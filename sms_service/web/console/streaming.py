"""Stream a file that a service writes to a text stream, as a download, in bounded memory.

The export writers take a stream and loop over a server-side cursor. Here the writer
runs in a thread writing into a small bounded queue, and the response reads from it, so a
ten-million-row export goes out as it is read, never held whole in memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import IO

CHUNK = 64 * 1024
_END = object()


class _QueueWriter:
    """A write-only stream (bytes, or text written as UTF-8) that hands chunks of about
    ``CHUNK`` bytes to a queue."""

    def __init__(self, out: queue.Queue) -> None:
        self._out = out
        self._buffer: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | str) -> int:
        chunk = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self._buffer.append(chunk)
        self._size += len(chunk)
        if self._size >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self._out.put(b"".join(self._buffer))
            self._buffer, self._size = [], 0


def stream_writer(write: Callable[[IO], object]) -> Iterator[bytes]:
    """Run ``write(stream)`` in a thread and yield what it writes, as bytes.

    An error in the writer is raised in the reader (the download then breaks off rather
    than ending as if complete).
    """
    chunks: queue.Queue = queue.Queue(maxsize=8)
    failure: list[BaseException] = []

    def run() -> None:
        writer = _QueueWriter(chunks)
        try:
            write(writer)  # type: ignore[arg-type]
            writer.flush()
        except BaseException as exc:  # handed to the reader, re-raised there
            failure.append(exc)
        finally:
            chunks.put(_END)

    thread = threading.Thread(target=run, name="export-stream", daemon=True)
    thread.start()
    while (chunk := chunks.get()) is not _END:
        yield chunk
    thread.join()
    if failure:
        raise failure[0]
