"""Browser tests: a real daphne server on the test database and the system chromium.

Playwright's sync API is used directly (no pytest-playwright) with the system chromium
(docs/design.md, traps of the stack: never ``playwright install``). One server process serves every
browser test; the restart test stops and starts it on the same port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import ROOT, Server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is not installed")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("server") / "daphne.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: a temporary directory, or ``docs/screenshots/`` with
    ``ACW_SCREENSHOTS=1``."""
    if os.environ.get("ACW_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path


@pytest.fixture
def live_server_up(server: Server) -> Server:
    """The server, started again if a previous test stopped it."""
    if server.proc is None or server.proc.poll() is not None:
        server.start()
    return server


@pytest.fixture(scope="module")
def chromium(django_db_setup: None) -> Iterator[Any]:
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread while it is open. Two
    # consequences for Django: its async-safety check trips on every ORM call (the setting
    # Playwright and pytest-django document for this), and asgiref then hands out
    # connections from a separate context-local store, which lacks the serialized database
    # contents that ``serialized_rollback`` restores: they are copied over.
    serialized = {
        alias: getattr(connections[alias], "_test_serialized_contents", None)
        for alias in connections
    }
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            for alias, contents in serialized.items():
                if contents is not None:
                    connections[alias]._test_serialized_contents = contents
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
            connections.close_all()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def new_page(chromium: Any) -> Iterator[Any]:
    """Pages in fresh browser contexts (separate cookies), closed after the test.

    ``options`` are Playwright's context options (``locale``, ``color_scheme``,
    ``reduced_motion`` ...). Dark unless asked otherwise: the wall's own look (the pages follow
    prefers-color-scheme, and Playwright emulates a light system by default).
    """
    contexts = []

    def make(width: int = 1600, height: int = 1000, **options: Any) -> Any:
        options.setdefault("color_scheme", "dark")
        context = chromium.new_context(viewport={"width": width, "height": height}, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.js_errors = errors
        # Chromium reports what the Content-Security-Policy refused on the console.
        refused: list[str] = []
        page.on(
            "console",
            lambda message: (
                refused.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        page.csp_violations = refused
        return page

    yield make
    for context in contexts:
        context.close()
