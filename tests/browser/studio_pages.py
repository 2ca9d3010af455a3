"""Opening the studio in a fresh browser context (shared by the browser fixtures and tests)."""

from __future__ import annotations

from typing import Any

PAGE_TIMEOUT_MS = 300_000  # generous: other heavy jobs may share the two cores (a page load took 114 s)


def open_studio(browser: Any, url: str) -> Any:
    """A page in a fresh browser context (its own BrowserState) with the studio loaded and its voices listed."""
    ctx = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.set_default_navigation_timeout(PAGE_TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#convert-button")
    page.wait_for_function("document.querySelector('#convert-voice input')?.value?.length > 0")
    return page
