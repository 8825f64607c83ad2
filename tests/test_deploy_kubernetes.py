"""The Kubernetes manifests: valid against the Kubernetes schemas, and consistent with the code.

Every document under ``deploy/kubernetes`` is checked with ``kubernetes-validate`` (the
API's own OpenAPI schemas, strict: unknown fields are errors). The city set
(``deploy/kubernetes/city``) is then read as the nodes would read it: its config files load
for every role with the environment the pods get, the edge StatefulSet's ordinals share the
cameras exactly once, the probes hit the node's health port, and every secret the config
names reaches the containers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from atcs.bus.nodes import NodeRole
from atcs.config import load_config
from atcs.roles import edge_config, role_config

K8S_VERSION = "1.30.0"
"""Oldest Kubernetes the manifests target (the pod-index label is there since 1.28)."""


def manifests(repo_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted((repo_dir / "deploy/kubernetes").rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def test_every_manifest_is_valid_for_kubernetes(repo_dir: Path) -> None:
    docs = manifests(repo_dir)
    assert len(docs) >= 12
    for path, doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']} {doc['metadata']['name']}: {exc.message}")


def test_the_validator_refuses_a_broken_manifest(repo_dir: Path) -> None:
    _, edge = next(d for d in manifests(repo_dir) if d[1]["kind"] == "StatefulSet")
    broken = yaml.safe_load(yaml.safe_dump(edge))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    broken = yaml.safe_load(yaml.safe_dump(edge))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def city(repo_dir: Path) -> dict[str, dict[str, Any]]:
    folder = repo_dir / "deploy/kubernetes/city"
    listed = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    out: dict[str, dict[str, Any]] = {}
    for name in listed:
        for doc in yaml.safe_load_all((folder / name).read_text()):
            out[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return out


def container_env(workload: dict[str, Any], ordinal: int) -> dict[str, str]:
    """The environment a pod of ``workload`` gets (secrets as placeholders)."""
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item["valueFrom"]:
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            env[item["name"]] = (
                f"{workload['metadata']['name']}-{ordinal}" if path == "metadata.name"
                else str(ordinal)
            )  # fmt: skip
        else:
            env[item["name"]] = f"secret-{item['valueFrom']['secretKeyRef']['key']}"
    return env


def test_city_config_loads_for_every_role_and_shares_the_cameras_once(
    repo_dir: Path, tmp_path: Path
) -> None:
    docs = city(repo_dir)
    for name, text in docs["ConfigMap/atcs-city"]["data"].items():
        (tmp_path / name).write_text(text)
    edge = docs["StatefulSet/atcs-edge"]
    replicas = edge["spec"]["replicas"]
    seen: list[str] = []
    for ordinal in range(replicas):
        env = container_env(edge, ordinal)
        assert env["ATCS_EDGE_NODES"] == str(replicas)
        cfg = load_config(tmp_path / "config.toml", env)
        assert cfg.node.id == f"atcs-edge-{ordinal}"
        assert cfg.node.shard_index == ordinal
        seen += [c.id for c in edge_config(cfg).cameras]
    assert sorted(seen) == sorted(c.id for c in cfg.cameras if c.enabled)
    for workload, file, role in (
        ("Deployment/atcs-control", "config.toml", NodeRole.CONTROL),
        ("Deployment/atcs-room", "room.toml", NodeRole.ROOM),
    ):
        container = docs[workload]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["run", "--config", f"/etc/atcs/{file}", "--role", role.value]
        cfg = role_config(load_config(tmp_path / file, container_env(docs[workload], 0)), role)
        assert cfg.node.id == role.value
    assert cfg.dashboard is not None  # the room's
    assert cfg.mqtt is not None
    assert cfg.mqtt.control_auth.room_signer is not None  # it signs its operators' actions
    signer = cfg.mqtt.control_auth.room_signer.id
    assert signer in {s.id for s in cfg.mqtt.control_auth.senders}  # and control checks them
    service = docs["Service/atcs-edge"]["spec"]  # images from the edge pods' health port
    assert service["clusterIP"] == "None"
    port = next(p["port"] for p in service["ports"] if p["name"] == "health")
    assert cfg.node.url_of("atcs-edge-1") == f"http://atcs-edge-1.atcs-edge:{port}"


def test_probes_and_secrets_match_the_config(repo_dir: Path, tmp_path: Path) -> None:
    docs = city(repo_dir)
    data = docs["ConfigMap/atcs-city"]["data"]

    def names(*files: str) -> set[str]:
        text = "".join(data[f] for f in files)
        found = set(re.findall(r"\$\{([A-Z_]+)[}:]", text))
        return found | set(re.findall(r'(?:password_env|key_env|token_env) = "([A-Z_]+)"', text))

    common = names("config.toml", "common.toml", "site.toml")
    room = names("room.toml", "common.toml", "site.toml")
    assert "ATCS_ROOM_SIGNING_KEY" in room - common  # the room alone holds its private key
    for name in data:
        (tmp_path / name).write_text(data[name])
    health_port = load_config(
        tmp_path / "config.toml", container_env(docs["Deployment/atcs-control"], 0)
    ).node.health_port
    for key, named in (
        ("StatefulSet/atcs-edge", common),
        ("Deployment/atcs-control", common),
        ("Deployment/atcs-room", room),
    ):
        spec = docs[key]["spec"]["template"]["spec"]
        container = spec["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["health"] == health_port
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
        env = {e["name"] for e in container["env"]}
        if key != "Deployment/atcs-room":
            assert "ATCS_ROOM_SIGNING_KEY" not in env
        optional = {
            "ATCS_NODE_ORDINAL",
            "ATCS_EDGE_NODES",
            "ATCS_OPERATOR_PASSWORD",
            "ATCS_METRICS_TOKEN",
        }
        assert named - optional <= env, (key, sorted(named - env))
        secrets = {
            e["valueFrom"]["secretKeyRef"]["key"]
            for e in container["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert secrets <= set(docs["Secret/atcs-secrets"]["stringData"])
