"""``sms-service consent verify|checkpoint|seal|evidence|opt-out``: proving consent.

``verify`` exits 0 printing the count and head hash when the chain is intact, 1 naming the
first event changed, removed or inserted out of order (or, with ``--checkpoint``, cut from
the end). ``checkpoint`` seals what is pending and prints the head as JSON, for staff to
keep outside the database. ``evidence`` writes one number's evidence pack.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import click

from sms_service.cli.context import load_settings
from sms_service.cli.subscribers import e164
from sms_service.db import make_engine, session_scope
from sms_service.errors import BadRequest


def _grace(settings) -> timedelta:
    return timedelta(seconds=settings.consent_seal_grace_seconds)


@click.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=click.File("r"),
              help="A head printed by `consent checkpoint`: also prove nothing before it "
                   "changed and nothing was cut from the end.")  # fmt: skip
def consent_verify(checkpoint_file) -> None:
    """Recompute the consent log's hash chain; exit 1 naming the first bad event."""
    from sms_service.services.consent_chain import Head, verify

    checkpoint = None
    if checkpoint_file is not None:
        try:
            checkpoint = Head.from_json(checkpoint_file.read())
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        verdict = verify(engine, checkpoint=checkpoint, grace=_grace(settings))
    finally:
        engine.dispose()
    click.echo(str(verdict))
    if checkpoint is not None and verdict.ok:
        click.echo(f"checkpoint of {checkpoint.count} events (last {checkpoint.last_event_id}) "
                   "is intact")  # fmt: skip
    sys.exit(0 if verdict.ok else 1)


@click.command("checkpoint")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the checkpoint to this file (default stdout).")  # fmt: skip
def consent_checkpoint(output: Path | None) -> None:
    """Seal pending events and print the chain head (count, last id, hash, time) as JSON."""
    from sms_service.services.consent_chain import head, seal_all

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        seal_all(engine, grace=_grace(settings))
        with session_scope(engine) as session:
            text = head(session).to_json()
    finally:
        engine.dispose()
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"checkpoint written to {output}", err=True)
    else:
        click.echo(text)


@click.command("seal")
def consent_seal() -> None:
    """Seal pending consent events now (the worker does it every CONSENT_SEAL_SECONDS)."""
    from sms_service.services.consent_chain import seal_all

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        click.echo(f"{seal_all(engine, grace=_grace(settings))} events sealed")
    finally:
        engine.dispose()


@click.command("evidence")
@click.argument("phone")
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the pack (created); a path ending in .zip writes a zip.",
)
@click.option("--no-verify", is_flag=True,
              help="Skip walking the whole chain (each event is still checked).")  # fmt: skip
def consent_evidence(phone: str, out_dir: Path, no_verify: bool) -> None:
    """Write PHONE's evidence pack: consent events, messages, signatures, status and
    verification as CSV, and one printable HTML page."""
    from sms_service.services.evidence import DirectorySink, write_evidence, write_evidence_zip

    number = e164(phone)
    engine = make_engine(load_settings().database_url)
    try:
        if out_dir.suffix == ".zip":
            with out_dir.open("wb") as f:
                summary = write_evidence_zip(engine, number, f, verify_chain=not no_verify)
        else:
            summary = write_evidence(engine, number, DirectorySink(out_dir),
                                     verify_chain=not no_verify)  # fmt: skip
    finally:
        engine.dispose()
    click.echo(
        f"{out_dir}: {summary.consent_events} consent events, {summary.messages} messages, "
        f"{summary.signatures} signatures; status {summary.status}; "
        f"chain {'ok' if summary.verdict.ok else 'FAILED'} ({summary.verdict.head.hash})"
    )
    if not summary.verdict.ok:
        click.echo(str(summary.verdict), err=True)
        sys.exit(1)


@click.command("opt-out")
@click.argument("phone")
@click.option("--by", required=True, help="Who recorded it (kept in the log).")
@click.option(
    "--channel",
    required=True,
    type=click.Choice(["phone", "email", "in_person", "web"]),
    help="How the supporter asked.",
)
@click.option("--note", help="Anything else worth keeping (e.g. the email's subject).")  # fmt: skip
def consent_opt_out(phone: str, by: str, channel: str, note: str | None) -> None:
    """Record an opt-out a supporter made by phone, email, in person or on the web, and
    send the single confirmation text."""
    from sms_service.services.consent import record_opt_out

    number = e164(phone)
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            recorded = record_opt_out(session=session, settings=settings, phone=number, by=by,
                                      channel=channel, note=note)  # fmt: skip
    except BadRequest as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    if recorded.confirmation is None:
        click.echo("recorded; the number was already opted out, so no confirmation is sent")
        return
    click.echo("opted out; " + enqueue_confirmation(settings, recorded.confirmation.id))


def enqueue_confirmation(settings, message_id: int) -> str:
    """Queue the confirmation for the worker; what happened, for people."""
    import redis
    from rq import Queue

    from sms_service.carrier.single_send import enqueue_send_job
    from workers import QUEUE_DEFAULT

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)
    try:
        enqueue_send_job(Queue(QUEUE_DEFAULT, connection=client), message_id)
    except redis.RedisError:
        return (f"confirmation saved as outbound message {message_id}, but no Redis answers at "
                f"{settings.redis_url}: it is sent once a worker picks it up")  # fmt: skip
    finally:
        client.close()
    return f"confirmation queued (outbound message {message_id})"


COMMANDS = (consent_verify, consent_checkpoint, consent_seal, consent_evidence, consent_opt_out)
