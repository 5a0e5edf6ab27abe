"""``POST /sms/inbound`` served in front of Flask: the webhook a call-to-action burst hits.

Flask's work around a view (a request context, the session cookie opened and saved, the
limiter's and CSRF's hooks, the form parsed through werkzeug's general parser, the response
object and its hooks) cost about as much CPU per text as the text's own decision and
transaction together. This WSGI layer sits between the server and Flask and answers the
common case itself: a signed, well-formed ``application/x-www-form-urlencoded`` POST to
exactly ``/sms/inbound``. It reads the same fields (the form parsed as werkzeug parses it),
checks the same signature (:func:`sms_service.web.signature.signature_matches`), decides and
commits through the same :func:`sms_service.web.views.sms.answer`, and answers with the same
status, body and headers as the Flask view (the security headers included).

Everything else goes to Flask unchanged, which then answers as it always has: any other
path or method, a missing or bad signature (403, logged), a form that cannot be stored
(400), a body over MAX_CONTENT_LENGTH (413), no Content-Length (chunked), a body that is not
UTF-8 or shorter than announced. A body already read is handed on as it was read. Nothing
is written before the lane is sure it answers: a request passed on has changed nothing.

ProxyFix (TRUSTED_PROXIES), when configured, stays outermost, so the lane sees the same
client address, scheme and host as Flask.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl

from flask import Flask
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wsgi import get_current_url

from sms_service.web.security import response_headers
from sms_service.web.signature import fixed_url, signature_matches
from sms_service.web.views.sms import TWIML_TYPE, answer

log = logging.getLogger(__name__)

PATH = "/sms/inbound"
FORM_TYPE = "application/x-www-form-urlencoded"

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class _Form(ImmutableMultiDict):
    """The form as werkzeug builds it, answering ``getall`` too: Twilio's validator asks for
    that first, and learns otherwise from an AttributeError per field."""

    getall = ImmutableMultiDict.getlist


class InboundLane:
    """WSGI middleware: answers signed inbound texts itself, passes the rest to ``flask``."""

    def __init__(self, app: Flask, flask: WSGIApp) -> None:
        settings = app.config["SETTINGS"]
        self.flask = flask
        self.auth_token = settings.twilio_auth_token
        self.public_base_url = settings.public_base_url
        self.max_length = app.config["MAX_CONTENT_LENGTH"]
        self.app = app
        # What Flask's after_request hooks add to every answer (security.response_headers).
        self.extra_headers = list(response_headers(settings).items())

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") != PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("SCRIPT_NAME")
        ):
            return self.flask(environ, start_response)
        body = self._body(environ)
        if body is None:
            return self.flask(environ, start_response)
        form = self._form(environ, body)
        if form is None:
            return self._pass_on(environ, start_response, body)
        try:
            document = answer(form, self.app.extensions)
        except HTTPException:  # a form that cannot be stored: Flask says why (400)
            return self._pass_on(environ, start_response, body)
        except Exception:
            # As Flask does for an error in a view: raised in testing and debugging, else
            # logged with its traceback (numbers masked by the log record factory) and
            # answered 500. Nothing was committed: ``answer`` commits last.
            propagate = self.app.config.get("PROPAGATE_EXCEPTIONS")
            if propagate or (propagate is None and (self.app.testing or self.app.debug)):
                raise
            log.error("Exception on %s [POST]", PATH, exc_info=sys.exc_info())
            return self._error(environ, start_response)
        start_response(
            "200 OK",
            [("Content-Type", TWIML_TYPE), ("Content-Length", str(len(document))),
             *self.extra_headers],
        )  # fmt: skip
        return [document]

    def _body(self, environ: dict) -> bytes | None:
        """The posted form's bytes, whole; None when Flask should have the request (not a
        form; no, a bad or a too-large Content-Length; a body shorter than announced, which
        Flask then reads as it was read here: the client went away, werkzeug answers 400)."""
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type.partition(";")[0].strip().lower() != FORM_TYPE:
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if length < 0 or (self.max_length is not None and length > self.max_length):
            return None
        body = environ["wsgi.input"].read(length)
        if len(body) != length:
            environ["wsgi.input"] = io.BytesIO(body)
            return None
        return body

    def _form(self, environ: dict, body: bytes) -> ImmutableMultiDict | None:
        """The form, when the body is UTF-8 and signed by Twilio; else None."""
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return None
        # Exactly as werkzeug parses a urlencoded form (werkzeug.formparser).
        form = _Form(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))
        if self.public_base_url:
            url = fixed_url(self.public_base_url, PATH, environ.get("QUERY_STRING", ""))
        else:
            url = get_current_url(environ)
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
        if not signature_matches(signature, url, form, self.auth_token):
            return None
        return form

    def _pass_on(self, environ: dict, start_response: Callable, body: bytes) -> Iterable[bytes]:
        environ["wsgi.input"] = io.BytesIO(body)
        return self.flask(environ, start_response)

    def _error(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        response = InternalServerError().get_response(environ)
        for name, value in self.extra_headers:
            response.headers.setdefault(name, value)
        return response(environ, start_response)
