"""Offline validation of the cluster manifests in deploy/k8s.

Built-in kinds are validated with kubernetes-validate against the OpenAPI schemas it ships
(strict: unknown fields fail). KEDA's ScaledObject is a CRD, absent from those schemas: it
is checked structurally here (its fields, its target, its Redis list). Cross-references
(Secret and ConfigMap names, PDB selectors, probes, GPU requests) are checked by hand.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from landscope_service.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# A release whose schemas kubernetes-validate ships (see kubernetes_validate.utils.all_versions).
K8S_VERSION = "1.33.0"
NAMESPACE = "landscope"
CRD_KINDS = {"ScaledObject"}
NOT_A_RESOURCE = {"Kustomization"}
WORKERS = {"landscope-worker-cpu": "cpu", "landscope-worker-gpu": "gpu"}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _applied() -> list[dict[str, Any]]:
    """Every object `kubectl apply -k deploy/k8s` sends."""
    return [d for name in _kustomization()["resources"] for d in _docs(K8S / name)]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _applied() if d["kind"] == kind}


def _all_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{p.name}:{d['kind']}/{d['metadata']['name']}", d)
            for p in _manifest_files() for d in _docs(p)]


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return list(workload["spec"]["template"]["spec"]["containers"])


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


_BUILT_IN = [(n, d) for n, d in _all_docs() if d["kind"] not in CRD_KINDS]


@pytest.mark.parametrize(("label", "doc"), _BUILT_IN, ids=[n for n, _ in _BUILT_IN])
def test_manifest_passes_the_kubernetes_schema(label: str, doc: dict[str, Any]) -> None:
    # CRDs (KEDA's ScaledObject) are validated structurally by test_scaled_objects.
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_only_known_kinds_escape_the_schema_check() -> None:
    kinds = {d["kind"] for _, d in _all_docs()}
    assert kinds & NOT_A_RESOURCE == set()
    # Every other kind goes through kubernetes-validate, which raises SchemaNotFoundError
    # for a kind it does not know: a CRD cannot slip through unnoticed.
    assert kinds & CRD_KINDS == {"ScaledObject"}
    assert kinds >= {"Namespace", "ConfigMap", "Deployment", "Service", "StatefulSet",
                     "PodDisruptionBudget", "Secret", "PersistentVolumeClaim"}


def test_the_strict_schema_rejects_a_misspelt_field() -> None:
    api = copy.deepcopy(_by_kind("Deployment")["landscope-api"])
    container = api["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, K8S_VERSION, strict=True)
    api = copy.deepcopy(_by_kind("Deployment")["landscope-api"])
    api["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_and_no_example() -> None:
    kust = _kustomization()
    assert kust["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kust["kind"] == "Kustomization" and kust["namespace"] == NAMESPACE
    listed = kust["resources"]
    assert len(listed) == len(set(listed)), "a resource listed twice"
    files = {p.name for p in _manifest_files()}
    examples = {n for n in files if n.endswith(".example.yaml")}
    assert examples >= {"secret.example.yaml", "pvc-rwx.example.yaml"}
    assert set(listed) == files - examples, "kustomization.yaml must list every manifest"
    assert not set(listed) & examples, "an example (placeholder) must never be applied"


def test_every_object_is_in_the_namespace() -> None:
    for label, doc in _all_docs():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
            assert doc["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, label


def test_images_are_pinned_or_set_by_kustomize() -> None:
    ours = {i["name"]: i for i in _kustomization()["images"]}
    assert set(ours) == {"landscope-api", "landscope-worker"}
    for entry in ours.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["newTag"])
    for kind in ("Deployment", "StatefulSet"):
        for name, workload in _by_kind(kind).items():
            for c in _containers(workload):
                image = c["image"]
                if image in ours:
                    continue
                _, _, tag = image.partition(":")
                assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image}"


def test_pods_run_non_root_under_the_restricted_profile() -> None:
    workloads = [*_by_kind("Deployment").values(), *_by_kind("StatefulSet").values()]
    assert len(workloads) == 5
    for w in workloads:
        name = w["metadata"]["name"]
        pod = w["spec"]["template"]["spec"]
        assert w["spec"]["selector"]["matchLabels"].items() <= \
            w["spec"]["template"]["metadata"]["labels"].items(), name
        sc = pod["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0, name
        assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod["containers"]:
            csc = c["securityContext"]
            assert csc["allowPrivilegeEscalation"] is False, name
            assert csc["capabilities"]["drop"] == ["ALL"], name
            assert "memory" in c["resources"]["limits"], name


def test_api_probes_and_service() -> None:
    api = _by_kind("Deployment")["landscope-api"]
    (c,) = _containers(api)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] in ports
    args = c["args"]
    assert args[0] == "api" and args[args.index("--port") + 1] == str(ports["http"])
    assert args[args.index("--host") + 1] == "0.0.0.0"
    svc = _by_kind("Service")["landscope-api"]
    assert svc["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    assert all(p["targetPort"] in ports for p in svc["spec"]["ports"])


def test_api_reads_keys_from_the_mounted_secret_and_workers_do_not_need_it() -> None:
    deployments = _by_kind("Deployment")
    api = deployments["landscope-api"]
    (c,) = _containers(api)
    keys_file = Path(_env(c)["LANDSCOPE_API_KEYS_FILE"])
    volumes = {v["name"]: v for v in api["spec"]["template"]["spec"]["volumes"]}
    mount = next(m for m in c["volumeMounts"] if Path(m["mountPath"]) == keys_file.parent)
    secret = volumes[mount["name"]]["secret"]
    assert mount["readOnly"] is True
    assert [i["path"] for i in secret["items"]] == [keys_file.name]
    for name in WORKERS:
        for wc in _containers(deployments[name]):
            assert "LANDSCOPE_API_KEYS_FILE" not in _env(wc), name


def test_secret_and_configmap_references_resolve() -> None:
    example = _docs(K8S / "secret.example.yaml")[0]
    secret_keys = set(example["stringData"])
    configmaps = _by_kind("ConfigMap")
    refs = 0
    for w in _by_kind("Deployment").values():
        pod = w["spec"]["template"]["spec"]
        for v in pod.get("volumes", []):
            if "secret" in v:
                assert v["secret"]["secretName"] == example["metadata"]["name"]
                assert {i["key"] for i in v["secret"]["items"]} <= secret_keys
                refs += 1
        for c in pod["containers"]:
            for src in c.get("envFrom", []):
                assert src["configMapRef"]["name"] in configmaps
                refs += 1
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == example["metadata"]["name"]
                    assert ref["key"] in secret_keys
                    refs += 1
    assert refs >= 7


def test_every_pod_gets_the_redis_url_from_the_secret() -> None:
    for name, w in _by_kind("Deployment").items():
        for c in _containers(w):
            assert _env(c)["LANDSCOPE_REDIS_URL"] == {
                "secretKeyRef": {"name": "landscope-secrets", "key": "redis_url"}}, name


def test_configmap_values_are_valid_settings(tmp_path: Path) -> None:
    (cm,) = _by_kind("ConfigMap").values()
    data = cm["data"]
    assert all(k.startswith("LANDSCOPE_") for k in data)
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    settings = load_settings(environ=data)  # raises SettingsError naming a bad value
    assert settings.storage == "redis", "pods on several nodes share no local folder"
    assert settings.gpu_memory_fraction > 0


def test_example_secret_is_a_valid_keys_file_that_admits_nobody(tmp_path: Path) -> None:
    example = _docs(K8S / "secret.example.yaml")[0]
    keys = tmp_path / "api_keys"
    keys.write_text(example["stringData"]["api_keys"])
    settings = load_settings(environ={"LANDSCOPE_API_KEYS_FILE": str(keys),
                                      "LANDSCOPE_REDIS_URL": example["stringData"]["redis_url"]})
    assert settings.tenant_for("") is None and settings.tenant_for("example-tenant") is None


def test_workers_queues_pools_and_gpus() -> None:
    deployments = _by_kind("Deployment")
    for name, queue in WORKERS.items():
        w = deployments[name]
        assert "replicas" not in w["spec"], f"{name}: KEDA owns the replica count"
        pod = w["spec"]["template"]["spec"]
        # Long enough for Celery's warm shutdown to finish a job step.
        assert pod["terminationGracePeriodSeconds"] >= 300
        (c,) = pod["containers"]
        env = _env(c)
        assert env["WORKER_QUEUES"] == queue
        for probe in ("startupProbe", "livenessProbe"):
            assert c[probe]["exec"]["command"][0] == "landscope-worker-healthcheck"
        assert "--ok-if-redis-down" in c["livenessProbe"]["exec"]["command"]
        gpus = c["resources"].get("limits", {}).get("nvidia.com/gpu")
        if queue == "gpu":
            assert env["WORKER_POOL"] == "solo" and env["GPU_IDS"] == "0"
            assert gpus == 1 and c["resources"]["requests"]["nvidia.com/gpu"] == 1
            assert {"key": "nvidia.com/gpu", "operator": "Exists",
                    "effect": "NoSchedule"} in pod["tolerations"]
        else:
            assert env["WORKER_POOL"] == "prefork" and gpus is None
            assert "nvidia.com/gpu" not in c["resources"].get("requests", {})


def test_a_webhooks_worker_consumes_the_webhooks_queue() -> None:
    from landscope_service.jobs.events import WEBHOOK_QUEUE

    hooks = _by_kind("Deployment")["landscope-worker-webhooks"]
    (c,) = hooks["spec"]["template"]["spec"]["containers"]
    assert _env(c)["WORKER_QUEUES"] == WEBHOOK_QUEUE and _env(c)["WORKER_POOL"] == "prefork"
    assert hooks["spec"]["replicas"] == 1  # not scaled by KEDA
    assert c["livenessProbe"]["exec"]["command"][0] == "landscope-worker-healthcheck"


def test_every_deployment_has_a_matching_pdb() -> None:
    pdbs = _by_kind("PodDisruptionBudget")
    for name, w in _by_kind("Deployment").items():
        labels = w["spec"]["template"]["metadata"]["labels"]
        matching = [p for p in pdbs.values()
                    if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, name
        spec = matching[0]["spec"]
        assert ("minAvailable" in spec) != ("maxUnavailable" in spec)


def test_redis_statefulset_persists_with_aof() -> None:
    (redis,) = _by_kind("StatefulSet").values()
    (c,) = _containers(redis)
    args = c["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert any(m["name"] == claim["metadata"]["name"] and m["mountPath"] ==
               args[args.index("--dir") + 1] for m in c["volumeMounts"])
    svc = _by_kind("Service")[redis["spec"]["serviceName"]]
    assert svc["spec"]["ports"][0]["port"] == 6379


# --- KEDA ScaledObject (a CRD: structural validation) ---------------------------------

SCALED_OBJECT_SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "idleReplicaCount",
                      "initialCooldownPeriod", "minReplicaCount", "maxReplicaCount", "fallback",
                      "advanced", "triggers"}
REDIS_TRIGGER_METADATA = {"address", "addressFromEnv", "host", "hostFromEnv", "port",
                          "portFromEnv", "listName", "listLength", "activationListLength",
                          "databaseIndex", "enableTLS", "unsafeSsl", "usernameFromEnv",
                          "passwordFromEnv"}


def scaled_object_problems(so: dict[str, Any], deployments: dict[str, dict[str, Any]],
                           services: dict[str, dict[str, Any]]) -> list[str]:
    """What is wrong with one keda.sh/v1alpha1 ScaledObject (empty: nothing)."""
    out: list[str] = []
    name = so.get("metadata", {}).get("name", "?")
    if so.get("apiVersion") != "keda.sh/v1alpha1":
        out.append(f"{name}: apiVersion {so.get('apiVersion')!r}")
    spec = so.get("spec") or {}
    if extra := set(spec) - SCALED_OBJECT_SPEC:
        out.append(f"{name}: unknown spec fields {sorted(extra)}")
    ref = spec.get("scaleTargetRef") or {}
    target = deployments.get(ref.get("name", ""))
    if ref.get("kind", "Deployment") != "Deployment" or target is None:
        out.append(f"{name}: scaleTargetRef {ref} names no Deployment of this kustomization")
    elif target["metadata"]["namespace"] != so["metadata"].get("namespace"):
        out.append(f"{name}: target in another namespace")
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi and hi >= 1):
        out.append(f"{name}: replica bounds {lo}..{hi}")
    triggers = spec.get("triggers") or []
    if not triggers:
        out.append(f"{name}: no triggers")
    for t in triggers:
        md = t.get("metadata") or {}
        if t.get("type") != "redis":
            out.append(f"{name}: trigger type {t.get('type')!r}, expected redis")
        if extra := set(md) - REDIS_TRIGGER_METADATA:
            out.append(f"{name}: unknown redis trigger metadata {sorted(extra)}")
        if not all(isinstance(v, str) for v in md.values()):
            out.append(f"{name}: trigger metadata values must be strings")
        if md.get("listName") not in ("cpu", "gpu"):
            out.append(f"{name}: listName {md.get('listName')!r} is not a Celery queue")
        elif target is not None:
            queues = {_env(c).get("WORKER_QUEUES") for c in _containers(target)}
            if queues != {md["listName"]}:
                out.append(f"{name}: scales on {md['listName']!r} but the target consumes {queues}")
        for key in ("listLength", "activationListLength", "databaseIndex"):
            if key in md and not str(md[key]).isdigit():
                out.append(f"{name}: {key}={md[key]!r} is not a count")
        if not str(md.get("listLength", "5")).strip("0"):
            out.append(f"{name}: listLength 0")
        host, _, port = str(md.get("address", "")).partition(":")
        if not md.get("address") or not port.isdigit():
            out.append(f"{name}: address {md.get('address')!r} is not host:port")
        else:
            svc = host.split(".")[0]
            if host.split(".")[1:2] != [NAMESPACE] or svc not in services or \
                    int(port) not in {p["port"] for p in services[svc]["spec"]["ports"]}:
                out.append(f"{name}: address {host}:{port} is not a Service of this kustomization")
    return out


def test_scaled_objects() -> None:
    deployments, services = _by_kind("Deployment"), _by_kind("Service")
    scaled = _by_kind("ScaledObject")
    for so in scaled.values():
        assert scaled_object_problems(so, deployments, services) == []
    targets = sorted(so["spec"]["scaleTargetRef"]["name"] for so in scaled.values())
    assert targets == sorted(WORKERS), "one ScaledObject per worker Deployment"
    by_target = {so["spec"]["scaleTargetRef"]["name"]: so for so in scaled.values()}
    # /readyz needs a live worker: the CPU workers never scale to zero.
    assert by_target["landscope-worker-cpu"]["spec"]["minReplicaCount"] >= 1


def test_scaled_object_check_finds_mistakes() -> None:
    deployments, services = _by_kind("Deployment"), _by_kind("Service")
    good = _by_kind("ScaledObject")["landscope-worker-gpu"]
    mistakes = {
        "names no Deployment": lambda s: s["spec"]["scaleTargetRef"].update(name="worker-gpu"),
        "is not a Celery queue": lambda s: s["spec"]["triggers"][0]["metadata"].update(
            listName="celery"),
        "but the target consumes": lambda s: s["spec"]["triggers"][0]["metadata"].update(
            listName="cpu"),
        "must be strings": lambda s: s["spec"]["triggers"][0]["metadata"].update(listLength=1),
        "expected redis": lambda s: s["spec"]["triggers"][0].update(type="redis-streams"),
        "unknown spec fields": lambda s: s["spec"].update(minReplicas=1),
        "not a Service": lambda s: s["spec"]["triggers"][0]["metadata"].update(
            address="redis-master.landscope.svc:6379"),
        "replica bounds": lambda s: s["spec"].update(minReplicaCount=5, maxReplicaCount=2),
    }
    for needle, mutate in mistakes.items():
        bad = copy.deepcopy(good)
        mutate(bad)
        problems = scaled_object_problems(bad, deployments, services)
        assert any(needle in p for p in problems), (needle, problems)
