"""The docs page in a real browser: Debian's chromium (installed by `make test`), driven by
Playwright, against a real `clientkeys serve`. It lists the five operations, takes a bearer
token through "Authorize", runs "list keys" from the page and shows the 200. A screenshot is
written to reports/docs-page-serve.png (and -mock.png: the mock serves the same page)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from clientkeys.config import SPEC_DIR
from clientkeys.openapi import specs as openapi
from clientkeys.testing.plugin import free_port, serving

CHROMIUM = Path("/usr/bin/chromium")
# What this machine's network needs: no background connections, no sandbox as root.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
REPORTS = Path(__file__).resolve().parents[2] / "reports"
FIXTURES = Path(__file__).parents[1] / "data" / "ci.yaml"
TOKEN = "sntrys_ci_admin_token"
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module", params=["serve", "mock"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`clientkeys serve` with the CI fixtures, and `clientkeys mock` of the same spec."""
    folder = tmp_path_factory.mktemp("docs")
    port = free_port()
    command = [sys.executable, "-m", "clientkeys", request.param, "--port", str(port),
               "--workers", "1", "--log-level", "warning"]  # fmt: skip
    if request.param == "serve":
        command += ["--database", str(folder / "x.db"), "--fixtures", str(FIXTURES)]
    with serving(command, port, folder / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: `make browser` installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


def test_the_docs_page_lists_the_operations_and_runs_list_keys_with_a_token(
    server: str, page: Page, request: pytest.FixtureRequest
) -> None:
    kind = request.node.callspec.params["server"]
    spec = openapi.load_spec(SPEC_DIR).spec
    expected = sorted((method.upper(), path) for path, method, _ in openapi.operations(spec))
    assert len(expected) == 13  # the keys (5) and what Sentry's CLIs read (8)

    page.goto(f"{server}/docs/")
    blocks = page.locator(".opblock")
    expect(blocks).to_have_count(len(expected), timeout=TIMEOUT_MS)
    shown = sorted(
        (block.locator(".opblock-summary-method").inner_text().strip(),
         block.locator(".opblock-summary-path").get_attribute("data-path"))
        for block in blocks.all()
    )  # fmt: skip
    assert shown == expected

    page.locator(".auth-wrapper button.authorize").click()
    page.locator(".auth-container input").fill(TOKEN)
    page.locator(".auth-btn-wrapper button.authorize").click()
    page.locator(".auth-btn-wrapper button.btn-done").click()

    keys_path = "/api/0/projects/{organization_slug}/{project_slug}/keys/"
    listing = page.locator(".opblock-get").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{keys_path}"]')
    )
    listing.locator(".opblock-summary").click()
    listing.locator("button.try-out__btn").click()
    listing.locator('tr[data-param-name="organization_slug"] input').fill("acme")
    listing.locator('tr[data-param-name="project_slug"] input').fill("web")
    listing.locator("button.execute").click()

    live = listing.locator(".live-responses-table")
    expect(live.locator("tbody .response-col_status")).to_have_text("200", timeout=TIMEOUT_MS)
    body = live.locator("tbody .response-col_description")
    expect(body).to_contain_text('"name": "Browser"' if "serve" in kind else '"dsn": {')
    expect(listing.locator(".curl-command")).to_contain_text(f"Authorization: Bearer {TOKEN}")
    REPORTS.mkdir(exist_ok=True)
    page.screenshot(path=str(REPORTS / f"docs-page-{kind}.png"), full_page=True)
