"""``/console/``: subscribers, opt-ins and opt-outs per day, signatures per campaign."""

from __future__ import annotations

from flask import Blueprint, render_template

from sms_service.services import console_stats
from sms_service.web.console.auth import requires
from sms_service.web.console.charts import bar_chart, line_chart
from sms_service.web.console.common import transaction

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@requires("dashboard")
def home() -> str:
    """The dashboard: figures aggregated in SQL, charts drawn as inline SVG."""
    with transaction() as session:
        figures = console_stats.dashboard(session=session)
    return render_template(
        "console/dashboard.html",
        figures=figures,
        total=sum(figures.by_status.values()),
        consent_chart=bar_chart(figures.days, figures.consent, "Opt-ins and opt-outs per day"),
        signature_chart=line_chart(
            figures.days, figures.signatures, "Signatures per campaign per day"
        ),
    )
