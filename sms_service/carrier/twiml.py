"""What Twilio's messaging webhooks carry: the form posted for an incoming text, and the
TwiML answered to it. Pure data, no web framework: the phone page, the carrier simulator
and the tests all build and read them here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import phonenumbers

from sms_service.domain.segments import count_segments

API_VERSION = "2010-04-01"


def _country(number: str) -> str:
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return "US"  # a short code: ours are US ones
    return region or "US"


def inbound_form(*, sid: str, account_sid: str, from_: str, to: str, body: str) -> dict[str, str]:
    """The form fields Twilio posts to the incoming-message webhook for one text."""
    return {
        "ToCountry": _country(to),
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": _country(from_),
        "To": to,
        "ToZip": "",
        "NumSegments": str(max(1, count_segments(body).segments)),
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": API_VERSION,
    }


def twiml_replies(document: str | bytes) -> list[str]:
    """The bodies of the ``<Message>`` verbs in a TwiML ``<Response>`` ([] for none).

    Raises ``ValueError`` when the document is not TwiML.
    """
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from exc
    if root.tag != "Response":
        raise ValueError(f"root element is <{root.tag}>, not <Response>")
    replies = []
    for message in root.iter("Message"):
        body = message.find("Body")
        text = body.text if body is not None else message.text
        replies.append((text or "").strip())
    return replies
