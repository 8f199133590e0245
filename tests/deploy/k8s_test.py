"""The Kubernetes manifests in deploy/k8s hold together.

No cluster runs here, so these tests read the manifests the way kustomize and the API server would: every file
parses, the kustomizations list what is there, each Deployment runs its role with probes on its own ports,
limits and a non-root user, every reference (ConfigMap, Secret, Service, PDB, HPA, the backlog overlay's
patch) finds its target, and the settings the pods get build a valid `Settings`. With kubectl on the PATH the
base and every overlay are also built with its kustomize.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import shutil
import subprocess
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import worker
from credentials.pskc import MAX_BYTES_DEFAULT
from credentials.sealing import SecretsKeys, new_key_text
from domain.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = K8S / "overlays"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
DOC = ROOT / "docs" / "kubernetes.md"

SETTING_VARIABLES = {f"{Settings.model_config.get('env_prefix', '')}{name}".upper() for name in Settings.model_fields}
SECRET_SETTINGS = {
    "ENROLL_SECRET_KEY",
    "ENROLL_DATABASE_URL",
    "ENROLL_SMTP_PASSWORD",
    "ENROLL_PAYLOAD_KEY",
    "ENROLL_SECRETS_KEY",
    "ENROLL_TEMPORAL_API_KEY",
}
ROLES = {"enroll-api": "api", "enroll-worker": "worker"}
# Files that are not manifests: the Secret to fill in outside the repository, and Helm values for other charts.
NOT_MANIFESTS = ("kustomization.yaml", "*.example.yaml", "*.values.yaml")

Object = dict[str, Any]


def documents(path: Path) -> list[Any]:
    with path.open() as stream:
        return [document for document in yaml.safe_load_all(stream) if document is not None]


def is_manifest(path: Path) -> bool:
    return not any(path.match(pattern) for pattern in NOT_MANIFESTS)


def kustomization(directory: Path) -> Object:
    (document,) = documents(directory / "kustomization.yaml")
    assert isinstance(document, dict)
    return document


@cache
def base_objects() -> dict[tuple[str, str], Object]:
    """Every object the base applies, by (kind, name)."""
    objects: dict[tuple[str, str], Object] = {}
    for resource in kustomization(BASE)["resources"]:
        for document in documents(BASE / resource):
            key = (document["kind"], document["metadata"]["name"])
            assert key not in objects, f"{key} is defined twice"
            objects[key] = document
    return objects


def of_kind(kind: str) -> dict[str, Object]:
    return {name: obj for (k, name), obj in base_objects().items() if k == kind}


def deployment(name: str) -> Object:
    return of_kind("Deployment")[name]


def pod_spec(name: str) -> Object:
    spec: Object = deployment(name)["spec"]["template"]["spec"]
    return spec


def container(name: str) -> Object:
    (only,) = pod_spec(name)["containers"]
    assert isinstance(only, dict)
    return only


def config() -> dict[str, str]:
    (config_map,) = of_kind("ConfigMap").values()
    return {key: str(value) for key, value in config_map["data"].items()}


def secret_example() -> Object:
    (secret,) = documents(SECRET_EXAMPLE)
    assert isinstance(secret, dict)
    return secret


def port_number(owner: Object, port: int | str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    ports = {p["name"]: p["containerPort"] for p in owner.get("ports", []) if "name" in p}
    number = ports.get(port) if isinstance(port, str) else port
    assert isinstance(number, int), f"port {port!r} is not one of the container's ports {ports}"
    assert number in {p["containerPort"] for p in owner["ports"]}, f"{number} is not a container port"
    return number


def probe_port(owner: Object, probe: Object) -> int:
    for handler in ("httpGet", "tcpSocket", "grpc"):
        if handler in probe:
            return port_number(owner, probe[handler]["port"])
    raise AssertionError(f"probe without a port: {probe}")


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTORS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(text: str | int) -> float:
    match = _QUANTITY.match(str(text))
    assert match, f"{text!r} is not a Kubernetes quantity"
    return float(match.group(1)) * _FACTORS[match.group(2)]


def test_every_file_parses() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert files
    for path in files:
        parsed = documents(path)
        assert parsed, f"{path} is empty"
        for document in parsed:
            assert isinstance(document, dict | list), path
            if isinstance(document, dict) and is_manifest(path):
                assert {"apiVersion", "kind", "metadata"} <= document.keys(), path


def test_kustomizations_list_exactly_the_manifests_present() -> None:
    manifests = {path.name for path in BASE.glob("*.yaml") if is_manifest(path)}
    listed = kustomization(BASE)["resources"]
    assert len(listed) == len(set(listed)), "a manifest is listed twice"
    assert set(listed) == manifests
    assert "secret.example.yaml" not in " ".join(listed)
    assert kustomization(K8S)["resources"] == ["base"]
    assert not [path for path in K8S.glob("*.yaml") if is_manifest(path)], "manifests belong in base/"

    overlays = sorted(path for path in OVERLAYS.iterdir() if path.is_dir())
    assert {path.name for path in overlays} >= {"backlog", "temporal-cloud-mtls", "temporal-cloud-api-key"}
    for overlay in overlays:
        definition = kustomization(overlay)
        assert definition["resources"] == ["../../base"], overlay
        patches = {patch["path"] for patch in definition.get("patches", [])}
        assert all((overlay / patch).is_file() for patch in patches), overlay
        assert patches == {path.name for path in overlay.glob("*.yaml") if is_manifest(path)}, overlay


def test_the_image_is_the_one_kustomize_sets() -> None:
    (image,) = kustomization(BASE)["images"]
    for name in ROLES:
        assert container(name)["image"].partition(":")[0] == image["name"] == "member-account-enrollment"


def test_each_deployment_runs_its_role_and_owns_its_pods() -> None:
    assert set(of_kind("Deployment")) == set(ROLES)
    for name, role in ROLES.items():
        assert container(name)["command"] == ["enroll", role]
        spec = deployment(name)["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        assert labels["app.kubernetes.io/component"] == role
        assert "replicas" not in spec, "the HPA owns the replica count; `kubectl apply` would reset it"


def test_probes_use_the_containers_own_ports() -> None:
    for name in ROLES:
        main = container(name)
        for kind in ("readinessProbe", "livenessProbe"):
            assert kind in main, f"{name} has no {kind}"
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            if kind in main:
                probe_port(main, main[kind])
    # The API stays ready and alive through a Temporal or store outage: it keeps serving what it can then.
    api = container("enroll-api")
    path = api["readinessProbe"]["httpGet"]["path"]
    assert path.startswith("/static/") and (ROOT / "starter/portal" / path.lstrip("/")).is_file()
    assert "tcpSocket" in api["livenessProbe"]


def test_resources_are_requested_and_memory_is_limited() -> None:
    for name in ROLES:
        resources = container(name)["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys(), name
        assert quantity(resources["limits"]["memory"]) >= quantity(resources["requests"]["memory"]), name
    # bench/worker_memory.py: about 250 MB with 10,000 enrollments waiting.
    assert quantity(container("enroll-worker")["resources"]["limits"]["memory"]) >= 300 * 2**20


def test_pods_run_as_non_root_without_privileges() -> None:
    data_dir = config().get("ENROLL_DATA_DIR")
    for name in ROLES:
        pod = pod_spec(name)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"].get("runAsUser", 1) != 0
        security = container(name)["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert not security.get("privileged", False)
        assert pod.get("automountServiceAccountToken") is False
        if security.get("readOnlyRootFilesystem"):
            mounts = {mount["mountPath"] for mount in container(name).get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"
            if data_dir:
                assert data_dir in mounts, f"{name}: ENROLL_DATA_DIR {data_dir} must be writable"
        volumes = {volume["name"] for volume in pod.get("volumes", [])}
        assert {mount["name"] for mount in container(name).get("volumeMounts", [])} <= volumes


def test_settings_come_from_the_config_map_and_the_secret() -> None:
    (config_map,) = of_kind("ConfigMap")
    secret = secret_example()["metadata"]["name"]
    for name in ROLES:
        sources = container(name)["envFrom"]
        assert {source["configMapRef"]["name"] for source in sources if "configMapRef" in source} == {config_map}
        assert {source["secretRef"]["name"] for source in sources if "secretRef" in source} == {secret}
        assert not any(source.get("secretRef", {}).get("optional") for source in sources), "the Secret is required"
        # Settings belong in the ConfigMap or the Secret; `env` holds only what is not a setting (uvicorn's).
        assert set(variables(container(name))) <= PROCESS_VARIABLES[name], (
            "settings belong in the ConfigMap or the Secret"
        )
        # The TLS files are optional: a cluster without TLS, or an API key, needs no such Secret.
        for volume in pod_spec(name).get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["optional"] is True, volume


PROCESS_VARIABLES = {"enroll-api": {"FORWARDED_ALLOW_IPS"}, "enroll-worker": set()}


def variables(spec: Object) -> dict[str, str]:
    """A container's `env`, name -> value."""
    return {str(item["name"]): str(item.get("value", "")) for item in spec.get("env", [])}


def test_the_api_trusts_forwarded_addresses_from_the_cluster_only() -> None:
    """Behind the Ingress every client would otherwise share the controller's address (one lock-out for all)."""
    trusted = variables(container("enroll-api")).get("FORWARDED_ALLOW_IPS")
    assert trusted, "set FORWARDED_ALLOW_IPS on the API container to the ingress controller's pod CIDR"
    networks = [ipaddress.ip_network(part.strip()) for part in trusted.split(",")]  # no "*", no host names
    assert all(network.is_private for network in networks), networks
    assert "FORWARDED_ALLOW_IPS" not in variables(container("enroll-worker"))


def test_disruption_budgets_and_autoscalers_target_the_deployments() -> None:
    budgets, autoscalers = of_kind("PodDisruptionBudget"), of_kind("HorizontalPodAutoscaler")
    assert {
        budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for budget in budgets.values()
    } == {
        "api",
        "worker",
    }
    for budget in budgets.values():
        selector = budget["spec"]["selector"]["matchLabels"]
        matching = [
            name
            for name in ROLES
            if selector.items() <= deployment(name)["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, f"PDB {budget['metadata']['name']} selects {matching}"
    targets = set()
    for autoscaler in autoscalers.values():
        assert autoscaler["apiVersion"] == "autoscaling/v2"
        target = autoscaler["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        assert target["name"] in ROLES
        targets.add(target["name"])
        assert 1 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
        assert any(
            metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
            for metric in autoscaler["spec"]["metrics"]
        )
    assert targets == set(ROLES)
    assert deployment("enroll-api")["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_ports_agree_with_the_settings() -> None:
    settings = config()
    api, work = container("enroll-api"), container("enroll-worker")
    api_port = int(settings["ENROLL_API_PORT"])
    assert settings["ENROLL_API_HOST"] == "0.0.0.0"
    assert [p["containerPort"] for p in api["ports"]] == [api_port]
    assert probe_port(api, api["readinessProbe"]) == api_port

    # The worker's only port is its metrics endpoint: probes and scraping use ENROLL_METRICS_PORT.
    metrics_port = int(settings["ENROLL_METRICS_PORT"])
    assert [p["containerPort"] for p in work["ports"]] == [metrics_port]
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert probe_port(work, work[kind]) == metrics_port
    for name, port in (("enroll-api", api_port), ("enroll-worker", metrics_port)):
        annotations = deployment(name)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == port
        assert annotations["prometheus.io/path"] == "/metrics"

    (service,) = of_kind("Service").values()
    assert (
        service["spec"]["selector"].items()
        <= deployment("enroll-api")["spec"]["template"]["metadata"]["labels"].items()
    )
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80 and port_number(api, port["targetPort"]) == api_port


async def test_the_worker_has_time_to_shut_down(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """terminationGracePeriodSeconds outlasts the graceful_shutdown_timeout build_worker gives the Worker."""
    built: dict[str, Any] = {}

    async def no_connection(*args: Any, **kwargs: Any) -> object:
        return object()

    def record(*args: Any, **kwargs: Any) -> object:
        built.update(kwargs)
        return object()

    monkeypatch.setattr(worker, "connect", no_connection)
    monkeypatch.setattr(worker, "Worker", record)
    await worker.build_worker(Settings(_env_file=None, data_dir=tmp_path, secret_key="k"))
    shutdown = built.get("graceful_shutdown_timeout") or timedelta(0)
    assert shutdown > timedelta(0), "the worker should finish in-flight activities on SIGTERM"
    grace = pod_spec("enroll-worker")["terminationGracePeriodSeconds"]
    assert timedelta(seconds=grace) >= shutdown + timedelta(seconds=10), "leave room to exit after the timeout"


def json_patched(document: Object, operations: list[Object]) -> Object:
    """RFC 6902 `add` and `replace`, which is all the overlays use."""
    result = copy.deepcopy(document)
    for operation in operations:
        *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]]
        target: Any = result
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if operation["op"] == "add" and isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), operation["value"])
        elif operation["op"] in ("add", "replace"):
            if operation["op"] == "replace":
                assert last in target, operation
            target[last] = operation["value"]
        else:
            raise AssertionError(f"unexpected operation {operation}")
    return result


def backlog_patch() -> tuple[Object, list[Object]]:
    (patch,) = kustomization(OVERLAYS / "backlog")["patches"]
    (operations,) = documents(OVERLAYS / "backlog" / patch["path"])
    assert isinstance(operations, list)
    return patch["target"], operations


def test_the_backlog_overlay_adds_an_external_metric_and_keeps_cpu() -> None:
    target, operations = backlog_patch()
    base = of_kind("HorizontalPodAutoscaler")[target["name"]]
    assert (target["group"], target["version"], target["kind"]) == ("autoscaling", "v2", "HorizontalPodAutoscaler")
    assert base["spec"]["scaleTargetRef"]["name"] == "enroll-worker"

    patched = json_patched(base, operations)
    assert patched["spec"]["metrics"][: len(base["spec"]["metrics"])] == base["spec"]["metrics"], "CPU is kept"
    (external,) = [metric["external"] for metric in patched["spec"]["metrics"] if metric["type"] == "External"]
    assert external["target"]["type"] == "AverageValue" and quantity(external["target"]["averageValue"]) > 0

    # The metric is the task queue the workers poll, in the namespace they use.
    settings = config()
    assert external["metric"]["selector"]["matchLabels"] == {
        "namespace": settings["ENROLL_TEMPORAL_NAMESPACE"],
        "taskqueue": settings["ENROLL_TASK_QUEUE"],
    }

    # prometheus-adapter serves it under that name, without scoping it to the HPA's Kubernetes namespace.
    (values,) = documents(OVERLAYS / "backlog" / "prometheus-adapter.values.yaml")
    (rule,) = values["rules"]["external"]
    assert rule["name"]["as"] == external["metric"]["name"]
    assert rule["resources"]["namespaced"] is False
    assert "approximate_backlog_count" in rule["seriesQuery"]
    assert "<<.Series>>" in rule["metricsQuery"] and "<<.LabelMatchers>>" in rule["metricsQuery"]


def test_every_enroll_variable_mentioned_is_a_setting() -> None:
    files = [path for path in K8S.rglob("*") if path.is_file()]
    assert DOC.is_file(), "docs/kubernetes.md explains these manifests"
    for path in [*files, DOC]:
        mentioned = set(re.findall(r"\bENROLL_[A-Z0-9_]+", path.read_text()))
        assert mentioned <= SETTING_VARIABLES, (
            f"{path.relative_to(ROOT)}: not settings: {mentioned - SETTING_VARIABLES}"
        )
    assert set(config()) <= SETTING_VARIABLES


def overlay_config(name: str) -> dict[str, str]:
    """The base ConfigMap with an overlay's strategic-merge patch of its data."""
    merged = config()
    for patch in kustomization(OVERLAYS / name).get("patches", []):
        for document in documents(OVERLAYS / name / patch["path"]):
            if isinstance(document, dict) and document.get("kind") == "ConfigMap":
                assert document["metadata"]["name"] in of_kind("ConfigMap")
                merged |= {key: str(value) for key, value in document["data"].items()}
    return merged


GENERATED_KEY = "k" * 16 + "Zq3-Vb7_Lm2Xw9Pt4Ry8Nd1Hs6Gf5Jc0Ka" + "t" * 14  # 64 characters, as token_urlsafe(48)


GENERATED_SECRETS_KEY = new_key_text("k1")


def pod_settings(
    monkeypatch: pytest.MonkeyPatch, config_data: dict[str, str], *, placeholders: bool = False, **secrets: str
) -> Settings:
    """The settings of a pod with the ConfigMap and the example Secret; its ENROLL_SECRETS_KEY placeholder (which
    does not parse) replaced by a generated key unless `placeholders`."""
    for variable in SETTING_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    generated = {} if placeholders else {"ENROLL_SECRETS_KEY": GENERATED_SECRETS_KEY}
    for key, value in {**config_data, **secret_example()["stringData"], **generated, **secrets}.items():
        monkeypatch.setenv(key, str(value))
    return Settings(_env_file=None)


def test_the_placeholder_secrets_key_does_not_start_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    placeholder = secret_example()["stringData"]["ENROLL_SECRETS_KEY"]
    with pytest.raises(ValidationError, match="ENROLL_SECRETS_KEY") as refused:
        pod_settings(monkeypatch, config(), placeholders=True, ENROLL_SECRET_KEY=GENERATED_KEY)
    assert placeholder not in str(refused.value), "the value is not echoed"


def test_the_config_map_and_placeholder_secret_make_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The example's placeholder key must not start a pod (domain/settings.py refuses it); a generated one does.
    assert pod_settings(monkeypatch, config()).missing_secret() is not None
    settings = pod_settings(monkeypatch, config(), ENROLL_SECRET_KEY=GENERATED_KEY)
    assert settings.missing_secret() is None
    # Both roles read the Secret (envFrom): the API seals uploaded PSKC files, the worker opens them.
    assert settings.missing_secrets_key() is None
    assert settings.secrets_keys == SecretsKeys.parse(GENERATED_SECRETS_KEY)
    assert settings.pskc_max_bytes == MAX_BYTES_DEFAULT, "the ConfigMap keeps the 50 MiB default"
    assert settings.log_format == "json" and settings.metrics_port is not None
    assert (settings.database_url or "").startswith("postgresql+asyncpg://")
    assert settings.temporal_address == "temporal-frontend.temporal.svc.cluster.local:7233"
    assert not settings.temporal_uses_tls, "the in-cluster Temporal of the base has no TLS"
    assert not settings.embedded and not settings.dev_mailbox


def tls_mount(name: str) -> str:
    pod = pod_spec(name)
    (volume,) = [volume["name"] for volume in pod["volumes"] if volume.get("secret")]
    (mount,) = [mount["mountPath"] for mount in container(name)["volumeMounts"] if mount["name"] == volume]
    return str(mount)


def test_temporal_cloud_with_mtls_reads_the_mounted_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = pod_settings(monkeypatch, overlay_config("temporal-cloud-mtls"))
    assert settings.temporal_uses_tls
    assert settings.temporal_tls_cert is not None and settings.temporal_tls_key is not None
    for name in ROLES:
        for path in (settings.temporal_tls_cert, settings.temporal_tls_key):
            assert path.parent == Path(tls_mount(name)), f"{path} is not in {name}'s TLS volume"
    # The namespace's own endpoint, named after its id <namespace>.<account>.
    assert settings.temporal_address == f"{settings.temporal_namespace}.tmprl.cloud:7233"
    assert settings.temporal_namespace.count(".") == 1


def test_temporal_cloud_with_an_api_key_uses_a_regional_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "ENROLL_TEMPORAL_API_KEY" in SECRET_EXAMPLE.read_text(), "the Secret example shows where the key goes"
    settings = pod_settings(monkeypatch, overlay_config("temporal-cloud-api-key"), ENROLL_TEMPORAL_API_KEY="key")
    assert settings.temporal_uses_tls and settings.temporal_tls_cert is None
    assert re.fullmatch(r"[a-z0-9-]+\.(aws|gcp)\.api\.temporal\.io:7233", settings.temporal_address or "")
    assert settings.temporal_namespace.count(".") == 1


def test_secrets_stay_in_the_secret() -> None:
    secret = secret_example()
    assert (secret["apiVersion"], secret["kind"]) == ("v1", "Secret")
    keys = set(secret["stringData"])
    assert keys <= SETTING_VARIABLES
    assert keys <= SECRET_SETTINGS
    assert {"ENROLL_SECRET_KEY", "ENROLL_DATABASE_URL", "ENROLL_SECRETS_KEY"} <= keys
    assert all("REPLACE" in str(value) for value in secret["stringData"].values()), "placeholders only"
    for overlay in ("", "backlog", "temporal-cloud-mtls", "temporal-cloud-api-key"):
        data = overlay_config(overlay) if overlay else config()
        assert not set(data) & SECRET_SETTINGS, f"secrets in the ConfigMap of {overlay or 'base'}"
    assert secret["metadata"]["namespace"] == kustomization(BASE)["namespace"]


KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl (its kustomize builds the overlays)")
@pytest.mark.parametrize(
    "directory", ["", "overlays/backlog", "overlays/temporal-cloud-mtls", "overlays/temporal-cloud-api-key"]
)
def test_kustomize_builds(directory: str) -> None:
    assert KUBECTL is not None
    built = subprocess.run([KUBECTL, "kustomize", str(K8S / directory)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for obj in yaml.safe_load_all(built.stdout) if obj}
    assert set(objects) == set(base_objects())
    namespace = kustomization(BASE)["namespace"]
    assert all(
        obj["metadata"].get("namespace") == namespace for (kind, _), obj in objects.items() if kind != "Namespace"
    )
    hpa = objects["HorizontalPodAutoscaler", "enroll-worker"]
    kinds = [metric["type"] for metric in hpa["spec"]["metrics"]]
    assert kinds == (["Resource", "External"] if directory == "overlays/backlog" else ["Resource"])
    data = objects["ConfigMap", "enroll-config"]["data"]
    expected = overlay_config(directory.removeprefix("overlays/")) if directory else config()
    assert {key: str(value) for key, value in data.items()} == expected
