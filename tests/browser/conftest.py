"""The portal in Debian's Chromium: the whole stack on real parts, served by uvicorn on a free port.

The stack (worker, API, store) runs on an event loop of its own in a background thread, so the sync Playwright
API drives it from plain sync tests. Temporal is the session's dev server; mail goes to a real SMTP sink whose
folder is the dev mailbox the portal serves at /dev/mailbox.

Screenshots go to a temporary folder, or to `$ENROLL_SCREENSHOTS` (e.g. `docs/screenshots`) when it is set.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from starter.dev.mailsink import MailSink
from store.migrate import upgrade_to_head
from tests.browser.stack import CSM, CUSTOMER_USER, REVIEWER, SECRETS_KEY, Portal, StackThread
from tests.support import make_settings

CHROMIUM = "/usr/bin/chromium"

expect.set_options(timeout=15_000)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="session")
def portal(temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    root = tmp_path_factory.mktemp("portal")
    database_url = f"sqlite+aiosqlite:///{root / 'enroll.db'}"
    upgrade_to_head(database_url)
    sink = MailSink(root / "data" / "mailbox", host="127.0.0.1", port=0)
    sink.start()
    sock = _free_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(
        root,
        database_url=database_url,
        temporal_address=temporal.client.service_client.config.target_host,
        smtp_port=sink.port,
        task_queue=f"portal-test-{uuid.uuid4().hex[:8]}",
        dev_mailbox=True,
        secrets_key=SECRETS_KEY,
    ).model_copy(update={"public_url": base_url})
    assert sink.mailbox_dir == settings.mailbox_dir
    stack = StackThread(settings, sock)
    stack.start()
    shots = Path(os.environ.get("ENROLL_SCREENSHOTS") or root / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    served = Portal(base_url, settings, stack, shots)
    served.add_user(CSM, Role.csm)
    served.add_user(REVIEWER, Role.reviewer)
    served.add_user(CUSTOMER_USER, Role.customer, account_id="acct-1")
    try:
        yield served
    finally:
        stack.stop()
        sink.stop()


@pytest.fixture(scope="module")
def browser(portal: Portal) -> Iterator[Browser]:
    """One Chromium per test module. Sync Playwright keeps an event loop running on this thread while it is
    started, so it must stop before any asyncio test of another module runs, and start only after the stack
    (whose `temporal` fixture is async) is up: hence `portal` here."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); CI runs these")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser, portal: Portal) -> Iterator[BrowserContext]:
    made = browser.new_context(base_url=portal.base_url, viewport={"width": 1280, "height": 860})
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
