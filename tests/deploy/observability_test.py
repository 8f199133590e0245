"""The alert rules, their unit tests and the Grafana dashboard in deploy/ hold together.

Structural checks always run: the rules and the dashboard are well formed, and every metric they read is one
the worker, the API or the Temporal server exports (the contract below). With `promtool` (Debian's prometheus
package; .ci/run installs it) the rules, their unit tests, the Prometheus config and every dashboard query are
also checked by Prometheus's own parser. Without it those checks are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.compose_test import bind_mounts, prometheus_config_path, service
from workflows.names import TASK_QUEUE

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
OPERATIONS = ROOT / "docs" / "operations.md"

# The metrics contract: what the processes export, by name (histograms by their base name).
# The worker: the Temporal SDK's series (durations in seconds; its counters have no `_total`) ...
SDK_METRICS = frozenset(
    {
        "temporal_workflow_task_schedule_to_start_latency",
        "temporal_activity_schedule_to_start_latency",
        "temporal_worker_task_slots_available",
        "temporal_worker_task_slots_used",
        "temporal_workflow_task_execution_failed",
        "temporal_activity_execution_failed",
        "temporal_request_failure",
        "temporal_workflow_completed",
        "temporal_workflow_failed",
        "temporal_sticky_cache_size",
        "temporal_num_pollers",
        "temporal_activity_execution_latency",
        "temporal_workflow_task_execution_latency",
    }
)
# ... and the enrollments' own, recorded through the SDK's meter on the same endpoint.
WORKER_METRICS = frozenset(
    {
        "enroll_enrollments_created_total",
        "enroll_status_transitions_total",
        "enroll_reminders_total",
        "enroll_enrollments_expired_total",
        "enroll_enrollments_approved_total",
        "enroll_emails_sent_total",
        "enroll_emails_bounced_total",
        "enroll_email_failures_total",
        "enroll_form_completion_seconds",
    }
)
# The API's GET /metrics (prometheus_client).
API_METRICS = frozenset(
    {
        "enroll_http_requests_total",
        "enroll_http_request_duration_seconds",
        "enroll_outbox_oldest_unsent_age_seconds",
        "enroll_outbox_unsent",
        "enroll_mail_failing",
        "enroll_enrollments",
    }
)
# The Temporal server, only where Prometheus scrapes it (docker-compose.yml; not Temporal Cloud).
SERVER_METRICS = frozenset({"approximate_backlog_count"})
CONTRACT_METRICS = SDK_METRICS | WORKER_METRICS | API_METRICS | SERVER_METRICS
HISTOGRAMS = frozenset(
    {
        "temporal_workflow_task_schedule_to_start_latency",
        "temporal_activity_schedule_to_start_latency",
        "temporal_activity_execution_latency",
        "temporal_workflow_task_execution_latency",
        "enroll_form_completion_seconds",
        "enroll_http_request_duration_seconds",
    }
)
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Concrete stand-ins for Grafana's variables, so that a dashboard query is plain PromQL.
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "6h", "__range_s": "21600"}
ANY_VALUE = ".*"  # a template variable, always used inside a regex matcher (=~ "$task_queue")

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIERS = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end"})
_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.DOTALL)
_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")


@cache
def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


@cache
def dashboard(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels") or [])


def concrete(expr: str) -> str:
    """A Grafana query with its variables replaced by values Prometheus accepts."""
    return _VARIABLE.sub(lambda match: GRAFANA_BUILTINS.get(match[1] or match[2], ANY_VALUE), expr)


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return str(query.get("query", "") if isinstance(query, dict) else query or "")


def dashboard_exprs() -> dict[str, str]:
    """Every PromQL query of the dashboards, Grafana variables replaced, by where it comes from: `<dashboard
    file>:panel_<id>_<refId>` or `<dashboard file>:variable_<name>` (the selector of its label_values)."""
    exprs = {}
    for path in DASHBOARDS:
        document, stem = dashboard(path), re.sub(r"\W", "_", path.stem)
        for panel in all_panels(document["panels"]):
            for target in panel.get("targets") or []:
                exprs[f"{stem}:panel_{panel['id']}_{target['refId']}"] = concrete(target["expr"])
        for variable in document.get("templating", {}).get("list", []):
            match = _LABEL_VALUES.match(variable_query(variable))
            if variable.get("type") == "query" and match and match["selector"]:
                exprs[f"{stem}:variable_{variable['name']}"] = concrete(match["selector"])
    return exprs


def alert_exprs() -> dict[str, str]:
    return {f"alert {rule['alert']}": str(rule["expr"]) for rule in alert_rules()}


def series_names(expr: str) -> set[str]:
    """The names of the series a PromQL expression selects, as written (`x_bucket` stays `x_bucket`)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _LABEL_LISTS.sub("", text)
    return {name for name in _IDENTIFIERS.findall(text) if name.lower() not in _KEYWORDS}


def base_metric(name: str) -> str:
    """A histogram's base name for its `_bucket`, `_sum` and `_count` series; any other name unchanged."""
    if name in CONTRACT_METRICS:  # approximate_backlog_count is a gauge whose name ends in _count
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def referenced_metrics() -> set[str]:
    """The base names of every metric the alert rules and the dashboards read."""
    exprs = [*alert_exprs().values(), *dashboard_exprs().values()]
    return {base_metric(name) for expr in exprs for name in series_names(expr)}


def provisioned_datasource_uid() -> str:
    sources = [
        source
        for path in sorted((GRAFANA_DIR / "provisioning" / "datasources").glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
        if source["type"] == "prometheus"
    ]
    assert len(sources) == 1, "provision exactly one Prometheus datasource"
    return str(sources[0]["uid"])


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings."""
    anchors = set()
    for line in markdown.splitlines():
        if match := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line):
            text = re.sub(r"[^\w\- ]", "", match[1].lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


# --- structure: always -------------------------------------------------------------------------------------


def test_the_metric_name_extraction_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(enroll_http_request_duration_seconds_bucket{route=~"a|b",'
        ' status!="x"}[5m] offset 1h))) > 2 and on(route) sum without (instance) (increase(enroll_http_requests_total'
        '[1h])) or vector(0) unless absent(up{job="enroll-api"} == 1) > bool 1e3 + 0x1f'
    )
    assert series_names(expr) == {"enroll_http_request_duration_seconds_bucket", "enroll_http_requests_total", "up"}
    assert base_metric("enroll_http_request_duration_seconds_bucket") == "enroll_http_request_duration_seconds"
    assert base_metric("approximate_backlog_count") == "approximate_backlog_count"
    assert concrete('rate(x{task_queue=~"$task_queue", ns=~"${namespace}"}[$__rate_interval])') == (
        'rate(x{task_queue=~".*", ns=~".*"}[5m])'
    )


def test_every_metric_read_is_one_the_stack_exports() -> None:
    referenced = referenced_metrics()
    # Not even Prometheus's own `up`: its job label differs from one scrape config to another (compose, k8s).
    unknown = referenced - CONTRACT_METRICS
    assert not unknown, f"not in the metrics contract: {sorted(unknown)}"
    raw = {name for expr in [*alert_exprs().values(), *dashboard_exprs().values()] for name in series_names(expr)}
    for name in raw - CONTRACT_METRICS:
        assert base_metric(name) in HISTOGRAMS, f"{name}: a suffix on a non-histogram"
    for name in HISTOGRAMS & referenced:
        assert name not in raw, f"{name} is a histogram: read its _bucket, _sum or _count series"
    # The dashboard covers the whole contract.
    covered = {base_metric(name) for expr in dashboard_exprs().values() for name in series_names(expr)}
    assert covered >= CONTRACT_METRICS, f"not on the dashboard: {sorted(CONTRACT_METRICS - covered)}"


def test_the_contract_matches_the_names_the_code_records() -> None:
    names = importlib.import_module("observability.names")
    recorded = {*names.WORKER_SERIES, *names.API_SERIES}
    ours = {name for name in CONTRACT_METRICS if name.startswith("enroll_")}
    assert recorded <= ours, f"recorded, but not in the contract: {sorted(recorded - ours)}"
    assert ours <= recorded, f"in the contract, but recorded nowhere: {sorted(ours - recorded)}"


def test_every_alert_is_actionable() -> None:
    rules = alert_rules()
    names = [rule.get("alert") for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    anchors = heading_anchors(OPERATIONS.read_text())
    for rule in rules:
        name = rule.get("alert")
        assert isinstance(name, str) and re.fullmatch(r"Enroll[A-Z][A-Za-z]+", name), f"{rule}: not an alert"
        assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), name
        assert _DURATION.match(str(rule.get("for", ""))), f"{name}: give `for` a duration, so a blip does not page"
        assert rule.get("labels", {}).get("severity") in {"critical", "warning"}, name
        annotations = rule.get("annotations") or {}
        for key in ("summary", "description"):
            assert isinstance(annotations.get(key), str) and len(annotations[key]) > 20, f"{name}: {key}"
        document, _, anchor = str(annotations.get("runbook", "")).partition("#")
        assert document == "docs/operations.md", f"{name}: point the on-call engineer at docs/operations.md"
        assert anchor in anchors, f"{name}: docs/operations.md has no heading #{anchor}"
        mentioned = set(re.findall(r"\bEnroll[A-Z]\w*", annotations["summary"] + annotations["description"]))
        assert mentioned <= set(names), f"{name} mentions alerts that do not exist: {mentioned - set(names)}"


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    document = yaml.safe_load(ALERTS_TEST.read_text())
    assert document["rule_files"] == [ALERTS.name]
    cases = [case for group in document["tests"] for case in group.get("alert_rule_test") or []]
    fires = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= fires, f"never shown to fire: {sorted(names - fires)}"
    assert names <= quiet, f"never shown to stay quiet: {sorted(names - quiet)}"
    assert fires | quiet <= names, f"tests of alerts that do not exist: {sorted((fires | quiet) - names)}"


def test_alerts_select_what_the_stack_scrapes() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    for rule in alert_rules():
        assert set(re.findall(r'\bjob="([^"]+)"', rule["expr"])) <= jobs, f"{rule['alert']} names an unscraped job"
        # The server labels its task queue `taskqueue`; the app's is workflows.names.TASK_QUEUE.
        assert set(re.findall(r'\btaskqueue="([^"]+)"', rule["expr"])) <= {TASK_QUEUE}, rule["alert"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[path.name for path in DASHBOARDS])
def test_the_dashboard_is_valid_dashboard_json(path: Path) -> None:
    document = dashboard(path)
    uid = provisioned_datasource_uid()
    assert isinstance(document.get("title"), str) and document["title"]
    assert isinstance(document.get("uid"), str) and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", document["uid"])
    assert isinstance(document.get("schemaVersion"), int) and document["schemaVersion"] >= 36
    assert isinstance(document.get("panels"), list) and document["panels"]

    panels = list(all_panels(document["panels"]))
    ids = [panel.get("id") for panel in panels]
    assert all(isinstance(panel_id, int) for panel_id in ids) and len(ids) == len(set(ids)), "panel ids"
    cells: dict[tuple[int, int], int] = {}
    for panel in panels:
        where = f"panel {panel['id']} ({panel.get('title')})"
        grid = panel.get("gridPos") or {}
        assert all(isinstance(grid.get(key), int) for key in "xywh"), f"{where}: gridPos needs x, y, w, h"
        assert grid["x"] >= 0 and grid["y"] >= 0 and grid["w"] > 0 and grid["h"] > 0, where
        assert grid["x"] + grid["w"] <= 24, f"{where}: wider than the 24-column grid"
        if panel in document["panels"]:  # panels inside a collapsed row are laid out when it opens
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{where} overlaps panel {cells[x, y]}"
                    cells[x, y] = panel["id"]
        assert isinstance(panel.get("title"), str) and panel["title"], f"{where}: give it a title"
        if panel.get("type") == "row":
            assert not panel.get("targets"), where
            continue
        assert panel.get("type"), where
        assert (panel.get("datasource") or {}).get("uid") == uid, f"{where}: use the provisioned datasource {uid!r}"
        targets = panel.get("targets") or []
        assert targets, f"{where}: no query"
        ref_ids = [target.get("refId") for target in targets]
        assert all(ref_ids) and len(ref_ids) == len(set(ref_ids)), f"{where}: refIds"
        for target in targets:
            assert isinstance(target.get("expr"), str) and target["expr"].strip(), f"{where}: a target without expr"
            assert (target.get("datasource") or {"uid": uid}).get("uid") == uid, where


@pytest.mark.parametrize("path", DASHBOARDS, ids=[path.name for path in DASHBOARDS])
def test_the_dashboards_template_variables_are_well_formed(path: Path) -> None:
    document = dashboard(path)
    uid = provisioned_datasource_uid()
    variables = document.get("templating", {}).get("list", [])
    names = [variable.get("name") for variable in variables]
    assert len(names) == len(set(names)), "variable names must be unique"
    for variable in variables:
        name = variable.get("name")
        assert isinstance(name, str) and re.fullmatch(r"[A-Za-z_]\w*", name), variable
        kinds = {"query", "custom", "constant", "interval", "datasource", "textbox", "adhoc"}
        assert variable.get("type") in kinds, name
        if variable["type"] == "query":
            assert (variable.get("datasource") or {}).get("uid") == uid, name
            assert _LABEL_VALUES.match(variable_query(variable)), f"{name}: expected label_values(selector, label)"
            if variable.get("includeAll"):
                assert variable.get("allValue") == ANY_VALUE, f"{name}: All must match every value as a regex"
    # Every variable a query uses is defined (or one of Grafana's own).
    used = {
        match[1] or match[2]
        for panel in all_panels(document["panels"])
        for target in panel.get("targets") or []
        for match in _VARIABLE.finditer(target["expr"])
    }
    used |= {match[1] or match[2] for variable in variables for match in _VARIABLE.finditer(variable_query(variable))}
    assert used <= set(names) | set(GRAFANA_BUILTINS), f"undefined variables: {sorted(used - set(names))}"
    # A variable is only ever used where a regex is expected, so "All" (.*) keeps the query valid.
    for expr in [t["expr"] for p in all_panels(document["panels"]) for t in p.get("targets") or []]:
        for name in set(names):
            for use in re.finditer(rf"(\S*)\$\{{?{name}\b", expr):
                assert use[1].endswith('=~"'), f"${name} outside a regex matcher in {expr}"


# --- Prometheus's own parser: promtool ---------------------------------------------------------------------


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail("promtool is missing under CI: .ci/run installs it from Debian's prometheus package")
    pytest.skip("promtool is not installed (.ci/run shows how to get it from Debian's prometheus package)")


def run_promtool(*args: str | Path, cwd: Path = ROOT) -> str:
    done = subprocess.run([promtool(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_promtool_accepts_the_alert_rules() -> None:
    assert f"SUCCESS: {len(alert_rules())} rules found" in run_promtool("check", "rules", ALERTS)


def test_the_alert_rules_unit_tests_pass() -> None:
    assert "SUCCESS" in run_promtool("test", "rules", ALERTS_TEST)


def test_promtool_accepts_the_prometheus_config_in_the_repository() -> None:
    assert "SUCCESS: 1 rule files found" in run_promtool("check", "config", PROMETHEUS_CONFIG)


def test_promtool_accepts_the_prometheus_config_as_the_container_sees_it(tmp_path: Path) -> None:
    # The files at the paths docker-compose.yml mounts them, so that rule_files resolves as in the container.
    root = tmp_path / "container"
    for target, source in bind_mounts(service("prometheus")).items():
        copy = root / target.lstrip("/")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, copy)
    config = root / prometheus_config_path().lstrip("/")
    assert "SUCCESS: 1 rule files found" in run_promtool("check", "config", config)


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # Each query as a recording rule named after its panel (or variable), so promtool's error names it.
    rules = [{"record": where, "expr": expr} for where, expr in sorted(dashboard_exprs().items())]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, allow_unicode=True))
    assert f"SUCCESS: {len(rules)} rules found" in run_promtool("check", "rules", path)
