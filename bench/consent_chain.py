"""What the consent log's hash chain costs inbound, and how fast `consent verify` is.

    python bench/consent_chain.py [--seconds 10] [--rounds 2] [--connections 32]
                                  [--seal-seconds 1] [--events 1000000] [--skip-verify]

Part 1, inbound with the chain on and off, through the Procfile's web process on PostgreSQL
under wrk (the harness of ``bench/inbound_rate.py``: pre-signed unique texts, 70% JOIN from
new numbers, each a new subscriber and an ``opt_in`` event; the rest HELP, STOP and other
wording). One server and one database for the whole run; ``--rounds`` pairs of timed runs
of ``--seconds`` each, in alternating order (off/on, on/off, ...), each run with texts of
its own and a 2 s warm-up. "on": a separate process seals the log every
``--seal-seconds`` (ten times more often than the default ``CONSENT_SEAL_SECONDS``), as the
worker does; "off": that process is paused (SIGSTOP). Before each run the backlog is
sealed, untimed, so every run starts from the same state. Prints texts/s of each run, the
median per mode and the ratio on/off; the target is >= 0.90 (the chain may cost at most
10% of the inbound rate). Exits 1 when it is missed.

Part 2, ``--events`` consent events written with ``generate_series`` into a second private
database, then sealed (timed: events/s) and verified (timed: events/s), against the
baseline of one streamed read of the same rows joined with their seals (what verify
cannot do better than).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text

from bench._common import (
    cpu_seconds,
    exit_on_sigterm,
    free_port,
    private_database,
    seed_subscribers,
    spawn,
    tree_cpu_seconds,
)
from sms_service.db import make_engine
from sms_service.models import ConsentEvent, ConsentSeal
from sms_service.services.consent_chain import seal_all, verify

TARGET_RATIO = 0.90

SEALER = """
import sys, time
from sms_service.db import make_engine
from sms_service.services.consent_chain import seal_all
engine = make_engine(sys.argv[1])
while True:
    seal_all(engine)
    time.sleep(float(sys.argv[2]))
"""


def part_inbound(args: argparse.Namespace) -> float:
    """Alternating timed runs with the sealer running or paused; the ratio on/off."""
    from bench import inbound_rate as harness

    wrk = harness.ensure_wrk()
    command = harness.procfile_web()
    rates: dict[str, list[float]] = {"off": [], "on": []}
    order = []
    for rnd in range(args.rounds):
        order += ["off", "on"] if rnd % 2 == 0 else ["on", "off"]
    per_run = max(2_000, int(args.seconds * 2_500))  # more than the server can take
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = []
        for i, _ in enumerate(order):
            warm, timed = work / f"warm{i}.txt", work / f"timed{i}.txt"
            first = 1_000_000 + i * 2 * per_run
            harness.write_texts(warm, 5_000, first_new=first, subscribers=args.subscribers,
                                seed=2 * i + 1)  # fmt: skip
            harness.write_texts(timed, per_run, first_new=first + 5_000,
                                subscribers=args.subscribers, seed=2 * i + 2)  # fmt: skip
            files.append((warm, timed))
        url = stack.enter_context(private_database("bench_chain"))
        seed_subscribers(url, args.subscribers)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        port = free_port()
        env = harness.server_env(url, port)
        server = harness.start_server(stack, command, env, work / "web.log")
        sealer = spawn(stack, [sys.executable, "-c", SEALER, url, str(args.seal_seconds)])
        stack.callback(os.kill, sealer.pid, signal.SIGCONT)  # so that SIGTERM can end it
        time.sleep(3.0)
        os.kill(sealer.pid, signal.SIGSTOP)
        sealer_cpu = web_cpu = 0.0
        for i, mode in enumerate(order):
            seal_all(engine)
            before = (cpu_seconds(sealer.pid), tree_cpu_seconds(server.pid))
            if mode == "on":
                os.kill(sealer.pid, signal.SIGCONT)
            result = harness.measure(f"chain {mode}", wrk, server, port, files[i], args)
            if mode == "on":
                time.sleep(args.seal_seconds + 0.5)  # let it seal what this run recorded
                os.kill(sealer.pid, signal.SIGSTOP)
                sealer_cpu += cpu_seconds(sealer.pid) - before[0]
                web_cpu += tree_cpu_seconds(server.pid) - before[1]
            if result["errors"]:
                raise SystemExit(f"{result['errors']} errors in a timed run")
            rates[mode].append(result["rate"])
        seal_all(engine)
        verdict = verify(engine)
        print(f"  after the runs: {verdict}")
        if not verdict.ok:
            raise SystemExit("the chain did not verify")
    # Under load from other work the rates are noisy; the CPU the sealer spends per text,
    # against what the web process spends per text, is the cost that does not move.
    share = sealer_cpu / web_cpu if web_cpu else 0.0
    print(f"  sealer CPU {sealer_cpu:.2f} s over the 'on' runs, web CPU {web_cpu:.2f} s: "
          f"the chain costs {100 * share:.1f}% of the web's CPU per text (upper bound: "
          f"it also sealed the warm-ups)")  # fmt: skip
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    print(f"\ninbound texts/s, median of {args.rounds} runs each:")
    print(f"  chain off (baseline)  {off:8.1f}")
    print(f"  chain on              {on:8.1f}")
    print(f"  ratio on/off          {on / off:8.3f}  target >= {TARGET_RATIO}: "
          f"{'HOLDS' if on / off >= TARGET_RATIO else 'FAILS'}")  # fmt: skip
    print(f"  load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return on / off


def part_verify(args: argparse.Namespace) -> None:
    with private_database("bench_verify") as url:
        engine = make_engine(url)
        try:
            started = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO consent_events (occurred_at, phone, event, keyword, "
                        "message_body, message_sid, source, program, disclosure) "
                        "SELECT now() - make_interval(secs => :n - g), "
                        "'+1' || (2022000000 + g)::text, 'opt_in', 'JOIN', 'JOIN', "
                        "'SM' || md5(g::text), 'sms', 'Rights Alerts', "
                        "'Rights Alerts: Thanks for joining! Up to 4 msgs/mo. Msg & data rates "
                        "may apply. Reply HELP for help, STOP to cancel.' "
                        "FROM generate_series(1, :n) AS g"
                    ),
                    {"n": args.events},
                )
            print(f"\n{args.events:,} consent events written in "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip
            started = time.perf_counter()
            sealed = seal_all(engine, limit=10_000)
            seal_s = time.perf_counter() - started
            started = time.perf_counter()
            with engine.connect() as conn:
                rows = 0
                result = conn.execution_options(stream_results=True, yield_per=2000).execute(
                    select(ConsentSeal.__table__, ConsentEvent.__table__).join(
                        ConsentEvent.__table__,
                        ConsentEvent.__table__.c.id == ConsentSeal.__table__.c.event_id,
                    )
                )
                for partition in result.partitions():
                    rows += len(partition)
            read_s = time.perf_counter() - started
            started = time.perf_counter()
            verdict = verify(engine)
            verify_s = time.perf_counter() - started
            with engine.connect() as conn:
                count = conn.execute(select(func.count()).select_from(ConsentSeal)).scalar_one()
        finally:
            engine.dispose()
    assert verdict.ok and count == sealed == rows == args.events, (verdict, count, sealed, rows)
    print(f"  seal    {seal_s:7.1f} s  {sealed / seal_s:10,.0f} events/s")
    print(
        f"  read    {read_s:7.1f} s  {rows / read_s:10,.0f} rows/s   (baseline: one streamed read)"
    )
    print(f"  verify  {verify_s:7.1f} s  {args.events / verify_s:10,.0f} events/s   "
          f"{verify_s / read_s:.2f}x the read")  # fmt: skip
    print(f"  {verdict}")


def main(argv: list[str] | None = None) -> int:
    """Run both parts; 0 when the chain costs inbound at most 10%."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--seal-seconds", type=float, default=1.0)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    logging.basicConfig(level=logging.WARNING)  # no line per request or migration
    print("inbound with the consent chain off and on (Procfile web, PostgreSQL, wrk):")
    ratio = part_inbound(args)
    if not args.skip_verify:
        part_verify(args)
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
