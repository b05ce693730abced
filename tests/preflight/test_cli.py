"""`canarypilot preflight` end to end: the article's manifests, input handling, formats, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarypilot.cli import app
from canarypilot.preflight import RULES
from canarypilot.preflight.schema import bundled, field_tree
from tests.preflight.conftest import GOOD, by_kind, dump, good_docs
from tests.support.gomodules import ARGO_VERSIONS, argo_crds

#: The CRDs the bundled field trees are built from (Experiment is not one of them).
ARGO_KINDS = ("analysis-run", "analysis-template", "cluster-analysis-template", "rollout")

ROOT = Path(__file__).resolve().parents[2]
ARTICLE = ROOT / "tests" / "data" / "article-manifests.yaml"

runner = CliRunner()


def findings_of(args: list[str]) -> tuple[int, list[dict[str, object]]]:
    result = runner.invoke(app, ["preflight", "--format", "json", *args])
    return result.exit_code, json.loads(result.stdout)["findings"]


def test_the_articles_manifests_report_their_real_defects() -> None:
    code, findings = findings_of([str(ARTICLE), "--db-max-connections", "1200"])
    assert code == 1
    got = {(f["rule"], f["field"]) for f in findings}
    assert ("CP302", "spec.strategy.canary.steps[3].setWeight") in got  # ${analysis.result.weight}
    assert ("CP301", "spec.metrics[0].failureLimit") in got  # failureLimit 2, one measurement
    assert ("CP304", "spec.metrics[0].provider.web.timeout") in got  # pruned; timeoutSeconds
    assert ("CP304", "spec.strategy.canary.minPodsPerReplica") in got  # minPodsPerReplicaSet
    assert ("CP202", "spec") in got  # no minReadySeconds, the article's own fix
    assert ("CP101", "spec.template.spec.terminationGracePeriodSeconds") in got  # 30s vs nginx's 60s
    assert ("CP305", "spec.strategy.canary.steps[12].setWeight") in got  # 2 pods take 100%
    pool = next(f for f in findings if f["rule"] == "CP401")
    assert pool["severity"] == "error" and "= 1400 > 1200" in str(pool["message"])
    # What the article gets right is not reported: readiness successThreshold 2, memory 4Gi over 1Gi.
    assert not {"CP201", "CP402"} & {f["rule"] for f in findings}


def test_text_output_explains_each_rule_once(tmp_path: Path) -> None:
    docs = good_docs()
    by_kind(docs, "Rollout")["spec"]["strategy"]["canary"]["steps"][3]["setWeight"] = "x"
    by_kind(docs, "Rollout")["spec"]["strategy"]["canary"]["steps"][6]["setWeight"] = "y"
    (tmp_path / "app.yaml").write_text(dump(docs))
    result = runner.invoke(app, ["preflight", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stdout.count("CP302 error Rollout shop/checkout") == 2
    assert result.stdout.count("    fix: ") == 1
    assert result.stdout.rstrip().endswith("1 file(s) checked: 2 error(s), 0 warning(s), 0 note(s)")


def test_clean_manifests_exit_0_and_warnings_fail_only_with_strict(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    assert runner.invoke(app, ["preflight", str(tmp_path / "good.yaml")]).exit_code == 0
    docs = good_docs()
    del by_kind(docs, "Rollout")["spec"]["minReadySeconds"]  # a warning
    (tmp_path / "warn.yaml").write_text(dump(docs))
    assert runner.invoke(app, ["preflight", str(tmp_path / "warn.yaml")]).exit_code == 0
    assert runner.invoke(app, ["preflight", "--strict", str(tmp_path / "warn.yaml")]).exit_code == 1
    assert (
        runner.invoke(
            app, ["preflight", "--strict", "--skip", "CP202", str(tmp_path / "warn.yaml")]
        ).exit_code
        == 0
    )


def test_directories_are_searched_and_non_kubernetes_documents_skipped(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "app.yml").write_text(GOOD)
    (tmp_path / "values.yaml").write_text("replicas: 3\n---\n# empty\n")
    (tmp_path / "README.md").write_text("not yaml: [")
    result = runner.invoke(app, ["preflight", "--format", "json", str(tmp_path)])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["summary"] == {"files": 1, "errors": 0, "warnings": 0, "notes": 0}


def test_stdin_is_read_with_dash() -> None:
    docs = good_docs()
    by_kind(docs, "AnalysisTemplate")["spec"]["metrics"][0]["failureLimit"] = 5
    result = runner.invoke(app, ["preflight", "-"], input=dump(docs))
    assert result.exit_code == 1
    assert "<stdin>:" in result.stdout and "CP301" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("kind: Rollout\nspec: [\n", "bad.yaml:3: invalid YAML"),
        ("a: *undefined\n", "bad.yaml:1: invalid YAML"),
        (b"\xff\xfe".decode("latin-1"), None),
    ],
)
def test_invalid_yaml_is_a_usage_error_naming_file_and_line(
    tmp_path: Path, content: str, message: str | None
) -> None:
    path = tmp_path / "bad.yaml"
    if message is None:
        path.write_bytes(b"kind: \xff\xfe\n")
        message = "not UTF-8"
    else:
        path.write_text(content)
    result = runner.invoke(app, ["preflight", str(path)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/deploy"], "no such file or directory"),
        (["--skip", "CP000", "x.yaml"], "unknown rule(s) CP000"),
        (["--scrape-interval", "often", "x.yaml"], "--scrape-interval"),
        (["--window", "forever", "x.yaml"], "window"),
        (["--db-max-connections", "0", "x.yaml"], "Invalid value"),
    ],
)
def test_bad_flags_and_paths_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["preflight", *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["kind: ConfigMap", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["preflight", str(tmp_path / "bomb.yaml")])
    assert result.exit_code == 2
    assert "aliases" in result.stderr


def test_empty_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["preflight", str(tmp_path)])
    assert result.exit_code == 2 and "no .yaml" in result.stderr


def test_files_without_kubernetes_objects_are_a_usage_error_not_a_pass(tmp_path: Path) -> None:
    (tmp_path / "values.yaml").write_text("replicas: 3\n---\n# empty\n")
    result = runner.invoke(app, ["preflight", str(tmp_path / "values.yaml")])
    assert result.exit_code == 2
    assert "no Kubernetes objects" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_sarif_describes_every_rule_and_locates_results(tmp_path: Path) -> None:
    docs = good_docs()
    by_kind(docs, "AnalysisTemplate")["spec"]["metrics"][0]["provider"]["web"]["timeout"] = "15s"
    path = tmp_path / "app.yaml"
    path.write_text(dump(docs))
    result = runner.invoke(app, ["preflight", "--format", "sarif", str(path)])
    assert result.exit_code == 1
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(RULES)
    for r in rules:
        assert r["shortDescription"]["text"] and r["help"]["text"]
        assert r["defaultConfiguration"]["level"] in {"error", "warning", "note"}
    (res,) = run["results"]
    assert res["ruleId"] == "CP304" and rules[res["ruleIndex"]]["id"] == "CP304"
    location = res["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == path.as_uri()
    line = path.read_text().splitlines()[location["region"]["startLine"] - 1]
    assert line.strip().startswith("timeout:")


def test_bundled_field_names_match_the_argo_crds() -> None:
    crds = [argo_crds(v) / f"{kind}-crd.yaml" for v in ARGO_VERSIONS for kind in ARGO_KINDS]
    assert bundled() == field_tree(crds)


def test_help_lists_the_exit_codes() -> None:
    result = runner.invoke(app, ["preflight", "--help"])
    assert result.exit_code == 0
    assert "Exit codes: 0 clean, 1 errors found" in " ".join(result.stdout.split())


def test_a_list_whose_items_alias_one_large_subtree_is_refused_in_bounded_time(tmp_path: Path) -> None:
    # 300 items aliasing one 10,000-node subtree: counted per item, each stayed under the node
    # budget while the whole file expanded to 3 million nodes and ran out of memory.
    import resource
    import time

    lines = [
        "apiVersion: v1",
        "kind: List",
        "big: &big",
        *[f"  k{i}: [a, b, c, d, e, f, g, h]" for i in range(1000)],
    ]
    lines += ["items:", *["  - {apiVersion: v1, kind: ConfigMap, data: *big}" for _ in range(300)]]
    path = tmp_path / "list.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 64 * 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    result = runner.invoke(app, ["preflight", str(path)])
    assert result.exit_code == 2, result.output
    assert "aliases are expanded" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 10
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200, f"preflight grew by {grown_mib:.0f} MiB"


def test_a_large_file_without_aliases_stops_at_the_node_limit_not_after_reading_it_all(
    tmp_path: Path,
) -> None:
    # 2.4 million list items in 4.8 MB, under the 5 MiB cap: composed whole before being
    # counted, this took 82 s and 1.6 GB before its refusal.
    import os
    import subprocess
    import sys
    import time

    path = tmp_path / "flat.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\ndata: [" + ",".join(["1"] * 2_400_000) + "]\n")
    assert path.stat().st_size < 5 * 1024 * 1024
    started = time.monotonic()
    err = tmp_path / "stderr"
    with err.open("wb") as sink:
        child = subprocess.Popen(
            [str(Path(sys.executable).with_name("canarypilot")), "preflight", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = err.read_text()
    assert child.returncode == 2, stderr
    assert "more than 200000 YAML nodes" in stderr and len(stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 40
    assert usage.ru_maxrss / 1024 < 500, f"preflight used {usage.ru_maxrss / 1024:.0f} MiB"
