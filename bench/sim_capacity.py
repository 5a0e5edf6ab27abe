"""How many sends per second the carrier simulator accepts.

    python bench/sim_capacity.py [--seconds 10] [--latency-ms 150] [--clients 2]

Starts ``python -m sms_service.cli carrier-sim`` in its own process (status callbacks off),
then drives ``POST .../Messages.json`` from load-generator processes, each keeping many
requests in flight on keep-alive connections. It measures twice in the same run: a
baseline at 0 ms latency, then the target latency, and prints accepted sends/s, latency
percentiles, refusals and the ratio to the 2,000/s target.

The load generator speaks HTTP/1.1 with a bare asyncio protocol rather than a client
library: on a 2-core machine it shares the CPU with the simulator, and the less it takes
the more the simulator gets. Every request goes to a different valid number, so the
simulator's number validation is measured at full cost.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlencode

try:  # bench/ is not a package: run as a script, or imported by path
    from _common import free_port, http_json
except ImportError:  # pragma: no cover
    from bench._common import free_port, http_json

TARGET_PER_SECOND = 2000
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-token"


@dataclass
class Result:
    """What one load-generator process saw."""

    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    transport_errors: int = 0


def start_simulator(port: int, latency_ms: float, max_concurrency: int) -> subprocess.Popen:
    """The simulator in its own process, once it answers /sim/health."""
    command = [
        sys.executable, "-m", "sms_service.cli", "carrier-sim",
        "--port", str(port),
        "--latency-ms", str(latency_ms),
        "--max-concurrency", str(max_concurrency),
        "--callbacks", "none",
        "--account-sid", ACCOUNT_SID,
        "--auth-token", AUTH_TOKEN,
        "--log-level", "WARNING",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            sim_get(port, "/sim/health")
            return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the simulator exited with {process.returncode}") from None
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the simulator did not start within 20 s")


def sim_get(port: int, path: str) -> dict:
    """GET a /sim/ endpoint as JSON."""
    return http_json(f"http://127.0.0.1:{port}{path}")


AREA_CODES = ("202", "212", "213", "305", "312", "415", "617", "646", "718", "917")


class RequestMaker:
    """Complete HTTP/1.1 send requests, as the official client posts them, each to a
    different number (the simulator validates every number; none repeats in a run)."""

    def __init__(self, port: int, stream: int) -> None:
        self.counter = stream * 10_000_000
        body = urlencode(
            {
                "To": "+1" + "X" * 10,
                "From": "21333",
                "Body": "Rally at City Hall, 6pm Thursday. Bring a friend! Reply STOP to end.",
            }
        ).encode()
        auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        head = (
            f"POST /2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            f"Authorization: Basic {auth}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.before, self.after = (head + body).split(b"X" * 10)

    def next(self) -> bytes:
        """The next request."""
        k = self.counter
        self.counter += 1
        number = f"{AREA_CODES[k // 8_000_000 % 10]}{200 + k // 10_000 % 800}{k % 10_000:04d}"
        return self.before + number.encode() + self.after


class LoadConnection(asyncio.Protocol):
    """One keep-alive connection sending requests back to back until ``stop_at``.

    No coroutine per request: the response is parsed in ``data_received`` and the next
    request written straight away.
    """

    def __init__(self, maker: RequestMaker, stop_at: float, result: Result, done) -> None:
        self.maker, self.stop_at, self.result, self.done = maker, stop_at, result, done
        self.buffer = b""
        self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.send()

    def send(self) -> None:
        """The next request, or hang up when the time is over."""
        now = time.perf_counter()
        if now >= self.stop_at:
            self.transport.close()
            return
        self.started = now
        self.transport.write(self.maker.next())

    def data_received(self, data: bytes) -> None:
        """Count a complete response and send the next request on the same connection."""
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        length = 0
        at = head.find(b"content-length:")
        if at >= 0:
            line_end = head.find(b"\r\n", at)
            length = int(head[at + 15 : line_end if line_end >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        self.result.latencies_ms.append((time.perf_counter() - self.started) * 1000)
        self.result.statuses[int(head[9:12])] += 1
        self.buffer = self.buffer[end + 4 + length :]
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None or time.perf_counter() < self.stop_at:
            self.result.transport_errors += 1
        if not self.done.done():
            self.done.set_result(None)


def generate_load(port: int, connections: int, seconds: float, worker: int, out) -> None:
    """Process entry point: ``connections`` concurrent connections for ``seconds``."""
    result = Result()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop_at = time.perf_counter() + seconds
        waits = []
        for c in range(connections):
            done = loop.create_future()
            maker = RequestMaker(port, worker * connections + c)
            await loop.create_connection(
                lambda m=maker, d=done: LoadConnection(m, stop_at, result, d), "127.0.0.1", port
            )
            waits.append(done)
        await asyncio.gather(*waits)

    cpu_started = time.process_time()
    asyncio.run(main())
    cpu = time.process_time() - cpu_started
    out.put((dict(result.statuses), result.latencies_ms, result.transport_errors, cpu))


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_phase(label: str, latency_ms: float, args: argparse.Namespace) -> float:
    """Start a simulator, drive it, print the figures; the accepted sends per second."""
    port = free_port()
    simulator = start_simulator(port, latency_ms, args.max_concurrency)
    try:
        per_client = args.concurrency // args.clients
        out: mp.Queue = mp.Queue()
        workers = [
            mp.Process(target=generate_load, args=(port, per_client, args.seconds, w, out))
            for w in range(args.clients)
        ]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        gathered = [out.get(timeout=args.seconds + 60) for _ in workers]
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        stats = sim_get(port, "/sim/stats")
    finally:
        simulator.terminate()
        simulator.wait(10)

    statuses: Counter = Counter()
    latencies: list[float] = []
    transport_errors = 0
    generator_cpu = 0.0
    for counts, lat, errors, cpu in gathered:
        generator_cpu += cpu
        statuses.update(counts)
        latencies.extend(lat)
        transport_errors += errors
    accepted = statuses.get(201, 0)
    rate = accepted / args.seconds
    busy = [s["accepted"] for s in stats["per_second"]][1:-1]  # whole seconds only
    steady = sum(busy) / len(busy) if busy else float("nan")
    refused = {str(k): v for k, v in sorted(statuses.items()) if k != 201}
    peak = stats["accepted_per_second"]["peak"]
    lines = [
        f"\n== {label}: latency {latency_ms:g} ms, {args.clients} client processes x "
        f"{per_client} connections, {args.seconds:g} s (wall {elapsed:.1f} s)",
        f"  accepted sends/s   {rate:8.0f}   (simulator's count {stats['accepted']}; "
        f"whole seconds mean {steady:.0f}/s, peak {peak}/s)",
        f"  latency ms         p50 {percentile(latencies, 0.5):6.1f}   "
        f"p99 {percentile(latencies, 0.99):6.1f}   max {max(latencies, default=0):6.1f}",
        f"  errors             HTTP {refused or 'none'}; simulator rejected "
        f"{stats['rejected'] or 'none'}; transport {transport_errors}",
        f"  peak in flight     {stats['peak_in_flight']}; generator CPU "
        f"{1e6 * generator_cpu / max(accepted, 1):.0f} us per send",
        f"  ratio to {TARGET_PER_SECOND}/s    {rate / TARGET_PER_SECOND:.2f}x",
    ]
    print("\n".join(lines))
    return rate


def main() -> int:
    """Baseline at 0 ms, then the target latency; exit 1 when under 2,000/s."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--max-concurrency", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=480, help="connections in total")
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes")
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.concurrency > args.max_concurrency:
        parser.error("--concurrency above --max-concurrency only measures 429s")
    print(f"carrier simulator capacity on {os.cpu_count()} CPUs, target {TARGET_PER_SECOND}/s")

    baseline_args = argparse.Namespace(**{**vars(args), "seconds": args.baseline_seconds})
    run_phase("baseline", 0.0, baseline_args)
    rate = run_phase("target", args.latency_ms, args)
    verdict = "meets" if rate >= TARGET_PER_SECOND else "MISSES"
    print(f"\n{verdict} the target: {rate:.0f} accepted sends/s at {args.latency_ms:g} ms")
    return 0 if rate >= TARGET_PER_SECOND else 1


if __name__ == "__main__":
    mp.set_start_method("spawn", force=True)
    sys.exit(main())
