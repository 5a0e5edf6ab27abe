"""Signatures per second the petition page takes during an e-mail blast.

    python bench/petition_rate.py [--signatures 4000] [--users 8] [--workers 2]
                                  [--redis-url redis://127.0.0.1:6379/9]

Runs the Procfile's ``web`` command (gunicorn, ``WEB_CONCURRENCY`` workers) on a private
PostgreSQL database with a demo petition, rate limits and the RQ queue in an empty Redis
db. ``--users`` browsers each load the page once (session cookie and CSRF token, as a
person would), then post the form again and again, a new signer each time, half of them
with a mobile number and the SMS box ticked. No RQ worker runs: the confirmation texts
must be *queued* (a pending outbound message and an RQ job each), not sent in the request.

Baseline, same run and same gunicorn settings: a bare Flask app whose form handler reads
the same fields and redirects (``bench/petition_baseline.py``). The ratio says how much of
the bare handler's rate the real signing keeps. Exit 1 if the target is missed: at least
300 signatures/s with p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
from sqlalchemy import text

try:  # bench/ is not a package: run as a script
    from _common import (
        cpu_seconds,
        exit_on_sigterm,
        free_port,
        machine_cpu_seconds,
        private_database,
        private_redis_db,
        spawn,
        tree_cpu_seconds,
    )
except ImportError:  # pragma: no cover
    from bench._common import (
        cpu_seconds,
        exit_on_sigterm,
        free_port,
        machine_cpu_seconds,
        private_database,
        private_redis_db,
        spawn,
        tree_cpu_seconds,
    )

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATE = 300.0
TARGET_P99_MS = 100.0
KEYWORD = "HK64"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def procfile_web() -> str:
    """The Procfile's ``web`` command, exactly as a platform would run it."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit("Procfile has no web process")


def wait_until_up(url: str, process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"{url}: the server exited with {process.returncode}") from None
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def start_web(stack, command: str, env: dict[str, str], port: int, cwd: Path) -> int:
    """Start the web process; its pid (gunicorn's arbiter, the workers its children)."""
    process = spawn(
        stack, ["bash", "-c", f"exec {command}"], cwd=cwd,
        env={**env, "PORT": str(port)}, stdout=open(os.devnull, "w"),
    )  # fmt: skip
    wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
    return process.pid


async def _user(base: str, ids: asyncio.Queue, latencies: list[float], statuses: dict) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # 127.0.0.1 is an IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(f"{base}/p/{KEYWORD}") as page:
            match = _CSRF.search(await page.text())
        token = match.group(1) if match else ""
        while True:
            try:
                n = ids.get_nowait()
            except asyncio.QueueEmpty:
                return
            form = {"csrf_token": token, "name": f"Signer {n}", "email": f"signer{n}@example.org"}
            if n % 2 == 0:  # half give a number and tick the box
                form |= {"phone": f"+1202{3000000 + n:07d}", "sms_consent": "on"}
            started = time.perf_counter()
            async with session.post(
                f"{base}/p/{KEYWORD}", data=form, allow_redirects=False
            ) as reply:
                await reply.read()
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[reply.status] = statuses.get(reply.status, 0) + 1


async def _drive(
    base: str, count: int, users: int, first: int = 0
) -> tuple[float, list[float], dict]:
    ids: asyncio.Queue = asyncio.Queue()
    for n in range(first, first + count):
        ids.put_nowait(n)
    latencies: list[float] = []
    statuses: dict = {}
    started = time.perf_counter()
    await asyncio.gather(*(_user(base, ids, latencies, statuses) for _ in range(users)))
    return time.perf_counter() - started, latencies, statuses


def measure(base: str, count: int, users: int, warmup: int, web_pid: int) -> dict:
    """Post ``count`` signatures with ``users`` browsers (after ``warmup`` unmeasured); the
    CPU of the timed part: the web process's (its workers'), the browsers' (this process),
    and the rest of the machine's (PostgreSQL, Redis, and whatever else ran)."""
    if warmup:
        asyncio.run(_drive(base, warmup, users))
    before = tree_cpu_seconds(web_pid), cpu_seconds(os.getpid()), machine_cpu_seconds()
    elapsed, latencies, statuses = asyncio.run(_drive(base, count, users, first=warmup))
    web, browsers, machine = (
        after - start
        for after, start in zip(
            (tree_cpu_seconds(web_pid), cpu_seconds(os.getpid()), machine_cpu_seconds()),
            before,
            strict=True,
        )
    )
    latencies.sort()
    return {
        "rate": count / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "statuses": statuses,
        "web_ms": 1000 * web / count,
        "browsers_ms": 1000 * browsers / count,
        "rest_ms": 1000 * (machine - web - browsers) / count,
        "busy": machine / elapsed / (os.cpu_count() or 1),
    }


def cpu_line(figures: dict) -> str:
    return (
        f"CPU per form: web {figures['web_ms']:.2f} ms, browsers {figures['browsers_ms']:.2f},"
        f" rest of the machine {figures['rest_ms']:.2f}; cores {figures['busy']:.0%} busy"
    )


def check_queued(database_url: str, redis_conn, expected: int) -> tuple[int, int, int]:
    """Signatures stored, pending confirmation texts, and RQ jobs waiting."""
    from sms_service.db import make_engine

    engine = make_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM signatures")).scalar_one()
        pending = conn.execute(
            text("SELECT count(*) FROM outbound_messages WHERE status = 'pending'")
        ).scalar_one()
    engine.dispose()
    jobs = redis_conn.llen("rq:queue:default")
    return stored, pending, jobs


def main() -> int:
    """Run the baseline and the service, print the figures; 1 if the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signatures", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--users", type=int, default=8, help="concurrent browsers")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    args = parser.parse_args()
    exit_on_sigterm()
    loads = [" ".join(f"{v:.2f}" for v in os.getloadavg())]
    env = {
        **os.environ, "WEB_CONCURRENCY": str(args.workers), "APP_ENV": "development",
        "REDIS_URL": args.redis_url, "RATELIMIT_STORAGE_URL": args.redis_url,
        # One machine plays every browser: lift the per-address limit, keep it counted.
        "PETITION_RATE_LIMIT_IP": "1000000 per minute",
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }  # fmt: skip
    # The baseline runs from bench/ (to import petition_baseline): the Procfile's relative
    # gunicorn.conf.py is pointed at the checkout's.
    command = procfile_web().replace("-c gunicorn.conf.py", f"-c {ROOT / 'gunicorn.conf.py'}")
    with contextlib.ExitStack() as stack:
        redis_conn = stack.enter_context(private_redis_db(args.redis_url))
        port = free_port()
        baseline_cmd = command.replace("sms_service.web.wsgi:app", "petition_baseline:app")
        pid = start_web(stack, baseline_cmd, env, port, ROOT / "bench")
        base = measure(f"http://127.0.0.1:{port}", args.signatures, args.users, args.warmup, pid)
        stack.close()

    with contextlib.ExitStack() as stack:
        redis_conn = stack.enter_context(private_redis_db(args.redis_url))
        database_url = stack.enter_context(private_database("bench_petition"))
        from sms_service.db import make_engine, session_scope
        from sms_service.services.campaigns import create_campaign

        engine = make_engine(database_url)
        with session_scope(engine) as session:
            create_campaign(session=session, keyword=KEYWORD, title="Release the 64", text="…")
        engine.dispose()
        port = free_port()
        pid = start_web(stack, command, env | {"DATABASE_URL": database_url}, port, ROOT)
        real = measure(f"http://127.0.0.1:{port}", args.signatures, args.users, args.warmup, pid)
        stored, pending, jobs = check_queued(database_url, redis_conn, args.signatures)

    total = args.signatures + args.warmup
    with_number = sum(1 for n in range(total) if n % 2 == 0)
    print(f"petition_rate: {args.signatures} signatures, {args.users} browsers, "
          f"gunicorn x{args.workers} (Procfile web), PostgreSQL, Redis, "
          f"{os.cpu_count()} cores; load average {loads[0]} at the start, "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} at the end")  # fmt: skip
    print(f"  baseline (bare Flask form)  {base['rate']:7.0f}/s  p50 {base['p50']:5.1f} ms  "
          f"p99 {base['p99']:5.1f} ms  {base['statuses']}")  # fmt: skip
    print(f"    {cpu_line(base)}")
    print(f"  petition page               {real['rate']:7.0f}/s  p50 {real['p50']:5.1f} ms  "
          f"p99 {real['p99']:5.1f} ms  {real['statuses']}")  # fmt: skip
    print(f"    {cpu_line(real)}")
    print(f"  ratio to baseline           {real['rate'] / base['rate']:.2f}")
    print(f"  stored {stored}/{total} signatures; confirmation texts queued, none sent: "
          f"{pending} pending messages, {jobs} RQ jobs (expected {with_number})")  # fmt: skip
    ok = (
        real["rate"] >= TARGET_RATE and real["p99"] < TARGET_P99_MS
        and real["statuses"] == {303: args.signatures}
        and stored == total and pending == jobs == with_number
    )  # fmt: skip
    print(f"  target ≥ {TARGET_RATE:.0f}/s and p99 < {TARGET_P99_MS:.0f} ms: "
          f"{'met' if ok else 'MISSED'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
