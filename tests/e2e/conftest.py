"""Fixtures the end-to-end modules share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def browser():
    """A headless Debian Chromium for a module's browser tests (Playwright).

    Per module, not per session: Playwright's sync API keeps an asyncio event loop running in
    the main thread while it is open, and then ``asyncio.run`` there fails ("cannot be called
    from a running event loop") - which is how ``dag.test()`` runs the triggers of the cloud
    e2e modules' deferred waits.
    """
    from browser import CHROMIUM, chromium

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: run `make browser` (apt-get install chromium)")
    with chromium() as instance:
        yield instance
