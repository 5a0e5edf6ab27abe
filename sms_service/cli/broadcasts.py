"""``sms-service broadcast``: create, list, follow and cancel broadcasts; sweep; a worker.

Times are typed and shown in the organiser's zone (``--tz``, default ``DEFAULT_TIMEZONE``)
and stored in UTC. Creating a broadcast schedules it; when a Redis answers at
``REDIS_URL`` its start job is enqueued at once, otherwise the sweeper of the next worker
to start enqueues it (the database is the source of truth).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from sms_service.cli.context import current
from sms_service.db import session_scope
from sms_service.errors import BadRequest, NotFound
from sms_service.models import DeliveryStatus


@click.group("broadcast")
def broadcast() -> None:
    """Texts to an audience, now or on a schedule."""


def _redis(settings, *, quiet: bool = False):
    """A Redis client if one answers at REDIS_URL within a second, else None."""
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError:
        if not quiet:
            click.echo(f"note: no Redis answers at {settings.redis_url}", err=True)
        client.close()
        return None
    return client


@broadcast.command("create")
@click.option("--body", required=True, help="The text to send.")
@click.option(
    "--body-es", help="Its Spanish version, sent to subscribers whose language is Spanish."
)
@click.option("--audience", required=True, help="all | campaign:KEYWORD | tag:TAG | file:PATH")
@click.option("--at", "at_", help="First send, ISO date-time in --tz (default: now).")
@click.option("--now", "now_", is_flag=True, help="Send at once (the default without --at).")
@click.option("--every", type=click.Choice(["daily", "weekly", "monthly"]), help="Repeat.")
@click.option("--tz", help="The organiser's time zone (default: DEFAULT_TIMEZONE).")
@click.option("--gsm-safe", is_flag=True, help="Apply the GSM-7 replacements offered.")
def create(body, body_es, audience, at_, now_, every, tz, gsm_safe) -> None:
    """Create and schedule a broadcast; print its id and what it will cost."""
    from datetime import timedelta

    from sms_service import broadcasts as svc
    from sms_service.domain.audience import parse_audience, read_number_list
    from sms_service.domain.segments import make_gsm_safe
    from sms_service.models import utcnow

    if at_ and now_:
        raise click.UsageError("--at and --now contradict each other: give one")
    settings = current().settings
    tz = tz or settings.default_timezone
    try:
        spec = parse_audience(audience)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    numbers = None
    if spec.kind == "file":  # an unreadable file ends here with one line (cli.errors)
        numbers = read_number_list(Path(spec.value).read_text(encoding="utf-8"))
    try:
        body = make_gsm_safe(body) if gsm_safe else body
        if body_es is not None and gsm_safe:
            body_es = make_gsm_safe(body_es)
        send_at = svc.local_to_utc(at_, tz) if at_ else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    # A minute of grace for the time it took to type; older is a mistake, not "send now".
    if send_at is not None and send_at < utcnow() - timedelta(minutes=1):
        local = send_at.astimezone(ZoneInfo(tz))
        raise click.ClickException(
            f"{local:%Y-%m-%d %H:%M} {tz} is in the past: give a later --at, or --now to send "
            f"at once"
        )
    engine = current().engine
    try:
        with session_scope(engine) as session:
            created = svc.create_broadcast(
                session=session, body=body, body_es=body_es, audience=spec, timezone=tz,
                send_at=send_at,
                recurrence=every or "none", numbers=numbers,
            )  # fmt: skip
            recipients = svc.audience_size(session=session, broadcast=created)
            if not recipients:  # raising rolls the broadcast back: nothing is created
                raise BadRequest(f"audience {spec} has no subscribed recipients: nothing to send")
            run = svc.schedule_broadcast(session=session, broadcast_id=created.id)
            report = svc.list_report(session=session, broadcast_id=created.id)
    except (BadRequest, NotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    local = created.send_at.astimezone(ZoneInfo(tz))
    repeat = f", then {every}" if every else ""
    click.echo(f"broadcast {created.id} scheduled for {local:%Y-%m-%d %H:%M %Z}{repeat}")
    _echo_estimate(svc.estimate_body(body, recipients, settings.cost_per_segment))
    if body_es is not None:  # the Spanish speakers among the recipients get this one
        spanish = svc.estimate_body(body_es, recipients, settings.cost_per_segment)
        click.echo(f"Spanish version: {spanish.segments} {spanish.encoding} segment(s) each")
        if spanish.ucs2_warning:
            click.echo(f"warning (Spanish version): {spanish.ucs2_warning}", err=True)
    if numbers is not None:
        for line, raw, reason in report.invalid:
            click.echo(f"  line {line}: {raw!r} left out: {reason}", err=True)
        click.echo(
            f"list: {report.valid} numbers, {len(report.invalid)} invalid, "
            f"{numbers.duplicates} repeated, {report.not_subscribed} not subscribed"
        )
    client = _redis(settings)
    if client is not None:
        from rq import Queue

        from workers import QUEUE_BROADCASTS
        from workers.broadcast import enqueue_start

        enqueue_start(Queue(QUEUE_BROADCASTS, connection=client), run)
        client.close()
        click.echo(f"enqueued on {QUEUE_BROADCASTS}")
    else:
        click.echo("not enqueued: a worker's sweeper will pick it up when one starts")


def _echo_estimate(estimate) -> None:
    people = "recipient" if estimate.recipients == 1 else "recipients"
    plural = "s" if estimate.segments != 1 else ""
    click.echo(
        f"{estimate.recipients} {people} x {estimate.segments} {estimate.encoding} "
        f"segment{plural} ~ ${estimate.cost:.2f}"
    )
    if estimate.ucs2_warning:
        click.echo(f"warning: {estimate.ucs2_warning}", err=True)
        if estimate.gsm_safe_body:
            click.echo(f"GSM-safe text (use --gsm-safe): {estimate.gsm_safe_body}", err=True)


@broadcast.command("list")
@click.option("--limit", default=50, show_default=True)
def list_(limit: int) -> None:
    """Broadcasts, newest first, times in each one's zone."""
    from sms_service.broadcasts import list_broadcasts

    with session_scope(current().engine) as session:
        for b in list_broadcasts(session=session, limit=limit):
            when = b.send_at.astimezone(ZoneInfo(b.timezone))
            excerpt = b.body if len(b.body) <= 40 else b.body[:39] + "…"
            click.echo(
                f"{b.id}\t{b.status}\t{when:%Y-%m-%d %H:%M %Z}\t{b.recurrence}\t{b.audience}\t"
                f"{excerpt}"
            )


@broadcast.command("status")
@click.argument("broadcast_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable counts.")
@click.option("--watch", is_flag=True, help="Show a progress bar until sending is done.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between updates.")
def status(broadcast_id: int, as_json: bool, watch: bool, interval: float) -> None:
    """Deliveries per state for the broadcast's latest runs."""
    from sms_service.broadcasts import broadcast_progress

    engine = current().engine
    try:
        while True:
            with session_scope(engine) as session:
                progress = broadcast_progress(session=session, broadcast_id=broadcast_id)
            if not watch:
                break
            click.echo("\r" + _bar(progress), nl=False)
            if progress.done:
                click.echo()
                break
            time.sleep(interval)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(progress.as_dict(), indent=2))
    elif not watch:
        _echo_progress(progress)


def _bar(progress, width: int = 30) -> str:
    run = progress.current
    if run is None:
        return f"broadcast {progress.broadcast_id}: {progress.status}, not started"
    done = run.planned - run.open
    share = done / run.planned if run.planned else 1.0
    filled = int(share * width)
    counts = run.counts
    return (
        f"[{'#' * filled}{'-' * (width - filled)}] {share:4.0%} {done}/{run.planned} "
        f"sent {counts[DeliveryStatus.SENT]} skipped {counts[DeliveryStatus.SKIPPED]} "
        f"failed {counts[DeliveryStatus.FAILED]} deferred {counts[DeliveryStatus.DEFERRED]} "
        f"delivered {run.delivered}"
    )


def _echo_progress(progress) -> None:
    zone = ZoneInfo(progress.timezone)
    click.echo(
        f"broadcast {progress.broadcast_id}: {progress.status} ({progress.recurrence}, "
        f"{progress.audience}, {progress.segments} {progress.encoding} segment(s))"
    )
    if not progress.runs:
        click.echo("  no runs")
    for run in progress.runs:
        click.echo(
            f"  run {run.run_id} at {run.occurrence_at.astimezone(zone):%Y-%m-%d %H:%M %Z}: "
            f"{run.status}, {run.planned} planned"
        )
        for state in DeliveryStatus:
            detail = ""
            by_reason = run.skipped if state == DeliveryStatus.SKIPPED else run.failed
            if state in (DeliveryStatus.SKIPPED, DeliveryStatus.FAILED) and by_reason:
                detail = " (" + ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items())) + ")"
            if state == DeliveryStatus.DEFERRED and run.deferred_until:
                detail = f" (next at {run.deferred_until.astimezone(zone):%Y-%m-%d %H:%M %Z})"
            click.echo(f"    {state:<10}{run.counts.get(state, 0)}{detail}")
        click.echo(f"    {'delivered':<10}{run.delivered}")
        click.echo(f"    {'undeliv.':<10}{run.undelivered}")


@broadcast.command("cancel")
@click.argument("broadcast_id", type=int)
def cancel(broadcast_id: int) -> None:
    """Stop a broadcast: nothing more is sent once this returns."""
    from sms_service.broadcasts import cancel_broadcast

    try:
        with session_scope(current().engine) as session:
            result = cancel_broadcast(session=session, broadcast_id=broadcast_id)
    except (BadRequest, NotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    if result.already:
        click.echo(f"broadcast {broadcast_id} was already cancelled")
        return
    in_flight = _in_flight(result.runs)
    message = (
        f"broadcast {broadcast_id} cancelled: {len(result.runs)} run(s) stopped, "
        f"{result.skipped} waiting {'delivery' if result.skipped == 1 else 'deliveries'} "
        f"will not be sent"
    )
    if in_flight:
        # Claimed by a sender before the cancel: each is either handed to Twilio by the
        # batch already in progress or cancelled too, so the final count can be higher.
        message += (
            f"; {in_flight} already claimed by a sender are sent or cancelled as that batch "
            f"ends (see `sms-service broadcast status {broadcast_id}`)"
        )
    click.echo(message)


def _in_flight(run_ids) -> int:
    """Deliveries of ``run_ids`` that a sender had claimed (``sending``) at the cancel."""
    from sqlalchemy import func, select

    from sms_service.models import BroadcastDelivery

    if not run_ids:
        return 0
    with current().engine.connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(BroadcastDelivery)
            .where(
                BroadcastDelivery.run_id.in_(run_ids),
                BroadcastDelivery.status == DeliveryStatus.SENDING,
            )
        ).scalar_one()


@broadcast.command("sweep")
def sweep_cmd() -> None:
    """Re-enqueue what Redis lost (runs due, senders, wake-ups); close finished runs."""
    from rq import Queue

    from workers import QUEUE_BROADCASTS
    from workers.broadcast_worker import sweep

    settings = current().settings
    client = _redis(settings)
    if client is None:
        raise click.ClickException("the sweeper needs Redis")
    engine = current().engine
    try:
        click.echo(str(sweep(engine=engine, queue=Queue(QUEUE_BROADCASTS, connection=client))))
    finally:
        client.close()


@broadcast.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker_cmd(burst: bool) -> None:
    """Run an RQ worker (with scheduler and sweeper) for the broadcasts and default queues."""
    from workers.broadcast_worker import start_worker

    settings = current().settings
    client = _redis(settings)
    if client is None:
        raise click.ClickException("a worker needs Redis")
    start_worker(connection=client, burst=burst)
