"""``sms-service consent``: staff review of possible opt-outs, a number's history."""

from __future__ import annotations

import click

from sms_service.cli.context import current
from sms_service.db import session_scope
from sms_service.domain.phones import InvalidPhoneNumber, to_e164
from sms_service.errors import BadRequest, NotFound


@click.group("consent")
def consent() -> None:
    """Consent log: staff review of possible opt-outs, a number's history."""


@consent.command("pending")
def consent_pending() -> None:
    """Possible opt-outs awaiting a decision, most urgent first."""
    from sms_service.services.consent import pending_reviews

    with session_scope(current().engine) as session:
        rows = pending_reviews(session=session)
        for e in rows:
            click.echo(f"{e.review_by}\t{e.message_sid}\t{e.phone}\t{e.message_body!r}")
        click.echo(f"{len(rows)} awaiting review", err=True)


@consent.command("resolve")
@click.argument("message_sid")
@click.option("--opt-out", "opt_out", is_flag=True, help="The text meant STOP: opt it out.")
@click.option("--keep", is_flag=True, help="It did not mean STOP: the number stays subscribed.")
@click.option("--by", "reviewer", required=True, help="Who decided (kept in the log).")
def consent_resolve(message_sid: str, opt_out: bool, keep: bool, reviewer: str) -> None:
    """Decide a possible opt-out: --opt-out opts the number out, --keep leaves it."""
    from sms_service.services.consent import confirmation_of, resolve_review

    if opt_out == keep:
        raise click.UsageError(
            "--opt-out and --keep contradict each other: give one"
            if opt_out
            else "say --opt-out or --keep: what did the text mean?"
        )

    app = current()
    try:
        with session_scope(app.engine) as session:
            events = resolve_review(
                session=session, message_sid=message_sid, opt_out=opt_out,
                reviewer=reviewer, settings=app.settings,
            )  # fmt: skip
            confirmation = confirmation_of(session, events[-1]) if opt_out else None
    except (BadRequest, NotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    if confirmation is not None:
        from sms_service.cli.consent_chain import enqueue_confirmation

        click.echo("opted out; " + enqueue_confirmation(app.settings, confirmation.id))
    else:
        click.echo("opted out (already; no confirmation sent)" if opt_out else "kept subscribed")


@consent.command("history")
@click.argument("phone")
def consent_history(phone: str) -> None:
    """Every consent event for PHONE, oldest first, with the wording sent."""
    from sms_service.services.consent import history

    try:
        number = to_e164(phone)
    except InvalidPhoneNumber as exc:
        raise click.UsageError(str(exc)) from exc
    with session_scope(current().engine) as session:
        events = history(session=session, phone=number)
        if not events:
            from sms_service.domain.phones import mask

            raise click.ClickException(f"no consent events for {mask(number)}")
        for e in events:
            click.echo(
                f"{e.occurred_at.isoformat()}  {e.event:<26} {e.source:<8} {e.keyword or '':<8}"
                f" body={e.message_body!r}"
            )
            if e.disclosure:
                click.echo(f"    told: {e.disclosure}")
            if e.note:
                click.echo(f"    note: {e.note}")
