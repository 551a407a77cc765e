"""Fixtures the end-to-end modules share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the session's browser tests (Playwright)."""
    from browser import CHROMIUM, chromium

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: run `make browser` (apt-get install chromium)")
    with chromium() as instance:
        yield instance
