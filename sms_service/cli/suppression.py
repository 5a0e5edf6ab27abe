"""``sms-service suppression import FILE``: honour an opt-out list from day one.

Every valid number of the list is opted out with source ``import`` and nothing is sent to
it (see :mod:`sms_service.services.imports`).
"""

from __future__ import annotations

from pathlib import Path

import click

from sms_service.cli.subscribers import run_import


@click.group("suppression")
def suppression() -> None:
    """Suppression (do-not-text) lists."""


@suppression.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", "list_name", help="What the list is (kept in each event's note).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write rejected lines (line number, reason) to this CSV.")  # fmt: skip
def suppression_import(file: Path, list_name: str | None, report_file) -> None:
    """Opt out every number of FILE (a CSV with a phone column, or one number per line)."""
    run_import("suppression", file, report_file, list_name=list_name)
