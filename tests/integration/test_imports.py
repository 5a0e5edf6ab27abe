"""Subscriber and suppression imports: streaming, rejected lines, idempotence, precedence."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from sms_service.db import session_scope
from sms_service.errors import BadRequest
from sms_service.models import ConsentEvent, Subscriber, SubscriberTag
from sms_service.services import subscribers
from sms_service.services.imports import import_subscribers, import_suppression

PROGRAM = "Rights Alerts"


def number(i: int) -> str:
    return f"+1202{2000000 + i:07d}"  # +1 202 200-0000... valid US numbers


def counts(engine) -> dict:
    with Session(engine) as s:
        by_status = dict(
            s.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all()
        )
        events = s.execute(
            select(ConsentEvent.event, ConsentEvent.source, func.count()).group_by(
                ConsentEvent.event, ConsentEvent.source
            )
        ).all()
    return {"status": by_status, "events": {(e, src): n for e, src, n in events}}


def test_a_100k_line_import_reports_bad_lines_and_is_idempotent(engine, tmp_path):
    check_large_import(engine, tmp_path, 100_000)


def check_large_import(engine, tmp_path, size: int) -> None:
    path = tmp_path / "supporters.csv"
    bad_lines = {}
    with path.open("w", encoding="utf-8") as f:
        f.write("phone,name,opted_in_at,consent_wording\n")
        for i in range(size):
            line = i + 2  # the header is line 1
            if i % 5_000 == 7:
                f.write(f"not-a-number-{i},Someone,,\n")
                bad_lines[line] = "not a valid phone number"
            elif i % 5_000 == 8:
                f.write(f"{number(i)},Ada,yesterday,\n")
                bad_lines[line] = "opted_in_at is not an ISO date or time"
            else:
                f.write(f"{number(i)},Supporter {i},2025-03-0{1 + i % 9},Text JOIN for alerts\n")
    progress = []
    report = import_subscribers(
        engine, path, consent_source="old platform, web form 2025", program=PROGRAM, tag="imported",
        progress=lambda done, total: progress.append((done, total)),
    )  # fmt: skip
    good = size - len(bad_lines)
    assert report.lines == size and report.rejected == len(bad_lines) == size // 2500
    assert {(r.line, r.reason) for r in report.rejections} == set(bad_lines.items())
    assert report.changed == good and report.already == 0
    assert progress[-1] == (path.stat().st_size, path.stat().st_size)
    assert len(progress) > size // 2000 and progress == sorted(progress)
    assert counts(engine) == {
        "status": {"subscribed": good}, "events": {("opt_in", "import"): good},
    }  # fmt: skip
    with Session(engine) as s:
        assert subscribers.count(session=s, tag="imported") == good
        event = s.execute(select(ConsentEvent).where(ConsentEvent.phone == number(0))).scalar_one()
    assert event.disclosure == "Text JOIN for alerts"
    assert "old platform, web form 2025" in event.note and "2025-03-01" in event.note
    # Rejected content is never kept: neither in the report nor anywhere in the database.
    assert "not-a-number" not in repr(report)

    again = import_subscribers(engine, path, consent_source="again", program=PROGRAM, tag="x")
    assert again.changed == 0 and again.already == good and again.rejected == len(bad_lines)
    assert counts(engine)["events"] == {("opt_in", "import"): good}


def test_an_opted_out_number_is_never_resubscribed_by_an_import(engine, tmp_path):
    suppression = tmp_path / "dnc.csv"
    suppression.write_text(f"{number(1)}\n{number(2)}\n(202) 200-0003\n\njunk\n")
    report = import_suppression(engine, suppression, program=PROGRAM)
    assert (report.changed, report.rejected) == (3, 1)
    assert [(r.line, r.reason) for r in report.rejections] == [(5, "not a valid phone number")]
    assert counts(engine) == {"status": {"opted_out": 3}, "events": {("opt_out", "import"): 3}}

    people = tmp_path / "people.csv"
    people.write_text(f"Phone Number,Name\n{number(1)},A\n{number(4)},B\n{number(4)},B again\n")
    report = import_subscribers(engine, people, consent_source="petition", program=PROGRAM)
    assert (report.changed, report.kept_opted_out, report.already) == (1, 1, 1)
    assert counts(engine)["status"] == {"opted_out": 3, "subscribed": 1}
    # A suppression list opts out a subscriber too, once.
    (tmp_path / "more.csv").write_text(f"phone\n{number(4)}\n{number(1)}\n")
    report = import_suppression(engine, tmp_path / "more.csv", program=PROGRAM)
    assert (report.changed, report.already) == (1, 1)
    assert counts(engine) == {
        "status": {"opted_out": 4},
        "events": {("opt_out", "import"): 4, ("opt_in", "import"): 1},
    }


def test_hostile_or_broken_files_are_refused_cleanly(engine, tmp_path):
    with pytest.raises(BadRequest, match="no phone column"):
        import_subscribers(engine, io.BytesIO(b"name,email\nA,a@x\n"), consent_source="x",
                           program=PROGRAM)  # fmt: skip
    with pytest.raises(BadRequest, match="consent-source"):
        import_subscribers(engine, io.BytesIO(b"phone\n"), consent_source=" ", program=PROGRAM)
    data = (
        "phone,name\n"
        f"{number(5)},=cmd|' /C calc'!A0\n"
        f"{number(6)},\x1b[31mred\x00\n"
        "\xff\xfe,x\n"
        f"{number(7)},{'n' * 101}\n"
    ).encode("utf-8", errors="surrogateescape")
    report = import_subscribers(engine, io.BytesIO(data.replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe")),
                                consent_source="x", program=PROGRAM)  # fmt: skip
    assert [(r.line, r.reason) for r in report.rejections] == [
        (4, "not a valid phone number"), (5, "name longer than 100 characters"),
    ]  # fmt: skip
    with Session(engine) as s:
        names = dict(s.execute(select(Subscriber.phone, Subscriber.name)).all())
    assert names[number(6)] == "[31mred"  # control characters never stored


def test_tags_show_and_count(engine):
    with session_scope(engine) as s:
        s.add(Subscriber(phone=number(1), status="subscribed"))
        s.add(Subscriber(phone=number(2), status="opted_out"))
    with session_scope(engine) as s:
        assert subscribers.tag(session=s, phone=number(1), name="Volunteers") is True
        assert subscribers.tag(session=s, phone=number(1), name="Volunteers") is False
        subscribers.tag(session=s, phone=number(2), name="Volunteers")
        with pytest.raises(BadRequest):
            subscribers.tag(session=s, phone=number(1), name="no;way")
    with session_scope(engine) as s:
        assert subscribers.count(session=s) == 2
        assert subscribers.count(session=s, status="subscribed", tag="Volunteers") == 1
        assert subscribers.count(session=s, tag="volunteers") == 0  # tags keep their case
        record = subscribers.show(session=s, phone=number(1))
        assert record.tags == ("Volunteers",) and record.status == "subscribed"
        assert subscribers.untag(session=s, phone=number(1), name="Volunteers") is True
        assert subscribers.untag(session=s, phone=number(1), name="Volunteers") is False
        assert s.execute(select(func.count()).select_from(SubscriberTag)).scalar_one() == 1


AWKWARD = ["NULL", "{a,b}", 'O"Brien', "back\\slash", "=HYPERLINK(1)", "Zoë 中文", "a, b"]


def test_every_value_is_stored_exactly_and_in_the_lists_order(engine, tmp_path):
    """Names and wording that array literals or CSV quote specially, empty columns (a batch
    whose names are all empty), and the consent events in the order of the numbers."""
    people = tmp_path / "people.csv"
    lines = ["phone,name,opted_in_at,consent_wording"]
    for i, name in enumerate(AWKWARD):
        quoted = name.replace('"', '""')
        lines.append(f'{number(i)},"{quoted}",2026-11-0{i + 1}T10:00:00+00:00,"I agree: {quoted}"')
    lines += [f"{number(100 + i)},,," for i in range(3)]  # nothing but the number
    people.write_text("\n".join(lines) + "\n")
    report = import_subscribers(
        engine, people, consent_source="rally", program=PROGRAM, tag="rally"
    )
    assert (report.changed, report.rejected) == (len(AWKWARD) + 3, 0)
    with Session(engine) as s:
        stored = {r.phone: r for r in s.execute(select(Subscriber)).scalars()}
        events = list(s.execute(select(ConsentEvent).order_by(ConsentEvent.id)).scalars())
        tags = s.execute(select(func.count()).select_from(SubscriberTag)).scalar_one()
    for i, name in enumerate(AWKWARD):
        row = stored[number(i)]
        assert (row.name, row.status) == (name, "subscribed")
        assert row.opted_in_at.isoformat().startswith(f"2026-11-0{i + 1}T10:00:00")
    assert stored[number(100)].name is None
    assert [e.phone for e in events] == sorted(stored)
    by_phone = {e.phone: e for e in events}
    assert by_phone[number(2)].disclosure == 'I agree: O"Brien'
    assert by_phone[number(101)].disclosure is None
    assert tags == len(stored)
    # The same list again changes nothing and records nothing.
    again = import_subscribers(engine, people, consent_source="rally", program=PROGRAM, tag="rally")
    assert (again.changed, again.already) == (0, len(stored))
    assert counts(engine)["events"] == {("opt_in", "import"): len(stored)}
