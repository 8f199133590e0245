"""A private PostgreSQL cluster for one test (Debian's pg_createcluster), which the test may stop and start."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("pg_createcluster", "pg_ctlcluster", "pg_dropcluster")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _newest_version() -> str:
    versions = [p.name for p in Path("/usr/lib/postgresql").glob("*") if (p / "bin" / "initdb").exists()]
    if not versions:
        raise RuntimeError("no PostgreSQL server is installed under /usr/lib/postgresql")
    return max(versions, key=lambda v: [int(part) for part in v.split(".") if part.isdigit()])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PrivateCluster:
    """`faults<hex>` on a free port, trust authentication on 127.0.0.1, never started at boot."""

    version: str
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls) -> PrivateCluster:
        cluster = cls(_newest_version(), f"faults{uuid.uuid4().hex[:8]}", _free_port())
        subprocess.run(
            [
                "pg_createcluster",
                "--start-conf=manual",
                "--port",
                str(cluster.port),
                cluster.version,
                cluster.name,
                "--",
                "--auth=trust",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return cluster

    def start_now(self) -> None:
        """Start it (blocking: for a fixture's setup)."""
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "start"],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def drop(self) -> None:
        """Stop it if it runs and remove it with its data (teardown; never fails the test)."""
        subprocess.run(
            ["pg_dropcluster", "--stop", self.version, self.name], check=False, capture_output=True, timeout=120
        )

    async def _ctl(self, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            self.version,
            self.name,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"pg_ctlcluster {' '.join(args)} failed: {output.decode(errors='replace')}")

    async def start(self) -> None:
        await self._ctl("start")

    async def stop(self) -> None:
        """A fast shutdown: every open connection is cut, as when the database server goes away."""
        await self._ctl("stop", "-m", "fast")
