"""A finished run's figures: counted live until they can no longer change, then kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, text

from sms_service.broadcasts.figures import FOLD_LAG
from sms_service.broadcasts.outcomes import opt_outs_after, run_opt_outs
from sms_service.broadcasts.progress import _report_counts, run_progress
from sms_service.db import session_scope
from sms_service.models import (
    Broadcast,
    BroadcastDelivery,
    BroadcastRun,
    ConsentEvent,
    MessageStatusEvent,
    RunFigures,
)
from tests.factories import add_subscribers, phone


def make_run(
    engine, *, ended: datetime | None, status: str = "sent", open_ones: int = 0, start: int = 0
):
    """A run sent to four subscribers 'ended' ago (one undelivered report), plus
    ``open_ones`` still pending."""
    ids = add_subscribers(engine, 4 + open_ones, start=start)
    started = (ended or datetime.now(UTC)) - timedelta(hours=1)
    with engine.begin() as conn:
        broadcast_id = conn.execute(
            insert(Broadcast.__table__)
            .values(
                body="Rally",
                audience_kind="all",
                send_at=started,
                timezone="UTC",
                status=status,
                created_at=started,
                updated_at=started,
            )
            .returning(Broadcast.__table__.c.id)
        ).scalar_one()
        run_id = conn.execute(
            insert(BroadcastRun.__table__)
            .values(
                broadcast_id=broadcast_id,
                occurrence_at=started,
                status=status,
                planned=len(ids),
                created_at=started,
                started_at=started,
                finished_at=ended,
            )
            .returning(BroadcastRun.__table__.c.id)
        ).scalar_one()
        conn.execute(
            insert(BroadcastDelivery.__table__),
            [
                dict(
                    run_id=run_id,
                    subscriber_id=s,
                    status="sent",
                    attempts=1,
                    sid=f"SMf{run_id}x{s}",
                    sent_at=started,
                    updated_at=started,
                )
                for s in ids[:4]
            ]
            + [
                dict(
                    run_id=run_id,
                    subscriber_id=s,
                    status="pending",
                    attempts=0,
                    sid=None,
                    sent_at=None,
                    updated_at=started,
                )
                for s in ids[4:]
            ],
        )
        conn.execute(
            insert(MessageStatusEvent.__table__).values(
                sid=f"SMf{run_id}x{ids[0]}",
                status="undelivered",
                occurred_at=started,
            )
        )
        # Opted out after the text: once within the window, once a week after the run.
        for number, when in (
            (phone(start + 1), started + timedelta(minutes=5)),
            (phone(start + 2), started + timedelta(days=7)),
        ):
            conn.execute(
                insert(ConsentEvent.__table__).values(
                    occurred_at=when,
                    phone=number,
                    event="opt_out",
                    source="sms",
                    program="Rights Alerts",
                )
            )
    return run_id  # fmt: skip


def figures(engine, run_id: int) -> tuple:
    with session_scope(engine) as session:
        run = session.get(BroadcastRun, run_id)
        progress = run_progress(session=session, run=run)
        return progress.counts, progress.undelivered, run_opt_outs(session=session, run=run)


def kept_names(engine, run_id: int) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(select(RunFigures.name).where(RunFigures.run_id == run_id)).scalars()
        )


def test_a_settled_run_is_counted_once_and_read_from_the_kept_row(app):
    engine = app.extensions["sms_engine"]
    run_id = make_run(engine, ended=datetime.now(UTC) - timedelta(days=2))
    counts, undelivered, opted = figures(engine, run_id)
    assert counts["sent"] == 4 and undelivered == 1
    assert opted == 1  # the opt-out a week later is outside the window
    assert kept_names(engine, run_id) == {"states", "reports", "opt_outs"}
    with engine.begin() as conn:  # the kept figures are read, not recounted
        conn.execute(text("UPDATE broadcast_deliveries SET status = 'failed' WHERE run_id = :r"),
                     {"r": run_id})  # fmt: skip
    assert figures(engine, run_id) == (counts, 1, 1)


def test_a_run_ended_within_a_day_keeps_its_states_but_counts_reports_live(app):
    engine = app.extensions["sms_engine"]
    run_id = make_run(engine, ended=datetime.now(UTC) - timedelta(hours=2))
    assert figures(engine, run_id)[1:] == (1, 1)
    # States are final; reports and opt-outs are folded as they come, not kept whole.
    assert kept_names(engine, run_id) == {"states", "reports~", "opt_outs~"}
    with engine.begin() as conn:
        conn.execute(insert(MessageStatusEvent.__table__).values(
            sid=f"SMf{run_id}x" + conn.execute(text(
                "SELECT max(subscriber_id) FROM broadcast_deliveries WHERE run_id = :r"
            ), {"r": run_id}).scalar_one().__str__(), status="undelivered",
        ))  # fmt: skip
    assert figures(engine, run_id)[1] == 2  # a late report still counts


def test_a_sending_run_or_one_with_open_deliveries_is_never_kept(app):
    engine = app.extensions["sms_engine"]
    sending = make_run(engine, ended=None, status="sending")
    stuck = make_run(engine, ended=datetime.now(UTC) - timedelta(days=2), open_ones=1, start=10)
    assert figures(engine, sending)[0]["sent"] == 4
    assert figures(engine, stuck)[0]["pending"] == 1
    assert kept_names(engine, sending) == {"reports~", "opt_outs~"}  # only folded sums
    assert "states" not in kept_names(engine, stuck)


def test_a_sending_run_folds_no_further_than_its_oldest_attempt_in_flight(app, monkeypatch):
    """A callback can come before the batch that sent the text commits its sid (or, for a
    lost answer, before the recoverer does, after the lease). Folding past it would
    count the report nowhere; it stops at the oldest attempt still ``sending``."""
    monkeypatch.setattr("sms_service.broadcasts.figures.FOLD_LAG", timedelta(0))
    engine = app.extensions["sms_engine"]
    run_id = make_run(engine, ended=None, status="sending", open_ones=1)
    claimed = datetime.now(UTC) - timedelta(minutes=30)
    with engine.begin() as conn:
        late = conn.execute(text(
            "SELECT max(subscriber_id) FROM broadcast_deliveries WHERE run_id = :r"
        ), {"r": run_id}).scalar_one()  # fmt: skip
        conn.execute(text(
            "UPDATE broadcast_deliveries SET status = 'sending', attempt_id = 'a1', "
            "attempt_started_at = :t WHERE run_id = :r AND subscriber_id = :s"
        ), {"t": claimed, "r": run_id, "s": late})  # fmt: skip
        # Its text went out and the carrier answered, before its sid is committed.
        conn.execute(
            insert(MessageStatusEvent.__table__).values(
                sid="SMlost", status="delivered", occurred_at=claimed + timedelta(minutes=1)
            )
        )
    assert figures(engine, run_id)[1] == 1 and whole_counts(engine, run_id)[0] == 0
    for _ in range(2):  # views while the attempt is open fold nothing past it
        assert shown(engine, run_id)[0] == 0
    with engine.begin() as conn:  # the recoverer settles it: sent, with that sid
        conn.execute(text(
            "UPDATE broadcast_deliveries SET status = 'sent', sid = 'SMlost', sent_at = :t "
            "WHERE run_id = :r AND subscriber_id = :s"
        ), {"t": claimed, "r": run_id, "s": late})  # fmt: skip
    assert shown(engine, run_id)[0] == whole_counts(engine, run_id)[0] == 1


def whole_counts(engine, run_id: int) -> tuple:
    """The figures counted from the start, the way a settled run's are kept."""
    with session_scope(engine) as session:
        run = session.get(BroadcastRun, run_id)
        ended = run.finished_at
        reports = _report_counts(session, run)
        until = ended + timedelta(hours=24) if ended else None
        opted = opt_outs_after(session=session, run_id=run_id, since=run.started_at,
                               until=until)  # fmt: skip
        return reports.get("delivered", 0), reports.get("undelivered", 0), opted


def shown(engine, run_id: int) -> tuple:
    with session_scope(engine) as session:
        run = session.get(BroadcastRun, run_id)
        progress = run_progress(session=session, run=run)
        return progress.delivered, progress.undelivered, run_opt_outs(session=session, run=run)


def test_folded_reports_and_opt_outs_add_up_to_the_whole_count_as_they_arrive(app, monkeypatch):
    """A finished run within its day: each view folds what came since the last one, and
    at every step the figures equal those counted from the start. Reports recorded before
    the run's first view (older than the lag) are folded by it; with no lag, so is
    everything after, which is what a view does once the lag has passed."""
    engine = app.extensions["sms_engine"]
    run_id = make_run(engine, ended=datetime.now(UTC) - timedelta(hours=3))
    with engine.connect() as conn:
        sids = dict(conn.execute(text(
            "SELECT subscriber_id, sid FROM broadcast_deliveries WHERE run_id = :r ORDER BY 1"
        ), {"r": run_id}).all())  # fmt: skip
    ids = sorted(sids)

    def report(subscriber_id, status, when=None):
        with engine.begin() as conn:
            conn.execute(insert(MessageStatusEvent.__table__).values(
                sid=sids[subscriber_id], status=status,
                occurred_at=when or datetime.now(UTC)))  # fmt: skip

    def opt_out(i, when=None):
        with engine.begin() as conn:
            conn.execute(insert(ConsentEvent.__table__).values(
                occurred_at=when or datetime.now(UTC), phone=phone(i), event="opt_out",
                source="sms", program="Rights Alerts"))  # fmt: skip

    report(ids[1], "delivered", datetime.now(UTC) - FOLD_LAG * 3)
    report(ids[2], "delivered")  # within the lag: counted on each view, not folded
    assert shown(engine, run_id) == whole_counts(engine, run_id) == (2, 1, 1)
    monkeypatch.setattr("sms_service.broadcasts.figures.FOLD_LAG", timedelta(0))
    steps = [
        lambda: None,
        lambda: (opt_out(3), report(ids[3], "delivered")),
        # The same number opts out again (after joining again): still one recipient.
        lambda: (opt_out(3), opt_out(1)),
        lambda: (report(ids[2], "undelivered"), opt_out(1), opt_out(2)),
    ]
    for step in steps:
        step()
        assert shown(engine, run_id) == whole_counts(engine, run_id)
    assert shown(engine, run_id) == (3, 2, 3)
    with engine.connect() as conn:
        kept = dict(conn.execute(text("SELECT name, value FROM broadcast_run_figures "
                                      "WHERE run_id = :r"), {"r": run_id}).all())  # fmt: skip
    assert '"n": 3' in kept["opt_outs~"] and '"delivered": 3' in kept["reports~"]
