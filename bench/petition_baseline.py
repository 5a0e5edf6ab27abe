"""The baseline for ``petition_rate.py``: a bare Flask app with the page's routes, that
reads the form's fields and redirects as the real one does, storing nothing. Served by the
same gunicorn command (``gunicorn petition_baseline:app`` from bench/)."""

from __future__ import annotations

from flask import Flask, redirect, request

app = Flask(__name__)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/p/<keyword>")
def page(keyword: str) -> str:
    return f'<form method="post"><input name="csrf_token" value="none"></form>{keyword}'


@app.post("/p/<keyword>")
def submit(keyword: str):
    fields = {k: request.form.get(k, "") for k in ("name", "email", "phone", "sms_consent")}
    if not fields["name"]:
        return "name missing", 422
    return redirect(f"/p/{keyword}/thanks", 303)
