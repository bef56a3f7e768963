"""Offline checks of the Kubernetes manifests (deploy/k8s) and of the image recipe (deploy/Dockerfile).

Each overlay is rendered with `kubectl kustomize` (no cluster involved), every object is validated
against the Kubernetes schemas bundled in kubernetes-validate, and Leadflow's deployment rules are
asserted: hardened containers with resources and probes, pinned images, secrets only by reference,
the README's ports, single replicas in dev, autoscaled pairs and disruption budgets in prod.
The Dockerfile cannot be built here (no Docker engine), so its invariants are checked as text.
"""
import functools
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from services.common import settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
OVERLAYS = ("dev", "prod")
OWN_COMPONENTS = ("hpa", "ingress", "keda", "network-policies")
# Owned elsewhere; overlays/prod lists it. Rendered with an empty stand-in while it does not exist yet.
PROMETHEUS_COMPONENT = "prometheus-operator"
KUBERNETES_VERSION = "1.37"

SERVICES = settings.SERVICE_NAMES
IMAGE = "ghcr.io/leadflow/leadflow"
SECRET_NAME = "leadflow-secrets"
SECRET_SETTINGS = {"AMQP_URI", "MONGODB_URI", "REDIS_URI", "LEADFLOW_AUTH_TOKENS"}
# Secrets only one service reads.
SERVICE_SECRETS = {"capture": {"WEBHOOK_SECRETS"}, "routing": {"NOTIFY_WEBHOOK_SECRET"}}
SECRET_LOOKING = re.compile(r"PASS|TOKEN|SECRET|CREDENTIAL|_URI$")
# A pinned image names a full version (major.minor.patch, optionally with a variant) or a digest;
# "3.11-slim" or "7" move under you.
PINNED_TAG = re.compile(r"\d+\.\d+\.\d+([.-][\w.-]+)?")
NON_ROOT_UID = 1000  # numeric UIDs below this belong to the base image's system accounts or root

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet")
# Custom resources: not in kubernetes-validate's schemas, so their required fields are checked by hand.
CUSTOM_RESOURCES = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


# ---------------------------------------------------------------------------------------------
# rendering


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed: it renders the overlays (its built-in kustomize, v5 or newer)")
    version = json.loads(subprocess.run([path, "version", "--client", "-o", "json"], capture_output=True,
                                        text=True, timeout=30, check=True).stdout)
    kustomize = version.get("kustomizeVersion", "")
    if not re.match(r"v?([5-9]|\d{2,})\.", kustomize):
        pytest.skip(f"kubectl's built-in kustomize is {kustomize or 'unknown'}; these manifests need v5 or newer")
    return path


@pytest.fixture(scope="session")
def k8s_root(tmp_path_factory) -> Path:
    """deploy/k8s, or a copy of it with an empty prometheus-operator component where that is missing."""
    if (K8S / "components" / PROMETHEUS_COMPONENT / "kustomization.yaml").is_file():
        return K8S
    root = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, root)
    stand_in = root / "components" / PROMETHEUS_COMPONENT
    stand_in.mkdir(parents=True, exist_ok=True)
    (stand_in / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nmetadata:\n  name: stand-in\n")
    return root


def render(kubectl: str, directory: Path) -> list[dict]:
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered(kubectl, k8s_root) -> dict[str, list[dict]]:
    return {overlay: render(kubectl, k8s_root / "overlays" / overlay) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay(request):
    return request.param


@pytest.fixture
def objects(rendered, overlay) -> list[dict]:
    return rendered[overlay]


def of_kind(objects, kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def by_name(objects, kind: str) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for obj in of_kind(objects, kind)}


def name_of(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_spec(workload: dict) -> dict:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def containers(workload: dict) -> list[dict]:
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def service_deployments(objects) -> dict[str, dict]:
    """Leadflow's own Deployments, by service name."""
    deployments = by_name(objects, "Deployment")
    return {service: deployments[f"leadflow-{service}"] for service in SERVICES if f"leadflow-{service}" in deployments}


def ports_by_name(container: dict) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container.get("ports", [])}


@functools.cache
def readme_ports() -> dict[str, tuple[int, int]]:
    """The README's service table: service -> (gRPC port, HTTP port)."""
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \|", (REPO / "README.md").read_text(), re.MULTILINE)
    return {service: (int(grpc), int(http)) for service, grpc, http in rows if service in SERVICES}


# ---------------------------------------------------------------------------------------------
# rendering and schemas


def test_every_overlay_renders_distinct_objects(objects):
    assert objects
    keys = [(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]) for obj in objects]
    assert len(keys) == len(set(keys))
    namespaces = {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"}
    assert len(namespaces) == 1 and None not in namespaces, f"one namespace for everything, got {namespaces}"


def test_objects_match_the_kubernetes_schemas(objects):
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate is missing: pip install kubernetes-validate==1.37.0 (pinned test dependency)")
    problems = []
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCES:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{name_of(obj)}: {'.'.join(map(str, error.path))}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{name_of(obj)}: no schema ({error.message}); a custom resource needs hand checks here")
    assert not problems, "\n".join(problems)


def test_custom_resources_have_their_required_fields(objects):
    problems = []
    deployments = by_name(objects, "Deployment")
    authentications = by_name(objects, "TriggerAuthentication")
    for obj in objects:
        kind, spec = obj["kind"], obj.get("spec") or {}
        if (obj["apiVersion"], kind) not in CUSTOM_RESOURCES:
            continue
        if kind == "ScaledObject":
            target = spec.get("scaleTargetRef", {})
            if target.get("name") not in deployments or target.get("kind", "Deployment") != "Deployment":
                problems.append(f"{name_of(obj)}: scaleTargetRef {target} is not a Deployment of this overlay")
            if not 1 <= spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100):
                problems.append(f"{name_of(obj)}: needs 1 <= minReplicaCount <= maxReplicaCount")
            for trigger in spec.get("triggers") or [None]:
                if not trigger or not trigger.get("type") or not isinstance(trigger.get("metadata"), dict):
                    problems.append(f"{name_of(obj)}: every trigger needs a type and metadata")
                    continue
                if trigger["type"] == "rabbitmq":
                    meta = trigger["metadata"]
                    if not meta.get("queueName") or meta.get("mode") not in ("QueueLength", "MessageRate") \
                            or not str(meta.get("value", "")).isdigit():
                        problems.append(f"{name_of(obj)}: rabbitmq trigger needs queueName, mode and value")
                    if "host" in meta or trigger.get("authenticationRef", {}).get("name") not in authentications:
                        problems.append(f"{name_of(obj)}: the broker address must come from a TriggerAuthentication")
        elif kind == "TriggerAuthentication":
            refs = spec.get("secretTargetRef") or []
            if not refs or any(not (ref.get("parameter") and ref.get("name") and ref.get("key")) for ref in refs):
                problems.append(f"{name_of(obj)}: secretTargetRef entries need parameter, name and key")
        elif kind == "ServiceMonitor":
            if "selector" not in spec or not spec.get("endpoints") \
                    or any(not (e.get("port") or e.get("targetPort")) for e in spec["endpoints"]):
                problems.append(f"{name_of(obj)}: needs a selector and endpoints with a port")
        elif kind == "PodMonitor":
            if "selector" not in spec or not spec.get("podMetricsEndpoints"):
                problems.append(f"{name_of(obj)}: needs a selector and podMetricsEndpoints")
        elif kind == "PrometheusRule":
            for group in spec.get("groups") or [None]:
                if not group or not group.get("name") or not group.get("rules"):
                    problems.append(f"{name_of(obj)}: every group needs a name and rules")
                    continue
                for rule in group["rules"]:
                    if not rule.get("expr") or bool(rule.get("record")) == bool(rule.get("alert")):
                        problems.append(f"{name_of(obj)}: rule in {group['name']} needs expr and record xor alert")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("component", OWN_COMPONENTS)
def test_each_component_applies_to_the_base_alone(kubectl, k8s_root, tmp_path, component):
    directory = k8s_root / "components" / component
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert (kustomization["apiVersion"], kustomization["kind"]) == ("kustomize.config.k8s.io/v1alpha1", "Component")
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(k8s_root / "base", tmp_path)],
        "components": [os.path.relpath(directory, tmp_path)],
    }))
    assert len(render(kubectl, tmp_path)) > len(render(kubectl, k8s_root / "base"))


# ---------------------------------------------------------------------------------------------
# containers


def test_every_container_is_hardened_and_bounded(objects):
    problems = []
    for workload in (obj for obj in objects if obj["kind"] in WORKLOADS):
        pod = pod_spec(workload)
        pod_security = pod.get("securityContext", {})
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{name_of(workload)}: automountServiceAccountToken must be false")
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            problems.append(f"{name_of(workload)}: shares a host namespace")
        for container in containers(workload):
            where = f"{name_of(workload)}/{container['name']}"
            security = {**pod_security, **container.get("securityContext", {})}
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(bound, {})):
                    problems.append(f"{where}: resources.{bound} needs cpu and memory")
            if security.get("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot must be true")
            uid = security.get("runAsUser")
            if not isinstance(uid, int) or uid == 0:
                problems.append(f"{where}: runAsUser must be a numeric non-root UID, got {uid!r}")
            if container.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem must be true")
            if container.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation must be false")
            if container.get("securityContext", {}).get("privileged"):
                problems.append(f"{where}: privileged")
            capabilities = container.get("securityContext", {}).get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
                problems.append(f"{where}: capabilities must drop ALL and add none")
            if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile must be RuntimeDefault")
    assert not problems, "\n".join(problems)


def test_long_running_containers_have_liveness_and_readiness_probes(objects):
    missing = [f"{name_of(workload)}/{container['name']}: {probe}"
               for workload in objects if workload["kind"] in LONG_RUNNING
               for container in pod_spec(workload)["containers"]
               for probe in ("livenessProbe", "readinessProbe") if probe not in container]
    assert not missing, "\n".join(missing)


def test_services_probe_healthz_readyz_and_grpc_health(objects):
    deployments = service_deployments(objects)
    assert set(deployments) == set(SERVICES)
    for service, deployment in deployments.items():
        (container,) = pod_spec(deployment)["containers"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, service
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, service
        # grpc.health.v1.Health/Check; a gRPC probe takes a port number, not a name.
        grpc_probe = container.get("startupProbe", {}).get("grpc") or container["livenessProbe"].get("grpc")
        assert grpc_probe == {"port": ports_by_name(container)["grpc"]}, service
        mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
        volumes = {volume["name"]: volume for volume in pod_spec(deployment).get("volumes", [])}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{service}: /tmp must be a writable emptyDir"


def image_tag(image: str) -> str:
    """The tag of an image reference ("" when it has none), ignoring a registry's port."""
    reference = image.split("@", 1)[0]
    name, _, tag = reference.rpartition(":")
    return tag if name and "/" not in tag else ""


def test_images_are_pinned(objects):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for workload in (obj for obj in objects if obj["kind"] in WORKLOADS):
        for container in containers(workload):
            image, tag = container["image"], image_tag(container["image"])
            assert "latest" not in image.lower(), f"{image}: never latest"
            assert "@sha256:" in image or PINNED_TAG.fullmatch(tag), f"{image}: pin a full version"
            if image.startswith(IMAGE + ":"):
                assert tag == version, f"{image}: Leadflow's image tag should be the project version {version}"


# ---------------------------------------------------------------------------------------------
# secrets and settings


def test_secrets_only_by_reference(objects):
    assert not of_kind(objects, "Secret"), "no Secret may be rendered: they are created outside git"
    problems = []
    for workload in (obj for obj in objects if obj["kind"] in WORKLOADS):
        for container in containers(workload):
            where = f"{name_of(workload)}/{container['name']}"
            for env in container.get("env", []):
                if env["name"] in SECRET_SETTINGS or SECRET_LOOKING.search(env["name"]):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if "value" in env or not ref or ref.get("name") != SECRET_NAME:
                        problems.append(f"{where}: {env['name']} must come from secretKeyRef {SECRET_NAME}")
            for source in container.get("envFrom", []):
                if "secretRef" in source and source["secretRef"]["name"] != SECRET_NAME:
                    problems.append(f"{where}: envFrom secretRef {source['secretRef']['name']}")
    for config_map in of_kind(objects, "ConfigMap"):
        for key in config_map.get("data", {}):
            if key in SECRET_SETTINGS or SECRET_LOOKING.search(key):
                problems.append(f"{name_of(config_map)}: {key} is a secret; reference it from {SECRET_NAME}")
    assert not problems, "\n".join(problems)


def test_services_read_every_secret_and_only_known_settings(objects):
    config_maps = {obj["metadata"]["name"]: obj.get("data", {}) for obj in of_kind(objects, "ConfigMap")}
    known = set(settings.DEFAULTS) | {f"{s.upper()}_{kind}_PORT" for s in SERVICES for kind in ("GRPC", "HTTP")}
    for service, deployment in service_deployments(objects).items():
        (container,) = pod_spec(deployment)["containers"]
        assert container.get("args") == [service], f"{service}: the image's argument picks the service"
        from_secret = {env["name"] for env in container.get("env", []) if "secretKeyRef" in env.get("valueFrom", {})}
        assert from_secret == SECRET_SETTINGS | SERVICE_SECRETS.get(service, set()), service
        names = {env["name"] for env in container.get("env", [])}
        for source in container.get("envFrom", []):
            assert "configMapRef" in source, f"{service}: settings come from the ConfigMap, secrets one by one"
            names |= set(config_maps[source["configMapRef"]["name"]])
        unknown = names - known
        assert not unknown, f"{service}: settings.py reads no {sorted(unknown)}"
        assert pod_spec(deployment).get("enableServiceLinks") is False, \
            f"{service}: service-link variables would be read as settings"


# ---------------------------------------------------------------------------------------------
# services, ports, labels


def test_readme_table_matches_the_default_ports():
    table = readme_ports()
    assert table == {service: (p.grpc, p.http) for service, p in settings.SERVICE_PORTS.items()}


def test_container_and_service_ports_match_the_readme(objects):
    services = by_name(objects, "Service")
    for service, deployment in service_deployments(objects).items():
        grpc, http = readme_ports()[service]
        (container,) = pod_spec(deployment)["containers"]
        assert ports_by_name(container) == {"grpc": grpc, "http": http}, service
        ports = {port["name"]: port for port in services[f"leadflow-{service}"]["spec"]["ports"]}
        assert set(ports) == {"grpc", "http"}, service
        assert ports["grpc"]["appProtocol"] == "grpc" and ports["grpc"]["targetPort"] == "grpc", service
        assert ports["http"]["targetPort"] == "http", service
        assert (ports["grpc"]["port"], ports["http"]["port"]) == (grpc, http), service


def test_each_service_has_its_account_service_and_disruption_budget(objects):
    accounts, services, budgets = (by_name(objects, kind) for kind in
                                   ("ServiceAccount", "Service", "PodDisruptionBudget"))
    for service, deployment in service_deployments(objects).items():
        name = f"leadflow-{service}"
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app.kubernetes.io/name"] == service
        assert pod_labels["app.kubernetes.io/part-of"] == "leadflow"
        assert pod_labels["app.kubernetes.io/component"] == "service"
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        assert pod_spec(deployment)["serviceAccountName"] == name
        assert accounts[name].get("automountServiceAccountToken") is False
        assert services[name]["spec"]["selector"].items() <= pod_labels.items()
        budget = budgets[name]["spec"]
        assert budget["selector"]["matchLabels"].items() <= pod_labels.items()
        assert "maxUnavailable" in budget or "minAvailable" in budget


# ---------------------------------------------------------------------------------------------
# dev


def test_dev_runs_one_replica_of_everything(rendered):
    objects = rendered["dev"]
    for deployment in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet"):
        assert deployment["spec"].get("replicas") == 1, name_of(deployment)
    for kind in ("HorizontalPodAutoscaler", "ScaledObject", "NetworkPolicy", "Ingress"):
        assert not of_kind(objects, kind), f"dev has no {kind}"


def test_dev_brings_rabbitmq_redis_and_a_mongodb_replica_set(rendered):
    objects = rendered["dev"]
    stateful_sets = by_name(objects, "StatefulSet")
    assert set(stateful_sets) >= {"rabbitmq", "redis", "mongodb"}
    (rabbitmq,) = pod_spec(stateful_sets["rabbitmq"])["containers"]
    assert re.fullmatch(r"rabbitmq:3\.\d+\.\d+(-[a-z-]+)?", rabbitmq["image"]), rabbitmq["image"]
    (mongodb,) = pod_spec(stateful_sets["mongodb"])["containers"]
    command = mongodb.get("command", []) + mongodb.get("args", [])
    assert "--replSet=rs0" in command or ("--replSet" in command and "rs0" in command), command
    initiators = [job for job in of_kind(objects, "Job")
                  if "rs.initiate" in json.dumps(pod_spec(job)["containers"])]
    assert initiators, "a Job runs rs.initiate for the single-node replica set"
    headless = {service["metadata"]["name"]: service["spec"] for service in of_kind(objects, "Service")}
    for store in ("rabbitmq", "redis", "mongodb"):
        assert stateful_sets[store]["spec"]["serviceName"] == store and store in headless


# ---------------------------------------------------------------------------------------------
# prod


def autoscalers(objects) -> dict[str, list[tuple[str, int]]]:
    """Deployment name -> [(autoscaler, its minimum replicas)] from HPAs and KEDA ScaledObjects."""
    found: dict[str, list[tuple[str, int]]] = {}
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        found.setdefault(hpa["spec"]["scaleTargetRef"]["name"], []).append(
            (name_of(hpa), hpa["spec"].get("minReplicas", 1)))
    for scaled in of_kind(objects, "ScaledObject"):
        found.setdefault(scaled["spec"]["scaleTargetRef"]["name"], []).append(
            (name_of(scaled), scaled["spec"].get("minReplicaCount", 0)))
    return found


def test_prod_keeps_at_least_two_replicas_of_every_service(rendered):
    objects = rendered["prod"]
    scaled = autoscalers(objects)
    deployments = service_deployments(objects)
    assert set(deployments) == set(SERVICES)
    for service, deployment in deployments.items():
        name = deployment["metadata"]["name"]
        owners = scaled.get(name, [])
        assert len(owners) <= 1, f"{name} is scaled by {owners}: KEDA refuses a target another HPA scales"
        if owners:
            ((owner, minimum),) = owners
            assert minimum >= 2, f"{owner}: at least 2 replicas of {service}"
            # With an autoscaler, spec.replicas would reset a scaled-out Deployment on every apply.
            assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns replicas"
        else:
            assert deployment["spec"].get("replicas", 1) >= 2, f"{name}: at least 2 replicas"


def test_prod_scales_consumers_on_their_queues_and_cpu(rendered):
    objects = rendered["prod"]
    scaled_objects = {obj["spec"]["scaleTargetRef"]["name"]: obj for obj in of_kind(objects, "ScaledObject")}
    queues = {target: {t["metadata"]["queueName"] for t in obj["spec"]["triggers"] if t["type"] == "rabbitmq"}
              for target, obj in scaled_objects.items()}
    expected = {f"leadflow-{service}": names for service, names in consumed_queues().items() if names}
    assert queues == expected
    hpas = {hpa["spec"]["scaleTargetRef"]["name"]: hpa for hpa in of_kind(objects, "HorizontalPodAutoscaler")}
    # The gateway consumes no queue: CPU alone scales it.
    assert set(hpas) == {f"leadflow-{service}" for service in SERVICES} - set(expected) | {"leadflow-gateway"}
    for hpa in hpas.values():
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    for scaled in scaled_objects.values():
        assert any(trigger["type"] == "cpu" for trigger in scaled["spec"]["triggers"]), name_of(scaled)
    for authentication in of_kind(objects, "TriggerAuthentication"):
        assert {ref["name"] for ref in authentication["spec"]["secretTargetRef"]} == {SECRET_NAME}


def consumed_queues() -> dict[str, set[str]]:
    """The RabbitMQ queue of every event handler, as nameko names it, read off the service classes."""
    try:
        from nameko.events import SERVICE_POOL, EventHandler

        from services.common.messaging import consumer_queues
        modules = {service: importlib.import_module(f"services.{service}.service") for service in SERVICES}
    except ImportError as error:
        pytest.skip(f"the services cannot be imported ({error}); generate the gRPC stubs with `make protos`")
    queues = {}
    for service, module in modules.items():
        cls = next(obj for obj in vars(module).values()
                   if isinstance(obj, type) and getattr(obj, "name", None) == service)
        for attribute in dir(cls):
            for entrypoint in getattr(getattr(cls, attribute), "nameko_entrypoints", ()):
                if isinstance(entrypoint, EventHandler):
                    assert entrypoint.handler_type == SERVICE_POOL, f"{service}.{attribute}"
        queues[service] = set(consumer_queues(cls))
    return queues


def test_prod_denies_by_default_and_opens_only_leadflow_flows(rendered):
    objects = rendered["prod"]
    policies = of_kind(objects, "NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies), \
        "a default-deny policy for ingress and egress"
    egress_ports = {(port.get("protocol", "TCP"), port["port"])
                    for p in policies for rule in p["spec"].get("egress", []) for port in rule.get("ports", [])}
    assert {("UDP", 53), ("TCP", 53), ("TCP", 5672), ("TCP", 6379), ("TCP", 27017)} <= egress_ports
    for p in policies:
        for rule in p["spec"].get("ingress", []) + p["spec"].get("egress", []):
            assert rule.get("ports"), f"{name_of(p)}: every allow rule names its ports"
    ingress_ports = {port["port"] for p in policies for rule in p["spec"].get("ingress", [])
                     for port in rule["ports"]}
    assert ingress_ports == {"grpc", "http"}, "only the named service ports are reachable"
    for deployment in service_deployments(objects).values():
        (container,) = pod_spec(deployment)["containers"]
        assert set(ports_by_name(container)) >= ingress_ports


# Contracts served by another service than their package names: the event stream by reporting.
SERVED_BY = {"events": "reporting"}


def test_prod_ingress_terminates_tls_for_forms_webhooks_and_grpc(rendered):
    objects = rendered["prod"]
    ingresses = of_kind(objects, "Ingress")
    routes = {}
    for ingress in ingresses:
        tls_hosts = {host for tls in ingress["spec"].get("tls", []) for host in tls["hosts"] if tls.get("secretName")}
        for rule in ingress["spec"]["rules"]:
            assert rule["host"] in tls_hosts, f"{name_of(ingress)}: {rule['host']} without TLS"
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                routes[path["path"]] = (backend["name"], backend["port"]["name"])
    assert routes["/f"] == routes["/webhooks"] == ("leadflow-capture", "http")
    protos = {}
    for proto in sorted((REPO / "protos" / "leadflow").glob("*/v1/*.proto")):
        text = proto.read_text()
        package = re.search(r"^package ([\w.]+);", text, re.MULTILINE).group(1)
        for service_name in re.findall(r"^service (\w+)", text, re.MULTILINE):
            owner = SERVED_BY.get(package.split(".")[1], package.split(".")[1])
            protos[f"/{package}.{service_name}"] = (f"leadflow-{owner}", "grpc")
    assert {path: route for path, route in routes.items() if route[1] == "grpc"} == protos


# ---------------------------------------------------------------------------------------------
# Dockerfile (cannot be built on this machine: checked as text)


def dockerfile_instructions() -> list[tuple[str, str]]:
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def test_dockerfile_base_images_are_pinned_and_multi_stage():
    instructions = dockerfile_instructions()
    args = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args.setdefault(name.strip(), value.strip().strip('"'))
    stages, images = [], []
    for keyword, rest in instructions:
        if keyword != "FROM":
            continue
        words = [w for w in rest.split() if not w.startswith("--")]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
        if image not in stages:
            images.append(image)
        if len(words) == 3 and words[1].upper() == "AS":
            stages.append(words[2])
    assert len(stages) >= 2, "multi-stage: build the venv and stubs in one stage, run from a clean one"
    for image in images:
        assert "$" not in image, f"{image}: a base image ARG needs a default"
        assert "@sha256:" in image or PINNED_TAG.fullmatch(image_tag(image)), f"{image}: pin a full version"
        assert "latest" not in image.lower()
    assert any(image.startswith("python:3.11") and "slim" in image for image in images)


def test_dockerfile_runs_as_a_numeric_non_root_user_and_generates_the_stubs():
    instructions = dockerfile_instructions()
    users = [rest.strip() for keyword, rest in instructions if keyword == "USER"]
    assert users, "the image must not run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= NON_ROOT_UID, f"USER {users[-1]}: numeric and not root"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    # The manifests run the services as this very UID (runAsNonRoot can only verify a numeric one).
    assert f"runAsUser: {uid}" in (K8S / "base" / "capture.yaml").read_text()
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "grpc_tools.protoc" in runs and "pip install ." in runs
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert re.search(r"PYTHONPATH=\S*/app/build/gen", env), "the generated stubs must be importable"
    (entrypoint,) = [json.loads(rest) for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    (command,) = [json.loads(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert entrypoint == ["python", "-m", "services.common.runner"]
    assert len(command) == 1 and command[0] in SERVICES


def test_dockerfile_never_says_latest():
    assert not re.search(r"latest", DOCKERFILE.read_text(), re.IGNORECASE)


def test_docker_context_keeps_local_state_out():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "allow-list the build context"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    assert allowed <= {"pyproject.toml", "README.md", "services", "protos", "console"}, allowed
    copied = {word.rstrip("/").split("/")[0] for keyword, rest in dockerfile_instructions() if keyword == "COPY"
              and "--from" not in rest for word in shlex.split(rest)[:-1]}
    assert copied <= allowed, f"COPY of files the context leaves out: {copied - allowed}"
