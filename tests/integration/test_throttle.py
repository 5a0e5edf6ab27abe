"""The shared throttle on a real Redis: threads and processes together keep to the rate.

The run's own Redis database (:mod:`tests.redis_db`) is flushed before and after each test.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time

import pytest
import redis

from sms_service.carrier.throttle import Throttle, ThrottleTimeout
from tests import redis_db

REDIS_HOST, REDIS_PORT = redis_db.HOST, redis_db.PORT
KEY = "test:throttle"


def _send_until(throttle: Throttle, stop_at: float, seed: int) -> list[tuple[float, int]]:
    """Acquire like a sender: a mix of 1- and 2-segment messages; (send start, segments)."""
    pick = random.Random(seed)
    sent = []
    while time.time() < stop_at:
        segments = pick.choice((1, 1, 2))
        throttle.acquire(segments)
        sent.append((time.time(), segments))
    return sent


def _threads(throttle: Throttle, count: int, stop_at: float, seed: int) -> list[tuple[float, int]]:
    results: list[list[tuple[float, int]]] = [[] for _ in range(count)]

    def run(slot: int) -> None:
        results[slot] = _send_until(throttle, stop_at, seed * 100 + slot)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [grant for result in results for grant in result]


def _process(
    db: int, rate: float, seconds: float, threads: int, seed: int, barrier, results
) -> None:
    """One worker process (spawned, so importable here): its own connection and threads."""
    conn = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    throttle = Throttle(conn, rate=rate, key=KEY)
    barrier.wait(timeout=60)  # every process is up and connected: start together
    try:
        results.put(_threads(throttle, threads, time.time() + seconds, seed))
    finally:
        conn.close()


def per_second(grants: list[tuple[float, int]]) -> list[int]:
    """Segments per whole second from the first grant; the last, partial second is dropped."""
    start = min(at for at, _ in grants)
    counts: dict[int, int] = {}
    for at, segments in grants:
        second = int(at - start)
        counts[second] = counts.get(second, 0) + segments
    return [counts.get(second, 0) for second in range(max(counts))]


def busiest_window(grants: list[tuple[float, int]], width: float = 1.0) -> int:
    """Most segments started within any sliding window of ``width`` seconds."""
    ordered = sorted(grants)
    best = total = left = 0
    for at, segments in ordered:
        total += segments
        while ordered[left][0] <= at - width:
            total -= ordered[left][1]
            left += 1
        best = max(best, total)
    return best


def test_threads_share_the_rate(redis_connection):
    rate = 200
    throttle = Throttle(redis_connection, rate=rate, key=KEY)
    grants = _threads(throttle, 8, time.time() + 3.2, seed=1)
    counts = per_second(grants)
    assert len(counts) == 3
    assert max(counts) <= rate * 1.05, counts
    assert min(counts) >= rate * 0.95, counts
    assert busiest_window(grants) <= rate * 1.05
    assert {segments for _, segments in grants} == {1, 2}


@pytest.mark.slow  # spawns processes
def test_processes_share_the_rate(redis_connection):
    rate, processes = 200, 4
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(processes), spawn.Queue()
    workers = [
        spawn.Process(
            target=_process, args=(redis_db.db_number(), rate, 3.2, 3, seed, barrier, results)
        )
        for seed in range(processes)
    ]
    for worker in workers:
        worker.start()
    per_process = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    assert all(per_process), "every process got grants"
    grants = [grant for result in per_process for grant in result]
    counts = per_second(grants)
    assert len(counts) == 3
    assert max(counts) <= rate * 1.05, counts
    assert min(counts) >= rate * 0.95, counts
    assert busiest_window(grants) <= rate * 1.05


# Waits measured call after call include the time between the calls, tens of ms on a
# loaded CI machine: this tolerance still tells "spaced" from "not spaced" (10-100 ms steps).
LOADED = 0.03


def test_two_segment_messages_count_twice(redis_connection):
    rate = 50  # 20 ms a segment
    throttle = Throttle(redis_connection, rate=rate, key=KEY, burst=1)
    # A backlog far longer than any stall of this process: every reservation below then
    # queues behind the one before it, never behind an idle gap, so the schedule the key
    # records is exact however slowly this test runs (nothing here sleeps).
    began = time.monotonic()
    assert throttle.reserve(rate * 60) == 0.0  # a minute's worth, granted at once
    sizes = [2, 1, 2, 2, 1, 1, 2, 1, 2, 2]
    starts, waits, spent = [], [], []
    for size in sizes:
        waits.append(throttle.reserve(size))
        spent.append(time.monotonic() - began)
        free_after_us = int(redis_connection.get(KEY))  # Redis' clock, microseconds
        starts.append(free_after_us / 1e6 - size / rate)
    # Each reservation starts exactly where the one before it ends: two segments, twice.
    for before, after, size in zip(starts, starts[1:], sizes, strict=False):
        assert after - before == pytest.approx(size / rate, abs=1e-5)
    ends = starts[-1] + sizes[-1] / rate
    assert ends - starts[0] == pytest.approx(sum(sizes) / rate, abs=1e-5)
    # What each caller is told to wait is that schedule, less the time that has passed.
    for wait, start, elapsed in zip(waits, starts, spent, strict=True):
        ahead = 60 + (start - starts[0])
        assert ahead - elapsed - 1e-3 <= wait <= ahead + 1e-3


def test_idle_time_banks_no_more_than_the_burst(redis_connection):
    throttle = Throttle(redis_connection, rate=100, key=KEY, burst=3)
    throttle.reserve()
    time.sleep(0.5)  # fifty slots go unused
    waits = [throttle.reserve() for _ in range(10)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert all(wait > 0 for wait in waits[3:])
    assert waits[-1] == pytest.approx(0.07, abs=LOADED)


def test_default_burst_is_small(redis_connection):
    throttle = Throttle(redis_connection, rate=100, key=KEY)
    assert throttle.burst == 2
    # A slot is 10 ms: the pattern holds when the four calls fit in one slot, which a busy
    # machine can miss now and then; such an attempt is run again on a fresh key.
    for _ in range(20):
        redis_connection.delete(KEY)
        began = time.monotonic()
        free = [throttle.reserve() == 0 for _ in range(4)]
        if time.monotonic() - began < 0.009:
            break
    else:
        pytest.fail("four reservations never fitted in one 10 ms slot")
    assert free == [True, True, False, False]


def test_a_forgotten_key_restarts_the_spacing(redis_connection):
    throttle = Throttle(redis_connection, rate=0.1, key=KEY, burst=1)  # ten seconds a slot
    for _ in range(2):  # then again once Redis has forgotten the key
        began = time.monotonic()
        waits = [throttle.reserve() for _ in range(3)]
        spent = time.monotonic() - began  # what the waits lose to the time between calls
        assert waits[0] == 0.0
        for wait, ahead in zip(waits[1:], (10, 20), strict=True):
            assert ahead - spent - 1e-3 <= wait <= ahead + 1e-3
        redis_connection.delete(KEY)  # what a Redis restart without persistence leaves


def test_a_forgotten_script_is_loaded_again(redis_connection):
    throttle = Throttle(redis_connection, rate=10, key=KEY, burst=1)
    throttle._script.sha = "0" * 40  # as after a restart: the server knows no such script
    assert throttle.reserve() == 0.0
    assert throttle.reserve() == pytest.approx(0.1, abs=LOADED)


def test_the_key_expires_once_the_schedule_is_past(redis_connection):
    throttle = Throttle(redis_connection, rate=100, key=KEY)
    throttle.reserve()
    assert 0 < redis_connection.pttl(KEY) <= 1100


def test_a_burst_longer_than_a_second_is_granted(redis_connection):
    throttle = Throttle(redis_connection, rate=10, key=KEY, burst=25)  # 2.5 s of slots banked
    throttle.reserve()
    redis_connection.delete(KEY)  # idle: the first grant after this runs 2.4 s behind the clock
    assert [throttle.reserve() for _ in range(25)] == [0.0] * 25
    assert throttle.reserve() > 0
    assert 0 < redis_connection.pttl(KEY) <= 1300  # the schedule's end (0.2 s ahead) plus 1 s


def test_max_wait_refuses_without_reserving(redis_connection):
    throttle = Throttle(redis_connection, rate=10, key=KEY, burst=1)
    for _ in range(5):
        throttle.reserve()
    with pytest.raises(ThrottleTimeout) as refused:
        throttle.reserve(max_wait=0.2)
    assert refused.value.wait == pytest.approx(0.5, abs=LOADED)
    assert throttle.reserve() == pytest.approx(0.5, abs=LOADED)  # the refused slot was not taken


def test_acquire_sleeps_the_wait(redis_connection):
    throttle = Throttle(redis_connection, rate=20, key=KEY, burst=1)
    slept: list[float] = []
    waits = [throttle.acquire(2, sleep=slept.append) for _ in range(3)]
    assert slept == waits[1:]
    assert waits[2] == pytest.approx(0.2, abs=LOADED)
    with pytest.raises(ThrottleTimeout):
        throttle.acquire(1, max_wait=0.05, sleep=slept.append)


def test_keys_are_independent(redis_connection):
    one = Throttle(redis_connection, rate=10, key=KEY + ":a", burst=1)
    two = Throttle(redis_connection, rate=10, key=KEY + ":b", burst=1)
    one.reserve()
    assert one.reserve() > 0
    assert two.reserve() == 0.0


def test_zero_rate_disables_without_touching_redis():
    unreachable = redis.Redis(host=REDIS_HOST, port=1, socket_connect_timeout=0.1)
    throttle = Throttle(unreachable, rate=0)
    assert not throttle.enabled
    assert throttle.reserve(3) == 0.0
    assert throttle.acquire(1, sleep=pytest.fail) == 0.0


@pytest.mark.parametrize("segments", [0, -1, True, 1.5, "2"])
def test_segments_must_be_a_positive_integer(redis_connection, segments):
    with pytest.raises(ValueError, match="segments"):
        Throttle(redis_connection, rate=10, key=KEY).reserve(segments)


@pytest.mark.parametrize(("rate", "burst"), [(float("nan"), None), (float("inf"), None), (10, 0.5)])
def test_throttle_checks_its_settings(redis_connection, rate, burst):
    with pytest.raises(ValueError):
        Throttle(redis_connection, rate=rate, key=KEY, burst=burst)


def test_for_settings_uses_sender_mps(redis_connection):
    from config import Settings

    throttle = Throttle.for_settings(Settings(sender_mps=50), connection=redis_connection)
    assert (throttle.rate, throttle.key, throttle.burst) == (50, "sms:throttle", 1)
