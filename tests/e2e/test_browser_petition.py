"""The public petition page in Chromium against ``sms-service dev`` (web, in-process worker,
carrier simulator): signing without a number; signing with one, the confirmation text at
the simulator, YES through the simulator, the web opt-in in the consent export; the abuse
limits; the API with and without a token. Screenshots land in .screenshots/petition-*."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.factories import wait_for

BIN = Path(sys.executable).parent
SHOTS = Path(__file__).resolve().parent.parent.parent / ".screenshots"
PHONE_SIZE = {"width": 390, "height": 844}


@pytest.fixture
def dev_env() -> dict[str, str]:
    # Low enough to reach in a test, high enough for the other flows here.
    return {"PETITION_RATE_LIMIT_NUMBER": "3 per hour", "PROGRAM_PRIVACY_URL": "https://rights.example/privacy",
            "PROGRAM_TERMS_URL": "https://rights.example/sms-terms"}  # fmt: skip


def shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"petition-{name}.png"), full_page=True)


def sim_texts(server: dict, phone: str) -> list[dict]:
    reply = requests.get(f"{server['sim']}/sim/messages", params={"to": phone}, timeout=5)
    return reply.json()["messages"]


def cli(server: dict, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "sms-service"), *args], cwd=server["cwd"], env=server["env"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def fill_form(page, *, name: str, phone: str = "", email: str = "", consent: bool = False) -> None:
    page.fill("#name", name)
    if email:
        page.fill("#email", email)
    if phone:
        page.fill("#phone", phone)
    if consent:
        page.check("#sms_consent")
    page.click("button[type=submit]")


def test_sign_without_a_number(dev_server, browser):
    context = browser.new_context(viewport=PHONE_SIZE, java_script_enabled=False)
    page = context.new_page()
    page.goto(dev_server["web"] + "/p/HK64")
    assert "Release the 64" in page.inner_text("h1")
    assert not page.is_checked("#sms_consent")
    box = page.locator("#website").bounding_box()
    assert box["x"] + box["width"] < 0  # the honeypot is off-screen: not for people
    # The disclosure sits beside the number field and names everything CTIA asks for.
    disclosure = page.inner_text("#disclosure")
    for part in ("Rights Alerts", "21333", "msgs/mo", "Msg & data rates may apply", "HELP", "STOP"):
        assert part in disclosure
    assert page.get_attribute("#phone", "aria-describedby").startswith("disclosure")
    shot(page, "page-phone-size")
    fill_form(page, name="Ada Lovelace", email="ada@example.org")
    assert "Thank you for signing" in page.inner_text("h1")
    assert "1 signature" in page.inner_text(".thanks")
    shot(page, "thanks-no-number")
    context.close()


def test_sign_with_a_number_and_confirm_by_text(dev_server, page):
    phone = "+12025550177"
    page.goto(dev_server["web"] + "/p/HK64")
    shot(page, "page-desktop")
    fill_form(page, name="Grace Hopper", phone="(202) 555-0177", consent=True)
    assert "Reply YES" in page.inner_text(".thanks")
    shot(page, "thanks-queued")

    [text] = wait_for(lambda: sim_texts(dev_server, phone), timeout=20, what="confirmation text")
    assert "Reply YES" in text["body"] and "STOP to cancel" in text["body"]
    answer = requests.post(
        f"{dev_server['sim']}/sim/inbound", json={"from": phone, "body": "YES"}, timeout=10
    )
    assert answer.status_code == 200 and answer.json()["webhook_status"] == 200

    page.goto(dev_server["web"] + "/phone?number=%2B12025550177")
    assert page.inner_text("#status") == "subscribed"
    shot(page, "phone-confirmed")

    rows = list(csv.DictReader(io.StringIO(cli(dev_server, "export", "consent", "--phone", phone))))
    opt_ins = [r for r in rows if r["event"] == "opt_in"]
    assert len(opt_ins) == 1 and opt_ins[0]["source"] == "web"
    assert "Consent is not a condition of signing" in opt_ins[0]["disclosure"]
    assert text["body"] in opt_ins[0]["note"]


def test_abuse_limits(dev_server, page):
    web = dev_server["web"]
    # An opted-out number is never texted from the form.
    stopped = "+12025550188"
    requests.post(
        f"{dev_server['sim']}/sim/inbound", json={"from": stopped, "body": "STOP"}, timeout=10
    )
    page.goto(web + "/p/HK64")
    fill_form(page, name="Someone", phone=stopped, consent=True)
    assert "asked us to stop texting" in page.inner_text(".thanks")
    # A bad number and a number the short code cannot reach are explained beside the field.
    page.goto(web + "/p/HK64")
    fill_form(page, name="Bob", phone="555", consent=True)
    assert "not a phone number" in page.inner_text("#phone-error")
    shot(page, "bad-number")
    fill_form(page, name="Bob", phone="+44 7911 123456", consent=True)
    assert "reach only numbers in" in page.inner_text("#phone-error")
    # One confirmation per number per day, then the per-number limit (3 per hour here).
    number = "+12025550166"
    outcomes = []
    for attempt in range(4):
        page.goto(web + "/p/HK64")
        fill_form(page, name=f"Visitor {attempt}", phone=number, consent=True)
        outcomes.append(page.inner_text("main"))
    assert "Reply YES" in outcomes[0]
    assert "texted this number recently" in outcomes[1]
    assert "Too many attempts" in outcomes[3]
    shot(page, "limited")
    wait_for(lambda: sim_texts(dev_server, number), timeout=20, what="the one confirmation")
    assert len(sim_texts(dev_server, number)) == 1
    # The worker sends in order: by now a text to the opted-out number would have gone too.
    assert not [m for m in sim_texts(dev_server, stopped) if "Reply YES" in m["body"]]


def test_api_with_and_without_a_token(dev_server):
    url = dev_server["web"] + "/api/v1/campaigns/HK64/signatures"
    body = {"name": "Site visitor", "email": "visitor@example.org"}
    refused = requests.post(url, json=body, timeout=10)
    assert refused.status_code == 401 and refused.json()["message"]
    secret = cli(dev_server, "api-token", "create", "--name", "site", "--scope", "signatures:write")
    token = secret.splitlines()[1]
    signed = requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert signed.status_code == 201 and signed.json()["counted"] is True
    doc = requests.get(dev_server["web"] + "/api/openapi.json", timeout=10).json()
    assert "/api/v1/campaigns/{keyword}/signatures" in doc["paths"]
