"""Inbound texts per second through the Procfile's web process, against a bare Flask route.

    python bench/inbound_rate.py [--seconds 15] [--connections 32] [--texts 200000]
                                 [--subscribers 100000] [--wrk-threads 1]

What runs, all on loopback:

* the ``web:`` line of the Procfile, as written (gunicorn, its settings, ``gunicorn.conf.py``
  when there is one), on a private PostgreSQL database seeded with ``--subscribers``
  subscribed numbers and one active petition, ``APP_ENV=production`` with real-looking
  secrets and ``PUBLIC_BASE_URL``; its access log goes to a file;
* wrk (installed with apt-get when missing) with ``bench/inbound.lua``: ``--connections``
  connections for ``--seconds``, every request a different text signed in advance with
  Twilio's ``RequestValidator``: 70% JOIN from new numbers, 10% each HELP, STOP and other
  wording from subscribed numbers, shuffled;
* the baseline: ``bench/inbound_baseline.py``, a bare Flask route that reads the same form
  and answers a fixed TwiML reply, served by the same Procfile line (only the app swapped),
  measured in the same run with the same wrk settings.

Each server gets a 2 s warm-up (texts of its own) before the timed run. Afterwards the
database must hold one inbound message for every text answered 200 (none lost), and no
more than were sent. Prints texts/s, p50/p99 latency, errors and the ratio to the baseline;
exits 1 when below 1,000 texts/s, p99 at or over 50 ms, any error, or a ratio under 0.3.
Everything started is stopped and the database dropped afterwards, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import text
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from sms_service.carrier.twiml import inbound_form
from sms_service.db import make_engine

try:  # bench/ is not a package: run as a script, or imported by path
    from _common import (
        cpu_seconds,
        exit_on_sigterm,
        free_port,
        machine_cpu_seconds,
        machine_ticks,
        private_database,
        seed_subscribers,
        spawn,
        steal_share,
        tree_cpu_seconds,
    )
except ImportError:  # pragma: no cover
    from bench._common import (
        cpu_seconds,
        exit_on_sigterm,
        free_port,
        machine_cpu_seconds,
        machine_ticks,
        private_database,
        seed_subscribers,
        spawn,
        steal_share,
        tree_cpu_seconds,
    )

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
TARGET_RATE = 1000
TARGET_P99_MS = 50
TARGET_RATIO = 0.3

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "9f" * 16
PUBLIC_BASE_URL = "https://sms.bench.example"
OTHER = [
    "Is the rally still on for Saturday?",
    "thanks!",
    "What time does it start",
    "Where do I sign up to volunteer",
]


def procfile_web() -> str:
    """The ``web:`` command of the Procfile."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            # Bound to loopback instead of every address.
            return line.split(":", 1)[1].strip().replace("0.0.0.0:", "127.0.0.1:")
    raise SystemExit("the Procfile has no web: line")


def ensure_wrk() -> str:
    """The wrk binary, installed with apt-get when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: apt-get install -y wrk …", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("could not install wrk")
    return found


def write_texts(path: Path, count: int, *, first_new: int, subscribers: int, seed: int) -> None:
    """``count`` signed texts, one ``signature<TAB>form`` line each, in random order."""
    rng = random.Random(seed)
    validator = RequestValidator(AUTH_TOKEN)
    url = PUBLIC_BASE_URL + "/sms/inbound"
    existing = rng.sample(range(subscribers), min(subscribers, count))
    lines = []
    for i in range(count):
        kind = rng.random()
        if kind < 0.7:
            sender, body = f"+1{2026000000 + first_new + i}", rng.choice(["JOIN", "join", "Join"])
        else:
            sender = f"+1{2022000000 + existing[i % len(existing)]}"
            body = "HELP" if kind < 0.8 else "STOP" if kind < 0.9 else rng.choice(OTHER)
        sid = f"SM{seed:04x}{i:028x}"
        form = inbound_form(sid=sid, account_sid=ACCOUNT_SID, from_=sender, to="21333", body=body)
        lines.append(f"{validator.compute_signature(url, form)}\t{urlencode(form)}\n")
    path.write_text("".join(lines))


def server_env(database_url: str, port: int) -> dict[str, str]:
    """The environment the web process runs with: production, as deployed."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PORT": str(port),
        "APP_ENV": "production",
        "DATABASE_URL": database_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "SECRET_KEY": "b3nch-" + "k" * 58,
        "PROGRAM_TERMS_URL": "https://rights.example/sms-terms",
    }


def start_server(
    stack: contextlib.ExitStack, command: str, env: dict[str, str], log: Path
) -> subprocess.Popen:
    """Run ``command`` (a Procfile line) with bash, as a Procfile runner does; wait for it."""
    handle = stack.enter_context(open(log, "wb"))
    process = spawn(stack, ["bash", "-c", f"exec {command}"], env=env, cwd=ROOT,
                    stdout=handle, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{env['PORT']}/healthz"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return process
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer within 60 s:\n{log.read_text()[-3000:]}")


def run_wrk(wrk: str, port: int, texts: Path, args: argparse.Namespace, seconds: float) -> dict:
    """One wrk run; its summary (requests, errors, latency percentiles in µs)."""
    command = [
        wrk, f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "15s",
        "-s", str(BENCH / "inbound.lua"), f"http://127.0.0.1:{port}",
        "--", str(texts), str(args.wrk_threads),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            result = json.loads(line.removeprefix("WRK_JSON "))
            result["errors"] = sum(
                result[k] for k in ("connect", "read", "write", "status", "timeout")
            )
            result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
            return result
    raise SystemExit(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")


def postgres_cpu_seconds(database: str) -> float:
    """CPU time of the PostgreSQL backends connected to ``database`` (their process titles
    name it)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().decode(errors="replace")
            if title.startswith("postgres:") and f" {database} " in title:
                total += cpu_seconds(int(pid), children=False)
    return total


def measure(
    name: str,
    wrk: str,
    server: subprocess.Popen,
    port: int,
    files: tuple[Path, Path],
    args,
    database_url: str | None = None,
) -> dict:
    """Warm up, then the timed run; prints and returns the timed summary. With
    ``database_url``, also counts the texts the timed run stored (``stored``). CPU per
    request of the web processes, of PostgreSQL's backends and of the whole machine."""
    warm, timed = files
    run_wrk(wrk, port, warm, args, 2)
    before = stored_texts(database_url) if database_url else 0
    database = make_url(database_url).database if database_url else None
    load_before = os.getloadavg()[0]
    ticks = machine_ticks()
    cpu = (tree_cpu_seconds(server.pid), postgres_cpu_seconds(database) if database else 0.0,
           machine_cpu_seconds())  # fmt: skip
    result = run_wrk(wrk, port, timed, args, args.seconds)
    after = (tree_cpu_seconds(server.pid), postgres_cpu_seconds(database) if database else 0.0,
             machine_cpu_seconds())  # fmt: skip
    result["steal"] = steal_share(ticks, machine_ticks())
    per = [1000 * (b - a) / max(result["requests"], 1) for a, b in zip(cpu, after, strict=True)]
    result["load"] = load_before
    result["cpu_ms"] = {"web": per[0], "postgres": per[1], "machine": per[2]}
    if database_url:
        result["stored"] = stored_texts(database_url) - before
    print(
        f"  {name:8} {result['rate']:8,.0f} texts/s  p50 {result['p50_us'] / 1000:6.1f} ms  "
        f"p99 {result['p99_us'] / 1000:6.1f} ms  max {result['max_us'] / 1000:7.1f} ms  "
        f"errors {result['errors']}  ({result['requests']:,} requests, load {load_before:.2f})\n"
        f"           CPU per request: web {per[0]:.2f} ms, PostgreSQL {per[1]:.2f} ms, "
        f"whole machine {per[2]:.2f} ms; steal {100 * result['steal']:.0f}% of the "
        f"machine's time (the host ran something else)",
        flush=True,
    )
    return result


def stored_texts(database_url: str, settle: float = 1.0) -> int:
    """Inbound messages in the database, once the count has stopped moving for ``settle``
    seconds (requests wrk gave up on at its end are still being handled)."""
    engine = make_engine(database_url)
    query = text("SELECT count(*) FROM inbound_messages")
    previous = -1
    with engine.connect() as conn:
        while True:
            count = conn.execute(query).scalar_one()
            conn.rollback()
            if count == previous:
                break
            previous = count
            time.sleep(settle)
    engine.dispose()
    return count


def main(argv: list[str] | None = None) -> int:
    """Prepare texts and database, measure baseline and service, check, print, judge."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--texts", type=int, default=200_000, help="pre-signed for the run")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--wrk-threads", type=int, default=1)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    wrk = ensure_wrk()
    command = procfile_web()
    baseline_command = command.replace("sms_service.web.wsgi:app", "inbound_baseline:app")
    if baseline_command == command:
        raise SystemExit("the Procfile's web line does not serve sms_service.web.wsgi:app")
    print(f"web: {command}")

    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        files = {}
        for name, count, offset in [("warm", 20_000, 0), ("timed", args.texts, 20_000)]:
            files[name] = work / f"{name}.txt"
            write_texts(files[name], count, first_new=offset, subscribers=args.subscribers,
                        seed=len(files))  # fmt: skip
        print(f"  {args.texts + 20_000:,} texts signed in {time.perf_counter() - started:.0f} s")
        url = stack.enter_context(private_database("bench_inbound"))
        seed_subscribers(url, args.subscribers)
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO campaigns (keyword, title, petition_text, active, created_at) "
                "VALUES ('HK64', 'Release the 64', '', true, now())"
            ))  # fmt: skip
        engine.dispose()

        port = free_port()
        env = server_env(url, port)
        base_env = {**env, "PYTHONPATH": f"{BENCH}:{env.get('PYTHONPATH', '')}"}
        with contextlib.ExitStack() as server:
            process = start_server(server, baseline_command, base_env, work / "baseline.log")
            # The baseline keeps nothing, so the same texts serve it first.
            baseline = measure(
                "baseline", wrk, process, port, (files["warm"], files["timed"]), args
            )
        with contextlib.ExitStack() as server:
            process = start_server(server, command, env, work / "service.log")
            service = measure(
                "service", wrk, process, port, (files["warm"], files["timed"]), args, url
            )
        stored = service["stored"]
        answered = service["requests"] - service["errors"]
        if service["wraps"]:
            print(f"  WARNING: {service['wraps']} wraps, some texts were sent twice: raise --texts")
        lost = answered > stored
        print(f"  stored {stored:,} texts for {answered:,} answered (the rest were in flight)")
        if lost:
            print(f"  LOST: {answered - stored} texts answered but not stored")

    ratio = service["rate"] / baseline["rate"]
    p99 = service["p99_us"] / 1000
    print(f"\nservice {service['rate']:,.0f} texts/s, p50 {service['p50_us'] / 1000:.1f} ms, "
          f"p99 {p99:.1f} ms, {service['errors']} errors")  # fmt: skip
    print(f"baseline {baseline['rate']:,.0f} req/s, p99 {baseline['p99_us'] / 1000:.1f} ms")
    print(f"ratio {ratio:.2f} (target ≥ {TARGET_RATIO})")
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    ok = (
        service["rate"] >= TARGET_RATE and p99 < TARGET_P99_MS and service["errors"] == 0
        and ratio >= TARGET_RATIO and not lost and not service["wraps"]
    )  # fmt: skip
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
