"""Helpers shared by the test packages (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from domain.models import AccountStatus, AccountView, MemberType
from domain.settings import Settings


def make_settings(
    tmp_path: Path, *, database_url: str, temporal_address: str, smtp_port: int, task_queue: str, **extra: Any
) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        temporal_address=temporal_address,
        task_queue=task_queue,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        secret_key="test-secret-key-not-for-production",
        public_url="http://testserver",
        **extra,
    )


def samples(exposition: str) -> dict[str, float]:
    """`name{labels}` → value of every sample in a Prometheus text exposition."""
    found = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            found[series] = float(value)
    return found


def free_port() -> int:
    """A port nobody listens on at this moment, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def account_view(**changes: Any) -> AccountView:
    """An Active customer account of Acme Widgets (1,000 users purchased, ending 2030-01-01), with `changes`."""
    view = AccountView(
        id="a1",
        enrollment_id="e1",
        status=AccountStatus.active,
        organization_name="Acme Widgets Ltd",
        member_type=MemberType.customer,
        service_start_date=date(2026, 1, 1),
        service_end_date=date(2030, 1, 1),
        display_users_purchased=True,
        users_purchased=1000,
        corporate_contact_email="pat@acme.example",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return view.model_copy(update=changes)
