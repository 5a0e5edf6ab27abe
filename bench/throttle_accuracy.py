"""How evenly the shared Redis throttle spreads sends: per-second segment counts, measured.

    python bench/throttle_accuracy.py [--seconds 60] [--mps 100] [--processes 4] [--threads 8]

Worker processes (each with several threads) acquire from one throttle for a mix of 1- and
2-segment messages and note when each send would start. The target: no wall-clock second
above 105% of the rate, and a mean of at least 95%. For contrast the same workers then run
for a few seconds with no throttle, and with a naive limiter in which every thread sleeps
its share of the rate. Uses Redis db 9 (not the tests') and deletes its key afterwards.
Exits 1 when the target does not hold.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

import redis

from sms_service.carrier.throttle import Throttle

KEY = "bench:throttle"
TICK = 0.001  # sends are counted in 1 ms buckets from the common start


@dataclass(frozen=True)
class Run:
    """One measured run: what the workers do, for how long, at what rate."""

    mode: str  # "throttle" | "none" | "naive"
    seconds: float
    mps: float
    processes: int
    threads: int
    two_segment_share: float
    redis_url: str

    def __post_init__(self) -> None:
        if self.mode not in ("throttle", "none", "naive"):
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.seconds < 1 or self.mps <= 0 or self.processes < 1 or self.threads < 1:
            raise ValueError("seconds >= 1, mps > 0, processes >= 1 and threads >= 1 please")


def _sender(run: Run, start: float, seed: int, counts: Counter, lock: threading.Lock) -> None:
    """One worker thread: acquire (or not), note the send start, repeat until the end."""
    pick = random.Random(seed)
    throttle = None
    if run.mode == "throttle":
        throttle = Throttle(redis.Redis.from_url(run.redis_url), rate=run.mps, key=KEY)
    share = run.mps / (run.processes * run.threads)  # the naive limiter's per-thread rate
    local: Counter = Counter()
    time.sleep(max(0.0, start - time.time()))
    stop = start + run.seconds
    while (now := time.time()) < stop:
        segments = 2 if pick.random() < run.two_segment_share else 1
        if throttle is not None:
            throttle.acquire(segments)
            now = time.time()
        local[int((now - start) / TICK)] += segments
        if run.mode == "naive":
            time.sleep(segments / share)
    with lock:
        counts.update(local)


def _process(run: Run, index: int, start_value, barrier, results) -> None:
    """One worker process: its threads start together at the time the parent sets."""
    counts: Counter = Counter()
    lock = threading.Lock()
    barrier.wait(timeout=120)  # every process is up (spawning takes a while) ...
    barrier.wait(timeout=120)  # ... and the parent has set the common start
    start = start_value.value
    workers = [
        threading.Thread(target=_sender, args=(run, start, index * 1000 + i, counts, lock))
        for i in range(run.threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(dict(counts))


def measure(run: Run) -> list[int]:
    """Run the workers; return segments per 1 ms tick over the run, summed over processes."""
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(run.processes + 1), spawn.Queue()
    start_value = spawn.Value("d", 0.0)
    procs = [
        spawn.Process(target=_process, args=(run, i, start_value, barrier, results))
        for i in range(run.processes)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=120)
    start_value.value = time.time() + 0.5
    barrier.wait(timeout=120)
    ticks = [0] * int(run.seconds / TICK)
    for _ in procs:
        for tick, segments in results.get(timeout=run.seconds + 120).items():
            if 0 <= tick < len(ticks):
                ticks[tick] += segments
    for proc in procs:
        proc.join(timeout=30)
    return ticks


@dataclass(frozen=True)
class Summary:
    """Per-second counts and the figures derived from them."""

    per_second: list[int]
    busiest_second: int  # sliding window, 1 ms steps
    busiest_tenth: int  # sliding 100 ms window

    @property
    def mean(self) -> float:
        """Average segments per whole second."""
        return sum(self.per_second) / len(self.per_second)

    @classmethod
    def of(cls, ticks: list[int]) -> Summary:
        """Summarise 1 ms ticks: whole seconds from the start, and the busiest windows."""
        per = int(1 / TICK)
        seconds = [sum(ticks[i : i + per]) for i in range(0, len(ticks) - per + 1, per)]
        return cls(seconds, _busiest(ticks, per), _busiest(ticks, per // 10))


def _busiest(ticks: list[int], width: int) -> int:
    total = best = sum(ticks[:width])
    for i in range(width, len(ticks)):
        total += ticks[i] - ticks[i - width]
        best = max(best, total)
    return best


def _print_counts(counts: list[int]) -> None:
    for i in range(0, len(counts), 15):
        print("   ", " ".join(f"{c:4d}" for c in counts[i : i + 15]))


def main(argv: list[str] | None = None) -> int:
    """Measure the throttle, then the baselines; print the figures; 0 if the target holds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--mps", type=float, default=100)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--two-segment-share", type=float, default=0.3)
    parser.add_argument("--baseline-seconds", type=float, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    args = parser.parse_args(argv)

    def run(mode: str, seconds: float) -> Run:
        return Run(mode, seconds, args.mps, args.processes, args.threads,
                   args.two_segment_share, args.redis_url)  # fmt: skip

    connection = redis.Redis.from_url(args.redis_url)
    connection.delete(KEY)
    try:
        shared = Summary.of(measure(run("throttle", args.seconds)))
        none = Summary.of(measure(run("none", args.baseline_seconds)))
        naive = Summary.of(measure(run("naive", args.baseline_seconds)))
    finally:
        connection.delete(KEY)
        connection.close()

    ceiling, floor = args.mps * 1.05, args.mps * 0.95
    holds = max(shared.per_second) <= ceiling and shared.mean >= floor
    print(f"throttle accuracy: {args.mps:g} MPS, {args.processes} processes x "
          f"{args.threads} threads, {args.seconds:g} s, "
          f"{args.two_segment_share:.0%} two-segment messages")  # fmt: skip
    print("segments per second, shared Redis throttle:")
    _print_counts(shared.per_second)
    print(f"  max second {max(shared.per_second)}, min {min(shared.per_second)}, "
          f"mean {shared.mean:.1f}; busiest sliding 1 s {shared.busiest_second}, "
          f"busiest 100 ms {shared.busiest_tenth}")  # fmt: skip
    print(f"  target: no second above {ceiling:g}, mean >= {floor:g}: "
          f"{'HOLDS' if holds else 'FAILS'}")  # fmt: skip
    print(f"baselines, same workers, {args.baseline_seconds:g} s each "
          "(ratio = max second / target rate):")  # fmt: skip
    for name, summary in (("shared throttle", shared), ("no throttle", none),
                          ("naive per-thread sleep", naive)):  # fmt: skip
        print(f"  {name:24s} mean {summary.mean:10.1f}/s  max second "
              f"{max(summary.per_second):8d}  busiest 100 ms {summary.busiest_tenth:7d}  "
              f"ratio {max(summary.per_second) / args.mps:8.2f}")  # fmt: skip
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
