"""The console in Chromium against ``sms-service dev`` (web app, RQ worker on a real Redis,
the carrier simulator): sign in as each role, create a campaign, compose, forecast,
schedule and watch a broadcast reach the phones, cancel one, decide a review."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import running_dev
from tests.redis_db import redis_url

BIN = Path(sys.executable).parent
SCREENS = Path(__file__).resolve().parents[2] / ".screenshots"
PASSWORD = "correct horse battery staple"
SUPPORTERS = ("+12025550101", "+12025550102", "+12025550103")


def shot(name: str) -> str:
    """Where a test keeps its screenshot of a page (``.screenshots/``, not committed)."""
    SCREENS.mkdir(exist_ok=True)
    return str(SCREENS / f"console-{name}.png")


def sim_text(sim: str, from_: str, body: str) -> dict:
    request = urllib.request.Request(
        sim + "/sim/inbound", data=json.dumps({"from": from_, "body": body}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def sim_messages(sim: str, to: str) -> list[dict]:
    with urllib.request.urlopen(f"{sim}/sim/messages?to={to.replace('+', '%2B')}") as response:
        data = json.load(response)
    return data["messages"] if isinstance(data, dict) else data


@pytest.fixture
def console(tmp_path, redis_connection):
    """The dev server on this run's Redis, with one account per role."""
    with running_dev(tmp_path, REDIS_URL=redis_url()) as server:
        log = server["log"].read_text()
        admin, password = re.search(r"console login\s+(\S+)\s+password (\S+)", log).groups()
        server["admin"] = (admin, password)
        for role in ("organiser", "compliance"):
            subprocess.run(
                [str(BIN / "sms-service"), "user", "create", f"{role}@rights.example",
                 "--role", role, "--password-stdin"],
                input=PASSWORD + "\n", text=True, check=True, cwd=server["cwd"],
                env=server["env"], capture_output=True,
            )  # fmt: skip
        yield server


def sign_in(page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(base + "/console/")
    assert "/login" in page.url  # anonymous → the sign-in form
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/console/$"))


def nav(page) -> list[str]:
    return [a.inner_text() for a in page.query_selector_all(".nav a")]


def test_each_role_signs_in_and_sees_only_its_pages(console, page):
    base = console["web"]
    for number in SUPPORTERS:
        sim_text(console["sim"], number, "JOIN")
    sim_text(console["sim"], SUPPORTERS[2], "STOP")
    sign_in(page, base, *console["admin"])
    assert {"Users", "Queues", "Audit log", "Look-up"} <= set(nav(page))
    page.goto(base + "/console/queues")
    assert page.locator("h1").inner_text() == "Queues and workers"
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/login"))

    sign_in(page, base, "organiser@rights.example")
    assert "Broadcasts" in nav(page) and "Look-up" not in nav(page) and "Users" not in nav(page)
    assert page.goto(base + "/console/lookup").status == 403
    page.click("text=Sign out")

    sign_in(page, base, "compliance@rights.example")
    assert {"Look-up", "Reviews", "Exports", "Audit log"} <= set(nav(page))
    assert "Users" not in nav(page)
    assert page.goto(base + "/console/users").status == 403
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto(base + "/console/")
    assert page.inner_text("#subscribed") == "2"
    assert "opt-ins (3)" in page.inner_text(".legend")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=shot("phone-dashboard"), full_page=True)
    for path in (
        "/console/reviews",
        "/console/lookup?number=%2B12025550101",
        "/console/exports",
        "/console/broadcasts/",
        "/console/audit",
    ):  # wide tables scroll inside
        page.goto(base + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    page.screenshot(path=shot("phone-audit"), full_page=True)


def test_organiser_runs_a_broadcast_from_campaign_to_delivered(console, page):
    base, sim = console["web"], console["sim"]
    for number in SUPPORTERS:
        sim_text(sim, number, "JOIN")
    sign_in(page, base, "organiser@rights.example")

    page.goto(base + "/console/campaigns/")
    page.fill("#new-campaign input[name=keyword]", "CLIMATE")
    page.fill("#new-campaign input[name=title]", "Climate justice now")
    page.fill("#new-campaign textarea[name=text]", "We call on the minister to act.")
    page.click("#new-campaign button[type=submit]")
    page.wait_for_selector("text=Campaign CLIMATE created.")
    sim_text(sim, SUPPORTERS[0], "CLIMATE")
    page.reload()
    assert page.inner_text("#signature-count") == "1"

    page.goto(base + "/console/broadcasts/new")
    page.fill("#body", "Thanks for standing with us \u2019 today")
    expect(page.locator("#gsm-warning")).to_be_visible()
    expect(page.locator("#gsm-warning")).to_contain_text("\u2019")
    expect(page.locator("#f-audience")).to_have_text("3")
    page.screenshot(path=shot("composer"), full_page=True)
    page.click("#apply-gsm")
    expect(page.locator("#gsm-warning")).to_be_hidden()
    expect(page.locator("#counter")).to_contain_text("GSM-7")
    expect(page.locator("#f-audience")).to_have_text("3")
    assert page.inner_text("#f-capped").startswith("0")
    assert page.inner_text("#f-cost").startswith("$")
    page.click("#schedule")
    page.wait_for_url(re.compile(r"/console/broadcasts/\d+$"))
    expect(page.locator("#p-sent")).to_have_text("3", timeout=45_000)
    expect(page.locator("#p-status")).to_have_text("sent", timeout=30_000)
    for number in SUPPORTERS:
        bodies = [m["body"] for m in sim_messages(sim, number)]
        assert bodies.count("Thanks for standing with us ' today") == 1
    final = page.evaluate("fetch(location.pathname + '/progress.json').then(r => r.json())")
    assert final["run"]["counts"]["sent"] == int(page.inner_text("#p-sent")) == 3
    page.screenshot(path=shot("progress"), full_page=True)


def test_organiser_cancels_a_scheduled_broadcast_and_a_past_time_is_refused(console, page):
    base, sim = console["web"], console["sim"]
    sim_text(sim, SUPPORTERS[1], "JOIN")
    sign_in(page, base, "organiser@rights.example")
    page.goto(base + "/console/broadcasts/new")
    page.fill("#body", "Not yet")
    page.fill("#send_at", "2020-01-01T09:00")
    page.click("#schedule")
    page.wait_for_selector("text=is in the past")
    page.fill("#body", "Tomorrow's rally is moved")
    page.fill("#send_at", "2099-01-01T09:00")
    page.click("#schedule")
    page.wait_for_url(re.compile(r"/console/broadcasts/\d+$"))
    assert page.inner_text("#p-status") == "scheduled"
    page.click("#cancel")
    page.wait_for_selector("text=cancelled;")
    assert page.inner_text("#p-status") == "cancelled"
    assert not [m for m in sim_messages(sim, SUPPORTERS[1]) if "rally" in m["body"]]


def test_organiser_edits_a_saved_draft_and_schedules_it(console, page):
    base, sim = console["web"], console["sim"]
    for number in SUPPORTERS[:2]:
        sim_text(sim, number, "JOIN")
    sign_in(page, base, "organiser@rights.example")
    page.goto(base + "/console/broadcasts/new")
    page.fill("#body", "Rally draft")
    page.fill("#send_at", "2099-01-01T09:00")
    page.click("#save-draft")
    page.wait_for_url(re.compile(r"/console/broadcasts/\d+$"))
    assert page.inner_text("#p-status") == "draft"
    draft_url = page.url
    page.click("#edit")
    page.wait_for_url(re.compile(r"/edit$"))
    assert page.input_value("#body") == "Rally draft"
    assert page.input_value("#send_at") == "2099-01-01T09:00"
    expect(page.locator("#f-audience")).to_have_text("2")  # the live forecast works here too
    page.fill("#body", "Rally moved to Sunday")
    page.select_option("select[name=recurrence]", "weekly")
    page.click("#save-draft")
    page.wait_for_selector("text=saved.")
    assert page.url == draft_url and "Rally moved to Sunday" in page.inner_text(".card")
    assert "weekly" in page.inner_text("#progress")
    page.click("#edit")
    assert page.input_value("#body") == "Rally moved to Sunday"
    page.click("#schedule")
    page.wait_for_url(draft_url)
    assert page.inner_text("#p-status") == "scheduled"
    assert page.locator("#edit").count() == 0
    page.screenshot(path=shot("draft-scheduled"), full_page=True)


def test_a_user_changes_their_own_password_on_the_profile_page(console, page, browser):
    base = console["web"]
    other = browser.new_context().new_page()  # the same account in another browser
    sign_in(other, base, "compliance@rights.example")
    sign_in(page, base, "compliance@rights.example")
    page.click("#profile-link")
    page.wait_for_url(re.compile(r"/console/profile$"))
    assert "compliance@rights.example" in page.inner_text("#account")
    page.fill("input[name=current_password]", "not the password at all")
    page.fill("input[name=new_password]", "a new and longer passphrase")
    page.fill("input[name=confirm_password]", "a new and longer passphrase")
    page.click("#change-password")
    expect(page.locator("#password-error")).to_contain_text("current password is not right")
    page.fill("input[name=current_password]", PASSWORD)
    page.fill("input[name=new_password]", "a new and longer passphrase")
    page.fill("input[name=confirm_password]", "a new and longer passphrase")
    page.click("#change-password")
    page.wait_for_selector("text=Password changed.")
    page.screenshot(path=shot("profile"), full_page=True)
    other.goto(base + "/console/")
    assert "/login" in other.url  # the other session ended
    page.goto(base + "/console/audit")
    audit = page.inner_text("#audit")
    assert "password.change.refused" in audit and "password.change" in audit
    page.click("text=Sign out")
    sign_in(page, base, "compliance@rights.example", "a new and longer passphrase")


def test_compliance_decides_a_review_and_looks_up_the_number(console, page):
    base, sim = console["web"], console["sim"]
    number = "+12025550177"
    sim_text(sim, number, "JOIN")
    sim_text(sim, number, "We've got to STOP this bill!")
    sign_in(page, base, "compliance@rights.example")
    page.goto(base + "/console/reviews")
    row = page.locator("#reviews tr", has_text="STOP this bill")
    assert "+12025550177" in row.inner_text()
    row.locator("button[value=opt_out]").click()
    page.wait_for_selector("text=Decision recorded.")
    page.goto(base + "/console/lookup")
    page.fill("input[name=number]", "202 555 0177")
    page.click("#lookup")
    assert page.inner_text("#number-status") == "opted_out"
    events = page.inner_text("#consent-events")
    assert "possible_opt_out_resolved" in events and "compliance@rights.example" in events
    page.goto(base + "/console/audit")
    audit = page.inner_text("#audit")
    assert "review.decide" in audit and "number.lookup" in audit
    page.screenshot(path=shot("audit"), full_page=True)


def test_compliance_imports_a_suppression_list_and_downloads_an_evidence_pack(
    console, page, tmp_path
):
    base, sim = console["web"], console["sim"]
    sim_text(sim, SUPPORTERS[0], "JOIN")
    dnc = tmp_path / "do-not-contact.csv"
    dnc.write_text(f"phone\n{SUPPORTERS[0]}\nnot a number\n{SUPPORTERS[2]}\n")
    sign_in(page, base, "compliance@rights.example")
    page.goto(base + "/console/imports")
    page.check("input[value=suppression]")
    page.set_input_files("input[name=file]", str(dnc))
    page.click("#import-form button[type=submit]")
    expect(page.locator("#i-status")).to_have_text("finished", timeout=30_000)
    assert page.inner_text("#i-changed") == "2"
    assert page.inner_text("#i-rejected") in ("0", "1")
    page.screenshot(path=shot("import"), full_page=True)
    page.goto(base + "/console/lookup?number=" + SUPPORTERS[0].replace("+", "%2B"))
    assert page.inner_text("#number-status") == "opted_out"
    with page.expect_download() as download:
        page.click("#evidence")
    pack = tmp_path / "pack.zip"
    download.value.save_as(pack)
    import zipfile

    names = zipfile.ZipFile(pack).namelist()
    assert any(n.endswith("consent_events.csv") for n in names)
    assert sim_messages(sim, SUPPORTERS[2]) == []  # a suppression list sends nothing
