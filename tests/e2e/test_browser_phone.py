"""The phone simulator in Chromium under the service's CSP: its script and style load from
files (inline ones would be refused), and a text sent from the page gets its reply."""

from __future__ import annotations


def test_phone_page_works_in_chromium_under_the_csp(dev_server, page):
    refused = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    page.goto(dev_server["web"] + "/phone?number=%2B12025550142")
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px"  # phone.css applied
    page.fill("#body", "JOIN")
    page.click("#send")
    page.wait_for_selector(".bubble.out")
    assert "Msg & data rates may apply" in page.inner_text("#thread")
    assert page.inner_text("#status") == "subscribed"
    page.screenshot(path=str(dev_server["cwd"] / "phone.png"))
    assert refused == []
