"""Fixtures for Playwright driving Debian's Chromium against the portal under a real daphne
(the browser and desktop tiers). Loaded by ``tests/conftest.py`` as a plugin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from vdi.testing.browser import CHROMIUM, CHROMIUM_ARGS
from vdi.testing.processes import ServerProcess

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop in this thread; Django's ORM (used by the test
    # itself, never concurrently with the browser) would otherwise refuse to run.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def portal(transactional_db: None, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "daphne.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def sign_in(page: Any, portal: ServerProcess, username: str, password: str) -> None:
    page.goto(f"{portal.origin}/accounts/login/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{portal.origin}/")


def canvas_shows_something(page, selector: str = "#screen canvas") -> bool:
    """True when the console's canvas has non-black pixels (the guest's text console)."""
    return bool(page.evaluate("""(selector) => {
        const canvas = document.querySelector(selector);
        if (!canvas || canvas.width < 100) return false;
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 0; i < data.length; i += 4 * 97) {
            if (data[i] > 40 || data[i + 1] > 40 || data[i + 2] > 40) return true;
        }
        return false;
    }""", selector))


def echo_to_serial(page, word: str) -> None:
    """Type `echo word > /dev/ttyS0` and Enter (QEMU takes scancodes: Shift is explicit)."""
    page.keyboard.type(f"echo {word} ")
    page.keyboard.press("Shift+Period")
    page.keyboard.type(" /dev/tty")
    page.keyboard.press("Shift+KeyS")
    page.keyboard.type("0")
    page.keyboard.press("Enter")


def screen_thumbnail(page: Any, selector: str = "#screen canvas") -> list[int]:
    """The screen's canvas scaled to 128x96, grey levels: for comparing two screens."""
    return list(page.evaluate("""(selector) => {
        const source = document.querySelector(selector);
        const small = document.createElement('canvas');
        small.width = 128; small.height = 96;
        const context = small.getContext('2d');
        context.drawImage(source, 0, 0, 128, 96);
        const data = context.getImageData(0, 0, 128, 96).data;
        const grey = [];
        for (let i = 0; i < data.length; i += 4) {
            grey.push(Math.round((data[i] + data[i + 1] + data[i + 2]) / 3));
        }
        return grey;
    }""", selector))
