"""The deployment examples: docker-compose.yml scales its worker (`--scale worker=N`) and
the Kubernetes manifests (examples/kubernetes) are well-formed, run real migsafe commands
with the variables the README documents, and give the workers what their sandbox needs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
KUBERNETES = ROOT / "examples" / "kubernetes"
API_VERSIONS = {
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "Service": "v1",
    "Secret": "v1",
    "ConfigMap": "v1",
}
# What every migsafe pod needs to start (one of the two key variables).
REQUIRED = {"MIGSAFE_APP_ID", "MIGSAFE_WEBHOOK_SECRET", "DATABASE_URL", "MIGSAFE_SANDBOX_URL"}
KEYS = {"MIGSAFE_PRIVATE_KEY", "MIGSAFE_PRIVATE_KEY_FILE"}
IMAGE = "registry.example.com/migsafe"


def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return documents


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def migsafe_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) of every container running the migsafe image."""
    for kind in ("Deployment", "Job"):
        for name, workload in of_kind(kind).items():
            spec = pod_spec(workload)
            for container in spec["containers"]:
                if container["image"].startswith(IMAGE):
                    yield name, spec, container


def env_names(container: dict[str, Any]) -> set[str]:
    """The variables a container gets: its `env`, and every key of what `envFrom` names."""
    names = {entry["name"] for entry in container.get("env", [])}
    config_maps, secrets = of_kind("ConfigMap"), of_kind("Secret")
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(config_maps[source["configMapRef"]["name"]]["data"])
        else:
            names |= set(secrets[source["secretRef"]["name"]]["stringData"])
    return names


def readme_variables() -> set[str]:
    """The variables in the README's configuration table (its first column)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Configuration", 1)[1].split("\n\n", 2)[1]
    names = set()
    for row in section.splitlines():
        first = row.split("|")[1] if row.startswith("|") else ""
        names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    return names


def test_every_manifest_has_its_kinds_api_version_and_a_name() -> None:
    documents = manifests()
    assert {d["kind"] for d in documents} == set(API_VERSIONS)
    for document in documents:
        assert document["apiVersion"] == API_VERSIONS[document["kind"]], document
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", document["metadata"]["name"])
    names = [(d["kind"], d["metadata"]["name"]) for d in documents]
    assert len(names) == len(set(names)), names


def test_config_map_and_secret_values_are_strings() -> None:
    """Kubernetes refuses a ConfigMap or Secret whose value is a YAML number or boolean."""
    for kind, field in (("ConfigMap", "data"), ("Secret", "stringData")):
        for name, document in of_kind(kind).items():
            values = document[field]
            assert values and all(isinstance(v, str) for v in values.values()), (name, values)


def test_each_workload_selects_its_own_pods() -> None:
    for name, deployment in of_kind("Deployment").items():
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items(), name
        assert spec["replicas"] >= 1
        for container in pod_spec(deployment)["containers"]:
            assert container["name"] and container["image"], name
    [job] = of_kind("Job").values()
    assert pod_spec(job)["restartPolicy"] in ("OnFailure", "Never")


def test_the_web_and_the_workers_run_real_migsafe_commands() -> None:
    commands = {name: container["args"] for name, _, container in migsafe_containers()}
    assert commands == {
        "migsafe-web": ["serve", "--no-worker"],
        "migsafe-worker": ["worker"],
        "migsafe-db-upgrade": ["db", "upgrade"],
    }
    for args in commands.values():
        _parser().parse_args(args)  # exits (SystemExit) on a command migsafe does not have


def test_the_service_reaches_the_web_pods_on_the_port_migsafe_listens_on() -> None:
    web = of_kind("Deployment")["migsafe-web"]
    service = of_kind("Service")["migsafe-web"]
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    [container] = pod_spec(web)["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    [target] = [port["targetPort"] for port in service["spec"]["ports"]]
    assert target in ports
    assert str(ports[target]) == of_kind("ConfigMap")["migsafe"]["data"]["PORT"]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": target}


def test_the_pods_get_the_variables_the_readme_documents() -> None:
    documented = readme_variables()
    assert {"MIGSAFE_STALLED_WORKER_SECONDS", "MIGSAFE_WORKER_CONCURRENCY"} <= documented
    for name, _, container in migsafe_containers():
        names = env_names(container)
        assert names <= documented, (name, names - documented)
        if name != "migsafe-db-upgrade":  # needs DATABASE_URL only
            assert names >= REQUIRED and names & KEYS, (name, names)
    [job] = [c for name, _, c in migsafe_containers() if name == "migsafe-db-upgrade"]
    assert env_names(job) == {"DATABASE_URL"}


def test_every_secret_and_config_map_referenced_exists() -> None:
    defined = {"Secret": of_kind("Secret"), "ConfigMap": of_kind("ConfigMap")}
    for workload in [*of_kind("Deployment").values(), *of_kind("Job").values()]:
        for container in pod_spec(workload)["containers"]:
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in defined["Secret"][ref["name"]]["stringData"], ref
            for source in container.get("envFrom", []):
                kind, ref = (
                    ("ConfigMap", source["configMapRef"])
                    if "configMapRef" in source
                    else ("Secret", source["secretRef"])
                )
                assert ref["name"] in defined[kind], ref


def security(spec: dict[str, Any], container: dict[str, Any], field: str) -> Any:
    """A container's security setting, else its pod's."""
    own = container.get("securityContext", {})
    return own[field] if field in own else spec.get("securityContext", {}).get(field)


def test_only_the_workers_may_create_user_namespaces_for_the_sandbox() -> None:
    """As docker-compose.yml's worker: no default seccomp or AppArmor profile (they forbid
    the unprivileged user namespaces bubblewrap needs); the other pods keep them."""
    for name, spec, container in migsafe_containers():
        unconfined = {
            field: (security(spec, container, field) or {}).get("type") == "Unconfined"
            for field in ("seccompProfile", "appArmorProfile")
        }
        assert unconfined == dict.fromkeys(unconfined, name == "migsafe-worker"), name
        assert security(spec, container, "runAsNonRoot") is True, name
        assert security(spec, container, "allowPrivilegeEscalation") is False, name
        assert security(spec, container, "capabilities") == {"drop": ["ALL"]}, name
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    options = compose["services"]["worker"]["security_opt"]
    assert {"seccomp=unconfined", "apparmor=unconfined"} <= set(options)


@pytest.mark.parametrize("field", ["container_name", "ports", "hostname"])
def test_the_compose_worker_can_be_scaled(field: str) -> None:
    """`docker compose up --scale worker=N`: N containers cannot share a fixed name, host
    port or hostname."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert field not in compose["services"]["worker"]
    assert compose["services"]["worker"]["command"] == ["worker"]


def test_a_stopped_worker_is_given_minutes_to_finish_its_checks() -> None:
    """SIGTERM: the worker finishes its running checks (no other worker takes them over
    meanwhile); killed sooner (Docker's default: 10 s), they would be run again elsewhere."""
    worker = of_kind("Deployment")["migsafe-worker"]
    assert pod_spec(worker)["terminationGracePeriodSeconds"] == 300
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert compose["services"]["worker"]["stop_grace_period"] == "5m"
