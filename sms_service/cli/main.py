"""The ``sms-service`` command: database, campaigns, exports, servers.

Sub-command groups from other modules register themselves on :data:`main` at the bottom.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from config import Settings
from sms_service import log_masking
from sms_service.db import make_engine, session_scope
from sms_service.domain.phones import InvalidPhoneNumber, to_e164
from sms_service.errors import BadRequest


def load_settings() -> Settings:
    """Settings from the environment, with a readable error instead of a traceback."""
    try:
        return Settings()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def parse_when(value: str | None, option: str) -> datetime | None:
    """An ISO date or datetime; naive values are read as UTC."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO date or datetime", param_hint=option
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.group()
def main() -> None:
    """SMS keyword campaigns: petitions by text, consent log, broadcasts."""
    log_masking.install()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to DATABASE_URL."""
    from sms_service.db.migrate import upgrade

    settings = load_settings()
    upgrade(settings.database_url, revision)
    click.echo(f"database at revision {revision}")


@main.group()
def campaign() -> None:
    """Petition campaigns and their keywords."""


@campaign.command("create")
@click.argument("keyword")
@click.option("--title", required=True, help="Shown in replies, e.g. 'Release the 64'.")
@click.option("--text", "text_", default="", help="The petition text.")
def campaign_create(keyword: str, title: str, text_: str) -> None:
    """Create an active campaign signed by texting KEYWORD (or SIGN)."""
    from sms_service.services.campaigns import create_campaign

    engine = make_engine(load_settings().database_url)
    try:
        with session_scope(engine) as session:
            created = create_campaign(session=session, keyword=keyword, title=title, text=text_)
            click.echo(f"campaign {created.id} {created.keyword}: {created.title}")
    except BadRequest as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()


@campaign.command("list")
def campaign_list() -> None:
    """List campaigns, newest first."""
    from sms_service.services.campaigns import list_campaigns

    engine = make_engine(load_settings().database_url)
    with session_scope(engine) as session:
        for c in list_campaigns(session=session):
            state = "active" if c.active else "closed"
            click.echo(f"{c.id}\t{c.keyword}\t{state}\t{c.title}")
    engine.dispose()


def _export_options(func):  # noqa: ANN001, ANN202 - click decorator stack
    func = click.option(
        "--raw",
        is_flag=True,
        help="Exact stored text. Default: cells starting with = + - @ tab or CR get a leading "
        "' so a spreadsheet shows them as text instead of running them as formulas.",
    )(func)
    func = click.option(
        "-o", "--output", type=click.Path(dir_okay=False), help="CSV file; default stdout"
    )(func)
    func = click.option("--phone", help="Only this number (E.164).")(func)
    func = click.option("--until", help="ISO date/time, exclusive (UTC if no offset).")(func)
    func = click.option("--since", help="ISO date/time, inclusive (UTC if no offset).")(func)
    return func


def _run_export(kind: str, since, until, phone, output, raw, campaign_key=None) -> None:  # noqa: ANN001
    from sms_service.services.exports import ExportFilter, write_consent, write_signatures

    try:
        number = to_e164(phone) if phone else None
        flt = ExportFilter(parse_when(since, "--since"), parse_when(until, "--until"), number)
    except (InvalidPhoneNumber, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    engine = make_engine(load_settings().database_url)
    out = open(output, "wb") if output else sys.stdout.buffer
    try:
        if kind == "signatures":
            count = write_signatures(engine, out, flt, campaign=campaign_key, raw=raw)
        else:
            count = write_consent(engine, out, flt, opt_outs_only=kind == "optouts", raw=raw)
        out.flush()
    finally:
        if output:
            out.close()
        engine.dispose()
    click.echo(f"{count} rows", err=True)


@main.group()
def export() -> None:
    """CSV exports for compliance."""


@export.command("consent")
@_export_options
def export_consent(since, until, phone, output, raw) -> None:  # noqa: ANN001
    """Every consent event (opt-ins, opt-outs, help, signatures, possible opt-outs)."""
    _run_export("consent", since, until, phone, output, raw)


@export.command("optouts")
@_export_options
def export_optouts(since, until, phone, output, raw) -> None:  # noqa: ANN001
    """Opt-out events only."""
    _run_export("optouts", since, until, phone, output, raw)


@export.command("signatures")
@_export_options
@click.option("--campaign", "campaign_key", help="Only this campaign's keyword.")
def export_signatures(since, until, phone, output, raw, campaign_key) -> None:  # noqa: ANN001
    """Petition signatures."""
    _run_export("signatures", since, until, phone, output, raw, campaign_key)


@main.group()
def consent() -> None:
    """Consent log: staff review of possible opt-outs, a number's history."""


@consent.command("pending")
def consent_pending() -> None:
    """Possible opt-outs awaiting a decision, most urgent first."""
    from sms_service.services.consent import pending_reviews

    engine = make_engine(load_settings().database_url)
    with session_scope(engine) as session:
        rows = pending_reviews(session=session)
        for e in rows:
            click.echo(f"{e.review_by}\t{e.message_sid}\t{e.phone}\t{e.message_body!r}")
        click.echo(f"{len(rows)} awaiting review", err=True)
    engine.dispose()


@consent.command("resolve")
@click.argument("message_sid")
@click.option("--opt-out/--keep", "opt_out", required=True, help="What the text meant.")
@click.option("--by", "reviewer", required=True, help="Who decided (kept in the log).")
def consent_resolve(message_sid: str, opt_out: bool, reviewer: str) -> None:
    """Decide a possible opt-out: --opt-out opts the number out, --keep leaves it."""
    from sms_service.errors import NotFound
    from sms_service.services.consent import confirmation_of, resolve_review

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            events = resolve_review(
                session=session, message_sid=message_sid, opt_out=opt_out,
                reviewer=reviewer, settings=settings,
            )  # fmt: skip
            confirmation = confirmation_of(session, events[-1]) if opt_out else None
    except (BadRequest, NotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    if confirmation is not None:
        from sms_service.cli.consent_chain import enqueue_confirmation

        click.echo("opted out; " + enqueue_confirmation(settings, confirmation.id))
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
    engine = make_engine(load_settings().database_url)
    with session_scope(engine) as session:
        for e in history(session=session, phone=number):
            click.echo(
                f"{e.occurred_at.isoformat()}  {e.event:<26} {e.source:<8} {e.keyword or '':<8}"
                f" body={e.message_body!r}"
            )
            if e.disclosure:
                click.echo(f"    told: {e.disclosure}")
            if e.note:
                click.echo(f"    note: {e.note}")
    engine.dispose()


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Migrate the database and serve the web app (development server)."""
    from sms_service import create_app
    from sms_service.db.migrate import upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    create_app(settings).run(host=host, port=port)


@main.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--sim-port", default=8765, show_default=True, type=int)
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Simulated carrier latency.",
)
def dev(host: str, port: int, sim_port: int, latency_ms: float) -> None:
    """Everything at once on the embedded defaults: web, worker, scheduler, carrier simulator."""
    from sms_service.devtools.devserver import run_dev

    if load_settings().is_production:
        raise click.ClickException("`sms-service dev` is a development tool: APP_ENV=production")

    run_dev(host=host, port=port, sim_port=sim_port, latency_ms=latency_ms)


def _register_plugins() -> None:
    from sms_service.cli.carrier_sim import carrier_sim_command

    main.add_command(carrier_sim_command, "carrier-sim")


_register_plugins()


from sms_service.cli.broadcasts import broadcast  # noqa: E402 - registers on main, needs it defined

main.add_command(broadcast)

from sms_service.cli.users import user  # noqa: E402 - registers on main

main.add_command(user)

def _register_consent_tools() -> None:
    # Issue 9's commands: consent proof, subscriber lists, the message log.
    from sms_service.cli.consent_chain import COMMANDS
    from sms_service.cli.messages import export_messages
    from sms_service.cli.subscribers import subscribers
    from sms_service.cli.suppression import suppression

    for command in COMMANDS:
        consent.add_command(command)
    export.add_command(export_messages)
    main.add_command(subscribers)
    main.add_command(suppression)


_register_consent_tools()

if __name__ == "__main__":  # pragma: no cover
    main()
