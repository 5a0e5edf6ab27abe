"""Stream a file that a service writes to a text stream, as a download, in bounded memory.

The export writers take a stream and loop over a server-side cursor. Here the writer
runs in a thread writing into a small bounded queue, and the response reads from it, so a
ten-million-row export goes out as it is read, never held whole in memory. A download
the client leaves part-way stops the writer at its next write, so its cursor, transaction
and thread do not outlive the request.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import IO

CHUNK = 64 * 1024
_END = object()


class Abandoned(Exception):
    """Raised in the writer when the download's reader has gone (the client disconnected)."""


class _QueueWriter:
    """A write-only stream (bytes, or text written as UTF-8) that hands chunks of about
    ``CHUNK`` bytes to a queue, and raises :class:`Abandoned` once ``stop`` is set."""

    def __init__(self, out: queue.Queue, stop: threading.Event) -> None:
        self._out = out
        self._stop = stop
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
        if self._stop.is_set():
            raise Abandoned("the download was left part-way")
        if self._buffer:
            self._out.put(b"".join(self._buffer))
            self._buffer, self._size = [], 0


def stream_writer(write: Callable[[IO], object]) -> Iterator[bytes]:
    """Run ``write(stream)`` in a thread and yield what it writes, as bytes.

    An error in the writer is raised in the reader (the download then breaks off rather
    than ending as if complete). Closing the iterator early (the WSGI server does when the
    client goes) makes the writer's next write raise :class:`Abandoned`, ending it.
    """
    chunks: queue.Queue = queue.Queue(maxsize=8)
    failure: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        writer = _QueueWriter(chunks, stop)
        try:
            write(writer)  # type: ignore[arg-type]
            writer.flush()
        except BaseException as exc:  # handed to the reader, re-raised there
            failure.append(exc)
        finally:
            chunks.put(_END)

    thread = threading.Thread(target=run, name="export-stream", daemon=True)
    thread.start()
    finished = False
    try:
        while (chunk := chunks.get()) is not _END:
            yield chunk
        finished = True
    finally:
        if not finished:
            # Set before draining: a put blocked on the full queue completes, and every
            # later write sees ``stop`` before it could block again.
            stop.set()
            while True:
                try:
                    chunks.get_nowait()
                except queue.Empty:
                    break
    thread.join()
    if failure:
        raise failure[0]
