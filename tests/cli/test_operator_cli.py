"""`canarypilot operator`: help, the CRD it prints, and one-line errors with exit code 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from canarypilot.cli import app
from canarypilot.operator.crd import crd_yaml

runner = CliRunner()


def test_help_names_both_commands_and_the_exit_codes() -> None:
    answer = runner.invoke(app, ["operator", "--help"])
    assert answer.exit_code == 0
    assert "run" in answer.output and "crd" in answer.output
    run_help = runner.invoke(app, ["operator", "run", "--help"])
    assert run_help.exit_code == 0 and "Exit codes" in run_help.output


def test_crd_prints_the_generated_definition() -> None:
    answer = runner.invoke(app, ["operator", "crd"])
    assert answer.exit_code == 0
    assert answer.output == crd_yaml()


def test_a_renewal_not_shorter_than_the_lease_is_refused() -> None:
    answer = runner.invoke(app, ["operator", "run", "--lease-seconds", "5", "--renew-seconds", "5"])
    assert answer.exit_code == 2
    assert "--renew-seconds must be shorter" in answer.output
    assert "Traceback" not in answer.output


def test_a_missing_kubeconfig_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    answer = runner.invoke(app, ["operator", "run", "--kubeconfig", str(missing)])
    assert answer.exit_code == 2
    assert f"cannot read kubeconfig {missing}" in answer.output
    assert len(answer.output.strip().splitlines()) == 1


def test_manifests_print_valid_objects_with_only_the_named_secrets() -> None:
    import kubernetes_validate
    import yaml

    answer = runner.invoke(
        app, ["operator", "manifests", "--namespace", "platform", "--secret", "prom-token", "--replicas", "3"]
    )
    assert answer.exit_code == 0, answer.output
    docs = list(yaml.safe_load_all(answer.output))
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    secrets = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert secrets == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["prom-token"]}
    ]
    assert not any("delete" in r["verbs"] or "*" in r["verbs"] for r in role["rules"])
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "operator", "run", "--lease-namespace", "platform",
    ]  # fmt: skip
    without = yaml.safe_load_all(runner.invoke(app, ["operator", "manifests"]).output)
    role = next(d for d in without if d["kind"] == "ClusterRole")
    assert not any("secrets" in r["resources"] for r in role["rules"])  # no names: no Secret at all


def test_manifests_refuse_names_kubernetes_would_refuse() -> None:
    for args, what in (
        (["--namespace", "Bad_NS"], "invalid namespace 'Bad_NS'"),
        (["--watch-namespace", "a/b"], "invalid watch namespace"),
        (["--secret", "x y"], "invalid secret name 'x y'"),
        (["--image", "has space:1"], "invalid image"),
    ):
        answer = runner.invoke(app, ["operator", "manifests", *args])
        assert answer.exit_code == 2, (args, answer.output)
        assert what in answer.output and "Traceback" not in answer.output


def test_a_command_for_a_release_needs_a_valid_reference(tmp_path: Path) -> None:
    for reference, what in (
        ("web", "--release must be NAMESPACE/NAME, not 'web'"),
        ("prod/Web", "invalid CanaryRelease name 'Web'"),
        ("a b/web", "invalid namespace 'a b'"),
    ):
        answer = runner.invoke(app, ["rollout", "pause", "--release", reference])
        assert answer.exit_code == 2, answer.output
        assert what in answer.output and "Traceback" not in answer.output
    missing = tmp_path / "nope.yaml"
    answer = runner.invoke(app, ["rollout", "abort", "--release", "prod/web", "--kubeconfig", str(missing)])
    assert answer.exit_code == 2 and f"cannot read kubeconfig {missing}" in answer.output
