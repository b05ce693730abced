"""Argo Rollouts' own code (v1.7.2) judges canarypilot's answers: the contract test.

Builds the Go test program next to this file (its go.mod pins argo-rollouts v1.7.2)
and runs it against a live `canarypilot serve` in front of a real Prometheus. The
built binary, the Go module cache and the build cache live under
``~/.cache/canarypilot/argo-v1.7.2/``, the binary keyed by a hash of go.mod, go.sum
and the Go source, so only the first run pays for downloading and compiling Argo's
dependency tree (see docs/argo.md for the times measured).

Each case names a template (the article's, or the one `render argo` writes), a
canary, and the phases Argo must reach: every measurement's, each metric's, the run's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from canarypilot.local.processes import free_port
from canarypilot.policy import Settings
from canarypilot.render.argo import ArgoOptions, render_argo
from tests.service.live import Served, live_prometheus, serve
from tests.support.gobuild import BuildFailed, build_key, cache_dir, cached_build, go_binary, run_go

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
ARGO_VERSION = "v1.7.2"
ARTICLE = HERE.parents[1] / "data" / "article-manifests.yaml"
CACHE = cache_dir(f"argo-{ARGO_VERSION}")
BUILD_TIMEOUT = 45 * 60  # a cold build downloads and compiles Argo's whole dependency tree


def contract_binary(go: str) -> Path:
    """The compiled Go test program, built once per go.mod/go.sum/source."""
    key = build_key(HERE, ("go.mod", "go.sum", "contract_test.go"))

    def build(partial: dict[str, Path]) -> None:
        started = time.monotonic()
        args = ["test", "-c", "-o", str(partial["argo-contract.test"]), "."]
        try:
            run_go(go, args, cwd=HERE, cache=CACHE, timeout=BUILD_TIMEOUT)
        except BuildFailed as exc:
            pytest.fail(f"building the Argo contract test failed: {exc}")
        print(f"built the Argo contract test in {time.monotonic() - started:.0f}s")

    cached_build(CACHE, key, ("argo-contract.test",), build)
    return CACHE / "bin" / key / "argo-contract.test"


def article_template(url: str, workdir: Path) -> Path:
    """The article's AnalysisTemplate as the API server would store it, calling ``url``.

    Two changes only: its URL points at the live service (the article's hard-codes
    one service; here the service is a query parameter), and ``timeout`` is dropped,
    as the API server prunes that unknown field.
    """
    doc = next(d for d in yaml.safe_load_all(ARTICLE.read_text()) if d["kind"] == "AnalysisTemplate")
    web = doc["spec"]["metrics"][0]["provider"]["web"]
    assert web.pop("timeout") == "15s"
    web["url"] = url
    path = workdir / f"article-{hashlib.sha256(url.encode()).hexdigest()[:8]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def rendered_template(analyzer: str, workdir: Path, token_secret: str | None = None) -> Path:
    # A 60 s window (five measurements of each metric) instead of the default 240 s: the
    # counts and limits follow the window, and five answers show every rule.
    options = ArgoOptions(
        service="unused",
        image="unused:1",
        analyzer_url=analyzer,
        token_secret=token_secret,
        observe_seconds=60,
    )
    doc = next(d for d in render_argo(options, Settings()) if d["kind"] == "AnalysisTemplate")
    path = workdir / f"rendered-gate-{token_secret or 'open'}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


#: The rendered gate's durations, shrunk so a case takes seconds (counts, limits and
#: conditions stay as rendered): both metrics asked every second, five times.
FAST = {
    "slo-guard": {"interval": "1s", "initialDelay": "1s"},
    "safe-weight": {"interval": "1s", "initialDelay": "1s"},
}
GUARD_OK = ["Successful"] * 5


TOKEN = "contract-test-token"


def cases(live: Served, down: Served, guarded: Served, workdir: Path) -> list[dict[str, Any]]:
    gate = str(rendered_template(live.url, workdir))

    def article(name: str, server: Served, service: str, expect: dict[str, Any]) -> dict[str, Any]:
        template = article_template(f"{server.url}/analyze?service={service}", workdir)
        return {"name": name, "template": str(template), "args": {}, "expect": expect, "timeout_seconds": 120}

    def rendered(name: str, service: str, weight: int, expect: dict[str, Any]) -> dict[str, Any]:
        # The live data's canary serves a fifth of the requests: the step's rung is 20 %.
        args = {"service": service, "weight": "20", "target-weight": str(weight)}
        return {"name": name, "template": gate, "args": args, "durations": FAST, "expect": expect}

    def one(metric: str, phase: str, measurements: list[str], run: str | None = None) -> dict[str, Any]:
        return {"run": run or phase, "metrics": {metric: {"phase": phase, "measurements": measurements}}}

    failed_guard = {
        "run": "Failed",
        # failureLimit 0: decide's test is anytime-valid, the first rollback verdict aborts.
        "metrics": {"slo-guard": {"phase": "Failed", "measurements": ["Failed"]}},
    }
    return [
        # The article's template: one measurement, failureLimit 2.
        article("article-healthy", live, "healthy", one("safe-weight", "Successful", ["Successful"])),
        # weight 0 fails `result > 0`, but 1 failure is not more than failureLimit 2: the metric passes.
        article("article-regressed", live, "regressed", one("safe-weight", "Successful", ["Failed"])),
        article(
            "article-error-regressed", live, "error-regressed", one("safe-weight", "Successful", ["Failed"])
        ),
        # weight null: `result > 0` cannot be evaluated; errors until consecutiveErrorLimit (4) is passed.
        article("article-no-data", live, "ghost", one("safe-weight", "Error", ["Error"] * 5)),
        article("article-backend-down", down, "healthy", one("safe-weight", "Error", ["Error"] * 5)),
        # The rendered gate.
        rendered(
            "gate-healthy",
            "healthy",
            40,  # the growth cap from 20 %
            {
                "run": "Successful",
                "metrics": {
                    "slo-guard": {"phase": "Successful", "measurements": GUARD_OK},
                    "safe-weight": {"phase": "Successful", "measurements": GUARD_OK, "value": '"pass"'},
                },
            },
        ),
        rendered(
            "gate-slower-not-75",  # above the growth cap from 20 %
            "slower",
            75,
            {
                "run": "Inconclusive",
                "metrics": {
                    "slo-guard": {"phase": "Successful", "measurements": GUARD_OK},
                    # four waits are allowed (inconclusiveLimit = count - 1); the fifth pauses
                    "safe-weight": {
                        "phase": "Inconclusive",
                        "measurements": ["Inconclusive"] * 5,
                        "value": '"wait"',
                    },
                },
            },
        ),
        # The token: Argo resolves the argument from the Secret and sends it as a header.
        {
            "name": "gate-healthy-token-from-secret",
            "template": str(rendered_template(guarded.url, workdir, token_secret="analyzer-token")),
            "args": {"service": "healthy", "weight": "20", "target-weight": "40"},
            "secrets": {"analyzer-token": {"token": TOKEN}},
            "durations": FAST,
            "expect": {
                "run": "Successful",
                "metrics": {"safe-weight": {"phase": "Successful", "value": '"pass"'}},
            },
        },
        rendered("gate-regressed", "regressed", 20, failed_guard),
        rendered("gate-error-regressed", "error-regressed", 20, failed_guard),
        rendered(
            "gate-no-data",
            "ghost",
            10,
            {
                "run": "Inconclusive",
                "metrics": {
                    "slo-guard": {"phase": "Successful", "measurements": GUARD_OK},
                    "safe-weight": {"phase": "Inconclusive", "measurements": ["Inconclusive"] * 5},
                },
            },
        ),
    ]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Served, Served]]:
    work = tmp_path_factory.mktemp("argo-contract")
    token_file = work / "token"
    token_file.write_text(TOKEN)
    with (
        live_prometheus(work / "prometheus") as prom,
        serve(prom.url, work / "serve") as live,
        serve(f"http://127.0.0.1:{free_port()}", work / "serve-down") as down,
        serve(prom.url, work / "serve-token", "--token-file", str(token_file)) as guarded,
    ):
        yield live, down, guarded


def test_argo_judges_canarypilot_answers_as_documented(
    servers: tuple[Served, Served, Served], tmp_path: Path
) -> None:
    go = go_binary()
    if go is None:
        pytest.skip("Go is not installed: the Argo contract test needs it (see docs/argo.md)")
    binary = contract_binary(go)
    all_cases = cases(*servers, tmp_path)
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps(all_cases, indent=2))
    result = subprocess.run(
        [str(binary), "-test.v", "-test.timeout", "10m", "-test.count", "1"],
        env={**os.environ, "CANARYPILOT_CONTRACT_CASES": str(cases_file)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp_path,
    )
    report = result.stdout[-12000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    for case in all_cases:
        assert f"--- PASS: TestArgoAnalysisAgainstCanarypilot/{case['name']} " in result.stdout, report
