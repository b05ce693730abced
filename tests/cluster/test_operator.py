"""`canarypilot operator` on a real control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok): CanaryReleases promoted, rolled back, refused as invalid, and resumed after a
SIGKILL of the operator, with the analysis read from a real Prometheus (promtool backfill).

The rollout timings are FAST_SETTINGS (3 s steps); the Lease lasts 4 s so that a restarted
operator (a new identity) takes over quickly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from canarypilot.local.prometheus import LocalPrometheus
from tests.cluster import kube, operator_e2e
from tests.cluster.apiserver import Cluster, create_namespace
from tests.cluster.operator_e2e import WeightWatch, canary_release, running_operator, set_image, workload
from tests.cluster.rollout_e2e import dense_prometheus

pytestmark = [pytest.mark.integration, pytest.mark.slow]
#: The cases that run on a second control plane of their own when `make test` spreads the
#: suite over workers (tests/conftest.py): about half the module's ~11 minutes.
SECOND_HALF = {
    "test_the_api_server_away_for_a_minute_nothing_moves_then_every_release_ends_right",
    "test_twenty_releases_at_once_in_one_operator_all_end_where_their_metrics_say",
    "test_two_replicas_the_leader_killed_mid_release_the_other_takes_over_within_the_lease",
    "test_deleting_a_release_mid_way_puts_every_request_back_on_the_primary",
    "test_abort_through_the_resource_rolls_back_at_once",
}


def xdist_subgroup(item: pytest.Item) -> str | None:
    return "second-half" if getattr(item, "originalname", item.name) in SECOND_HALF else None


RELEASE_TIMEOUT = 120.0
_counter = iter(range(1, 1000))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with operator_e2e.operator_control_plane(tmp_path_factory.mktemp("operator-cp")) as running:
        yield running


@pytest.fixture(scope="module")
def prom(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    # The module runs ~15 minutes on two cores; its last test needs fresh samples too.
    with dense_prometheus(tmp_path_factory.mktemp("operator-prom"), ahead_seconds=2400) as running:
        yield running


def setup_release(cluster: Cluster, prom: LocalPrometheus, *, job: str) -> str:
    namespace = f"op{next(_counter)}-{job}"
    with cluster.http() as http:
        create_namespace(http, namespace)
        kube.apply_all(http, workload(namespace, "web", "registry.example/web:1"))
        kube.apply_all(http, [canary_release(namespace, "web", metrics_job=job, prometheus_url=prom.url)])
    return namespace


def status(http: httpx.Client, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = operator_e2e.release(http, namespace, "web").get("status") or {}
    return found


def wait_phase(
    http: httpx.Client, namespace: str, *phases: str, timeout: float = RELEASE_TIMEOUT
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        current = status(http, namespace)
        return current if current.get("phase") in phases else None

    try:
        return kube.wait_for(f"release phase {phases}", probe, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status: {status(http, namespace)}") from None


def deployment(http: httpx.Client, namespace: str, name: str) -> dict[str, Any]:
    return kube.get(http, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")


def image(deploy: dict[str, Any]) -> str:
    return str(deploy["spec"]["template"]["spec"]["containers"][0]["image"])


def running_images(http: httpx.Client, namespace: str, app: str = "web") -> dict[str, int]:
    """Ready replicas per image among the primary's ReplicaSets (app=<app>)."""
    url = f"/apis/apps/v1/namespaces/{namespace}/replicasets?labelSelector=app%3D{app}"
    sets = kube.get(http, url)["items"]
    out: dict[str, int] = {}
    for rs in sets:
        ready = int((rs.get("status") or {}).get("readyReplicas") or 0)
        if ready:
            out[image(rs)] = out.get(image(rs), 0) + ready
    return out


def condition(current: dict[str, Any], kind: str) -> str:
    return next(c["status"] for c in current["conditions"] if c["type"] == kind)


def events(http: httpx.Client, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.get(http, f"/api/v1/namespaces/{namespace}/events")["items"]
    return [e for e in items if e["involvedObject"].get("kind") == "CanaryRelease"]


def start_release(http: httpx.Client, namespace: str) -> None:
    """The operator adopts the Deployment (paused, Idle); then a new image starts the release."""
    wait_phase(http, namespace, "Idle", timeout=30)
    assert deployment(http, namespace, "web")["spec"].get("paused") is True
    kube.wait_for(
        "v1 running",
        lambda: running_images(http, namespace) == {"registry.example/web:1": 2} or None,
        timeout=30,
    )
    set_image(http, namespace, "web", "registry.example/web:2")


def assert_climbed(weights: list[int]) -> None:
    """Canary weights (per mille) only ever rise, by at most the growth factor, to 1000, then 0."""
    assert weights[-1] == 0 and 1000 in weights, weights
    climb = weights[: weights.index(1000) + 1]
    assert climb == sorted(set(climb)), f"a weight was lost or applied twice: {weights}"
    assert climb[0] == 50, weights  # the minimum weight, 5 %
    # at most the growth factor (2), except that a rung the cap would put above 95 % is 100 %:
    # stable keeps too little traffic there to be a baseline (analysis/ladder.py)
    steps = zip(climb, climb[1:], strict=False)
    assert all(b <= 2 * a or (b == 1000 and 2 * a >= 950) for a, b in steps), weights


def test_a_healthy_release_is_promoted_and_leaves_the_cluster_clean(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    namespace = setup_release(cluster, prom, job="healthy")
    with running_operator(cluster, namespace, tmp_path / "operator.log"), cluster.http() as http:
        with WeightWatch(cluster, namespace, "web-canary") as watch:
            start_release(http, namespace)
            progressing = wait_phase(http, namespace, "Progressing", timeout=30)
            assert condition(progressing, "Progressing") == "True"
            canary = deployment(http, namespace, "web-canary")
            assert image(canary) == "registry.example/web:2"
            assert canary["spec"]["template"]["metadata"]["labels"]["app"] == "web-canary"
            done = wait_phase(http, namespace, "Promoted", "RolledBack", "Failed")
            time.sleep(0.5)
        assert done["phase"] == "Promoted", done
        assert condition(done, "Promoted") == "True" and condition(done, "Progressing") == "False"
        assert_climbed(watch.weights)
        assert done["weight"] == 0.0 and done["finalized"] is True
        assert deployment(http, namespace, "web-canary")["spec"]["replicas"] == 0
        primary = deployment(http, namespace, "web")
        assert image(primary) == "registry.example/web:2" and primary["spec"]["paused"] is True
        assert running_images(http, namespace) == {"registry.example/web:2": 2}
        assert done["lastVerdict"] == "proceed" and done["lastDecision"]["reasons"]
        reasons = {e["reason"] for e in events(http, namespace)}
        assert {"WeightChanged", "Verdict"} <= reasons
        assert [h["kind"] for h in done["history"]].count("router") >= 3


def test_a_regressed_canary_is_rolled_back_and_the_primary_is_untouched(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    namespace = setup_release(cluster, prom, job="regressed")
    with running_operator(cluster, namespace, tmp_path / "operator.log"), cluster.http() as http:
        with WeightWatch(cluster, namespace, "web-canary") as watch:
            start_release(http, namespace)
            done = wait_phase(http, namespace, "Promoted", "RolledBack", "Failed")
            time.sleep(0.5)
        assert done["phase"] == "RolledBack", done
        assert condition(done, "RolledBack") == "True"
        assert watch.weights[-1] == 0 and max(watch.weights) == 50, watch.weights  # never past the first rung
        assert done["lastVerdict"] == "rollback"
        assert any("latency" in r for r in done["lastDecision"]["reasons"]), done["lastDecision"]
        assert deployment(http, namespace, "web-canary")["spec"]["replicas"] == 0
        assert running_images(http, namespace) == {"registry.example/web:1": 2}
        warnings = [e for e in events(http, namespace) if e["type"] == "Warning"]
        assert any(e["reason"] == "Verdict" and "rollback" in e["message"] for e in warnings), warnings
        # The rejected template is not released again.
        time.sleep(2)
        assert status(http, namespace)["phase"] == "RolledBack"


def test_an_invalid_release_gets_a_condition_and_no_crash_loop(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    namespace = f"op{next(_counter)}-invalid"
    doc = canary_release(namespace, "web", metrics_job="bad job!", prometheus_url=prom.url)
    with cluster.http() as http:
        create_namespace(http, namespace)
        kube.apply_all(http, workload(namespace, "web", "registry.example/web:1"))
        kube.apply_all(http, [doc])
        with running_operator(cluster, namespace, tmp_path / "operator.log") as process:
            invalid = wait_phase(http, namespace, "Invalid", timeout=30)
            assert condition(invalid, "Invalid") == "True"
            assert "bad job!" in invalid["message"]
            version = operator_e2e.release(http, namespace, "web")["metadata"]["resourceVersion"]
            time.sleep(3)
            assert process.poll() is None, "the operator exited on an invalid release"
            again = operator_e2e.release(http, namespace, "web")["metadata"]["resourceVersion"]
            assert again == version, "the operator keeps rewriting an invalid release's status"
            assert deployment(http, namespace, "web")["spec"].get("paused") is not True


def test_a_sigkilled_operator_resumes_the_release_without_losing_or_repeating_a_weight(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    namespace = setup_release(cluster, prom, job="healthy")
    log = tmp_path / "operator.log"
    with cluster.http() as http, WeightWatch(cluster, namespace, "web-canary") as watch:
        with running_operator(cluster, namespace, log) as first:
            start_release(http, namespace)
            kube.wait_for(
                "step 2",
                lambda: True if int(status(http, namespace).get("step") or 0) >= 2 else None,
                timeout=60,
            )
            first.send_signal(signal.SIGKILL)
            first.wait()
        killed_at = status(http, namespace)
        assert killed_at["phase"] == "Progressing"
        with running_operator(cluster, namespace, log):
            done = wait_phase(http, namespace, "Promoted", "RolledBack", "Failed")
            time.sleep(0.5)
    assert done["phase"] == "Promoted", (done, log.read_text()[-2000:])
    assert_climbed(watch.weights)
    # The status history (bounded) names each change once: its tail is exactly the climb watched.
    routed = [round(h["weight"] * 10) for h in done["history"] if h["kind"] == "router"]
    climb = watch.weights[: watch.weights.index(1000) + 1]
    assert routed and routed == climb[-len(routed) :], (routed, watch.weights)


def at_step(http: httpx.Client, namespace: str, step: int) -> None:
    kube.wait_for(
        f"step {step}",
        lambda: True if int(status(http, namespace).get("step") or 0) >= step else None,
        timeout=60,
    )


@dataclass
class MidRelease:
    namespace: str
    http: httpx.Client
    watch: WeightWatch
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def release_at_step_2(cluster: Cluster, prom: LocalPrometheus, tmp_path: Path) -> Iterator[MidRelease]:
    """A healthy release the operator has taken to step 2, its canary weights watched."""
    namespace = setup_release(cluster, prom, job="healthy")
    log = tmp_path / "operator.log"
    with (
        cluster.http() as http,
        WeightWatch(cluster, namespace, "web-canary") as watch,
        running_operator(cluster, namespace, log) as process,
    ):
        start_release(http, namespace)
        at_step(http, namespace, 2)
        yield MidRelease(namespace, http, watch, process, log)


def test_deleting_a_release_mid_way_puts_every_request_back_on_the_primary(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    with release_at_step_2(cluster, prom, tmp_path) as mid:
        namespace, http, watch, process, log = mid.namespace, mid.http, mid.watch, mid.process, mid.log
        path = f"{operator_e2e.RELEASES}/namespaces/{namespace}/canaryreleases/web"
        assert "canarypilot.io/restore-traffic" in kube.get(http, path)["metadata"]["finalizers"]
        assert watch.weights and watch.weights[-1] > 0
        assert http.delete(path).status_code == 200
        kube.wait_for(
            "the release gone", lambda: True if http.get(path).status_code == 404 else None, timeout=30
        )
        time.sleep(1.0)  # the watch has seen the last write; nothing moves after the deletion
        assert watch.weights[-1] == 0, watch.weights
        assert deployment(http, namespace, "web-canary")["spec"]["replicas"] == 0
        primary = deployment(http, namespace, "web")
        assert primary["spec"]["paused"] is True  # nothing rolled out on a delete
        assert running_images(http, namespace) == {"registry.example/web:1": 2}
        assert process.poll() is None, log.read_text()[-1500:]


def test_a_newer_template_mid_release_restarts_the_release_on_it(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    """web:3 lands while web:2 is at step 2: web:2's traffic goes to 0, the canary runs web:3
    from the minimum weight again, and web:3 (the template validated) is what is promoted."""
    with release_at_step_2(cluster, prom, tmp_path) as mid:
        namespace, http, watch, process, log = mid.namespace, mid.http, mid.watch, mid.process, mid.log
        first_climb = list(watch.weights)
        set_image(http, namespace, "web", "registry.example/web:3")
        kube.wait_for(
            "the canary on web:3",
            lambda: image(deployment(http, namespace, "web-canary")) == "registry.example/web:3" or None,
            timeout=30,
        )
        done = wait_phase(http, namespace, "Promoted", "RolledBack", "Failed")
        time.sleep(0.5)
        assert process.poll() is None, log.read_text()[-1500:]
    assert done["phase"] == "Promoted", (done, log.read_text()[-2000:])
    restart = watch.weights.index(0)
    assert watch.weights[:restart] == first_climb[:restart] and restart >= 2, watch.weights
    assert_climbed(watch.weights[restart + 1 :])  # from 5 % again, every rung judged
    with cluster.http() as http:
        primary = deployment(http, namespace, "web")
        assert image(primary) == "registry.example/web:3" and primary["spec"]["paused"] is True
        assert running_images(http, namespace) == {"registry.example/web:3": 2}
        changed = [e for e in events(http, namespace) if e["reason"] == "TemplateChanged"]
    assert len(changed) == 1 and "starts again" in changed[0]["message"], changed


def test_a_revert_to_the_stable_template_mid_release_stops_it_and_promotes_nothing(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    with release_at_step_2(cluster, prom, tmp_path) as mid:
        namespace, http, watch, process, log = mid.namespace, mid.http, mid.watch, mid.process, mid.log
        set_image(http, namespace, "web", "registry.example/web:1")
        stopped = wait_phase(http, namespace, "Idle", timeout=30)
        time.sleep(2.0)  # a pass or two later: nothing starts again
        assert process.poll() is None, log.read_text()[-1500:]
        assert status(http, namespace)["phase"] == "Idle"
    assert stopped["finalized"] is True and "validated before" in stopped["message"], stopped
    assert watch.weights[-1] == 0 and 1000 not in watch.weights, watch.weights
    with cluster.http() as http:
        assert deployment(http, namespace, "web-canary")["spec"]["replicas"] == 0
        assert running_images(http, namespace) == {"registry.example/web:1": 2}


def ask(cluster: Cluster, command: str, namespace: str) -> subprocess.CompletedProcess[str]:
    """`canarypilot rollout <command> --release NAMESPACE/web`, as a user would type it."""
    argv = [str(Path(sys.executable).with_name("canarypilot")), "rollout", command]
    argv += ["--release", f"{namespace}/web", "--kubeconfig", str(cluster.kubeconfig)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def annotate(http: httpx.Client, namespace: str, value: str) -> None:
    answer = http.patch(
        f"{operator_e2e.RELEASES}/namespaces/{namespace}/canaryreleases/web",
        json={"metadata": {"annotations": {"canarypilot.io/command": value}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    answer.raise_for_status()


def annotations(http: httpx.Client, namespace: str) -> dict[str, str]:
    found: dict[str, str] = operator_e2e.release(http, namespace, "web")["metadata"].get("annotations") or {}
    return found


def wait_command_taken(http: httpx.Client, namespace: str, command: str, *, timeout: float) -> None:
    kube.wait_for(
        f"the {command!r} command taken",
        lambda: True if "canarypilot.io/command" not in annotations(http, namespace) else None,
        timeout=timeout,
    )


def test_pause_and_resume_through_the_resource_hold_then_continue_the_release(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    namespace = setup_release(cluster, prom, job="healthy")
    with (
        cluster.http() as http,
        WeightWatch(cluster, namespace, "web-canary") as watch,
        running_operator(cluster, namespace, tmp_path / "operator.log"),
    ):
        start_release(http, namespace)
        kube.wait_for(
            "step 1", lambda: True if int(status(http, namespace).get("step") or 0) >= 1 else None, timeout=60
        )
        paused = ask(cluster, "pause", namespace)
        assert paused.returncode == 0, paused.stderr
        assert f"pause: asked of {namespace}/web" in paused.stdout
        held = wait_phase(http, namespace, "Paused", timeout=20)
        assert condition(held, "Paused") == "True"
        # The annotation goes once the status shows the pause: taken, not left to be taken again.
        wait_command_taken(http, namespace, "pause", timeout=10)
        weights = list(watch.weights)
        time.sleep(4)  # longer than a step's pause: a running release would have moved
        assert watch.weights == weights and status(http, namespace)["phase"] == "Paused"
        annotate(http, namespace, "jump")  # not a command: refused in an Event, nothing else
        wait_command_taken(http, namespace, "jump", timeout=20)
        # The Warning follows the annotation's removal (the removal decides who takes it).
        ignored = kube.wait_for(
            "the CommandIgnored event",
            lambda: [e for e in events(http, namespace) if e["reason"] == "CommandIgnored"] or None,
            timeout=10,
        )
        assert "unknown command 'jump'" in ignored[0]["message"] and ignored[0]["type"] == "Warning"
        assert status(http, namespace)["phase"] == "Paused"
        annotate(http, namespace, "resume")  # kubectl annotate crel web canarypilot.io/command=resume
        done = wait_phase(http, namespace, "Promoted", "RolledBack", "Failed")
    assert done["phase"] == "Promoted", done
    assert_climbed(watch.weights)


def test_abort_through_the_resource_rolls_back_at_once(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    namespace = setup_release(cluster, prom, job="healthy")
    with (
        cluster.http() as http,
        WeightWatch(cluster, namespace, "web-canary") as watch,
        running_operator(cluster, namespace, tmp_path / "operator.log"),
    ):
        start_release(http, namespace)
        kube.wait_for(
            "step 2", lambda: True if int(status(http, namespace).get("step") or 0) >= 2 else None, timeout=60
        )
        aborted = ask(cluster, "abort", namespace)
        assert aborted.returncode == 0, aborted.stderr
        done = wait_phase(http, namespace, "Aborted", "Promoted", "RolledBack", "Failed", timeout=30)
        time.sleep(0.5)
        assert done["phase"] == "Aborted", done
        assert watch.weights[-1] == 0 and max(watch.weights) < 1000, watch.weights
        assert deployment(http, namespace, "web-canary")["spec"]["replicas"] == 0
        assert running_images(http, namespace) == {"registry.example/web:1": 2}
        again = ask(cluster, "resume", namespace)  # the release has ended: a one-line refusal
        assert again.returncode == 2 and "is Aborted: nothing to resume" in again.stderr, again
        assert "Traceback" not in again.stderr


def test_the_api_server_away_for_a_minute_nothing_moves_then_every_release_ends_right(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    """kube-apiserver frozen (SIGSTOP) for 60 s with a healthy and a regressed release in
    flight: the operator loses its Lease and stops, is restarted (as Kubernetes would) until
    it leads again, and resumes both from their status: the healthy one promoted with every
    weight applied once, the regressed one rolled back, never past the first rung."""
    assert cluster.api_pid > 0
    namespace = f"op{next(_counter)}-outage"
    jobs = {"web": "healthy", "api": "regressed"}
    log = tmp_path / "operator.log"
    with cluster.http() as http:
        create_namespace(http, namespace)
        for app, job in jobs.items():
            kube.apply_all(http, workload(namespace, app, f"registry.example/{app}:1"))
            kube.apply_all(http, [canary_release(namespace, app, metrics_job=job, prometheus_url=prom.url)])
        with (
            WeightWatch(cluster, namespace, "web-canary") as web,
            WeightWatch(cluster, namespace, "api-canary") as api,
            operator_e2e.restarting_operator(cluster, namespace, log) as exits,
        ):

            def phase(app: str) -> str:
                found = operator_e2e.release(http, namespace, app).get("status") or {}
                return str(found.get("phase") or "")

            kube.wait_for(
                "both adopted", lambda: True if {phase(a) for a in jobs} == {"Idle"} else None, timeout=60
            )
            set_image(http, namespace, "web", "registry.example/web:2")
            kube.wait_for(
                "web at 10 %", lambda: True if web.weights and web.weights[-1] >= 100 else None, timeout=60
            )
            # The regressed canary just took its first 5 %: its rollback is decided in the outage.
            set_image(http, namespace, "api", "registry.example/api:2")
            kube.wait_for("api at 5 %", lambda: True if api.weights == [50] else None, timeout=60, every=0.05)
            os.kill(cluster.api_pid, signal.SIGSTOP)
            try:
                time.sleep(60)
            finally:
                os.kill(cluster.api_pid, signal.SIGCONT)
            resumed = time.monotonic()
            kube.wait_for(
                "api back at 0", lambda: True if api.weights[-1] == 0 else None, timeout=120, every=0.05
            )
            rolled_back = time.monotonic() - resumed
            final = {"Promoted", "RolledBack", "Failed", "Aborted"}
            kube.wait_for(
                "both ended", lambda: True if {phase(a) for a in jobs} <= final else None, timeout=180
            )
            ended = time.monotonic() - resumed
            time.sleep(0.5)
        assert (phase("web"), phase("api")) == ("Promoted", "RolledBack"), log.read_text()[-3000:]
    assert exits and all(code == 1 for code in exits), exits  # a lost Lease: exit 1, restarted
    assert_climbed(web.weights)
    assert api.weights[-1] == 0 and max(api.weights) == 50, api.weights
    print(
        f"API server away 60 s: operator restarted {len(exits)}x; the rollback decided in the outage "
        f"applied {rolled_back:.1f}s after it returned; both releases ended {ended:.0f}s after"
    )


def lease_holder(http: httpx.Client, namespace: str) -> str:
    lease = kube.get(http, f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/canarypilot-operator")
    return str(lease["spec"].get("holderIdentity") or "")


def test_two_replicas_the_leader_killed_mid_release_the_other_takes_over_within_the_lease(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    """Two operators (4 s Lease, 1 s renewals); SIGKILL the leader at step 2: the waiting one
    takes the Lease and finishes the release, every weight applied once."""
    namespace = setup_release(cluster, prom, job="healthy")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with (
        cluster.http() as http,
        WeightWatch(cluster, namespace, "web-canary") as watch,
        running_operator(cluster, namespace, logs[0]) as a,
        running_operator(cluster, namespace, logs[1]) as b,
    ):
        by_identity = {f"{socket.gethostname()}-{p.pid}": p for p in (a, b)}
        start_release(http, namespace)
        kube.wait_for(
            "step 2",
            lambda: True if int(status(http, namespace).get("step") or 0) >= 2 else None,
            timeout=60,
        )
        leader_id = lease_holder(http, namespace)
        leader = by_identity[leader_id]
        follower_id = next(i for i in by_identity if i != leader_id)
        assert by_identity[follower_id].poll() is None, "the waiting replica exited"
        leader.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        leader.wait()
        kube.wait_for(
            "the other replica leads",
            lambda: True if lease_holder(http, namespace) == follower_id else None,
            timeout=30,
            every=0.05,
        )
        failover = time.monotonic() - killed
        done = wait_phase(http, namespace, "Promoted", "RolledBack", "Failed")
        time.sleep(0.5)
    print(f"failover: the waiting replica held the Lease {failover:.1f}s after the leader's SIGKILL")
    assert done["phase"] == "Promoted", (done, [log.read_text()[-1500:] for log in logs])
    # The follower sees the last renewal (at most 1 s before the kill) on its next try (every
    # 1 s) and takes the Lease once it has not moved for 4 s by its own clock: 3 to 6 s, plus
    # slack for a shared machine.
    assert failover < 4 + 2 * 1 + 2, failover
    assert_climbed(watch.weights)


def test_twenty_releases_at_once_in_one_operator_all_end_where_their_metrics_say(
    cluster: Cluster, prom: LocalPrometheus, tmp_path: Path
) -> None:
    namespace = f"op{next(_counter)}-many"
    jobs = {f"app{i:02d}": "regressed" if i % 5 == 0 else "healthy" for i in range(20)}
    with cluster.http() as http:
        create_namespace(http, namespace)
        for app, job in jobs.items():
            kube.apply_all(http, workload(namespace, app, f"registry.example/{app}:1"))
            kube.apply_all(http, [canary_release(namespace, app, metrics_job=job, prometheus_url=prom.url)])
        # 20 analyses every second on a shared 2-core machine can hold the event loop past a 4 s
        # Lease (the operator then stops, as it must); the default-like 15 s is what this measures.
        log = tmp_path / "operator.log"
        with running_operator(cluster, namespace, log, lease=("15", "3")) as process:

            def phases() -> dict[str, str]:
                items = kube.get(http, f"{operator_e2e.RELEASES}/namespaces/{namespace}/canaryreleases")[
                    "items"
                ]
                return {i["metadata"]["name"]: (i.get("status") or {}).get("phase", "") for i in items}

            kube.wait_for("all adopted", lambda: set(phases().values()) == {"Idle"} or None, timeout=60)
            started = time.monotonic()
            for app in jobs:
                set_image(http, namespace, app, f"registry.example/{app}:2")
            final = {"Promoted", "RolledBack", "Failed"}

            def all_ended() -> dict[str, str] | None:
                now = phases()
                if process.poll() is not None:
                    raise AssertionError(f"the operator exited: {now}: {log.read_text()[-1500:]}")
                return now if set(now.values()) <= final else None

            ended = kube.wait_for("all 20 ended", all_ended, timeout=240)
            elapsed = time.monotonic() - started
            assert process.poll() is None
        expected = {app: "RolledBack" if job == "regressed" else "Promoted" for app, job in jobs.items()}
        assert ended == expected, (ended, log.read_text()[-3000:])
        for app, job in jobs.items():
            # Rolled back: the paused primary still runs v1 (its spec keeps the rejected v2).
            version = 1 if job == "regressed" else 2
            runs = {f"registry.example/{app}:{version}": 2}

            def settled(app: str = app, runs: dict[str, int] = runs) -> bool | None:
                return running_images(http, namespace, app) == runs or None

            kube.wait_for(f"{app} runs v{version}", settled, timeout=30)
            assert deployment(http, namespace, f"{app}-canary")["spec"]["replicas"] == 0
    print(f"20 releases (16 promoted, 4 rolled back) ended in {elapsed:.0f}s")
