"""Broadcasts: one text to an audience, now or on a schedule, delivered exactly once.

Parts: :mod:`.service` (create, estimate, schedule, cancel, list: what organisers do),
:mod:`.runs` (occurrences, planning, starting and closing a run), :mod:`.sending` (the
batch sender), :mod:`.recovery` (settling lost attempts with the carrier),
:mod:`.progress` (counts per state). The RQ jobs that drive them are in
:mod:`workers.broadcast`; the model and its lifecycle in
:mod:`sms_service.models.broadcasts`.
"""

from sms_service.broadcasts.progress import (
    BroadcastProgress,
    RunProgress,
    broadcast_progress,
    run_progress,
)
from sms_service.broadcasts.runs import (
    StartedRun,
    begin_run,
    finish_run,
    get_broadcast,
    insert_run,
    next_occurrence_after,
    plan_run,
    refresh_broadcast_status,
)
from sms_service.broadcasts.service import (
    CancelResult,
    Estimate,
    ListReport,
    audience_size,
    cancel_broadcast,
    create_broadcast,
    estimate_body,
    list_broadcasts,
    list_report,
    local_to_utc,
    schedule_broadcast,
    update_draft,
)

__all__ = [
    "BroadcastProgress",
    "CancelResult",
    "Estimate",
    "ListReport",
    "RunProgress",
    "StartedRun",
    "audience_size",
    "begin_run",
    "broadcast_progress",
    "cancel_broadcast",
    "create_broadcast",
    "estimate_body",
    "finish_run",
    "get_broadcast",
    "insert_run",
    "list_broadcasts",
    "list_report",
    "local_to_utc",
    "next_occurrence_after",
    "plan_run",
    "refresh_broadcast_status",
    "run_progress",
    "schedule_broadcast",
    "update_draft",
]
