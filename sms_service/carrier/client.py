"""Building the ``twilio.rest.Client`` the service sends with.

With ``TWILIO_API_BASE_URL`` set (the carrier simulator in development, tests and
benchmarks), every request the official client makes is sent to that base URL instead of
``https://api.twilio.com``: only the scheme and host change, path and query are kept. The
rewrite happens in the HTTP client, the last step before the wire, because the client picks
the final host late (``TWILIO_REGION``/``TWILIO_EDGE`` turn ``api.twilio.com`` into
``api.dublin.ie1.twilio.com``), so ``client.api.base_url`` alone would not catch it.

One client per thread: twilio 9.13's ``TwilioHttpClient`` keeps the last request and
response on the instance, so two threads sharing a client can read each other's answer.
:func:`make_twilio_client` is cheap; call it once in each thread (``workers.context`` keeps
one per thread) and :func:`close_twilio_client` when the thread is done.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from config import Settings

# Shorter than the sender's lease on a message in flight (two minutes), so a hung call
# ends before another attempt may presume it lost.
DEFAULT_TIMEOUT = 30.0
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def rewrite_url(url: str, base_url: str) -> str:
    """``url`` with its scheme and host taken from ``base_url``; path and query kept.

    A path in ``base_url`` (``http://proxy/twilio``) is put in front of the request path.
    """
    target = urlsplit(base_url)
    if not target.scheme or not target.netloc:
        raise ValueError(f"base URL needs a scheme and host: {base_url!r}")
    original = urlsplit(url)
    path = target.path.rstrip("/") + original.path
    return urlunsplit((target.scheme, target.netloc, path, original.query, original.fragment))


class RedirectingHttpClient(TwilioHttpClient):
    """A ``TwilioHttpClient`` that sends every request to ``base_url`` (keep-alive kept)."""

    def __init__(self, base_url: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        rewrite_url("https://api.twilio.com/", base_url)  # refuse a bad base URL up front
        self.base_url = base_url

    def request(self, method: str, url: str, *args, **kwargs) -> Response:
        """Send the request to the base URL instead of Twilio's host."""
        return super().request(method, rewrite_url(url, self.base_url), *args, **kwargs)


def make_twilio_client(settings: Settings, *, timeout: float | None = DEFAULT_TIMEOUT) -> Client:
    """A Twilio client for ``settings``: the real API, or ``twilio_api_base_url`` when set.

    ``timeout`` (seconds, per request) defaults to :data:`DEFAULT_TIMEOUT`; None waits
    forever. Not thread-safe: make one per thread.
    """
    if settings.twilio_api_base_url:
        http_client: TwilioHttpClient = RedirectingHttpClient(
            settings.twilio_api_base_url, timeout=timeout
        )
    else:
        http_client = TwilioHttpClient(pool_connections=True, timeout=timeout)
    read_environment_once(http_client)
    return Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http_client)


def read_environment_once(
    http_client: TwilioHttpClient, environ: Mapping[str, str] = os.environ
) -> None:
    """Stop ``requests`` from reading the environment on every call, when that changes
    nothing: about a sixth of the CPU an API call costs, with a large environment.

    ``requests`` looks up proxy variables and CA bundles for each request. With no proxy
    variable set, the only setting it can find is a CA bundle, which is read here once.
    With a proxy configured the session is left as it is (``no_proxy`` rules stay exact).
    """
    names = {name.lower() for name in environ}
    if any(name in names for name in PROXY_VARIABLES):
        return
    session = http_client.session
    session.trust_env = False
    bundle = environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle


def close_twilio_client(client: Client) -> None:
    """Close the keep-alive connections of a client from :func:`make_twilio_client`."""
    session = getattr(client.http_client, "session", None)
    if session is not None:
        session.close()
