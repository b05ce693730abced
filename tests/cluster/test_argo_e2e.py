"""The article's architecture, run: Argo Rollouts' controller drives the Rollout `render argo`
writes, its analysis calls a real `canarypilot serve`, which reads a real Prometheus.

For each Argo version (v1.7.2, the article's, and v1.9.2) one control plane runs
(controlplane.py): etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
with a fake node, and the Argo controller with its own release's CRDs. The analyzer is
the container image run by podman (uid 10001, read-only root) when buildah and podman
are here, else the installed package. Prometheus scrapes, every second, the traffic of
tests/cluster/argo_traffic.py: `climber` (healthy) and `slowdown` (p99 +137 %), whose
canary share follows the weight Argo writes on the canary Ingress, so the gate reads the
step's start from that share as it does in production; `regressed` (p99 +137 %) at a
steady 20 % share for the article's template, which names no weight; `ghost` has no data.

The rendered template's timings are compressed (`--warmup 1 --interval 1`, `--observe 2`
or 12), and so are the engine's (2 s slices, LIVE_ENGINE); counts, limits, conditions and
URLs are as rendered.
"""

from __future__ import annotations

import copy
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from canarypilot.local.prometheus import LocalPrometheus, ScrapeJob
from canarypilot.local.traffic import Traffic
from canarypilot.policy import Settings
from canarypilot.render.argo import ArgoOptions, render_argo
from canarypilot.rollout import EventKind, Phase, StateStore
from tests.cluster import kube, rollout_e2e
from tests.cluster.apiserver import Cluster, create_namespace
from tests.cluster.argo_traffic import HEALTHY, REGRESSED, FollowingTraffic
from tests.cluster.binaries import BuildFailed, ensure_binaries, go_binary
from tests.cluster.controllers import (
    ARGO_VERSIONS,
    argo_binary,
    argo_crd_files,
    gateway_api_crd,
    kwok_binary,
    kwok_stages,
)
from tests.cluster.controlplane import ControlPlaneParts, control_plane
from tests.service.live import serve
from tests.support.image import ImageUnavailable, build_image, serve_container
from tests.support.workers import parameter

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def xdist_subgroup(item: pytest.Item) -> str | None:
    """Each Argo version's control plane and cases on a worker of its own (tests/conftest.py)."""
    return parameter(item, "argo_cluster")


ARTICLE = Path(__file__).resolve().parents[1] / "data" / "article-cluster-manifests.yaml"
FAST = {"warmup_seconds": 1, "observe_seconds": 2, "interval_seconds": 1}
#: A rung's window long enough for the engine's first verdicts on live 1 s scrapes (measured
#: by hand: the first `pass` 12 s after the weight change, the slices, lag and scrapes).
LIVE = {**FAST, "observe_seconds": 20}
#: The ladder of the live cases: each rung the growth cap allows, 80 -> 100 % by the gate.
LADDER = (5, 10, 20, 40, 80)
#: The engine's time constants compressed like the template's (the analyzer's environment):
#: 2 s slices (two 1 s scrapes), a 2 s transient (so 3 slices decide), a 4 s warm-up, 1 s lag.
#: The scrape interval is told: measured, it is read from the data, and a service whose
#: traffic starts with its first release has none at the first question (the analyzer then
#: slices at the 15 s default until it measures again, 30 s later).
LIVE_ENGINE = {
    "CANARYPILOT_QUERY__SLICE_SECONDS": "2",
    "CANARYPILOT_QUERY__SCRAPE_INTERVAL_SECONDS": "1",
    "CANARYPILOT_SLO__MAX_TRANSIENT_SECONDS": "2",
    "CANARYPILOT_SLO__MAX_WARMUP_SECONDS": "4",
    "CANARYPILOT_ROLLOUT__SCRAPE_LAG_SECONDS": "1",
    "CANARYPILOT_ROLLOUT__MIN_WINDOW_SECONDS": "2",
    # A request without a weight (the article's template) reads the last 5 minutes.
    "CANARYPILOT_SERVICE__STEP_LOOKBACK_SECONDS": "300",
}
ROLLOUT_TIMEOUT = 240.0


def control_plane_parts(go: str, version: str) -> ControlPlaneParts:
    """The binaries (each built once per version, then cached) and files of one control plane."""
    return ControlPlaneParts(
        kubernetes=ensure_binaries(go),
        kwok=kwok_binary(go),
        kwok_stages=kwok_stages(go),
        argo=argo_binary(go, version),
        argo_version=version,
        crds=[gateway_api_crd(go), *argo_crd_files(go, version)],
    )


@pytest.fixture(scope="module", params=ARGO_VERSIONS)
def argo_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    version: str = request.param
    go = go_binary()
    if go is None:
        pytest.skip("go is not installed: cannot build the control plane")
    started = time.monotonic()
    try:
        parts = control_plane_parts(go, version)
    except BuildFailed as exc:
        pytest.fail(f"building the control plane failed: {exc}")
    print(f"control plane binaries ready in {time.monotonic() - started:.0f}s")
    started = time.monotonic()
    with control_plane(parts, tmp_path_factory.mktemp(f"argo-{version}")) as cluster:
        print(f"control plane with Argo {version} up in {time.monotonic() - started:.1f}s")
        yield cluster


@pytest.fixture(scope="module")
def traffic(argo_cluster: Cluster) -> Iterator[FollowingTraffic]:
    with FollowingTraffic(argo_cluster).running() as running:
        yield running


@pytest.fixture(scope="module")
def prom(
    argo_cluster: Cluster, traffic: FollowingTraffic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPrometheus]:
    traffic.steady("regressed", REGRESSED, share=0.2)
    scraped = ScrapeJob("following", [traffic.target], {}, interval="1s")
    with LocalPrometheus(tmp_path_factory.mktemp("prom"), scrape_jobs=[scraped]) as running:
        yield running


@pytest.fixture(scope="module")
def analyzer(prom: LocalPrometheus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The analysis service's URL: from the image when it can be built here, else the package."""
    try:
        image = build_image()
    except ImageUnavailable as exc:
        print(f"analyzer from the installed package ({exc})")
        with serve(prom.url, tmp_path_factory.mktemp("serve"), env=LIVE_ENGINE) as served:
            yield served.url
        return
    with serve_container(image.name, ["--prometheus", prom.url], env=LIVE_ENGINE) as container:
        yield container.url


def new_namespace(cluster: Cluster, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    with cluster.http() as http:
        create_namespace(http, name)
    return name


def deploy(
    cluster: Cluster,
    analyzer: str,
    service: str,
    *,
    traffic: tuple[FollowingTraffic, Traffic] | None = None,
    **options: Any,
) -> tuple[str, list[dict[str, Any]]]:
    """`render argo` for ``service`` applied into a fresh namespace, its first revision Healthy,
    then a second revision (a new image) whose canary starts the ladder; with ``traffic``,
    the service's traffic follows that namespace's canary weight, the canary serving as given."""
    namespace = new_namespace(cluster, service)
    analyzer_ns = new_namespace(cluster, "analyzer")
    argo = ArgoOptions(
        service=service,
        image=f"registry.example/{service}:1",
        namespace=namespace,
        analyzer_namespace=analyzer_ns,
        analyzer_url=analyzer,
        replicas=4,
        **{**FAST, **options},
    )
    docs = render_argo(argo, Settings())
    if traffic is not None:
        traffic[0].follow(namespace, service, traffic[1])
    with cluster.http() as http:
        kube.apply_all(http, docs)
        healthy(http, namespace, service)
        kube.set_image(http, namespace, service, f"registry.example/{service}:2")
    return namespace, docs


def healthy(http: httpx.Client, namespace: str, name: str) -> None:
    """Wait until the Rollout's current revision is Healthy (a first revision has no steps)."""

    def probe() -> bool | None:
        return True if phase(kube.rollout(http, namespace, name)) == "Healthy" else None

    kube.wait_for(f"rollout {name} Healthy", probe, timeout=60)


def promoted(rollout: dict[str, Any]) -> bool:
    """The new revision is Healthy and is the stable one (phase() waits for the new spec)."""
    status = rollout.get("status", {})
    return phase(rollout) == "Healthy" and status.get("stableRS") == status.get("currentPodHash")


def canary_weight_back_to_zero(cluster: Cluster, namespace: str) -> None:
    with cluster.http() as http:
        kube.wait_for(
            "canary Ingress weight 0",
            lambda: True if kube.canary_weight(http, namespace) == 0 else None,
            timeout=20,
        )


def watch(
    cluster: Cluster, namespace: str, name: str, done: Any, *, timeout: float = ROLLOUT_TIMEOUT
) -> tuple[dict[str, Any], list[int | None]]:
    """Poll the Rollout and its canary Ingress until ``done(rollout)``; the weights seen, in order."""
    weights: list[int | None] = []
    deadline = time.monotonic() + timeout
    with cluster.http() as http:
        while True:
            current = kube.rollout(http, namespace, name)
            weight = kube.canary_weight(http, namespace)
            if not weights or weights[-1] != weight:
                weights.append(weight)
            if done(current):
                return current, weights
            if time.monotonic() >= deadline:
                status = current.get("status", {})
                runs = kube.analysis_runs(http, namespace)
                answers = [
                    (m["name"], [x.get("value") for x in m.get("measurements") or []][-3:])
                    for m in (runs[-1]["status"].get("metricResults") or [] if runs else [])
                ]
                raise AssertionError(
                    f"rollout {name} not done after {timeout:g}s: phase {status.get('phase')}, "
                    f"step {status.get('currentStepIndex')}, weights seen {weights}: "
                    f"{status.get('message')}; the last gate's answers: {answers}"
                )
            time.sleep(0.2)


def phase(rollout: dict[str, Any]) -> str | None:
    status = rollout.get("status", {})
    if rollout["metadata"].get("generation") != int(status.get("observedGeneration") or -1):
        return None  # the controller has not seen the latest spec yet
    return status.get("phase")


def test_a_healthy_canary_climbs_the_rendered_ladder_to_100(
    argo_cluster: Cluster, analyzer: str, traffic: FollowingTraffic
) -> None:
    namespace, docs = deploy(
        argo_cluster, analyzer, "climber", traffic=(traffic, HEALTHY), steps=LADDER, **LIVE
    )
    ladder = [s["setWeight"] for s in docs[-1]["spec"]["strategy"]["canary"]["steps"] if "setWeight" in s]
    final, weights = watch(argo_cluster, namespace, "climber", promoted)
    # Argo wrote every rung onto the canary Ingress, in order, and then handed all traffic to
    # the new stable (the canary Ingress back at 0).
    climbed = [w for w in weights if w]
    assert climbed[: len(ladder)] == ladder, weights
    assert not final["status"].get("abort")
    assert final["status"]["currentStepIndex"] == len(docs[-1]["spec"]["strategy"]["canary"]["steps"])
    canary_weight_back_to_zero(argo_cluster, namespace)
    with argo_cluster.http() as http:
        runs = kube.analysis_runs(http, namespace)
    # One gate per rung after 5, all Successful; Argo keeps the last five successful runs
    # (spec.analysis.successfulRunHistoryLimit defaults to 5).
    assert [r["status"]["phase"] for r in runs] == ["Successful"] * min(5, len(ladder))


def test_a_cluster_wide_gate_is_found_through_cluster_scope(
    argo_cluster: Cluster, analyzer: str, traffic: FollowingTraffic
) -> None:
    # `render argo --cluster-gate` (the chart's gate.clusterScope): one ClusterAnalysisTemplate,
    # named by every Rollout's steps with clusterScope. Only one test may create it per cluster.
    # One gated rung: 50 % (not gated), then the gate for 100 %.
    namespace, docs = deploy(
        argo_cluster, analyzer, "climber", traffic=(traffic, HEALTHY), cluster_gate=True, steps=(50,), **LIVE
    )
    assert any(d["kind"] == "ClusterAnalysisTemplate" for d in docs)
    final, weights = watch(argo_cluster, namespace, "climber", promoted)
    assert [w for w in weights if w][:1] == [50], weights
    with argo_cluster.http() as http:
        runs = kube.analysis_runs(http, namespace)
    assert [r["status"]["phase"] for r in runs] == ["Successful"]


def test_a_latency_regression_fails_the_gate_and_aborts(
    argo_cluster: Cluster, analyzer: str, traffic: FollowingTraffic
) -> None:
    namespace, _ = deploy(argo_cluster, analyzer, "slowdown", traffic=(traffic, REGRESSED), **LIVE)
    final, weights = watch(argo_cluster, namespace, "slowdown", lambda r: r.get("status", {}).get("abort"))
    final, later = watch(argo_cluster, namespace, "slowdown", lambda r: phase(r) == "Degraded")
    canary_weight_back_to_zero(argo_cluster, namespace)
    with argo_cluster.http() as http:
        runs = kube.analysis_runs(http, namespace)
    # The second watch starts where the first stopped, so its first reading may repeat the
    # weight the abort was seen at; the distinct non-zero weights are what the canary had.
    assert sorted({w for w in weights + later if w}) == [5], (weights, later)  # never past rung 1
    assert runs[-1]["status"]["phase"] == "Failed"
    guard = next(m for m in runs[-1]["status"]["metricResults"] if m["name"] == "slo-guard")
    assert guard["phase"] == "Failed" and guard["failed"] == 1  # failureLimit 0: the first rollback
    assert final["status"]["stableRS"] != final["status"]["currentPodHash"]  # the stable is still v1


def test_a_canary_without_data_pauses_neither_promoted_nor_aborted(
    argo_cluster: Cluster, analyzer: str
) -> None:
    namespace, _ = deploy(argo_cluster, analyzer, "ghost")

    def paused(rollout: dict[str, Any]) -> bool:
        reasons = [c.get("reason") for c in rollout.get("status", {}).get("pauseConditions") or []]
        return "InconclusiveAnalysisRun" in reasons

    final, weights = watch(argo_cluster, namespace, "ghost", paused)
    time.sleep(8)  # several gate windows later: still waiting for a person
    with argo_cluster.http() as http:
        still = kube.rollout(http, namespace, "ghost")
        runs = kube.analysis_runs(http, namespace)
        weight = kube.canary_weight(http, namespace)
    assert paused(still) and not still["status"].get("abort") and still["status"]["phase"] == "Paused"
    assert weight == 5 and [w for w in weights if w] == [5]
    assert [r["status"]["phase"] for r in runs] == ["Inconclusive"]
    gate = next(m for m in runs[0]["status"]["metricResults"] if m["name"] == "safe-weight")
    # Argo keeps the value as the JSON it read: "wait", quotes included
    assert gate["phase"] == "Inconclusive" and gate["measurements"][0]["value"].strip('"') == "wait"


def article_documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(ARTICLE.read_text()) if d]


def test_the_articles_rollout_is_refused_and_its_fixed_template_passes_a_regression(
    argo_cluster: Cluster, analyzer: str
) -> None:
    rollout, template = article_documents()
    namespace = new_namespace(argo_cluster, "article")
    with argo_cluster.http() as http:
        refused = kube.create(http, {**rollout, "metadata": {**rollout["metadata"], "namespace": namespace}})
        assert refused.status_code == 422, refused.text
        message = refused.json()["message"]
        assert "setWeight" in message and "integer" in message

    # The same Rollout with only what the API server and Argo require fixed: whole-number
    # weights, the two Services nginx routing needs, pauses a test can wait for. The
    # template keeps the article's metric, pointed at the regressed canary.
    fixed = copy.deepcopy(rollout)
    fixed["metadata"]["namespace"] = namespace
    canary = fixed["spec"]["strategy"]["canary"]
    canary |= {"canaryService": "payment-api-canary", "stableService": "payment-api-stable"}
    weights = iter([25, 50, 75])
    for step in canary["steps"]:
        if isinstance(step.get("setWeight"), str):
            step["setWeight"] = next(weights)
        if "pause" in step:
            step["pause"] = {"duration": "1s"}
    article_gate = copy.deepcopy(template)
    article_gate["metadata"]["namespace"] = namespace
    article_gate["spec"]["metrics"][0]["provider"]["web"]["url"] = f"{analyzer}/analyze?service=regressed"
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": "payment-api"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        for name in ("payment-api-canary", "payment-api-stable")
    ]
    backend = {"service": {"name": "payment-api-stable", "port": {"number": 80}}}
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "payment-api-ingress", "namespace": namespace},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
        },
    }
    with argo_cluster.http() as http:
        kube.apply_all(http, [article_gate, *services, ingress, fixed])
        where = kube.path("argoproj.io/v1alpha1", "AnalysisTemplate", namespace, "latency-driven-analysis")
        stored = kube.get(http, where)
        assert "timeout" not in stored["spec"]["metrics"][0]["provider"]["web"]  # pruned: Argo uses 10 s
        stored_rollout = kube.rollout(http, namespace, "payment-api")
        assert "minPodsPerReplica" not in stored_rollout["spec"]["strategy"]["canary"]
        healthy(http, namespace, "payment-api")
        kube.set_image(http, namespace, "payment-api", "registry.example/payment-api:v2.5.0")
    final, seen = watch(argo_cluster, namespace, "payment-api", promoted)
    with argo_cluster.http() as http:
        runs = kube.analysis_runs(http, namespace)
        answer = httpx.get(f"{analyzer}/analyze", params={"service": "regressed"}, timeout=10).json()
    # The defect, on the real controller: the analyzer says rollback (weight 0), every
    # measurement fails `result > 0`, and yet each run succeeds (1 failure is not more than
    # failureLimit 2) and the regressed canary is promoted to 100 %.
    assert answer["status"] == "rollback" and answer["weight"] == 0
    assert [r["status"]["phase"] for r in runs] == ["Successful"] * 4
    for run in runs:
        # A request that outlived Argo's 10 s (a loaded machine) is an Error Argo measures
        # again; no measurement ever passes, and the last one of each run fails.
        phases = [m["phase"] for m in run["status"]["metricResults"][0]["measurements"]]
        assert phases[-1] == "Failed" and set(phases) <= {"Failed", "Error"}, phases
    assert [w for w in seen if w] == [25, 50, 75, 100] and not final["status"].get("abort")


# canarypilot's own controller needs no Argo: it runs on the first cluster only.
@pytest.mark.parametrize("argo_cluster", [ARGO_VERSIONS[0]], indirect=True)
def test_canarypilots_own_controller_promotes_through_ingress_and_rolls_back_through_gateway(
    argo_cluster: Cluster, tmp_path: Path
) -> None:
    with rollout_e2e.dense_prometheus(tmp_path / "prom") as prom:
        own_controller_cases(argo_cluster, prom, tmp_path)


def own_controller_cases(argo_cluster: Cluster, prom: LocalPrometheus, tmp_path: Path) -> None:
    namespace = new_namespace(argo_cluster, "own")
    kubernetes = {"kubeconfig": str(argo_cluster.kubeconfig)}
    with argo_cluster.http() as http:
        kube.apply_all(
            http,
            [
                *rollout_e2e.services(namespace, "healthy"),
                rollout_e2e.stable_ingress(namespace, "healthy"),
                *rollout_e2e.services(namespace, "regressed"),
                rollout_e2e.http_route(namespace, "regressed"),
            ],
        )

    # A healthy release through the ingress router, SIGKILLed after its first router change.
    ingress_router = {
        "type": "ingress",
        "namespace": namespace,
        "stable_ingress": "healthy",
        "canary_service": "healthy-canary",
        "kubernetes": kubernetes,
    }
    config = rollout_e2e.rollout_file(tmp_path, "healthy", ingress_router, prom.url)
    state = tmp_path / "healthy-state"
    resumed = rollout_e2e.run_killed_once_then_resumed(config, state, after_events=2)
    assert resumed.returncode == 0, resumed.stderr
    with argo_cluster.http() as http:
        canary = kube.get(http, kube.path("networking.k8s.io/v1", "Ingress", namespace, "healthy-canary"))
        stable = kube.get(http, kube.path("networking.k8s.io/v1", "Ingress", namespace, "healthy"))
    annotations = canary["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
    weight = int(annotations["nginx.ingress.kubernetes.io/canary-weight"])
    assert weight == 1000  # 100 % of canary-weight-total, 1000
    backend = canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert backend == "healthy-canary"
    assert "annotations" not in stable["metadata"] or not any(
        "canary" in key for key in stable["metadata"]["annotations"]
    )  # the stable Ingress is never touched
    with StateStore(state) as store:
        stored = store.load()
        events = store.events()
    assert stored is not None and stored.phase is Phase.PROMOTED
    assert [e.kind for e in events].count(EventKind.RESUMED) == 1
    confirmed = [e.data["requested"] for e in events if e.kind is EventKind.ROUTER]
    assert confirmed[0] == 5.0 and confirmed[-1] == 100.0 and confirmed == sorted(confirmed)

    # A regressed release through the Gateway API router: rolled back, all weight on stable.
    gateway_router = {
        "type": "gateway",
        "namespace": namespace,
        "route": "regressed",
        "stable_service": "regressed-stable",
        "canary_service": "regressed-canary",
        "kubernetes": kubernetes,
    }
    config = rollout_e2e.rollout_file(tmp_path, "regressed", gateway_router, prom.url)
    ran = subprocess.run(
        rollout_e2e.rollout_command(
            "--config", str(config), "--state-dir", str(tmp_path / "regressed-state")
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 4, ran.stderr  # rolled back
    with argo_cluster.http() as http:
        route = kube.get(http, kube.path("gateway.networking.k8s.io/v1", "HTTPRoute", namespace, "regressed"))
    refs = {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]}
    assert refs == {"regressed-stable": 1000, "regressed-canary": 0}
