"""What Twilio's answers look like: sids, dates, error bodies and the Message resource.

Facts taken from Twilio's public API reference: sids are a two-letter prefix and 32 hex
digits; dates are RFC 2822 in GMT (``Thu, 30 Jul 2015 20:12:31 +0000``); an error body is
``{"code", "message", "more_info", "status"}``, which the official client turns into a
``TwilioRestException`` with ``.code`` and ``.status``.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from random import Random

from aiohttp import web

from sms_service.carrier.twiml import API_VERSION

# code → (HTTP status, message). The messages follow Twilio's error titles.
ERRORS: dict[int, tuple[int, str]] = {
    20001: (400, "Invalid parameter"),
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    21211: (400, "The 'To' number is not a valid phone number."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number or a 'MessagingServiceSid' is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}

# Delivery errors reported on the message and in status callbacks.
DELIVERY_ERRORS: dict[int, str] = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}


def basic_authorization(account_sid: str, auth_token: str) -> str:
    """The ``Authorization`` header the official client sends for these credentials."""
    pair = f"{account_sid}:{auth_token}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def new_sid(prefix: str, rng: Random) -> str:
    """A sid such as ``SM`` + 32 lowercase hex digits (reproducible with a seeded ``rng``)."""
    return f"{prefix}{rng.getrandbits(128):032x}"


def rfc2822(timestamp: float | None) -> str | None:
    """A Unix time as Twilio writes dates, or None."""
    if timestamp is None:
        return None
    return _rfc2822_second(int(timestamp))


@lru_cache(maxsize=8)
def _rfc2822_second(second: int) -> str:
    # Dates have whole seconds, and a busy simulator formats the same few over and over.
    return format_datetime(datetime.fromtimestamp(second, UTC))


def error_response(code: int, message: str | None = None, **headers: str) -> web.Response:
    """Twilio's JSON error body with the HTTP status that goes with ``code``."""
    status, default = ERRORS[code]
    payload = {
        "code": code,
        "message": message or default,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.Response(
        text=json.dumps(payload), status=status, content_type="application/json", headers=headers
    )


_JSON = {"Content-Type": "application/json"}


def json_response(payload: object, status: int = 200) -> web.Response:
    """A JSON body (``json.dumps`` directly: cheaper than aiohttp's helper on the hot path)."""
    return web.Response(body=json.dumps(payload).encode(), status=status, headers=_JSON)


def messages_uri(account_sid: str) -> str:
    """The path of an account's Messages list."""
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"


def message_uri(account_sid: str, sid: str) -> str:
    """The path of one Message resource."""
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
