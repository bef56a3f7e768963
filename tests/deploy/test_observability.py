"""The observability files under deploy/: Prometheus configs, rules and their unit tests, the
Grafana dashboard and the Prometheus Operator component. Offline and fast: nothing is started.

promtool comes from Debian's `prometheus` package:
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
(or set PROMTOOL to another build). The tests that need it are skipped without it.
"""
import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "leadflow.rules.yml"
RULE_TESTS = PROMETHEUS / "tests" / "leadflow.rules.test.yml"
CONFIGS = {"kubernetes": PROMETHEUS / "prometheus.yml", "local": PROMETHEUS / "prometheus-local.yml"}
DASHBOARD = REPO / "deploy" / "grafana" / "leadflow-overview.json"
COMPONENT = REPO / "deploy" / "k8s" / "components" / "prometheus-operator"
METRICS_PY = REPO / "services" / "common" / "metrics.py"

SERVICES = {"capture": 8001, "scoring": 8002, "routing": 8003, "opportunity": 8004, "reporting": 8005}
# Series Prometheus makes itself rather than a Leadflow process.
BUILTIN_SERIES = {"up"}
# Referenced by an alert before any service exports it: routing starts exporting it with the SLA
# work. The alert has no data (and stays silent) until then.
NOT_YET_EXPORTED = {"leadflow_routing_sla_breaches_total"}
SEVERITIES = {"critical", "warning", "info"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                   "offset", "bool", "inf", "nan"}


# --- helpers -----------------------------------------------------------------------------------

def load_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def exported_metric_names() -> set[str]:
    """Every series name services/common/metrics.py exports, suffixes included."""
    suffixes = {"Counter": ("", "_created"), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count", "_created"),
                "Summary": ("", "_sum", "_count", "_created")}
    names = set()
    for node in ast.walk(ast.parse(METRICS_PY.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in suffixes:
            first = node.args[0]
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), ast.dump(node)
            base = first.value
            if node.func.id == "Counter":  # prometheus_client exports a counter named x or x_total as x_total
                base = base.removesuffix("_total")
                names.update({base + "_total", base + "_created"})
            else:
                names.update(base + suffix for suffix in suffixes[node.func.id])
    assert names, f"no metric definitions found in {METRICS_PY}"
    return names


def rule_groups() -> list[dict]:
    return load_yaml(RULES)["groups"]


def all_rules() -> list[dict]:
    return [rule for group in rule_groups() for rule in group["rules"]]


def alerts() -> list[dict]:
    return [rule for rule in all_rules() if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in all_rules() if "record" in rule}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana variables allowed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # string literals
    expr = re.sub(r"\{[^{}]*\}", "", expr)  # label matchers (and ${VARIABLES})
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\w+", "", expr)  # Grafana variables
    found = set()
    for match in re.finditer(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()", expr):
        if match.group(1).lower() not in PROMQL_KEYWORDS:
            found.add(match.group(1))
    return found


def dashboard_panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows keep their panels inside
    return panels


def grafana_to_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, so promtool can parse it."""
    for variable, value in (("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h"),
                            ("${service}", ".*"), ("$service", ".*")):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


@pytest.fixture(scope="module")
def promtool() -> str:
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not path:
        pytest.skip("promtool is not installed: apt-get install -y --no-install-recommends prometheus "
                    "(Debian's package), or set PROMTOOL")
    return path


def run(*args, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=60)


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"{' '.join(result.args)}\n{result.stdout}\n{result.stderr}"


# --- promtool ----------------------------------------------------------------------------------

def test_local_config_passes_promtool(promtool):
    assert_ok(run(promtool, "check", "config", CONFIGS["local"]))


def test_kubernetes_config_passes_promtool(promtool, tmp_path):
    """Debian's promtool is built without Kubernetes service discovery and refuses
    `kubernetes_sd_configs` as an unknown field. With such a build the SD block is checked here and
    everything else (relabelling, rule files, globals) by promtool on a copy without it; an
    upstream promtool (PROMTOOL=...) checks the file as it is."""
    result = run(promtool, "check", "config", CONFIGS["kubernetes"])
    if result.returncode == 0:
        return
    if "field kubernetes_sd_configs not found" not in result.stdout + result.stderr:
        assert_ok(result)
    config = load_yaml(CONFIGS["kubernetes"])
    for job in config["scrape_configs"]:
        for sd in job.pop("kubernetes_sd_configs", []):
            assert sd["role"] == "endpoints"
            assert set(sd) <= {"role", "namespaces", "api_server", "kubeconfig_file", "selectors",
                               "attach_metadata", "follow_redirects", "enable_http2"}, sd
        job.setdefault("static_configs", [])
    config["rule_files"] = [str(PROMETHEUS / f) for f in config["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert_ok(run(promtool, "check", "config", copy))


def test_rules_pass_promtool(promtool):
    assert_ok(run(promtool, "check", "rules", RULES))


def test_rule_unit_tests_pass(promtool):
    result = run(promtool, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert_ok(result)
    assert "SUCCESS" in result.stdout + result.stderr


def test_dashboard_promql_parses(promtool, tmp_path):
    """Each dashboard query, its Grafana variables filled in, must be PromQL that promtool accepts."""
    rules = [{"record": f"dashboard:query_{i}:check", "expr": grafana_to_promql(target["expr"])}
             for i, target in enumerate(target for panel in dashboard_panels(load_dashboard())
                                        for target in panel.get("targets", []))]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    assert_ok(run(promtool, "check", "rules", path))


# --- scrape configs ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_scrape_config_labels_targets_as_the_rules_expect(kind):
    config = load_yaml(CONFIGS[kind])
    for rule_file in config["rule_files"]:
        assert (CONFIGS[kind].parent / rule_file).resolve() == RULES.resolve()
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "leadflow"  # the rules select up{job="leadflow"}
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # The services export their own `service` label; without honor_labels it becomes exported_service.
    assert job["honor_labels"] is True
    if kind == "local":
        targets = {tuple(group["targets"]): group["labels"]["service"] for group in job["static_configs"]}
        assert targets == {(f"127.0.0.1:{port}",): name for name, port in SERVICES.items()}
    else:
        relabel = job["relabel_configs"]
        keeps = {(tuple(r["source_labels"]), r["regex"]) for r in relabel if r.get("action") == "keep"}
        assert keeps == {(("__meta_kubernetes_service_label_app_kubernetes_io_part_of",), "leadflow"),
                         (("__meta_kubernetes_endpoint_port_name",), "http")}
        (service,) = [r for r in relabel if r.get("target_label") == "service"]
        for name in SERVICES:
            for service_name in (name, f"leadflow-{name}"):
                assert re.fullmatch(service["regex"], service_name).group(1) == name


# --- rules -------------------------------------------------------------------------------------

def test_every_alert_has_severity_summary_and_description():
    assert alerts()
    for alert in alerts():
        name = alert["alert"]
        assert alert.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = alert.get("annotations", {})
        assert annotations.get("summary", "").strip(), f"{name}: no summary"
        assert len(annotations.get("description", "").split()) >= 15, f"{name}: the description should say " \
            "what the alert means and what to check"
        assert "Check" in annotations["description"], f"{name}: the description should say what to check"


def test_rule_names_are_unique():
    names = [alert["alert"] for alert in alerts()]
    assert len(names) == len(set(names))
    recorded = {}
    for rule in all_rules():
        if "record" in rule:  # one name may be recorded several times with different labels
            key = (rule["record"], tuple(sorted(rule.get("labels", {}).items())))
            assert key not in recorded, key
            recorded[key] = rule


def test_rules_use_only_exported_or_recorded_metrics():
    known = exported_metric_names() | recorded_names() | BUILTIN_SERIES | NOT_YET_EXPORTED
    for rule in all_rules():
        used = metric_names(rule["expr"])
        assert used, f"{rule}: no metric found in its expression"
        unknown = used - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: unknown metrics {sorted(unknown)}"


def test_every_alert_is_unit_tested_firing_and_silent():
    firing, silent = set(), set()
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {alert["alert"] for alert in alerts()}
    assert names - firing == set(), "alerts without a test in which they fire"
    assert names - silent == set(), "alerts without a test in which they stay silent"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


# --- Prometheus Operator component -------------------------------------------------------------

def load_generator():
    spec = importlib.util.spec_from_file_location("generate_prometheusrule", PROMETHEUS / "generate_prometheusrule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheusrule_is_generated_from_the_rules_file():
    generator = load_generator()
    committed = (COMPONENT / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == generator.render(RULES.read_text(encoding="utf-8")), \
        "stale: run python3 deploy/prometheus/generate_prometheusrule.py"
    rule = yaml.safe_load(committed)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == rule_groups()


def test_component_and_servicemonitor():
    kustomization = load_yaml(COMPONENT / "kustomization.yaml")
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    assert kustomization["kind"] == "Component"
    assert sorted(kustomization["resources"]) == ["prometheusrule.yaml", "servicemonitor.yaml"]
    (labels,) = kustomization["labels"]
    assert "release" in labels["pairs"]
    assert {field["kind"] for field in labels["fields"]} == {"ServiceMonitor", "PrometheusRule"}

    monitor = load_yaml(COMPONENT / "servicemonitor.yaml")
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/part-of": "leadflow"}}
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/part-of"  # job="leadflow"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True
    (service,) = [r for r in endpoint["relabelings"] if r["targetLabel"] == "service"]
    assert service["sourceLabels"] == ["__meta_kubernetes_service_name"]
    for name in SERVICES:
        for service_name in (name, f"leadflow-{name}"):
            assert re.fullmatch(service["regex"], service_name).group(1) == name


def test_component_builds_with_kustomize(tmp_path):
    """Built into a small overlay: the release label lands on the ServiceMonitor and the
    PrometheusRule only, and the built PrometheusRule carries the rules file's groups."""
    kubectl, kustomize = shutil.which("kubectl"), shutil.which("kustomize")
    if not (kubectl or kustomize):
        pytest.skip("neither kustomize nor kubectl is installed")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "service.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "capture", "labels": {"app.kubernetes.io/part-of": "leadflow"}},
        "spec": {"selector": {"app.kubernetes.io/name": "capture"},
                 "ports": [{"name": "http", "port": 8001}]}}), encoding="utf-8")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "leadflow",
        "resources": ["service.yaml"], "components": [os.path.relpath(COMPONENT, overlay)]}), encoding="utf-8")
    result = run(*([kustomize, "build"] if kustomize else [kubectl, "kustomize"]), overlay)
    assert_ok(result)
    built = {doc["kind"]: doc for doc in yaml.safe_load_all(result.stdout)}
    assert set(built) == {"Service", "ServiceMonitor", "PrometheusRule"}
    assert "release" not in built["Service"]["metadata"].get("labels", {})
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert built[kind]["metadata"]["labels"]["release"] == "prometheus"
        assert built[kind]["metadata"]["namespace"] == "leadflow"
    assert built["PrometheusRule"]["spec"]["groups"] == rule_groups()


# --- Grafana dashboard -------------------------------------------------------------------------

def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_dashboard_variables():
    dashboard = load_dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["service"]["type"] == "query"
    assert variables["service"]["includeAll"] and variables["service"]["multi"]


def test_dashboard_panels_query_real_metrics():
    dashboard = load_dashboard()
    known = exported_metric_names() | recorded_names() | BUILTIN_SERIES
    panels = dashboard_panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    used = set()
    for panel in panels:
        assert panel.get("title", "").strip(), f"panel {panel['id']} has no title"
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no queries"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            names = metric_names(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']}"
            assert not names - known, f"{panel['title']}: unknown metrics {sorted(names - known)}"
            used |= names
    # The panels people look for: pipeline, speed to lead, API health, events, outbox.
    for metric in ("leadflow_capture_leads_captured_total", "leadflow_scoring_mqls_total",
                   "leadflow_routing_tasks_created_total", "leadflow_opportunity_leads_contacted_total",
                   "leadflow_grpc_requests_total", "leadflow_events_handled_total",
                   "quantile:leadflow_routing_assignment_latency_seconds:histogram_quantile_rate5m",
                   "service_method:leadflow_grpc_server_errors:ratio_rate5m",
                   "service_method_quantile:leadflow_grpc_request_seconds:histogram_quantile_rate5m",
                   "service:leadflow_outbox_backlog:max"):
        assert metric in used, f"no panel shows {metric}"


def test_dashboard_layout_does_not_overlap():
    occupied = {}
    for panel in load_dashboard()["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in occupied, f"{panel['title']} overlaps {occupied[(x, y)]}"
                occupied[(x, y)] = panel["title"]


def test_metric_name_parser():
    assert metric_names('sum by (service, le) (rate(a_bucket{code!~"OK|X", service=~"$service"}[$__rate_interval]))'
                        ' / on (service) group_left b:c:d offset 5m') == {"a_bucket", "b:c:d"}
    assert metric_names("histogram_quantile(0.99, x) > 1 and vector(0) or up == bool 0") == {"x", "up"}
