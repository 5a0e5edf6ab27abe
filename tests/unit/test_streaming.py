"""The console's streamed downloads: what the writer writes arrives whole and in order; a
writer's error breaks the download off; a download left part-way ends its writer."""

from __future__ import annotations

import threading

import pytest

from sms_service.web.console.streaming import CHUNK, Abandoned, stream_writer


def test_everything_written_arrives_in_order_in_bounded_chunks():
    lines = [f"{i},é,=cmd\n" for i in range(50_000)]

    def write(out):
        for line in lines:
            out.write(line)
        out.write(b"bytes too\n")

    chunks = list(stream_writer(write))
    assert b"".join(chunks) == ("".join(lines) + "bytes too\n").encode()
    assert len(chunks) > 5 and all(len(c) < CHUNK + 100 for c in chunks)


def test_a_writers_error_breaks_the_download_off():
    def write(out):
        out.write("x" * (CHUNK * 2))
        raise RuntimeError("cursor lost")

    received = []
    with pytest.raises(RuntimeError, match="cursor lost"):
        for chunk in stream_writer(write):
            received.append(chunk)
    assert received  # what came before the error was sent


def test_a_download_left_part_way_ends_its_writer():
    ended = threading.Event()
    raised: list[BaseException] = []

    def write(out):
        try:
            while True:  # an export far larger than the queue
                out.write("y" * 1000)
        except BaseException as exc:
            raised.append(exc)
            raise
        finally:
            ended.set()

    before = threading.active_count()
    chunks = stream_writer(write)
    assert len(next(chunks)) >= CHUNK
    assert not ended.wait(0.2)  # the writer is blocked on the full queue, not finished
    chunks.close()  # what the WSGI server does when the client goes
    assert ended.wait(5), "the writer still runs after the download was left"
    assert isinstance(raised[0], Abandoned)
    for _ in range(50):
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.05)
    assert threading.active_count() <= before
