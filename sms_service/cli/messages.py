"""``sms-service export messages``: the message log as CSV, streamed like the other exports."""

from __future__ import annotations

import click

from sms_service.cli.context import load_settings, parse_when
from sms_service.cli.exports import _export_options, output_stream
from sms_service.db import make_engine
from sms_service.domain.phones import InvalidPhoneNumber, to_e164


@click.command("messages")
@_export_options
def export_messages(since, until, phone, output, raw) -> None:
    """Every message to or from a number (inbound, keyword replies, single sends,
    broadcasts) in time order, with direction, body, sid, kind and last status."""
    from sms_service.services.exports import ExportFilter
    from sms_service.services.messages import write_messages

    try:
        number = to_e164(phone) if phone else None
        flt = ExportFilter(parse_when(since, "--since"), parse_when(until, "--until"), number)
    except (InvalidPhoneNumber, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    engine = make_engine(load_settings().database_url)
    try:
        with output_stream(output) as out:
            count = write_messages(engine, out, flt, raw=raw)
    finally:
        engine.dispose()
    click.echo(f"{count} rows", err=True)
