"""Every rule: the good manifests pass it, and one targeted change makes it (and only it) fail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from canarypilot.preflight import RULES, Options, Severity, check, parse_text
from tests.preflight.conftest import Docs, by_kind, dump, good_docs


def run(docs: Docs, options: Options | None = None) -> list[Any]:
    return check(parse_text(dump(docs), "shop.yaml"), options)


def rollout(d: Docs) -> dict[str, Any]:
    return by_kind(d, "Rollout")


def container(d: Docs) -> dict[str, Any]:
    return rollout(d)["spec"]["template"]["spec"]["containers"][0]


def metric(d: Docs) -> dict[str, Any]:
    return by_kind(d, "AnalysisTemplate")["spec"]["metrics"][0]


def steps(d: Docs) -> list[dict[str, Any]]:
    return rollout(d)["spec"]["strategy"]["canary"]["steps"]


def annotations(d: Docs, kind: str) -> dict[str, str]:
    return by_kind(d, kind)["metadata"]["annotations"]


Break = Callable[[Docs], object]

CASES: list[tuple[str, str, Break, str]] = [
    (
        "CP101",
        "default grace 30s < ingress 60s",
        lambda d: rollout(d)["spec"]["template"]["spec"].pop("terminationGracePeriodSeconds"),
        "30s (default)",
    ),
    (
        "CP101",
        "grace shorter than a longer read timeout",
        lambda d: annotations(d, "Ingress").update({"nginx.ingress.kubernetes.io/proxy-read-timeout": "120"}),
        "120s",
    ),
    (
        "CP102",
        "no retry timeout",
        lambda d: annotations(d, "Ingress").pop("nginx.ingress.kubernetes.io/proxy-next-upstream-timeout"),
        "proxy-next-upstream-timeout",
    ),
    (
        "CP102",
        "no retry on 502/503",
        lambda d: annotations(d, "Ingress").pop("nginx.ingress.kubernetes.io/proxy-next-upstream"),
        "http_502, http_503",
    ),
    (
        "CP102",
        "the article's misspelt annotation",
        lambda d: annotations(d, "Ingress").update(
            {"nginx.ingress.kubernetes.io/proxy-next-upstream-trials": "3"}
        ),
        "trials does not exist",
    ),
    (
        "CP201",
        "successThreshold 1",
        lambda d: container(d)["readinessProbe"].update(successThreshold=1),
        "successThreshold is 1",
    ),
    ("CP201", "no readiness probe", lambda d: container(d).pop("readinessProbe"), "no readinessProbe"),
    (
        "CP202",
        "no minReadySeconds",
        lambda d: rollout(d)["spec"].pop("minReadySeconds"),
        "minReadySeconds is not set",
    ),
    (
        "CP203",
        "HPA free to scale",
        lambda d: by_kind(d, "HorizontalPodAutoscaler")["spec"].update(maxReplicas=10),
        "between 4 and 10",
    ),
    (
        "CP204",
        "VPA in Auto",
        lambda d: by_kind(d, "VerticalPodAutoscaler")["spec"].pop("updatePolicy"),
        "not set (Auto)",
    ),
    ("CP301", "failureLimit >= count", lambda d: metric(d).update(failureLimit=3), "failureLimit 3 >= 3"),
    (
        "CP301",
        "the article's: one measurement, limit 2",
        lambda d: (
            [metric(d).pop(k) for k in ("count", "interval")]
            and metric(d).update(
                failureLimit=2, provider={"web": {"url": "http://a/analyze", "timeoutSeconds": 8}}
            )
        ),
        "failureLimit 2 >= 1",
    ),
    ("CP301", "no condition at all", lambda d: metric(d).pop("successCondition"), "neither successCondition"),
    (
        "CP302",
        "weight from an analysis result",
        lambda d: steps(d)[3].update(setWeight="${analysis.result.weight}"),
        "is not an integer",
    ),
    ("CP302", "weight above 100", lambda d: steps(d)[6].update(setWeight=150), "outside 0-100"),
    (
        "CP303",
        "timeout not shorter than the interval",
        lambda d: metric(d)["provider"]["web"].update(timeoutSeconds=30),
        "not shorter than the interval 30s",
    ),
    (
        "CP303",
        "timeout within the analyzer's own",
        lambda d: metric(d)["provider"]["web"].update(timeoutSeconds=4),
        "does not exceed the analyzer",
    ),
    (
        "CP304",
        "the article's timeout: 15s",
        lambda d: metric(d)["provider"]["web"].update(timeout="15s"),
        "did you mean timeoutSeconds",
    ),
    (
        "CP304",
        "a misspelt Rollout field",
        lambda d: rollout(d)["spec"]["strategy"]["canary"].update(minPodsPerReplica=0.5),
        "minPodsPerReplicaSet",
    ),
    (
        "CP305",
        "pinned canary scale under a raised weight",
        lambda d: steps(d).pop(2),
        "sends 50% of traffic to 1 canary pod",
    ),
    (
        "CP401",
        "pool larger than the database",
        lambda d: annotations(d, "Rollout").update({"canarypilot.io/db-max-connections": "90"}),
        "20 connections x (4 stable + 1 canary pods) = 100 > 90",
    ),
    (
        "CP402",
        "limit equal to the request",
        lambda d: container(d)["resources"]["limits"].update(memory="1Gi"),
        "1.2 x the steady-state 1Gi",
    ),
    (
        "CP501",
        "scrape interval too long for a 5m window",
        lambda d: by_kind(d, "ServiceMonitor")["spec"]["endpoints"][0].update(interval="2m"),
        "at least 480s",
    ),
]


def test_the_good_manifests_pass_every_rule(docs: Docs) -> None:
    assert run(docs) == []


def test_every_rule_has_a_failing_case_here() -> None:
    assert {rule for rule, *_ in CASES} == set(RULES)


@pytest.mark.parametrize(("rule", "case", "breaks", "message"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_rule_fails_on_its_pitfall(rule: str, case: str, breaks: Break, message: str) -> None:
    docs = good_docs()
    breaks(docs)
    findings = run(docs)
    assert {f.rule for f in findings} == {rule}, [f"{f.rule}: {f.message}" for f in findings]
    assert any(message in f.message for f in findings), [f.message for f in findings]
    for f in findings:
        assert f.severity is RULES[rule].severity
        assert f.why and f.fix and f.obj and f.line > 1


def test_findings_point_at_the_offending_line(docs: Docs) -> None:
    steps(docs)[3]["setWeight"] = "${analysis.result.weight}"
    text = dump(docs)
    (finding,) = check(parse_text(text, "shop.yaml"))
    assert "setWeight" in text.splitlines()[finding.line - 1]
    assert finding.field == "spec.strategy.canary.steps[3].setWeight"
    assert finding.obj == "Rollout shop/checkout"


def test_drain_timeout_annotation_on_the_workload_wins(docs: Docs) -> None:
    rollout(docs)["metadata"]["annotations"]["canarypilot.io/drain-timeout"] = "90s"
    (finding,) = run(docs)
    assert finding.rule == "CP101" and "90s drain timeout (canarypilot.io/drain-timeout)" in finding.message


def test_drain_timeout_flag_applies_to_workloads_without_an_ingress(docs: Docs) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "worker"},
        "spec": {
            "minReadySeconds": 10,
            "template": {"spec": {"containers": [{"name": "w", "readinessProbe": {"successThreshold": 3}}]}},
        },
    }
    assert run([deployment]) == []
    (finding,) = run([deployment], Options(drain_timeout_seconds=45))
    assert finding.rule == "CP101" and "45s" in finding.message


def test_database_pool_without_a_limit_is_a_note_that_never_fails(docs: Docs) -> None:
    del annotations(docs, "Rollout")["canarypilot.io/db-max-connections"]
    (finding,) = run(docs)
    assert (finding.rule, finding.severity) == ("CP401", Severity.NOTE)
    assert run(docs, Options(db_max_connections=100)) == []
    (over,) = run(docs, Options(db_max_connections=99))
    assert over.severity is Severity.ERROR


def test_without_dynamic_stable_scale_the_old_pods_double_the_pool(docs: Docs) -> None:
    rollout(docs)["spec"]["strategy"]["canary"]["dynamicStableScale"] = False
    annotations(docs, "Rollout")["canarypilot.io/db-max-connections"] = "150"
    (finding,) = run(docs, Options(db_max_connections=10_000))  # the object's annotation wins
    assert finding.rule == "CP401"
    assert "(4 stable + 4 canary pods) = 160 > 150" in finding.message


def test_ignore_annotation_silences_a_rule_on_one_object(docs: Docs) -> None:
    rollout(docs)["spec"].pop("minReadySeconds")
    annotations(docs, "Rollout")["canarypilot.io/preflight-ignore"] = "CP202, CP999"
    assert run(docs) == []
