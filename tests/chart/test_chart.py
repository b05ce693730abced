"""The Helm chart deploy/helm/canarypilot: generated from `render argo`'s objects, and proven so.

* the committed chart is exactly what ``canarypilot render chart`` generates now;
* ``helm template`` of it, with values matching a set of `render argo` options, gives
  `render argo`'s own analyzer objects and gate, field for field;
* ``helm lint`` passes, and every object ``helm template`` writes with every switch on
  validates against the Kubernetes schemas (and the gate against Argo's CRD, from the
  Argo module's own manifests/crds/).

helm is built from its Go module (tests/chart/helm.py); only a machine without Go skips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from canarypilot.cli import main
from canarypilot.operator.crd import crd_yaml
from canarypilot.policy import Settings
from canarypilot.render.argo import ANALYZER, ArgoOptions, analyzer_objects, gate_template
from canarypilot.render.chart import chart_files
from canarypilot.render.operator import OperatorOptions, operator_objects
from tests.chart.helm import HELM_VERSION, helm, helm_binary
from tests.render.test_argo_manifests import unknown_fields
from tests.support.gobuild import BuildFailed, go_binary
from tests.support.gomodules import argo_crds

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "canarypilot"
KUBERNETES_VERSION = "1.30"
EVERYTHING = {
    "gate.enabled": "true",
    "token.existingSecret": "analyzer-token",
    "serviceMonitor.enabled": "true",
    "networkPolicy.enabled": "true",
    "prometheus.auth.existingSecret": "prom-creds",
    "operator.enabled": "true",
    "operator.secretNames": "{prom-token}",
}


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    go = go_binary()
    if go is None:
        pytest.skip("go is not installed: cannot build helm")
    try:
        return helm_binary(go)
    except BuildFailed as exc:
        pytest.fail(f"building helm {HELM_VERSION} failed: {exc}")


def set_flags(values: dict[str, str]) -> list[str]:
    return ["--set", ",".join(f"{k}={v}" for k, v in values.items())] if values else []


def template(helm_bin: Path, home: Path, values: dict[str, str], namespace: str = "canarypilot") -> list[Any]:
    ran = helm(
        helm_bin, "template", "cp", str(CHART), "--namespace", namespace, *set_flags(values), home=home
    )
    assert ran.returncode == 0, ran.stderr
    return [doc for doc in yaml.safe_load_all(ran.stdout) if doc]


def test_the_committed_chart_is_what_the_renderer_generates(tmp_path: Path) -> None:
    generated = chart_files(Settings(), crd=crd_yaml())
    with pytest.raises(SystemExit) as done:
        main(["render", "chart", "--output-dir", str(tmp_path / "chart")])
    assert done.value.code == 0
    out = tmp_path / "chart"
    written = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert written == generated
    committed = {str(p.relative_to(CHART)): p.read_text() for p in CHART.rglob("*") if p.is_file()}
    assert sorted(committed) == sorted(generated), (
        "regenerate: canarypilot render chart -o deploy/helm/canarypilot"
    )
    for name, text in generated.items():
        assert committed[name] == text, f"{name} drifted: canarypilot render chart -o deploy/helm/canarypilot"


@pytest.mark.parametrize(("token", "cluster_gate"), [(None, False), ("analyzer-token", False), (None, True)])
def test_helm_template_gives_render_argos_objects(
    helm_bin: Path, tmp_path: Path, token: str | None, cluster_gate: bool
) -> None:
    options = ArgoOptions(
        service="unused",
        image="unused:1",
        namespace="apps",
        analyzer_namespace="canarypilot",
        analyzer_image="registry.example/canarypilot:1.2.3",
        prometheus_url="http://prometheus.monitoring.svc:9090",
        token_secret=token,
        cluster_gate=cluster_gate,
    )
    values = {
        "gate.enabled": "true",
        "gate.namespace": "apps",
        "image.repository": "registry.example/canarypilot",
        "image.tag": "1.2.3",
        "prometheus.url": "http://prometheus.monitoring.svc:9090",
        **({"token.existingSecret": token} if token else {}),
        **({"gate.clusterScope": "true"} if cluster_gate else {}),
    }
    from_chart = template(helm_bin, tmp_path, values)
    for doc in from_chart:
        if doc["kind"] == "Deployment":  # the one field the chart adds: a values knob
            assert doc["spec"]["template"]["spec"]["containers"][0].pop("imagePullPolicy") == "IfNotPresent"
    settings = Settings()
    rendered = [*analyzer_objects(options, settings), gate_template(options, settings)]
    key = lambda doc: (doc["kind"], doc["metadata"]["name"])  # noqa: E731
    assert sorted(from_chart, key=key) == sorted(rendered, key=key)


def test_the_chart_lints_and_every_object_validates(helm_bin: Path, tmp_path: Path) -> None:
    for values in ({}, EVERYTHING, {**EVERYTHING, "prometheus.auth.type": "basic"}):
        linted = helm(helm_bin, "lint", "--strict", str(CHART), *set_flags(values), home=tmp_path)
        assert linted.returncode == 0, linted.stdout + linted.stderr

    docs = template(helm_bin, tmp_path, EVERYTHING)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == [
        "AnalysisTemplate", "ClusterRole", "ClusterRoleBinding", "Deployment", "Deployment", "NetworkPolicy",
        "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount", "ServiceAccount",
        "ServiceMonitor",
    ]  # fmt: skip
    go = go_binary()
    assert go is not None
    crds = argo_crds("v1.7.2")
    schemas = {
        kind: yaml.safe_load((crds / name).read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for kind, name in (
            ("AnalysisTemplate", "analysis-template-crd.yaml"),
            ("ClusterAnalysisTemplate", "cluster-analysis-template-crd.yaml"),
        )
    }
    cluster_gate = template(helm_bin, tmp_path, {**EVERYTHING, "gate.clusterScope": "true"})
    for doc in [*docs, *(d for d in cluster_gate if d["kind"] == "ClusterAnalysisTemplate")]:
        if doc["kind"] in schemas:
            jsonschema.Draft7Validator(schemas[doc["kind"]]).validate(doc)
            assert unknown_fields(doc, schemas[doc["kind"]]) == []
        elif doc["kind"] != "ServiceMonitor":  # a prometheus-operator CRD, not in Kubernetes' schemas
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert (
        "namespace" not in next(d for d in cluster_gate if d["kind"] == "ClusterAnalysisTemplate")["metadata"]
    )

    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == ANALYZER)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [
        {
            "name": "CANARYPILOT_PROMETHEUS__BEARER_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "prom-creds", "key": "token"}},
        }
    ]
    assert container["args"][-2:] == ["--token-file", "/var/run/canarypilot/token"]


def test_without_values_the_chart_installs_the_analyzer_only(helm_bin: Path, tmp_path: Path) -> None:
    docs = template(helm_bin, tmp_path, {}, namespace="observability")
    assert sorted(d["kind"] for d in docs) == [
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    assert {d["metadata"]["namespace"] for d in docs} == {"observability"}
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    from canarypilot import __version__

    assert container["image"] == f"canarypilot:{__version__}"
    assert "env" not in container and "volumeMounts" not in container
    assert deployment["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("watch", "secrets"), [(None, ()), ("apps", ()), (None, ("prom-token", "thanos-token")), ("apps", ("t",))]
)
def test_the_operator_option_gives_operator_manifests_objects(
    helm_bin: Path, tmp_path: Path, watch: str | None, secrets: tuple[str, ...]
) -> None:
    """``operator.enabled`` installs what `canarypilot operator manifests` prints for the same
    options, field for field (the same least RBAC), and nothing of it without the switch."""
    values = {
        "operator.enabled": "true",
        "image.repository": "registry.example/canarypilot",
        "image.tag": "1.2.3",
        **({"operator.watchNamespace": watch} if watch else {}),
        **({"operator.secretNames": "{" + ",".join(secrets) + "}"} if secrets else {}),
    }
    docs = template(helm_bin, tmp_path, values, namespace="platform")
    from_chart = [d for d in docs if d["metadata"]["name"] == "canarypilot-operator"]
    for doc in from_chart:
        if doc["kind"] == "Deployment":
            assert doc["spec"]["template"]["spec"]["containers"][0].pop("imagePullPolicy") == "IfNotPresent"
    options = OperatorOptions(
        namespace="platform", image="registry.example/canarypilot:1.2.3", watch_namespace=watch,
        secret_names=secrets,
    )  # fmt: skip
    key = lambda doc: (doc["kind"], doc["metadata"].get("namespace", ""))  # noqa: E731
    assert sorted(from_chart, key=key) == sorted(operator_objects(options), key=key)
    binding = next(
        d for d in from_chart if d["kind"].endswith("RoleBinding") and d["roleRef"]["kind"] == "ClusterRole"
    )
    assert binding["kind"] == ("RoleBinding" if watch else "ClusterRoleBinding")
    assert not [
        d for d in template(helm_bin, tmp_path, {}) if d["metadata"]["name"] == "canarypilot-operator"
    ]


def test_the_committed_operator_manifests_are_what_the_command_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["operator", "manifests"])
    assert done.value.code in (0, None)
    committed = (CHART.parents[1] / "operator" / "operator.yaml").read_text()
    assert capsys.readouterr().out == committed, (
        "regenerate: canarypilot operator manifests > deploy/operator/operator.yaml"
    )
