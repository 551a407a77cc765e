"""Headless Chromium for the browser tests: launching it, logging in to Airflow, screenshots.

Chromium comes from Debian (``make browser`` installs it when it is missing), driven by
Playwright; ``playwright install`` is never needed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("UI_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts" / "browser")
UI_TIMEOUT = 60_000  # milliseconds for any page or element
VIEWPORT = {"width": 1440, "height": 1000}


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Playwright's Browser), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield instance
        finally:
            instance.close()


def shot(page, name: str) -> Path:  # noqa: ANN001 - a Playwright Page
    """Save a full-page screenshot as a test artifact; return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page, base: str, user: str, password: str) -> None:  # noqa: ANN001 - a Playwright Page
    """Sign in on Airflow's login form and wait for the home page."""
    page.goto(f"{base}/")
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
