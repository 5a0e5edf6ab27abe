"""Every console page at national size: 1M subscribers, 5M consent events on PostgreSQL.

    python bench/console_pages.py [--subscribers 1000000] [--events 5000000] [--repeat 5]

Seeds a private PostgreSQL database with set-based ``INSERT … SELECT generate_series``
(subscribers in ~50 area codes, opt-in/out and signature events over 60 days, two
campaigns with signers, tags, a possible-opt-out queue, a sent broadcast run), signs in as
an admin through ``/login`` and requests every GET page under ``/console`` (read from the
URL map, so a new page is timed too) ``--repeat`` times in the app (Flask's test client:
the whole request, database included, without a network hop). Prints each page's median,
the slowest page, and the ratio to the baseline of the same run: ``/healthz``, a request
that touches no table. Exits 1 when a page's median is over 500 ms.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

from bench._common import PG_ADMIN_URL, exit_on_sigterm  # noqa: E402
from sms_service.db import make_engine  # noqa: E402
from sms_service.db.migrate import private_database  # noqa: E402

TARGET_MS = 500.0
PASSWORD = "bench password 123"
SEED = [
    # Subscribers: +1 and one of 50 area codes, 90% subscribed, names for a tenth.
    """INSERT INTO subscribers (phone, status, name, created_at, updated_at, opted_in_at)
       SELECT '+1' || (201 + (g % 50)) || lpad((2000000 + g)::text, 7, '0'),
              CASE WHEN g % 10 = 0 THEN 'opted_out' ELSE 'subscribed' END,
              CASE WHEN g % 10 = 3 THEN 'Name ' || g END,
              now() - (g % 60) * interval '1 day', now(), now() - (g % 60) * interval '1 day'
       FROM generate_series(1, :subs) g""",
    "INSERT INTO campaigns (keyword, title, petition_text, active, sign_default, created_at) "
    "VALUES ('HK64', 'Release the 64', '', true, true, now()), "
    "('CLIMATE', 'Climate now', '', true, false, now())",
    # A fifth of subscribers signed one of the campaigns.
    """INSERT INTO signatures (campaign_id, subscriber_id, source, signed_at)
       SELECT 1 + (id % 2), id, 'sms', now() - (id % 60) * interval '1 day'
       FROM subscribers WHERE id % 5 = 0""",
    "INSERT INTO subscriber_tags (subscriber_id, tag) SELECT id, 'volunteers' FROM subscribers "
    "WHERE id % 20 = 0",
    # Consent events: opt-ins, opt-outs, signatures, help, over 60 days.
    """INSERT INTO consent_events (occurred_at, phone, event, source, program, message_body)
       SELECT now() - ((g % 86400) * interval '1 minute'),
              '+1' || (201 + (g % 50)) || lpad((2000000 + (g % :subs))::text, 7, '0'),
              (ARRAY['opt_in','opt_in','signature','opt_out','help'])[1 + g % 5],
              'sms', 'Rights Alerts', 'JOIN'
       FROM generate_series(1, :events) g""",
    # A review queue of 200 possible opt-outs.
    """INSERT INTO consent_events (occurred_at, phone, event, source, program, message_body,
                                   message_sid, review_by)
       SELECT now(), '+1202' || lpad((2000000 + g)::text, 7, '0'), 'possible_opt_out', 'sms',
              'Rights Alerts', 'we have to stop this', 'SMbench' || g, current_date + 10
       FROM generate_series(1, 200) g""",
    # One broadcast sent to everyone subscribed.
    """INSERT INTO broadcasts (body, audience_kind, send_at, timezone, recurrence, status,
                               segments, encoding, created_at, updated_at)
       VALUES ('Bench broadcast', 'all', now() - interval '1 day', 'America/New_York', 'none',
               'sent', 1, 'GSM-7', now(), now())""",
    """INSERT INTO broadcast_runs (broadcast_id, occurrence_at, status, planned, created_at)
       SELECT 1, now() - interval '1 day', 'sent', count(*), now() FROM subscribers
       WHERE status = 'subscribed'""",
    """INSERT INTO broadcast_deliveries (run_id, subscriber_id, status, attempts, sid, segments,
                                         sent_at, updated_at)
       SELECT 1, id, 'sent', 1, 'SMb' || id, 1, now() - interval '1 day', now()
       FROM subscribers WHERE status = 'subscribed'""",
    "ANALYZE",
]


def seed(url: str, subscribers: int, events: int) -> float:
    """Fill the database; seconds taken."""
    started = time.perf_counter()
    engine = make_engine(url)
    with engine.begin() as conn:
        for statement in SEED:
            conn.execute(text(statement), {"subs": subscribers, "events": events})
    engine.dispose()
    return time.perf_counter() - started


def console_pages(app) -> list[str]:  # noqa: ANN001
    """Every GET URL under /console without arguments, plus one of each kind with an id."""
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/console") and "GET" in rule.methods:
            if rule.arguments:
                values = {"broadcast_id": 1, "campaign_id": 1, "subscriber_id": 5}
                if not set(rule.arguments) <= set(values):
                    continue
                urls.append(rule.build({k: values[k] for k in rule.arguments})[1])
            elif rule.rule.endswith(".csv"):
                continue
            else:
                urls.append(rule.rule)
    urls += [
        "/console/subscribers/?q=%2B12012000005",
        "/console/subscribers/?q=name%2012",
        "/console/lookup?number=%2B12012000005",
    ]
    return sorted(set(urls))


def time_get(client, url: str, repeat: int) -> float:  # noqa: ANN001
    """Median milliseconds of ``repeat`` GETs of ``url`` (each must answer 200)."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
    return statistics.median(samples)


def main() -> int:
    """Seed, sign in, time every page; 1 when a page misses the target."""
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from config import Settings
    from sms_service import create_app
    from sms_service.db import session_scope
    from sms_service.services import staff

    with private_database(PG_ADMIN_URL, "bench_console") as url:
        seconds = seed(url, args.subscribers, args.events)
        print(f"seeded {args.subscribers:,} subscribers, {args.events:,} consent events "
              f"in {seconds:.0f} s")  # fmt: skip
        settings = Settings(database_url=url, ratelimit_storage_url="memory://",
                            app_env="development")  # fmt: skip
        app = create_app(settings)
        with session_scope(app.extensions["sms_engine"]) as session:
            staff.create_user(session=session, email="bench@example.org", role="admin",
                              password=PASSWORD)  # fmt: skip
        client = app.test_client()
        login = client.get("/login").text
        token = re.search(r'name="csrf-token" content="([^"]+)"', login).group(1)
        client.post("/login", data={"email": "bench@example.org", "password": PASSWORD,
                                    "csrf_token": token})  # fmt: skip
        baseline = time_get(client, "/healthz", args.repeat * 4)
        results = [(time_get(client, u, args.repeat), u) for u in console_pages(app)]
        app.extensions["sms_engine"].dispose()
    print(f"baseline /healthz: {baseline:.1f} ms (median)")
    for ms, page in sorted(results, reverse=True):
        flag = "  OVER" if ms > TARGET_MS else ""
        print(f"{ms:8.1f} ms  x{ms / baseline:7.1f}  {page}{flag}")
    slowest_ms, slowest = max(results)
    print(f"slowest: {slowest} {slowest_ms:.1f} ms (target < {TARGET_MS:.0f} ms)")
    return 1 if slowest_ms > TARGET_MS else 0


if __name__ == "__main__":
    raise SystemExit(main())
