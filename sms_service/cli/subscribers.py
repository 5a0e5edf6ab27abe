"""``sms-service subscribers``: import lists, tag and untag, show one number, count.

Imports stream the file in batches (see :mod:`sms_service.services.imports`) and show a
progress bar when stderr is a terminal. Rejected lines are reported by line number and
reason only: their content is never printed or stored.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sms_service.cli.context import load_settings
from sms_service.db import make_engine, session_scope
from sms_service.domain.phones import InvalidPhoneNumber, to_e164
from sms_service.errors import BadRequest, NotFound

SHOWN_REJECTIONS = 20


def e164(value: str) -> str:
    """A phone argument in E.164, or a usage error (exit 2)."""
    try:
        return to_e164(value)
    except InvalidPhoneNumber as exc:
        raise click.UsageError(str(exc)) from exc


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (ESC, NUL...) shown as ``?``."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def run_import(kind: str, path: Path, report_file: Path | None, **options) -> None:
    """Run one import with a progress bar on a terminal; print the summary and rejections."""
    from sms_service.services.imports import import_subscribers, import_suppression

    settings = load_settings()
    engine = make_engine(settings.database_url)
    bar = None
    if sys.stderr.isatty():
        bar = click.progressbar(length=path.stat().st_size, label="importing", file=sys.stderr)
        bar.__enter__()
    last = [0]

    def progress(done: int, total: int | None) -> None:
        if bar is not None:
            bar.update(done - last[0])
            last[0] = done

    try:
        run = import_subscribers if kind == "subscribers" else import_suppression
        report = run(engine, path, program=settings.program_name, progress=progress, **options)
    except BadRequest as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        engine.dispose()
    click.echo(report.summary("subscribed" if kind == "subscribers" else "opted out"))
    for rejection in report.rejections[:SHOWN_REJECTIONS]:
        click.echo(f"line {rejection.line}: {rejection.reason}", err=True)
    if report.rejected > SHOWN_REJECTIONS:
        more = report.rejected - SHOWN_REJECTIONS
        click.echo(f"... and {more} more rejected lines", err=True)
    if report_file is not None:
        with report_file.open("w", encoding="utf-8") as f:
            f.write("line,reason\n")
            f.writelines(f"{r.line},{r.reason}\n" for r in report.rejections)
        if report.rejected > len(report.rejections):
            click.echo(f"the report holds the first {len(report.rejections)}", err=True)


@click.group("subscribers")
def subscribers() -> None:
    """Subscribers: import a list, tags, one number's record, counts."""


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--consent-source",
    required=True,
    help="Where and how these supporters consented (kept with each opt-in).",
)
@click.option("--tag", help="Tag every subscribed number of the list.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write rejected lines (line number, reason) to this CSV.")  # fmt: skip
def subscribers_import(file: Path, consent_source: str, tag: str | None, report_file) -> None:
    """Subscribe the numbers of a CSV (column phone; optional name, opted_in_at,
    consent_wording). Opted-out numbers are never re-subscribed; re-running is safe."""
    run_import("subscribers", file, report_file, consent_source=consent_source, tag=tag)


def _with_session(action):
    engine = make_engine(load_settings().database_url)
    try:
        with session_scope(engine) as session:
            return action(session)
    except (BadRequest, NotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()


@subscribers.command("tag")
@click.argument("phone")
@click.argument("tag")
def subscribers_tag(phone: str, tag: str) -> None:
    """Put TAG on the subscriber PHONE (for tag:TAG broadcast audiences)."""
    from sms_service.services import subscribers as svc

    added = _with_session(lambda s: svc.tag(session=s, phone=e164(phone), name=tag))
    click.echo("tagged" if added else "already tagged")


@subscribers.command("untag")
@click.argument("phone")
@click.argument("tag")
def subscribers_untag(phone: str, tag: str) -> None:
    """Take TAG off the subscriber PHONE."""
    from sms_service.services import subscribers as svc

    removed = _with_session(lambda s: svc.untag(session=s, phone=e164(phone), name=tag))
    click.echo("untagged" if removed else "was not tagged")


@subscribers.command("show")
@click.argument("phone")
def subscribers_show(phone: str) -> None:
    """Where PHONE stands: status and when it changed, tags, signatures, consent events."""
    from sms_service.services import subscribers as svc

    r = _with_session(lambda s: svc.show(session=s, phone=e164(phone)))

    def when(value) -> str:
        return value.isoformat() if value else "-"

    click.echo(f"phone:           {r.phone}")
    click.echo(f"status:          {r.status} (since {when(r.status_changed_at)})")
    click.echo(f"name:            {printable(r.name) if r.name else '-'}")
    click.echo(f"opted in at:     {when(r.opted_in_at)}")
    click.echo(f"opted out at:    {when(r.opted_out_at)}")
    click.echo(f"tags:            {' '.join(r.tags) or '-'}")
    click.echo(f"signatures:      {r.signatures}")
    last = f" (last: {r.last_event} at {when(r.last_event_at)})" if r.last_event else ""
    click.echo(f"consent events:  {r.consent_events}{last}")


@subscribers.command("count")
@click.option("--status", type=click.Choice(["none", "subscribed", "opted_out", "invalid"]))
@click.option("--tag")
def subscribers_count(status: str | None, tag: str | None) -> None:
    """How many subscribers (with STATUS and/or TAG)."""
    from sms_service.services import subscribers as svc

    click.echo(_with_session(lambda s: svc.count(session=s, status=status, tag=tag)))
