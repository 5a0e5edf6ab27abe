"""Every console page at national size (1M subscribers, 5M consent events), over HTTP.

    python bench/console_pages.py [--subscribers 1000000] [--events 5000000] [--days 60]
                                  [--repeat 5] [--redis-url URL]

1. Seeds a private PostgreSQL database, migrated to head, with set-based
   ``INSERT … SELECT generate_series`` statements (see ``SEED``): subscribers in 50 area
   codes, a tenth with a name; consent events spread over ``--days`` days; two campaigns
   with a fifth of subscribers signing; tags; 200 possible opt-outs awaiting review; three
   sent broadcasts with their deliveries and the carrier's report for every text sent:
   everyone (900k, ended three days ago), a tag (50k, ended two hours ago, so its
   reports and opt-outs are still coming) and a campaign's signers (100k, 23 hours ago),
   a draft (opened in the composer), and a broadcast to everyone halfway through sending
   (450k sent over the last ten minutes with their reports, 50 in flight; its page and the
   progress feed it polls are timed). The
   consent log is only ever INSERTed into, as the service does, so its append-only
   triggers stay on; no hash-chain seals are written (the worker's sealer would seal the
   events later, as it does after a bulk import).
2. Creates an admin with ``sms-service user create … --password-stdin``.
3. Starts the Procfile's ``web:`` line (gunicorn, its worker count) in production
   settings, bound to loopback, with Redis for the rate limits and the queues page: a db
   number leased the way test runs lease theirs (``tests/redis_db.py``), so a test run
   beside the benchmark never shares it, or ``--redis-url`` (refused unless empty).
4. Signs in over HTTP (GET /login for the CSRF token, POST email and password), then GETs
   every console page an admin can reach: each GET rule under ``/console`` from the app's
   URL map without arguments (a page added later is timed too), one subscriber, campaign
   and broadcast page, and searches by number, by name and the number look-up; and the
   composer's live estimate (a POST with JSON, as ``console.js`` sends it).
5. Times each page ``--repeat`` times after a first, cold request (shown apart: the
   dashboard computes and keeps finished days' counts on its first view) and prints median
   and max per page, the slowest page, and the ratio to the baseline measured the same way
   through the same gunicorn: ``/healthz`` (no table touched). Exits 1 when a page's
   median is over 500 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench._common import (  # noqa: E402
    BIN,
    exit_on_sigterm,
    free_port,
    private_database,
    private_redis_db,
    spawn,
)
from sms_service.db import make_engine  # noqa: E402

TARGET_MS = 500.0
DRAFT_ID = 4  # the seed's fourth broadcast is a draft
EMAIL = "bench-admin@example.org"
PASSWORD = "bench password 123 long enough"
# +1 (201..250) 200-0000 upwards: subscriber g has phone number(g).
PHONE = "'+1' || (201 + ({g} % 50)) || lpad((2000000 + {g})::text, 7, '0')"
SEED = [
    f"""INSERT INTO subscribers (phone, status, name, created_at, updated_at, opted_in_at,
                                 opted_out_at)
        SELECT {PHONE.format(g="g")},
               CASE WHEN g % 10 = 0 THEN 'opted_out' ELSE 'subscribed' END,
               CASE WHEN g % 10 = 3 THEN 'Name ' || g END,
               now() - (g % :days) * interval '1 day', now(),
               now() - (g % :days) * interval '1 day',
               CASE WHEN g % 10 = 0 THEN now() - (g % 30) * interval '1 day' END
        FROM generate_series(1, :subs) g""",
    "INSERT INTO campaigns (keyword, title, petition_text, active, sign_default, created_at) "
    "VALUES ('HK64', 'Release the 64', 'We ask…', true, true, now() - interval '400 days'), "
    "('CLIMATE', 'Climate now', 'We ask…', true, false, now() - interval '300 days')",
    # A fifth of subscribers signed one of the two campaigns, over the last year.
    """INSERT INTO signatures (campaign_id, subscriber_id, source, signed_at)
       SELECT 1 + (id % 2), id, 'sms', now() - (id % 365) * interval '1 day'
                                       - (id % 1440) * interval '1 minute'
       FROM subscribers WHERE id % 5 = 2""",
    "INSERT INTO subscriber_tags (subscriber_id, tag) SELECT id, 'volunteers' FROM subscribers "
    "WHERE id % 20 = 1",
    # Consent events on the subscribers' numbers, evenly over --days days.
    f"""INSERT INTO consent_events (occurred_at, phone, event, keyword, source, program,
                                    message_body)
        SELECT now() - (g % (:days * 1440)) * interval '1 minute',
               {PHONE.format(g="(1 + g % :subs)")},
               (ARRAY['opt_in','opt_in','signature','opt_out','help'])[1 + g % 5],
               (ARRAY['JOIN','JOIN','SIGN','STOP','HELP'])[1 + g % 5],
               'sms', 'Rights Alerts', (ARRAY['join','Join','SIGN','stop','help'])[1 + g % 5]
        FROM generate_series(1, :events) g""",
    # 200 possible opt-outs awaiting review.
    f"""INSERT INTO consent_events (occurred_at, phone, event, source, program, message_body,
                                    message_sid, review_by)
        SELECT now() - g * interval '1 hour', {PHONE.format(g="g")}, 'possible_opt_out',
               'sms', 'Rights Alerts', 'please stop this', 'SMbench' || g,
               current_date + 10 - g % 10
        FROM generate_series(1, 200) g""",
    # Three sent broadcasts: everyone subscribed, the volunteers tag, HK64's signers.
    """INSERT INTO broadcasts (body, audience_kind, audience_value, audience_campaign_id,
                               send_at, timezone, recurrence, status, segments, encoding,
                               created_at, updated_at)
       VALUES ('Rally Saturday 10am', 'all', NULL, NULL, now() - interval '3 days',
               'America/New_York', 'none', 'sent', 1, 'GSM-7', now(), now()),
              ('Volunteers: training tonight', 'tag', 'volunteers', NULL,
               now() - interval '3 hours', 'America/New_York', 'none', 'sent', 1, 'GSM-7',
               now(), now()),
              ('HK64 signers: thank you', 'campaign', 'HK64', 1, now() - interval '1 day',
               'America/New_York', 'none', 'sent', 1, 'GSM-7', now(), now())""",
    """INSERT INTO broadcast_runs (broadcast_id, occurrence_at, status, planned, created_at,
                                   started_at, finished_at)
       SELECT id, send_at, 'sent', 0, send_at, send_at, send_at + interval '1 hour'
       FROM broadcasts""",
    """INSERT INTO broadcast_deliveries (run_id, subscriber_id, status, attempts, sid, segments,
                                         sent_at, updated_at)
       SELECT 1, id, 'sent', 1, 'SMa' || id, 1, now() - interval '3 days', now()
       FROM subscribers WHERE status = 'subscribed'""",
    """INSERT INTO broadcast_deliveries (run_id, subscriber_id, status, reason, attempts, sid,
                                         segments, sent_at, updated_at)
       SELECT 2, t.subscriber_id,
              CASE WHEN s.status = 'subscribed' THEN 'sent' ELSE 'skipped' END,
              CASE WHEN s.status = 'subscribed' THEN NULL ELSE 'opted_out' END,
              1, CASE WHEN s.status = 'subscribed' THEN 'SMt' || s.id END, 1,
              CASE WHEN s.status = 'subscribed' THEN now() - interval '3 hours' END, now()
       FROM subscriber_tags t JOIN subscribers s ON s.id = t.subscriber_id""",
    """INSERT INTO broadcast_deliveries (run_id, subscriber_id, status, attempts, sid, segments,
                                         sent_at, updated_at)
       SELECT 3, g.subscriber_id, 'sent', 1, 'SMc' || g.subscriber_id, 1,
              now() - interval '1 day', now()
       FROM signatures g JOIN subscribers s ON s.id = g.subscriber_id
       WHERE g.campaign_id = 1 AND s.status = 'subscribed'""",
    """UPDATE broadcast_runs r SET planned = (SELECT count(*) FROM broadcast_deliveries d
                                              WHERE d.run_id = r.id)""",
    # A draft to open in the composer (``/console/broadcasts/4/edit``).
    """INSERT INTO broadcasts (body, audience_kind, audience_value, audience_campaign_id,
                               send_at, timezone, recurrence, status, segments, encoding,
                               created_at, updated_at)
       VALUES ('Rally next week (draft)', 'tag', 'volunteers', NULL, now() + interval '7 days',
               'America/New_York', 'none', 'draft', 1, 'GSM-7', now(), now())""",
    # A broadcast to everyone halfway through sending: the even ids sent over the last ten
    # minutes (reports below), a batch of about 50 in flight, the rest pending.
    """INSERT INTO broadcasts (body, audience_kind, audience_value, audience_campaign_id,
                               send_at, timezone, recurrence, status, segments, encoding,
                               created_at, updated_at)
       VALUES ('Call your senator now', 'all', NULL, NULL, now() - interval '10 minutes',
               'America/New_York', 'none', 'sending', 1, 'GSM-7', now(), now())""",
    """INSERT INTO broadcast_runs (broadcast_id, occurrence_at, status, planned, created_at,
                                   started_at)
       SELECT id, send_at, 'sending', 0, send_at, send_at FROM broadcasts WHERE id = 5""",
    """INSERT INTO broadcast_deliveries (run_id, subscriber_id, status, attempts, attempt_id,
                                         attempt_started_at, sid, segments, sent_at,
                                         updated_at)
       SELECT (SELECT id FROM broadcast_runs WHERE broadcast_id = 5), id,
              CASE WHEN id % 2 = 0 THEN 'sent' WHEN id < 100 THEN 'sending' ELSE 'pending' END,
              CASE WHEN id % 2 = 0 OR id < 100 THEN 1 ELSE 0 END,
              CASE WHEN id % 2 = 0 OR id < 100 THEN 'bench' END,
              CASE WHEN id % 2 = 0 THEN now() - (id % 600) * interval '1 second'
                   WHEN id < 100 THEN now() - interval '3 seconds' END,
              CASE WHEN id % 2 = 0 THEN 'SMs' || id END,
              CASE WHEN id % 2 = 0 THEN 1 END,
              CASE WHEN id % 2 = 0 THEN now() - (id % 600) * interval '1 second' END, now()
       FROM subscribers WHERE status = 'subscribed'""",
    """UPDATE broadcast_runs r SET planned = (SELECT count(*) FROM broadcast_deliveries d
                                              WHERE d.run_id = r.id) WHERE broadcast_id = 5""",
    # The carrier's reports: one per text, 2% undelivered.
    """INSERT INTO message_status_events (sid, status, occurred_at)
       SELECT sid, CASE WHEN subscriber_id % 50 = 0 THEN 'undelivered' ELSE 'delivered' END,
              sent_at + interval '5 seconds'
       FROM broadcast_deliveries WHERE sid IS NOT NULL""",
]


def seed(url: str, args: argparse.Namespace) -> float:
    """Fill the database (one transaction, then VACUUM ANALYZE); seconds taken."""
    started = time.perf_counter()
    engine = make_engine(url)
    values = {"subs": args.subscribers, "events": args.events, "days": args.days}
    with engine.begin() as conn:
        for statement in SEED:
            conn.execute(text(statement), values)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def procfile_web() -> str:
    """The ``web:`` command of the Procfile, bound to loopback instead of every address."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip().replace("0.0.0.0:", "127.0.0.1:")
    raise SystemExit("the Procfile has no web: line")


def server_env(database_url: str, redis_url: str, port: int) -> dict[str, str]:
    """Production settings, as deployed (secrets are bench values, not placeholders)."""
    return {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "PORT": str(port),
        "APP_ENV": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": "AC" + "b" * 32,
        "TWILIO_AUTH_TOKEN": "t" * 32,
        "PUBLIC_BASE_URL": "https://sms.bench.example",
        "SECRET_KEY": "b3nch-" + "k" * 58,
        "PROGRAM_TERMS_URL": "https://rights.example/sms-terms",
    }


class Browser:
    """A signed-in staff member: one HTTP connection per request, cookies kept by hand
    (production cookies are Secure, which a cookie jar would not send over loopback
    HTTP; the server does not care how the client stores them)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(
        self, method: str, path: str, body: dict | None = None, json_body: str | None = None
    ) -> tuple[int, str]:
        """Status and body text of one request (a form ``body``, or JSON with the page's
        CSRF token in ``X-CSRFToken``, as console.js sends it)."""
        headers = {"Host": "sms.bench.example", "X-Forwarded-Proto": "https"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if json_body is not None:
            data = json_body
            headers["Content-Type"] = "application/json"
            headers["X-CSRFToken"] = self.csrf
            headers["Referer"] = "https://sms.bench.example/console/broadcasts/new"
        if body is not None:
            data = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = "https://sms.bench.example" + path  # CSRF checks it on HTTPS
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            text_ = response.read().decode("utf-8", "replace")
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name.strip()] = rest.split(";", 1)[0]
            return response.status, text_
        finally:
            conn.close()

    def sign_in(self, email: str, password: str) -> None:
        """GET /login for the CSRF token, POST the form; SystemExit unless it worked."""
        status, page = self.request("GET", "/login")
        found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
            r'name="csrf-token" content="([^"]+)"', page
        )
        if status != 200 or not found:
            raise SystemExit(f"GET /login answered {status} without a CSRF token")
        form = {"email": email, "password": password, "csrf_token": found.group(1)}
        status, page = self.request("POST", "/login", form)
        if status not in (302, 303):
            raise SystemExit(f"POST /login answered {status}: {page[:300]}")
        status, page = self.request("GET", "/console/users")  # not the dashboard: its first
        if status != 200:  # view is timed with the others
            raise SystemExit(f"signed in, but /console/users answered {status}")
        self.csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def console_pages() -> list[str]:
    """Every GET URL under /console an admin can open, read from the app's URL map."""
    from sms_service import create_app

    app = create_app()
    ids = {"broadcast_id": 1, "campaign_id": 1, "subscriber_id": 1003}
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/console") or "GET" not in rule.methods:
            continue
        if rule.rule.endswith((".csv", ".json", ".zip")) or "/static" in rule.rule:
            continue  # downloads and the progress feed, not pages
        if rule.arguments - set(ids):
            continue
        values = {k: ids[k] for k in rule.arguments}
        if rule.rule.endswith("/edit"):
            values["broadcast_id"] = DRAFT_ID  # only a draft opens in the composer
        urls.append(rule.build(values)[1])
    urls += [
        "/console/subscribers/?q=%2B12042001003",
        "/console/subscribers/?q=(204)%20200-1003",
        "/console/subscribers/?q=name%20100",
        "/console/subscribers/?q=zz",
        "/console/lookup?number=%2B12042001003",
        "/console/broadcasts/2",
        "/console/broadcasts/3",
        "/console/broadcasts/5",
        "/console/broadcasts/5/progress.json",
    ]
    return sorted(set(urls))


# A search must find the subscriber it looks for, or a fast page would prove nothing.
EXPECT = {"?q=%2B1204": "/console/subscribers/1003", "?q=(204)": "/console/subscribers/1003",
          "?q=name%20100": "Name 100", "lookup?number": "+12042001003"}  # fmt: skip


# The composer's live part: it POSTs the text and audience as the organiser types, and
# shows the audience size and forecast (frequency cap, quiet hours, cost) it answers.
ESTIMATES = {
    "POST /console/broadcasts/estimate all": {"body": "Rally Saturday", "audience": "all"},
    "POST /console/broadcasts/estimate tag": {"body": "Hi", "audience": "tag", "tag": "volunteers"},
}  # fmt: skip


def time_estimate(browser: Browser, label: str, repeat: int) -> list[float]:
    """Milliseconds of ``1 + repeat`` composer estimates; each must answer 200."""
    samples = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        status, body = browser.request(
            "POST", "/console/broadcasts/estimate", json_body=json.dumps(ESTIMATES[label])
        )
        samples.append((time.perf_counter() - started) * 1000)
        if status != 200 or '"audience"' not in body:
            raise SystemExit(f"{label} answered {status}: {body[:200]}")
    return samples


def time_page(browser: Browser, path: str, repeat: int) -> list[float]:
    """Milliseconds of ``1 + repeat`` GETs of ``path`` (the first, cold one, first); each
    must answer 200."""
    samples = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        status, body = browser.request("GET", path)
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}")
        wanted = next((v for k, v in EXPECT.items() if k in path), None)
        if wanted and wanted not in body:
            raise SystemExit(f"GET {path} did not show {wanted}")
        samples.append(elapsed)
    return samples


def main() -> int:
    """Seed, start gunicorn, sign in, time every page; 1 when a page misses the target."""
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--days", type=int, default=60, help="consent events span these days")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--redis-url", help="an empty Redis db (default: lease one)")
    args = parser.parse_args()

    load = os.getloadavg()
    with contextlib.ExitStack() as stack:
        if not args.redis_url:
            from tests import redis_db

            redis_db.lease()
            stack.callback(redis_db.release)
            args.redis_url = redis_db.redis_url()
        stack.enter_context(private_redis_db(args.redis_url))
        url = stack.enter_context(private_database("bench_console"))
        seconds = seed(url, args)
        print(f"seeded {args.subscribers:,} subscribers, {args.events:,} consent events over "
              f"{args.days} days in {seconds:.0f} s", flush=True)  # fmt: skip
        port = free_port()
        env = server_env(url, args.redis_url, port)
        subprocess.run([str(BIN / "sms-service"), "user", "create", EMAIL, "--role", "admin",
                        "--password-stdin"], input=PASSWORD + "\n", text=True, env=env,
                       check=True, capture_output=True)  # fmt: skip
        os.environ.update(env)  # for the URL map read from create_app()
        log = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "web.log"
        handle = stack.enter_context(open(log, "wb"))
        server = spawn(stack, ["bash", "-c", f"exec {procfile_web()}"], env=env, cwd=ROOT,
                       stdout=handle, stderr=subprocess.STDOUT)  # fmt: skip
        browser = Browser(port)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                if browser.request("GET", "/healthz")[0] == 200:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the web process did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        browser.sign_in(EMAIL, PASSWORD)
        baseline = statistics.median(time_page(browser, "/healthz", args.repeat * 4)[1:])
        results = []
        for page in console_pages():
            first, *samples = time_page(browser, page, args.repeat)
            results.append((statistics.median(samples), max(samples), first, page))
            print(f"  {page}: {results[-1][0]:.1f} ms", flush=True)
        for label in ESTIMATES:
            first, *samples = time_estimate(browser, label, args.repeat)
            results.append((statistics.median(samples), max(samples), first, label))
            print(f"  {label}: {results[-1][0]:.1f} ms", flush=True)
    load_after = os.getloadavg()
    print(f"\nload average before {load[0]:.1f}, after {load_after[0]:.1f} (2 cores)")
    print(f"baseline /healthz through the same gunicorn: {baseline:.1f} ms (median)\n")
    print(f"{'page':<52} {'median ms':>10} {'max ms':>8} {'first ms':>9} {'x base':>7}")
    for median, worst, first, page in sorted(results, reverse=True):
        flag = "  OVER" if median > TARGET_MS else ""
        print(f"{page:<52} {median:10.1f} {worst:8.1f} {first:9.1f} {median / baseline:7.1f}"
              f"{flag}")  # fmt: skip
    slowest_ms, _, _, slowest = max(results)
    print(f"\nslowest: {slowest} {slowest_ms:.1f} ms median "
          f"({slowest_ms / baseline:.1f}x baseline; target < {TARGET_MS:.0f} ms)")  # fmt: skip
    return 1 if slowest_ms > TARGET_MS else 0


if __name__ == "__main__":
    raise SystemExit(main())
