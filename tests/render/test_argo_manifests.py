"""`canarypilot render argo`: valid against Argo's CRDs (v1.7.2, v1.9.1) and Kubernetes' schemas,
with a ladder that the analysis service gates.

The Argo schemas come from Argo Rollouts' Go module (``tests.support.gomodules``, never
copied); the article's manifests from tests/data. Besides JSON Schema
validation, every field is checked to exist in the schema: the API server prunes
unknown fields silently, which is how the article's ``timeout: 15s`` disappears.
"""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from canarypilot._exceptions import ConfigError
from canarypilot.policy import Settings
from canarypilot.render.argo import ArgoOptions, render_argo, to_yaml
from tests.support.gomodules import ARGO_VERSIONS, argo_crds

ARTICLE = Path(__file__).resolve().parents[1] / "data" / "article-manifests.yaml"
CRD_FILES = {"Rollout": "rollout-crd.yaml", "AnalysisTemplate": "analysis-template-crd.yaml"}
KUBERNETES_VERSION = "1.30"


@cache
def crd_schema(version: str, kind: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((argo_crds(version) / CRD_FILES[kind]).read_text(), Loader=loader)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


@cache
def crd_validator(version: str, kind: str) -> jsonschema.protocols.Validator:
    # Built once per schema: re-checking the large Rollout schema on every call is slow.
    return jsonschema.Draft7Validator(crd_schema(version, kind))


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the API server would prune: not in ``properties`` of an object schema."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += unknown_fields(item, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            found += unknown_fields(item, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return found


def rendered(**options: Any) -> list[dict[str, Any]]:
    base: dict[str, Any] = {"service": "payment-api", "image": "registry.internal/payment-api:v2.4.1"}
    return render_argo(ArgoOptions(**{**base, **options}), Settings())


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("version", ARGO_VERSIONS)
@pytest.mark.parametrize(
    "options", [{}, {"token_secret": "analyzer-token", "steps": (1, 2, 4, 8, 16, 32, 64)}]
)
def test_argo_objects_validate_against_the_crds(version: str, options: dict[str, Any]) -> None:
    docs = rendered(**options)
    for doc in docs:
        if doc["kind"] in CRD_FILES:
            crd_validator(version, doc["kind"]).validate(doc)
            assert unknown_fields(doc, crd_schema(version, doc["kind"])) == [], doc["kind"]


@pytest.mark.parametrize(
    "options", [{}, {"token_secret": "analyzer-token", "ingress_host": "pay.example.com"}]
)
def test_kubernetes_objects_validate_against_kubernetes_schemas(options: dict[str, Any]) -> None:
    kinds = []
    for doc in rendered(**options):
        if doc["kind"] not in CRD_FILES:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            kinds.append(doc["kind"])
    assert sorted(kinds) == [
        "Deployment", "Ingress", "PodDisruptionBudget", "Service", "Service", "Service", "ServiceAccount"
    ]  # fmt: skip


def test_the_articles_template_loses_its_timeout_to_pruning() -> None:
    # The defect docs/argo.md describes: `timeout` is not a field of the Web provider.
    template = next(d for d in yaml.safe_load_all(ARTICLE.read_text()) if d["kind"] == "AnalysisTemplate")
    for version in ARGO_VERSIONS:
        assert unknown_fields(template, crd_schema(version, "AnalysisTemplate")) == [
            ".spec.metrics[0].provider.web.timeout"
        ]


def test_every_rung_after_the_first_is_gated_by_the_next_weight() -> None:
    rollout = by_kind(rendered(steps=(5, 20, 60)), "Rollout")[0]
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    shape = [
        ("set", s["setWeight"])
        if "setWeight" in s
        else ("gate", {a["name"]: a["value"] for a in s["analysis"]["args"]}["target-weight"])
        for s in steps
    ]
    # The last gate asks for 100: passing it lets Argo promote.
    assert shape == [("set", 5), ("gate", "20"), ("set", 20), ("gate", "60"), ("set", 60), ("gate", "100")]
    assert all(
        s["analysis"]["templates"] == [{"templateName": "canarypilot-gate"}] for s in steps if "analysis" in s
    )


def test_the_gate_template_follows_the_breaker_settings() -> None:
    template = by_kind(rendered(observe_seconds=60, interval_seconds=15), "AnalysisTemplate")[0]
    guard, pace = template["spec"]["metrics"]
    breaker = Settings().breaker
    assert guard["name"] == "slo-guard" and pace["name"] == "safe-weight"
    assert guard["initialDelay"] == f"{breaker.warmup_seconds:.0f}s"  # warm-up latency is not judged
    # decide's sequential test is anytime-valid: the first rollback verdict aborts, as the controller does
    assert guard["failureLimit"] == 0
    assert guard["count"] == 5 and guard["interval"] == "15s"
    assert guard["consecutiveErrorLimit"] == 30  # 300 s of outage at Argo's 10 s error retry
    assert guard["failureCondition"] == 'result == "rollback"' and "successCondition" not in guard
    # asked throughout the same window: one pass takes the rung, a window of waits pauses
    assert (pace["initialDelay"], pace["interval"], pace["count"]) == (guard["initialDelay"], "15s", 5)
    assert (pace["successCondition"], pace["failureCondition"]) == ('result == "pass"', 'result == "fail"')
    assert pace["inconclusiveLimit"] == 4 and pace["failureLimit"] == 0
    assert pace["provider"]["web"]["jsonPath"] == "{$.gate}"
    assert "target_weight={{args.target-weight}}" in pace["provider"]["web"]["url"]
    assert "&weight={{args.weight}}" in pace["provider"]["web"]["url"]
    assert pace["provider"]["web"]["timeoutSeconds"] == 10


def test_the_token_travels_from_a_secret_to_a_header_and_to_the_analyzer() -> None:
    docs = rendered(token_secret="analyzer-token")
    template = by_kind(docs, "AnalysisTemplate")[0]
    token_arg = next(a for a in template["spec"]["args"] if a["name"] == "token")
    assert token_arg["valueFrom"]["secretKeyRef"] == {"name": "analyzer-token", "key": "token"}
    for metric in template["spec"]["metrics"]:
        assert metric["provider"]["web"]["headers"] == [
            {"key": "Authorization", "value": "Bearer {{args.token}}"}
        ]
    pod = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "token", "secret": {"secretName": "analyzer-token"}}]
    assert "--token-file" in pod["containers"][0]["args"]


def test_the_rollout_labels_versions_as_the_queries_expect() -> None:
    canary = by_kind(rendered(), "Rollout")[0]["spec"]["strategy"]["canary"]
    assert canary["canaryMetadata"]["labels"] == {"version": "v2-canary"}
    assert canary["stableMetadata"]["labels"] == {"version": "v1-stable"}
    assert canary["trafficRouting"] == {"nginx": {"stableIngress": "payment-api"}}
    ingress = by_kind(rendered(), "Ingress")[0]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == canary["stableService"]


@pytest.mark.parametrize(
    "bad",
    [
        {"service": "Payment_API"},
        {"steps": (10, 5)},
        {"steps": (0, 50)},
        {"steps": ()},
        {"analyzer_url": "http://user:pw@analyzer:8080"},
        {"analyzer_url": "ftp://analyzer"},
        {"observe_seconds": 5, "interval_seconds": 15},
        {"image": "has space"},
    ],
)
def test_bad_options_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        rendered(**bad)


def test_the_command_prints_a_stream_or_writes_files(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("canarypilot"))
    args = [exe, "render", "argo", "--service", "payment-api", "--image", "img:1"]
    printed = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    docs = list(yaml.safe_load_all(printed.stdout))
    assert [d["kind"] for d in docs] == [d["kind"] for d in rendered(image="img:1")]
    assert printed.stdout == to_yaml(rendered(image="img:1"))
    written = subprocess.run(
        [*args, "--output-dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert written.returncode == 0
    assert len(list(tmp_path.glob("*.yaml"))) == len(docs)
    bad = subprocess.run([*args, "--steps", "5,x"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("canarypilot: error: --steps")
