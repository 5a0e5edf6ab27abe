"""Every limit of a request counted in one round trip (sms_service.web.limits), on real Redis
and on the development memory storage; the petition page and the API sharing the signer's
counts; 429 with Retry-After."""

from __future__ import annotations

import pytest

from sms_service.web.limits import RequestLimits, windows
from sms_service.web.security import LIMITER_KEY_PREFIX
from tests.factories import api_token, make_petition_app, sign_petition
from tests.redis_db import redis_url

SIGN = "/api/v1/campaigns/HK64/signatures"


@pytest.fixture(params=["redis", "memory"])
def counter(request, redis_connection) -> RequestLimits:
    uri = redis_url() if request.param == "redis" else "memory://"
    return RequestLimits(uri, prefix="t")


def test_a_limit_text_is_read_as_flask_limiter_reads_it():
    assert windows("30 per minute;500 per hour") == ((30, 60), (500, 3600))
    assert windows("5/hour") == ((5, 3600),)


def test_every_window_is_counted_and_the_first_one_over_refuses(counter):
    limits = [("2 per minute;3 per hour", "ip:192.0.2.1"), ("1 per hour", "number:abc")]
    assert counter.hit(limits) is None
    # The number's window is full: refused for up to an hour.
    assert 3500 < counter.hit(limits) <= 3600
    # Other keys are counted apart.
    assert counter.hit([("2 per minute", "ip:192.0.2.2")]) is None
    # The address's minute is now full (two hits): refused before the number is counted.
    assert 0 < counter.hit([("2 per minute;3 per hour", "ip:192.0.2.1")]) <= 60


def test_a_changed_setting_starts_new_counts(counter):
    assert counter.hit([("1 per hour", "number:abc")]) is None
    assert counter.hit([("1 per hour", "number:abc")]) is not None
    assert counter.hit([("2 per hour", "number:abc")]) is None


def test_no_limits_costs_nothing(counter):
    assert counter.hit([]) is None


def test_redis_counts_in_one_script_call_with_keys_that_expire(redis_connection):
    counter = RequestLimits(redis_url(), prefix="t")
    counter.hit([("30 per minute;500 per hour", "ip:192.0.2.1"), ("5 per hour", "number:abc")])
    keys = sorted(k.decode() for k in redis_connection.keys("t:*"))
    assert keys == ["t:ip:192.0.2.1:30/60", "t:ip:192.0.2.1:500/3600", "t:number:abc:5/3600"]
    assert 3590 < redis_connection.ttl("t:number:abc:5/3600") <= 3600
    assert redis_connection.get("t:ip:192.0.2.1:30/60") == b"1"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_page_and_api_share_the_number_and_address_counts(database_url, redis_connection):
    app = make_petition_app(
        database_url, redis_connection, ratelimit_storage_url=redis_url(),
        petition_rate_limit_number="2 per hour", petition_rate_limit_ip="2 per minute",
    )  # fmt: skip
    client = app.test_client()
    headers = api_token(app)
    assert (
        sign_petition(client, name="Ada", phone="+12025550123", ip="192.0.2.1").status_code == 303
    )
    signed = client.post(SIGN, json={"name": "Ada", "phone": "2025550123"}, headers=headers)
    assert signed.status_code == 200  # the same supporter: a repeat, counted once
    refused = client.post(SIGN, json={"name": "Ada", "phone": "(202) 555-0123"}, headers=headers)
    assert refused.status_code == 429 and refused.get_json()["message"].startswith("too many")
    assert 3500 < int(refused.headers["Retry-After"]) <= 3600
    # The address counted once on the page and once through the API: its 2 per minute are used.
    body = {"name": "Bob", "client_ip": "192.0.2.1"}
    assert client.post(SIGN, json=body, headers=headers).status_code == 201
    limited = sign_petition(client, name="Cy", ip="192.0.2.1")
    assert limited.status_code == 429 and "Too many attempts" in limited.get_data(as_text=True)
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Counted by the one script only: flask-limiter kept no counts for these routes, and no
    # number is stored in clear.
    keys = [k.decode() for k in redis_connection.keys("*")]
    limit_keys = [k for k in keys if "limit" in k.lower()]
    assert limit_keys and all(k.startswith(f"{LIMITER_KEY_PREFIX}:") for k in limit_keys)
    assert not [k for k in keys if "2025550123" in k]
    app.extensions["sms_engine"].dispose()
