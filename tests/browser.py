"""Headless Chromium for page tests: Debian's browser driven by Python Playwright.

Playwright's own browser download is never used; CI installs Debian's ``chromium``.
Browser tests save what they checked with ``save_screenshot`` under ``build/screenshots/``
(git-ignored; ``.ci/run`` lists the folder at the end of a run).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"


def save_screenshot(page: Page, name: str) -> Path:
    """A full-page PNG of what the test saw, kept as an artifact of the run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0, f"screenshot {path} is empty"
    return path


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise AssertionError(
            "Debian's chromium is not installed (apt-get install chromium); browser tests need it"
        )
    return path


@contextmanager
def chromium_page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()
