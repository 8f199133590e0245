"""The production stack in docker-compose.yml holds together.

Docker does not run here, so these tests read docker-compose.yml, the Dockerfile and deploy/ the way
Compose and Docker would, and run the deploy scripts against stand-in CLIs (the Temporal setup script
also against a real Temporal dev server) to catch what would otherwise only show on a deploy.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from credentials.pskc import MAX_BYTES_DEFAULT
from credentials.sealing import SecretsKeys
from domain.settings import Settings
from workflows.names import SEARCH_ATTRIBUTES, TASK_QUEUE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
SECRET = "a-test-secret-key"
SECRETS_KEY = "k1:" + "a2V5LW9mLXRoZS10ZXN0cy1zZWFsaW5nLXNlY3JldHM="  # 32 bytes of base64, as new_key_text makes
PASSWORDS = {
    "ENROLL_SECRETS_KEY": SECRETS_KEY,
    "POSTGRES_PASSWORD": "app-pw",
    "TEMPORAL_DB_PASSWORD": "temporal-pw",
    "POSTGRES_ADMIN_PASSWORD": "admin-pw",
    "GRAFANA_ADMIN_PASSWORD": "grafana-pw",
}
"""What .env must hold besides ENROLL_SECRET_KEY: the file has no default password or key."""

EXPECTED_SERVICES = {
    "postgresql",
    "temporal-schema",
    "temporal",
    "temporal-setup",
    "temporal-ui",
    "mailpit",
    "worker",
    "api",
    "prometheus",
    "grafana",
}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
SETTING_VARIABLES = {f"{Settings.model_config.get('env_prefix', '')}{name}".upper() for name in Settings.model_fields}


@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def service(name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services[name]


def depends_on(definition: Mapping[str, Any]) -> dict[str, str]:
    """`depends_on` in either Compose syntax, as target -> condition."""
    targets = definition.get("depends_on") or {}
    if isinstance(targets, list):
        return {target: "service_started" for target in targets}
    return {target: (spec or {}).get("condition", "service_started") for target, spec in targets.items()}


def environment(definition: Mapping[str, Any]) -> dict[str, str | None]:
    """`environment` in either Compose syntax; None is a variable passed through from the host."""
    variables = definition.get("environment") or {}
    if isinstance(variables, list):
        return {key: value for key, _, value in (item.partition("=") for item in variables)}
    return {key: None if value is None else str(value) for key, value in variables.items()}


class MissingVariable(Exception):
    pass


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_BRACED = re.compile(rf"\$\{{(?P<name>{_NAME})(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>[^{{}}]*))?\}}")
_BARE = re.compile(rf"\$(?P<name>{_NAME})")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation: `$$`, `$VAR`, `${VAR}` and the `:-`, `-`, `:?`, `?`, `:+`, `+` forms."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif match := _BRACED.match(text, i) or _BARE.match(text, i):
            name, op, arg = match["name"], match.groupdict().get("op"), match.groupdict().get("arg") or ""
            value, present = env.get(name), name in env
            if op in (":?", "?") and not (value if op == ":?" else present):
                raise MissingVariable(f"{name}: {arg}")
            if op == ":-":
                value = value or arg
            elif op == "-":
                value = value if present else arg
            elif op in (":+", "+"):
                value = arg if (value if op == ":+" else present) else ""
            out.append(value or "")
            i = match.end()
        else:
            raise ValueError(f"invalid interpolation at {text[i : i + 20]!r} in {text!r}")
    return "".join(out)


def resolved(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [resolved(item, env) for item in value]
    if isinstance(value, dict):
        return {key: resolved(item, env) for key, item in value.items()}
    return value


def resolved_service(name: str, **env: str) -> dict[str, Any]:
    result: dict[str, Any] = resolved(service(name), {"ENROLL_SECRET_KEY": SECRET, **PASSWORDS, **env})
    return result


def published_ports(definition: Mapping[str, Any]) -> dict[int, int]:
    """host port -> container port, from the short ("[ip:]host:container") or long syntax."""
    ports: dict[int, int] = {}
    for entry in definition.get("ports") or []:
        if isinstance(entry, dict):
            ports[int(entry["published"])] = int(entry["target"])
        else:
            *_, host, container = str(entry).split("/")[0].split(":")
            ports[int(host)] = int(container)
    return ports


def bind_mounts(definition: Mapping[str, Any]) -> dict[str, Path]:
    """container path -> host path, for the `./...` volumes of a service."""
    mounts = {}
    for entry in definition.get("volumes") or []:
        source, target = str(entry).split(":")[:2]
        if source.startswith("."):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def run_script(script: Path, stubs: Mapping[str, str], tmp_path: Path, **env: str) -> tuple[int, str, list[list[str]]]:
    """Runs a deploy script with stand-ins for the CLIs it calls; returns exit code, output and the calls made."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir(exist_ok=True)
    for command, body in stubs.items():
        stub = bin_dir / command
        stub.write_text(
            '#!/bin/sh\nprintf "%s\\037" "$(basename "$0")" "$@" >> "$STUB_CALLS"\necho >> "$STUB_CALLS"\n' + body
        )
        stub.chmod(0o755)
    process_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STUB_CALLS": str(calls), "STUB_STATE": str(tmp_path), **env}
    done = subprocess.run(["sh", str(script)], env=process_env, capture_output=True, text=True, timeout=60)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done.returncode, done.stdout + done.stderr, [line.rstrip("\x1f").split("\x1f") for line in lines]


def flag(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


TEMPORAL_STUB = """
case "$1 $2 $3" in
"operator cluster health") echo SERVING ;;
"operator namespace describe") [ -e "$STUB_STATE/namespace" ] || { echo "Error: namespace not found" >&2; exit 1; } ;;
"operator namespace create") : > "$STUB_STATE/namespace" ;;
"operator search-attribute create")
    echo x >> "$STUB_STATE/attempts"
    case "$STUB_MODE" in
    new) echo "Search attributes have been added" ;;
    existing) echo "Error: search attribute already exists" >&2; exit 1 ;;
    conflicting) echo "Error: search attribute already exists and has different type Int" >&2; exit 1 ;;
    late) [ "$(wc -l < "$STUB_STATE/attempts")" -gt 2 ] || { echo "Error: namespace not found" >&2; exit 1; } ;;
    esac ;;
*) echo "unexpected call: $*" >&2; exit 64 ;;
esac
"""


def setup_job_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in environment(resolved_service("temporal-setup")).items() if v is not None}
    return {**env, "SETUP_RETRY_DELAY": "0", "SETUP_ATTEMPTS": "5", **overrides}


def test_every_service_of_the_stack_is_defined() -> None:
    assert set(compose()["services"]) >= EXPECTED_SERVICES


def test_dependencies_exist_and_form_no_cycle() -> None:
    graph = {name: depends_on(definition) for name, definition in compose()["services"].items()}
    for name, targets in graph.items():
        assert set(targets) <= set(graph), f"{name} depends on an undefined service"
        assert set(targets.values()) <= CONDITIONS, f"{name} has an unknown depends_on condition"

    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        assert state.get(name) != "visiting", f"dependency cycle: {' -> '.join([*path, name])}"
        if state.get(name) is None:
            state[name] = "visiting"
            for target in graph[name]:
                visit(target, [*path, name])
            state[name] = "done"

    for name in graph:
        visit(name, [])


def test_every_dependency_condition_can_be_met() -> None:
    for name, definition in compose()["services"].items():
        for target, condition in depends_on(definition).items():
            if condition == "service_healthy":
                assert service(target).get("healthcheck", {}).get("test"), f"{name} waits for {target} to be healthy"
            if condition == "service_completed_successfully":
                assert service(target).get("restart", "no") == "no", f"{target} is a job and must not restart"
                assert service(target).get("deploy", {}).get("replicas", 1) == 1


def test_app_starts_after_postgresql_and_the_temporal_jobs() -> None:
    assert depends_on(service("temporal")).get("temporal-schema") == "service_completed_successfully"
    assert depends_on(service("temporal-schema")).get("postgresql") == "service_healthy"
    assert "pg_isready" in str(service("postgresql")["healthcheck"]["test"])
    for name in ("worker", "api"):
        assert depends_on(service(name)).get("temporal-setup") == "service_completed_successfully"
        assert depends_on(service(name)).get("postgresql") == "service_healthy"


def test_worker_and_api_run_the_image_built_here() -> None:
    for name, role in (("worker", "worker"), ("api", "api")):
        build = service(name)["build"]
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
        assert context.resolve() == ROOT and dockerfile.is_file()
        assert service(name)["command"] == ["enroll", role]


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerignored(relative: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()[:1] not in ("", "#")]
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    # "**/" matches any depth; fnmatch's "*" also crosses "/", which is close enough for these patterns.
    globs = [glob for p in patterns for glob in ((p[3:], f"*/{p[3:]}") if p.startswith("**/") else (p,))]
    return any(fnmatch.fnmatch(prefix, glob) for glob in globs for prefix in prefixes)


def test_dockerfile_installs_the_packaged_code_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert "ENTRYPOINT" not in {name for name, _ in instructions}
    assert json.loads(next(arg for name, arg in instructions if name == "CMD")) == ["enroll", "api"]
    users = [arg for name, arg in instructions if name == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(
        name == "RUN" and "pip install --no-cache-dir ." in arg and "[dev]" not in arg for name, arg in instructions
    )


def test_dockerfile_copies_everything_pip_install_needs() -> None:
    copied = {
        source.rstrip("/")
        for name, arg in dockerfile_instructions()
        if name == "COPY" and not arg.startswith("--from")
        for source in arg.split()[:-1]
        if not source.startswith("--")
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= {f"{module}.py" for module in setuptools.get("py-modules", [])}
    needed |= {pattern.rstrip("*").rstrip(".") for pattern in setuptools["packages"]["find"]["include"]}

    problems = [f"pip install . needs {path}, which the Dockerfile does not copy" for path in sorted(needed - copied)]
    problems += [
        f"the Dockerfile copies {path}, which is not in the repository"
        for path in sorted(copied)
        if not (ROOT / path).exists()
    ]
    problems += [
        f".dockerignore drops {path}, which the Dockerfile copies" for path in sorted(copied) if dockerignored(path)
    ]
    assert not problems


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image() -> None:
    for path in (".venv", ".enroll", ".env", ".git", "tests", "domain/__pycache__", ".mypy_cache"):
        assert dockerignored(path), path


def test_compose_interpolation_is_valid_and_the_secret_key_is_required() -> None:
    resolved(compose(), {"ENROLL_SECRET_KEY": SECRET, **PASSWORDS})
    with pytest.raises(MissingVariable, match="ENROLL_SECRET_KEY"):
        resolved(compose(), {**PASSWORDS})
    for name in ("worker", "api"):
        assert re.fullmatch(r"\$\{ENROLL_SECRET_KEY:\?[^}]+\}", environment(service(name))["ENROLL_SECRET_KEY"] or "")
        assert environment(resolved_service(name))["ENROLL_SECRET_KEY"] == SECRET


def test_the_secrets_key_is_required_and_both_roles_seal_with_the_same_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # Outside the dev stack an upload without ENROLL_SECRETS_KEY is refused: Compose refuses to start instead.
    without = {"ENROLL_SECRET_KEY": SECRET, **{k: v for k, v in PASSWORDS.items() if k != "ENROLL_SECRETS_KEY"}}
    with pytest.raises(MissingVariable, match="ENROLL_SECRETS_KEY"):
        resolved(compose(), without)
    shared = environment({"environment": compose()["x-enroll-env"]})
    assert re.fullmatch(r"\$\{ENROLL_SECRETS_KEY:\?[^}]+\}", shared["ENROLL_SECRETS_KEY"] or "")
    for name in ("worker", "api"):  # the API seals the uploaded file, the worker opens it and seals each key
        settings = app_settings(name, monkeypatch)
        assert settings.missing_secrets_key() is None
        assert settings.secrets_keys == SecretsKeys.parse(SECRETS_KEY)
        assert not settings.embedded, "the dev stack's own key is never used here"
        assert settings.pskc_max_bytes == MAX_BYTES_DEFAULT, "50 MiB unless .env sets ENROLL_PSKC_MAX_BYTES"
    assert "ENROLL_PSKC_MAX_BYTES" in shared and shared["ENROLL_PSKC_MAX_BYTES"] is None, "passed through from .env"


def test_every_enroll_variable_in_the_file_is_a_setting() -> None:
    mentioned = set(re.findall(r"\bENROLL_[A-Z0-9_]+", COMPOSE_FILE.read_text()))
    assert mentioned, "the compose file configures the app through ENROLL_* variables"
    assert mentioned <= SETTING_VARIABLES, f"not settings: {sorted(mentioned - SETTING_VARIABLES)}"


def test_worker_and_api_share_the_settings_anchor() -> None:
    shared = environment({"environment": compose()["x-enroll-env"]})
    for name in ("worker", "api"):
        assert environment(service(name)).items() >= shared.items()


def app_settings(name: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for variable in SETTING_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for key, value in environment(resolved_service(name, **env)).items():
        if value is not None:
            monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


def test_app_settings_are_valid_and_point_at_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = app_settings("worker", monkeypatch)
    host, _, port = (worker.temporal_address or "").partition(":")
    assert host in compose()["services"] and port == "7233"
    assert worker.smtp_host == "mailpit" and str(worker.smtp_port) in service("mailpit")["expose"]
    assert worker.secret_key is not None and worker.secret_key.get_secret_value() == SECRET
    assert worker.task_queue == TASK_QUEUE

    # The namespace the app uses is the one the setup job creates and the UI opens, whatever ops choose.
    for chosen in ("default", "enrollment-prod"):
        namespace = app_settings("worker", monkeypatch, ENROLL_TEMPORAL_NAMESPACE=chosen).temporal_namespace
        assert namespace == chosen
        assert (
            environment(resolved_service("temporal-setup", ENROLL_TEMPORAL_NAMESPACE=chosen))["TEMPORAL_NAMESPACE"]
            == chosen
        )
        assert (
            environment(resolved_service("temporal-ui", ENROLL_TEMPORAL_NAMESPACE=chosen))["TEMPORAL_DEFAULT_NAMESPACE"]
            == chosen
        )

    api = app_settings("api", monkeypatch)
    assert api.api_host == "0.0.0.0"
    assert published_ports(service("api")) == {8000: api.api_port}
    # Only the worker serves the Temporal SDK's metrics; the API serves its own on its port.
    assert worker.metrics_port is not None and api.metrics_port is None
    per_role = {"api_host", "api_port", "metrics_port"}
    assert api.model_dump(exclude=per_role) == worker.model_dump(exclude=per_role)


def test_postgresql_gives_the_app_and_temporal_each_their_own_database(monkeypatch: pytest.MonkeyPatch) -> None:
    sql = (DEPLOY / "postgres-init.sql").read_text()
    owners = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+);", sql))
    assert owners == {"enroll": "enroll", "temporal": "temporal", "temporal_visibility": "temporal"}
    assert set(re.findall(r"CREATE ROLE (\w+) LOGIN", sql)) == {"enroll", "temporal"}
    assert "/docker-entrypoint-initdb.d/" in " ".join(bind_mounts(service("postgresql")))
    assert DEPLOY / "postgres-init.sql" in bind_mounts(service("postgresql")).values()

    # Passwords chosen on the host reach the roles and every client that logs in as them.
    passwords = {"POSTGRES_PASSWORD": "app-pw", "TEMPORAL_DB_PASSWORD": "temporal-pw"}
    database = environment(resolved_service("postgresql", **passwords))
    role_passwords = {database[env] for _, env in re.findall(r"\\getenv (\w+) (\w+)", sql)}
    assert role_passwords == {"app-pw", "temporal-pw"}

    url = urlsplit(app_settings("worker", monkeypatch, **passwords).database_url or "")
    assert (url.scheme, url.hostname, url.username, url.password) == (
        "postgresql+asyncpg",
        "postgresql",
        "enroll",
        "app-pw",
    )
    assert url.path == "/enroll"

    server = environment(resolved_service("temporal", **passwords))
    schema = environment(resolved_service("temporal-schema", **passwords))
    assert server["DB"] == schema["SQL_PLUGIN"] == "postgres12"
    assert server["POSTGRES_SEEDS"] == schema["SQL_HOST"] == "postgresql"
    assert server["POSTGRES_USER"] == schema["SQL_USER"] == "temporal"
    assert server["POSTGRES_PWD"] == schema["SQL_PASSWORD"] == "temporal-pw"
    assert {server["DBNAME"], server["VISIBILITY_DBNAME"]} == {schema["TEMPORAL_DB"], schema["TEMPORAL_VISIBILITY_DB"]}


def job_script(name: str) -> Path:
    """The host script a one-shot job runs: its entrypoint names a file bind-mounted from deploy/."""
    definition = service(name)
    command = [*(definition.get("entrypoint") or []), *(definition.get("command") or [])]
    mounts = bind_mounts(definition)
    scripts = [mounts[arg] for arg in command if arg in mounts]
    assert len(scripts) == 1, f"{name} runs no script from deploy/"
    return scripts[0]


def test_schema_job_creates_and_migrates_both_temporal_databases(tmp_path: Path) -> None:
    script = job_script("temporal-schema")
    env = {k: v for k, v in environment(resolved_service("temporal-schema")).items() if v is not None}
    code, output, calls = run_script(script, {"temporal-sql-tool": ""}, tmp_path, **env)
    assert code == 0, output
    versioned = "/etc/temporal/schema/postgresql/v12/{}/versioned"
    assert [call[1:] for call in calls] == [
        ["--db", "temporal", "setup-schema", "-v", "0.0"],
        ["--db", "temporal", "update-schema", "-d", versioned.format("temporal")],
        ["--db", "temporal_visibility", "setup-schema", "-v", "0.0"],
        ["--db", "temporal_visibility", "update-schema", "-d", versioned.format("visibility")],
    ]


def registered(calls: list[list[str]]) -> list[tuple[str, str]]:
    """The (name, type) of every `temporal operator search-attribute create` call, in order."""
    creates = [call for call in calls if call[1:4] == ["operator", "search-attribute", "create"]]
    return [(flag(call, "--name"), flag(call, "--type")) for call in creates]


def test_setup_job_creates_the_namespace_and_exactly_the_designed_search_attributes(tmp_path: Path) -> None:
    env = setup_job_env(STUB_MODE="new")
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    code, output, calls = run_script(job_script("temporal-setup"), {"temporal": TEMPORAL_STUB}, tmp_path, **env)
    assert code == 0, output
    namespace_creates = [call for call in calls if call[1:4] == ["operator", "namespace", "create"]]
    assert [flag(call, "--namespace") for call in namespace_creates] == ["default"]
    assert registered(calls) == list(SEARCH_ATTRIBUTES.items())


@pytest.mark.parametrize(("state", "failed_attempts"), [("existing", 0), ("late", 2)])
def test_setup_job_is_safe_to_rerun_and_waits_for_a_new_namespace(
    tmp_path: Path, state: str, failed_attempts: int
) -> None:
    (tmp_path / "namespace").touch()
    env = setup_job_env(STUB_MODE=state)
    code, output, calls = run_script(job_script("temporal-setup"), {"temporal": TEMPORAL_STUB}, tmp_path, **env)
    assert code == 0, output
    assert not [call for call in calls if call[1:4] == ["operator", "namespace", "create"]]
    first, *_ = attributes = list(SEARCH_ATTRIBUTES.items())
    assert registered(calls) == [first] * failed_attempts + attributes


def test_setup_job_fails_on_an_attribute_of_another_type(tmp_path: Path) -> None:
    env = setup_job_env(STUB_MODE="conflicting")
    code, output, _ = run_script(job_script("temporal-setup"), {"temporal": TEMPORAL_STUB}, tmp_path, **env)
    assert code != 0 and "another type" in output


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on, held open together so that they differ."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@pytest.fixture
def temporal_dev_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The dev server of the `temporal` CLI that the app's dependencies install; yields (cli, address)."""
    cli = shutil.which("temporal", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if cli is None:
        pytest.skip("no temporal CLI")
    grpc, http, metrics = free_ports(3)
    address = f"127.0.0.1:{grpc}"
    ports = ["--port", str(grpc), "--http-port", str(http), "--metrics-port", str(metrics)]
    state = ["--db-filename", str(tmp_path / "temporal.db"), "--log-level", "error"]
    server = subprocess.Popen(
        [cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1", *ports, *state],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        health = [cli, "operator", "cluster", "health", "--address", address]
        while subprocess.run(health, capture_output=True, timeout=10).returncode:
            assert time.monotonic() < deadline and server.poll() is None, "the Temporal dev server did not start"
            time.sleep(0.2)
        yield cli, address
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_setup_job_against_a_real_temporal_server(temporal_dev_server: tuple[str, str]) -> None:
    cli, address = temporal_dev_server
    namespace = "enrollment-compose-test"
    env = setup_job_env(TEMPORAL_ADDRESS=address, TEMPORAL_NAMESPACE=namespace, SETUP_RETRY_DELAY="1")
    env |= {"PATH": f"{Path(cli).parent}:/usr/bin:/bin", "SETUP_ATTEMPTS": "20"}
    for _ in range(2):  # the second run finds everything in place
        script = ["sh", str(job_script("temporal-setup"))]
        done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    listing = [
        cli,
        "operator",
        "search-attribute",
        "list",
        "--address",
        address,
        "--namespace",
        namespace,
        "-o",
        "json",
    ]
    listed = subprocess.run(listing, capture_output=True, text=True, check=True, timeout=30)
    custom = json.loads(listed.stdout)["customAttributes"]
    assert custom == {name: f"INDEXED_VALUE_TYPE_{kind.upper()}" for name, kind in SEARCH_ATTRIBUTES.items()}


def test_ports_for_people_are_published() -> None:
    expected = {
        8233: ("temporal-ui", 8080),
        8000: ("api", 8000),
        8025: ("mailpit", 8025),
        9090: ("prometheus", 9090),
        3000: ("grafana", 3000),
    }
    for host_port, (name, container_port) in expected.items():
        assert published_ports(service(name)).get(host_port) == container_port
    hosts = [port for definition in compose()["services"].values() for port in published_ports(definition)]
    assert len(hosts) == len(set(hosts)), "two services publish the same host port"
    assert environment(service("temporal-ui"))["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_api_has_a_health_check_the_slim_image_can_run() -> None:
    test = service("api")["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and "/healthz" in test[3]
    compile(test[3], "healthcheck", "exec")


def test_worker_scales_out() -> None:
    worker = service("worker")
    assert worker["deploy"]["replicas"] >= 2
    assert "container_name" not in worker and not published_ports(worker)


def test_every_bind_mounted_file_exists() -> None:
    for name, definition in compose()["services"].items():
        for target, source in bind_mounts(definition).items():
            assert source.exists(), f"{name} mounts {source} at {target}"


def container_file(name: str, path: str) -> Path:
    """The host file or directory a service sees at `path`, through its bind mounts (a file's or a directory's)."""
    for target, source in sorted(bind_mounts(service(name)).items(), key=lambda mount: -len(mount[0])):
        if path == target:
            return source
        if path.startswith(target.rstrip("/") + "/"):
            return source / path[len(target.rstrip("/")) + 1 :]
    raise AssertionError(f"{name} has nothing mounted at {path}")


def command_flag(name: str, flag_name: str) -> str | None:
    """The value of `--flag=value` in a service's command, or None."""
    for arg in service(name).get("command") or []:
        key, _, value = str(arg).partition("=")
        if key == flag_name:
            return value
    return None


def prometheus_config_path() -> str:
    return command_flag("prometheus", "--config.file") or "/etc/prometheus/prometheus.yml"


def prometheus_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(container_file("prometheus", prometheus_config_path()).read_text())
    return config


def scrape_job(job_name: str) -> dict[str, Any]:
    jobs = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}
    assert job_name in jobs, f"prometheus.yml has no job {job_name!r}"
    job: dict[str, Any] = jobs[job_name]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    return job


def static_targets(job: Mapping[str, Any]) -> list[str]:
    return [target for config in job.get("static_configs") or [] for target in config["targets"]]


def test_prometheus_loads_its_config_and_rules_from_the_repository() -> None:
    config_path = prometheus_config_path()
    assert container_file("prometheus", config_path) == DEPLOY / "prometheus" / "prometheus.yml"
    rule_files = prometheus_config()["rule_files"]
    assert rule_files, "prometheus.yml loads no rules"
    for entry in rule_files:
        # Prometheus resolves a relative path against the config file's directory: in the container, and in
        # the repository for `promtool check config` (tests/deploy/observability_test.py).
        in_container = posixpath.normpath(posixpath.join(posixpath.dirname(config_path), entry))
        assert container_file("prometheus", in_container) == DEPLOY / "prometheus" / "alerts.yml"
        assert (DEPLOY / "prometheus" / entry).resolve() == DEPLOY / "prometheus" / "alerts.yml"


def test_prometheus_scrapes_every_worker_replica_on_its_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    port = app_settings("worker", monkeypatch).metrics_port
    assert port is not None, "the worker serves no metrics (ENROLL_METRICS_PORT)"
    assert str(port) in [str(exposed) for exposed in service("worker").get("expose") or []]
    # Each replica by DNS (Compose answers a service name with every container's address), not one static target.
    (discovery,) = scrape_job("enroll-worker")["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery.get("type", "SRV") == "A"
    assert discovery["port"] == port


def test_prometheus_scrapes_the_api_on_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    api = app_settings("api", monkeypatch)
    assert static_targets(scrape_job("enroll-api")) == [f"api:{api.api_port}"]


def test_prometheus_scrapes_the_temporal_servers_endpoint() -> None:
    host, _, port = (environment(service("temporal"))["PROMETHEUS_ENDPOINT"] or "").rpartition(":")
    assert host == "0.0.0.0", "the endpoint must listen beyond the container's loopback"
    assert port in [str(exposed) for exposed in service("temporal").get("expose") or []]
    assert static_targets(scrape_job("temporal")) == [f"temporal:{port}"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboards() -> None:
    assert container_file("grafana", "/etc/grafana/provisioning") == DEPLOY / "grafana" / "provisioning"
    assert depends_on(service("grafana")).get("prometheus") == "service_started"

    sources = [
        source
        for path in sorted(container_file("grafana", "/etc/grafana/provisioning/datasources").glob("*.yml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    (prometheus,) = [source for source in sources if source["type"] == "prometheus"]
    url = urlsplit(prometheus["url"])
    listen = command_flag("prometheus", "--web.listen-address") or ":9090"
    assert (url.hostname, url.port) == ("prometheus", int(listen.rpartition(":")[2]))
    assert int(listen.rpartition(":")[2]) in published_ports(service("prometheus")).values()
    assert prometheus.get("uid"), "dashboards refer to the datasource by a fixed uid"

    providers = [
        provider
        for path in sorted(container_file("grafana", "/etc/grafana/provisioning/dashboards").glob("*.yml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    assert providers and all(provider["type"] == "file" for provider in providers)
    for provider in providers:
        dashboards = container_file("grafana", provider["options"]["path"])
        assert dashboards == DEPLOY / "grafana" / "dashboards" and list(dashboards.glob("*.json"))
    home = environment(service("grafana")).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert container_file("grafana", home).is_file()


def test_prometheus_and_grafana_listen_on_this_host_only() -> None:
    # Prometheus has no authentication and Grafana lets anonymous viewers in: neither is for the network.
    for name in ("prometheus", "grafana"):
        entries = service(name).get("ports") or []
        assert entries and all(str(entry).startswith("127.0.0.1:") for entry in entries), name
        assert "latest" not in service(name)["image"] and ":" in service(name)["image"], f"pin {name}'s image"
        assert all(str(mount).endswith(":ro") for mount in service(name).get("volumes") or [] if str(mount)[0] == ".")


def test_every_published_port_listens_on_this_host_only() -> None:
    # The Temporal UI can terminate workflows and Mailpit shows live form links, without authentication; the
    # portal is published by a reverse proxy with TLS. Nothing is for the network as Compose publishes it.
    published = 0
    for name, definition in compose()["services"].items():
        for entry in definition.get("ports") or []:
            published += 1
            if isinstance(entry, dict):
                assert entry.get("host_ip") == "127.0.0.1", f"{name} publishes {entry} beyond this host"
            else:
                assert str(entry).startswith("127.0.0.1:"), f"{name} publishes {entry!r} on every interface"
    assert published >= 6


PASSWORD_NAME = re.compile(r"PASSWORD|_PWD$|SECRET")


def test_every_password_comes_from_the_environment_without_a_default() -> None:
    # A password with a default is a password everyone knows: each must be `${VAR:?message}`.
    text = COMPOSE_FILE.read_text()
    references = {
        (match["name"], match["op"]) for match in _BRACED.finditer(text) if PASSWORD_NAME.search(match["name"])
    }
    assert {name for name, _ in references} >= {"ENROLL_SECRET_KEY", *PASSWORDS}
    assert all(op == ":?" for _, op in references), sorted(references)
    for name, definition in compose()["services"].items():
        for key, value in environment(definition).items():
            if value is not None and PASSWORD_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{name}'s {key} is {value!r}"
    assert "@postgresql/" in text and ":${POSTGRES_PASSWORD:?" in text
    for missing in PASSWORDS:
        env = {"ENROLL_SECRET_KEY": SECRET, **{k: v for k, v in PASSWORDS.items() if k != missing}}
        with pytest.raises(MissingVariable, match=missing):
            resolved(compose(), env)
        with pytest.raises(MissingVariable, match=missing):
            resolved(compose(), {**env, missing: ""})


def test_env_example_lists_every_required_variable() -> None:
    example = ROOT / ".env.example"
    names = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example.read_text(), re.MULTILINE))
    required = {match["name"] for match in _BRACED.finditer(COMPOSE_FILE.read_text()) if match["op"] == ":?"}
    assert required <= names, required - names
    assert dockerignored(".env")
