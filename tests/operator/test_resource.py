"""The CanaryRelease spec as the operator reads it, and the CRD file kept equal to its source."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from canarypilot.operator import InvalidRelease, parse_release
from canarypilot.operator.crd import crd, crd_yaml

CRD_FILE = Path(__file__).resolve().parents[2] / "deploy" / "operator" / "canaryrelease-crd.yaml"

RELEASE: dict[str, Any] = {
    "apiVersion": "canarypilot.io/v1alpha1",
    "kind": "CanaryRelease",
    "metadata": {"name": "web", "namespace": "prod"},
    "spec": {
        "workload": {"deployment": "web"},
        "service": {"name": "web", "port": 80},
        "router": {"ingress": {"name": "web"}},
        "metrics": {"prometheus": {"url": "http://prometheus:9090"}},
        "analysis": {"service": "web-api"},
        "policy": {"rollout": {"pauses_seconds": [30, 60]}, "slo": {"max_latency_delta": 0.1}},
    },
}


def with_spec(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(RELEASE)
    doc["spec"].update(changes)
    return doc


def test_a_release_carries_the_rollout_settings_and_the_metrics_labels() -> None:
    release = parse_release(RELEASE)
    assert release.rollout.target.service == "web-api"
    assert list(release.rollout.settings.rollout.pauses_seconds) == [30.0, 60.0]
    assert release.rollout.settings.slo.max_latency_delta == 0.1
    assert release.rollout.settings.prometheus.url == "http://prometheus:9090"
    assert (release.canary_deployment, release.canary_service) == ("web-canary", "web-canary")


def test_the_metrics_job_defaults_to_the_service_name() -> None:
    doc = with_spec(analysis={})
    assert parse_release(doc).rollout.target.service == "web"


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"router": {"ingress": {"name": "web"}, "httpRoute": {"name": "web"}}}, "exactly one of ingress"),
        ({"router": {}}, "exactly one of ingress"),
        ({"metrics": {}}, "exactly one of prometheus"),
        ({"analysis": {"canaryVersion": "v2 canary"}}, "v2 canary"),
        ({"policy": {"routing": {}}}, "routing"),
        ({"policy": {"slo": {"max_latency_delta": -1}}}, "max_latency_delta"),
        ({"service": {"name": "web"}}, "port"),
    ],
)
def test_what_the_schema_cannot_refuse_the_operator_names(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidRelease, match="spec") as caught:
        parse_release(with_spec(**changes))
    assert named in str(caught.value)


def test_the_committed_crd_is_the_generated_one() -> None:
    assert CRD_FILE.read_text() == crd_yaml(), (
        "run: canarypilot operator crd > deploy/operator/canaryrelease-crd.yaml"
    )
    assert yaml.safe_load(CRD_FILE.read_text()) == crd()


def test_every_policy_field_of_the_rollout_file_is_typed_in_the_schema() -> None:
    from canarypilot.operator.resource import POLICY_SECTIONS
    from canarypilot.policy import Settings

    version = crd()["spec"]["versions"][0]
    policy = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["policy"]["properties"]
    for section in POLICY_SECTIONS:
        model = Settings.model_fields[section].annotation
        assert model is not None
        fields = set(model.model_fields)  # type: ignore[union-attr]
        assert set(policy[section]["properties"]) == fields
    # each pause must be longer than zero, as the rollout file requires
    assert policy["rollout"]["properties"]["pauses_seconds"]["items"] == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Weight", "Step", "Verdict", "Age"]
