"""The baseline for ``bench/inbound_rate.py``: a bare Flask app that reads the inbound form
and answers a fixed TwiML reply, with no signature check, database or logging. It is served
by the same Procfile line (gunicorn, same settings), so the ratio shows what the service's
own work costs."""

from __future__ import annotations

from flask import Flask, Response, request

REPLY = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Rights Alerts: Thanks for '
    "joining! Up to 4 msgs/mo. Msg &amp; data rates may apply. Reply HELP for help, STOP to "
    "cancel.</Message></Response>"
)

app = Flask(__name__)


@app.post("/sms/inbound")
def inbound() -> Response:
    """Parse the form as the service does, answer the same shape of reply."""
    if not request.form.get("MessageSid"):
        return Response("MessageSid is missing", status=400)
    return Response(REPLY, mimetype="application/xml")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
