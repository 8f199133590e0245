"""The stack the browser tests drive: worker and API on an event loop of their own, in a thread."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from domain.models import Role
from domain.settings import Settings
from starter.dev.api import create_dev_app as create_app
from starter.dev.mailsink import StoredMessage, list_messages
from store import users
from store.db import engine_for
from worker import build_worker

PASSWORD = "correct horse battery staple"
CSM = "csm@provider.example"
REVIEWER = "reviewer@provider.example"
CUSTOMER_USER = "someone@customer.example"
SECRETS_KEY = "browser:" + base64.b64encode(b"browser-tests-secrets-key-32byte").decode()
"""ENROLL_SECRETS_KEY of the portal under test (manufacturers' token secrets are sealed with it)."""
T = TypeVar("T")


class StackThread:
    """The worker and the API (uvicorn) on one event loop in a thread; `run` hands it a coroutine."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        # The tests' webhook receivers listen on 127.0.0.1, as a developer's do: the dev stack's setting.
        self.settings = settings.model_copy(update={"webhooks_allow_private": True})
        self.sock = sock
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="portal-stack", daemon=True)
        self.tasks: list[asyncio.Task[Any]] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        self.worker = await build_worker(self.settings)
        self.tasks.append(asyncio.create_task(self.worker.run()))
        config = uvicorn.Config(create_app(self.settings), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.tasks.append(asyncio.create_task(self.server.serve(sockets=[self.sock])))
        while not self.server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.05)

    async def _stop(self) -> None:
        self.server.should_exit = True
        await self.worker.shutdown()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await engine_for(self.settings.effective_database_url).dispose()

    def stop(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@dataclass
class SecondFactor:
    """A user's authenticator app: the key read from the setup page, and the last time step whose code was
    used (the portal accepts each step once); and the recovery codes shown when it was turned on."""

    key: str
    last_step: int = 0
    recovery_codes: list[str] = field(default_factory=list)


PORTALS: dict[str, Portal] = {}
"""Each running portal by its base URL, so a step that has only the page finds it."""


@dataclass
class Portal:
    base_url: str
    settings: Settings
    stack: StackThread
    shots: Path
    second_factors: dict[str, SecondFactor] = field(default_factory=dict)
    """Email → the second factor set up at that user's first sign-in."""

    def __post_init__(self) -> None:
        PORTALS[self.base_url] = self

    def mail_to(self, address: str) -> list[StoredMessage]:
        return [m for m in list_messages(self.settings.mailbox_dir) if address in m.rcpt_tos]

    def wait_for_mail(self, address: str, subject_part: str, count: int = 1, timeout: float = 20) -> StoredMessage:
        """The newest email to `address` whose subject has `subject_part`, once `count` of them have arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.mail_to(address) if subject_part in m.subject]
            if len(found) >= count:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no email '{subject_part}' to {address} arrived")
            time.sleep(0.1)

    def form_link(self, address: str, count: int = 1) -> str:
        message = self.wait_for_mail(address, "Complete the member account enrollment", count)
        match = re.search(r"https?://\S+/enroll/[A-Za-z0-9_-]+", message.text or "")
        assert match, message.text
        return match.group(0)

    def add_user(self, email: str, role: Role, account_id: str | None = None) -> None:
        url = self.settings.effective_database_url
        self.stack.run(users.add_user(url, email=email, role=role, password=PASSWORD, account_id=account_id))
