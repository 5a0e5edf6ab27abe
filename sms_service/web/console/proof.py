"""Compliance tools on the consent log's proof: one number's evidence pack, the chain's
verification and checkpoint, an opt-out received by phone or email, list imports.

The services are :mod:`sms_service.services.evidence`, ``consent_chain``, ``consent``
and ``imports``; every use is written to the audit log with the signed-in account.
Imports run as an RQ job (``workers.imports``) on a file saved where the workers can read
it (the machine's temporary directory: web and workers on one host, as in the Procfile);
the page follows the job's progress.
"""

from __future__ import annotations

import io
import re
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user

from sms_service.domain.phones import InvalidPhoneNumber, mask, to_e164
from sms_service.errors import BadRequest
from sms_service.web.console.auth import requires
from sms_service.web.console.common import log_action, settings, transaction
from sms_service.web.console.jobs import connection, enqueue_message

bp = Blueprint("proof", __name__)
UPLOADS = Path(tempfile.gettempdir()) / "sms_service_imports"
MAX_UPLOAD = 200 * 1024 * 1024


def _engine():
    return current_app.extensions["sms_engine"]


def _grace() -> timedelta:
    return timedelta(seconds=settings().consent_seal_grace_seconds)


@bp.get("/lookup/evidence.zip")
@requires("compliance")
def evidence() -> Response:
    """The number's evidence pack as a zip (CSV files and one printable page)."""
    from sms_service.services.evidence import write_evidence_zip

    try:
        phone = to_e164(request.args.get("number"))
    except InvalidPhoneNumber as exc:
        abort(400, description=str(exc))
    buffer = io.BytesIO()
    summary = write_evidence_zip(_engine(), phone, buffer, verify_chain=False)
    with transaction() as session:
        log_action(session, "evidence.download", mask(phone), events=summary.consent_events)
    buffer.seek(0)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return send_file(buffer, mimetype="application/zip", as_attachment=True,
                     download_name=f"evidence-{phone.lstrip('+')}-{stamp}.zip")  # fmt: skip


@bp.get("/verify")
@requires("compliance")
def verify_page() -> str:
    """The chain's head (cheap); the full verification runs when asked (seconds/million)."""
    from sms_service.services.consent_chain import head

    with transaction() as session:
        current = head(session)
    return render_template("console/verify.html", head=current, verdict=None)


@bp.post("/verify")
@requires("compliance")
def verify_run() -> str:
    """Walk the whole chain now and show the verdict."""
    from sms_service.services.consent_chain import head, verify

    verdict = verify(_engine(), grace=_grace())
    with transaction() as session:
        log_action(session, "chain.verify", None, ok=verdict.ok, count=verdict.count)
        current = head(session)
    return render_template("console/verify.html", head=current, verdict=verdict)


@bp.get("/verify/checkpoint.json")
@requires("compliance")
def checkpoint() -> Response:
    """Seal what is pending and download the head, to keep outside the database."""
    from sms_service.services.consent_chain import head, seal_all

    seal_all(_engine(), grace=_grace())
    with transaction() as session:
        text = head(session).to_json()
        log_action(session, "chain.checkpoint", None)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    disposition = f'attachment; filename="consent-checkpoint-{stamp}.json"'
    return Response(
        text + "\n", mimetype="application/json", headers={"Content-Disposition": disposition}
    )


@bp.route("/opt-outs", methods=["GET", "POST"])
@requires("compliance")
def staff_opt_out():
    """Record an opt-out a supporter asked for by phone, email, in person or on the web;
    the one confirmation text goes out after the commit."""
    from sms_service.services.consent import CHANNELS, record_opt_out

    if request.method == "GET":
        return render_template("console/opt_out.html", channels=CHANNELS)
    try:
        phone = to_e164(request.form.get("phone"))
        with transaction() as session:
            recorded = record_opt_out(
                session=session, settings=settings(), phone=phone, by=current_user.email,
                channel=request.form.get("channel", ""), note=request.form.get("note") or None,
            )  # fmt: skip
            log_action(session, "optout.record", mask(phone), channel=request.form.get("channel"))
            confirmation = recorded.confirmation.id if recorded.confirmation else None
    except (InvalidPhoneNumber, BadRequest) as exc:
        flash(str(exc), "error")
        return redirect(url_for(".staff_opt_out"))
    if confirmation is not None:
        enqueue_message(confirmation)
        flash(f"{mask(phone)} opted out; the confirmation text is on its way.", "ok")
    else:
        flash(f"{mask(phone)} was already opted out; nothing is sent.", "ok")
    return redirect(url_for(".staff_opt_out"))


@bp.get("/imports")
@requires("compliance")
def imports_page() -> str:
    """Upload a subscriber list (opt-ins with their proof) or a suppression list."""
    return render_template("console/imports.html")


@bp.post("/imports")
@requires("compliance")
def import_upload():
    """Save the upload and start the import job; then follow it."""
    from rq import Queue

    from workers import QUEUE_DEFAULT
    from workers.imports import run_import

    kind = request.form.get("kind")
    upload = request.files.get("file")
    if kind not in ("subscribers", "suppression") or upload is None or not upload.filename:
        flash("choose a list kind and a file", "error")
        return redirect(url_for(".imports_page"))
    options = {"program": settings().program_name}
    if kind == "subscribers":
        options["consent_source"] = (request.form.get("consent_source") or "").strip()
        options["tag"] = (request.form.get("tag") or "").strip() or None
        if not options["consent_source"]:
            flash("say where the consent was collected", "error")
            return redirect(url_for(".imports_page"))
    else:
        options["list_name"] = upload.filename[:100]
    UPLOADS.mkdir(mode=0o700, exist_ok=True)
    path = UPLOADS / f"{uuid.uuid4().hex}.csv"
    upload.save(path)
    if path.stat().st_size > MAX_UPLOAD:
        path.unlink()
        flash(f"the file is larger than {MAX_UPLOAD // 2**20} MB", "error")
        return redirect(url_for(".imports_page"))
    job = Queue(QUEUE_DEFAULT, connection=connection()).enqueue(
        run_import, kind, str(path), options, job_timeout=3600,
        description=f"import {kind} list",
    )  # fmt: skip
    with transaction() as session:
        log_action(session, f"import.{kind}", upload.filename[:200], job=job.id)
    return redirect(url_for(".import_status", job_id=job.id))


@bp.get("/imports/<job_id>")
@requires("compliance")
def import_status(job_id: str) -> str:
    """The import's progress bar and, once done, its report with the rejected lines."""
    return render_template("console/import.html", job_id=job_id, state=_import_state(job_id))


@bp.get("/imports/<job_id>.json")
@requires("compliance")
def import_json(job_id: str) -> Response:
    """The same, for the page's live refresh."""
    return jsonify(_import_state(job_id))


# What RQ accepts as a job id, and the function every import job runs.
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_IMPORT_JOB = "workers.imports.run_import"


def _import_state(job_id: str) -> dict:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    if not _JOB_ID.fullmatch(job_id):  # RQ refuses other ids with a ValueError
        abort(404)
    try:
        job = Job.fetch(job_id, connection=connection())
    except NoSuchJobError:
        abort(404)
    if job.func_name != _IMPORT_JOB:  # another kind of job's id: not an import's page
        abort(404)
    status = job.get_status()
    meta = job.get_meta() if hasattr(job, "get_meta") else job.meta
    state = str(status.value if hasattr(status, "value") else status)
    report = job.return_value() if state == "finished" else None
    # A traceback can quote what a file held: staff get a pointer, the worker log the detail.
    error = ["The import stopped; the worker's log says why. Run it again to finish it."]
    error = error if state == "failed" else None
    return dict(
        status=state, done=int(meta.get("done", 0)), total=int(meta.get("total") or 0),
        report=report, error=error,
    )  # fmt: skip
