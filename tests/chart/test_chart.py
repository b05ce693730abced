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
from canarypilot.policy import Settings
from canarypilot.render.argo import ArgoOptions, analyzer_objects, gate_template
from canarypilot.render.chart import chart_files
from tests.chart.helm import HELM_VERSION, helm, helm_binary
from tests.render.test_argo_manifests import unknown_fields
from tests.support.argo_crds import argo_crds
from tests.support.gobuild import BuildFailed, go_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "canarypilot"
KUBERNETES_VERSION = "1.30"
EVERYTHING = {
    "gate.enabled": "true",
    "token.existingSecret": "analyzer-token",
    "serviceMonitor.enabled": "true",
    "networkPolicy.enabled": "true",
    "prometheus.auth.existingSecret": "prom-creds",
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
    generated = chart_files(Settings())
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


@pytest.mark.parametrize("token", [None, "analyzer-token"])
def test_helm_template_gives_render_argos_objects(helm_bin: Path, tmp_path: Path, token: str | None) -> None:
    options = ArgoOptions(
        service="unused",
        image="unused:1",
        namespace="apps",
        analyzer_namespace="canarypilot",
        analyzer_image="registry.example/canarypilot:1.2.3",
        prometheus_url="http://prometheus.monitoring.svc:9090",
        token_secret=token,
    )
    values = {
        "gate.enabled": "true",
        "gate.namespace": "apps",
        "image.repository": "registry.example/canarypilot",
        "image.tag": "1.2.3",
        "prometheus.url": "http://prometheus.monitoring.svc:9090",
        **({"token.existingSecret": token} if token else {}),
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
        sets = ",".join(f"{k}={v}" for k, v in values.items())
        linted = helm(
            helm_bin, "lint", "--strict", str(CHART), *(["--set", sets] if sets else []), home=tmp_path
        )
        assert linted.returncode == 0, linted.stdout + linted.stderr

    docs = template(helm_bin, tmp_path, EVERYTHING)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == [
        "AnalysisTemplate", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount",
        "ServiceMonitor",
    ]  # fmt: skip
    go = go_binary()
    assert go is not None
    crd = yaml.safe_load((argo_crds(go, "v1.7.2") / "analysis-template-crd.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for doc in docs:
        if doc["kind"] == "AnalysisTemplate":
            jsonschema.Draft7Validator(schema).validate(doc)
            assert unknown_fields(doc, schema) == []
        elif doc["kind"] != "ServiceMonitor":  # a prometheus-operator CRD, not in Kubernetes' schemas
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)

    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]
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
