"""The search page in headless Chromium, as a researcher uses it: search,
click a facet, page, filter by year, open a record, use the keyboard, read
it on a phone. Run by tests/tests/search_page.rs against a live node.

    python3 search_page.py BASE_URL SCREENSHOT_DIR

Exit 0 when every check holds; a failed check raises with what was seen.
"""

import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

CHROMIUM = os.environ.get("MERIDIAN_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def titles(page):
    return page.locator("#hits li h3 a").all_inner_texts()


def main(base, shots):
    os.makedirs(shots, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        # The node's certificate is its own; trusting it is tested elsewhere.
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1200, "height": 900})
        page = context.new_page()
        external = []
        page.on("request", lambda r: external.append(r.url) if not r.url.startswith(base) else None)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # Search by typing, with the keyboard only.
        page.goto(base + "/")
        expect(page.locator("#node-name")).to_have_text("at polar")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip", "the first stop skips to results"
        page.locator("#q").focus()
        page.keyboard.type("ice")
        page.keyboard.press("Enter")
        expect(page.locator("#hits li")).to_have_count(20)
        expect(page.locator("#summary")).to_contain_text("28 datasets")
        assert "query=ice" in page.url, page.url
        assert not any("embargo" in t.lower() for t in titles(page)), "a private record is never shown"
        expect(page.locator("#completeness")).to_contain_text("polar: this node's own holdings")
        expect(page.locator("#completeness")).to_contain_text("copy as of")
        page.screenshot(path=os.path.join(shots, "1-search.png"), full_page=True)

        # Next page, then back.
        first_page = titles(page)
        page.click("#next")
        expect(page.locator("#hits li")).to_have_count(8)
        second_page = titles(page)
        assert not set(first_page) & set(second_page), "pages do not repeat a record"
        page.click("#prev")
        expect(page.locator("#hits li")).to_have_count(20)
        assert titles(page) == first_page

        # A facet narrows the answer; its chip takes it away again.
        page.click("#facets button[data-facet=discipline][data-value=life]")
        expect(page.locator("#hits li")).to_have_count(3)
        assert all("genome" in t.lower() for t in titles(page)), titles(page)
        expect(page.locator("#chosen button")).to_have_text("discipline: life ✕")
        expect(page.locator("#facets button[data-value=life]")).to_have_attribute("aria-pressed", "true")
        page.screenshot(path=os.path.join(shots, "2-facet.png"), full_page=True)
        page.click("#chosen button")
        expect(page.locator("#hits li")).to_have_count(20)

        # The year range.
        page.fill("#year-from", "2020")
        page.fill("#year-to", "2020")
        page.click("button[type=submit]")
        expect(page.locator("#summary")).to_contain_text("12 datasets")
        assert all(" · 2020 · " in m for m in page.locator("#hits .meta").all_inner_texts())
        page.fill("#year-from", "")
        page.fill("#year-to", "")

        # A bounding box across the antimeridian finds the Bering Sea record.
        page.fill("#q", "")
        for field, value in [("west", "170"), ("south", "50"), ("east", "-160"), ("north", "75")]:
            page.fill("#" + field, value)
        page.click("button[type=submit]")
        expect(page.locator("#hits li")).to_have_count(1)
        assert titles(page) == ["Bering Sea ice survey"], titles(page)

        # A malformed query says what is wrong.
        for field in ["west", "south", "east", "north"]:
            page.fill("#" + field, "")
        page.fill("#q", 'title:"unclosed')
        page.click("button[type=submit]")
        expect(page.locator("#summary.error")).to_contain_text("The search failed")

        # The record page: every field, provenance, JSON-LD.
        page.fill("#q", "Bering")
        page.click("button[type=submit]")
        # The snippet: the description as text, its match in bold.
        snippet = page.locator("#hits .snippet").first
        expect(snippet).to_contain_text('Bering Sea ice & snow <depth> survey, "2018')
        expect(snippet.locator("b").first).to_have_text("Bering")
        page.click("#hits li h3 a")
        expect(page.locator("h1#title")).to_have_text("Bering Sea ice survey")
        expect(page.locator("#fields")).to_contain_text("10.5555/bering")
        expect(page.locator("#provenance")).to_contain_text("polar")
        expect(page.locator("#provenance")).to_contain_text("ed25519:")
        ld = json.loads(page.locator("script[type='application/ld+json']").inner_text())
        assert ld["@type"] == "Dataset" and ld["name"] == "Bering Sea ice survey", ld
        assert ld["identifier"] == "https://doi.org/10.5555/bering", ld
        page.screenshot(path=os.path.join(shots, "3-record.png"), full_page=True)

        # The record that is not public: not found, as if it did not exist.
        response = page.goto(base + "/records/polar/ice-private")
        assert response.status == 404, response.status

        # A phone: one column, nothing wider than the screen.
        phone = context.new_page()
        phone.set_viewport_size({"width": 375, "height": 800})
        phone.goto(base + "/?query=ice")
        expect(phone.locator("#hits li")).to_have_count(20)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 376, "the page is %d px wide on a 375 px screen" % width
        phone.screenshot(path=os.path.join(shots, "4-phone.png"), full_page=True)

        assert not external, "requests left the node: %s" % external
        assert not errors, "script errors: %s" % errors
        browser.close()
    print("search page: every check held")


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), sys.argv[2])
