"""Deploy and canary tests: the real kubernetes client against the Kubernetes API double, a V2
model-server double behind the InferenceService's URL, and the Prometheus double."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from churnops.cli import canary as cli_canary
from churnops.cli import deploy as cli_deploy
from churnops.cli import main as cli
from churnops.platform.settings import Settings
from churnops.training.features import feature_spec
from tests.support.kube_double import KubeApiDouble
from tests.support.v2_double import TransformerDouble, V2Double

MANIFESTS = Path(__file__).resolve().parents[3] / "manifests"
DIGEST = "sha256:" + "ab" * 32
CONTEXT = "double"


@pytest.fixture(name="predictor")
def fixture_predictor() -> Iterator[V2Double]:
    """A V2 model server serving the current feature spec, model version 1."""
    with V2Double(feature_spec(Settings().feature_windows_hours)) as double:
        yield double


@pytest.fixture(name="transformer")
def fixture_transformer() -> Iterator[TransformerDouble]:
    """The by-customer transformer's REST surface."""
    with TransformerDouble() as double:
        yield double


@pytest.fixture(name="kube")
def fixture_kube(predictor: V2Double, transformer: TransformerDouble) -> Iterator[KubeApiDouble]:
    """The Kubernetes API double; its revisions, reached through its service proxy, are the two doubles."""
    with KubeApiDouble(
        ready_after_polls=2, predictor_url=predictor.url, transformer_url=transformer.url, token="test-token"
    ) as double:
        yield double


@pytest.fixture(name="deploy_settings")
def fixture_deploy_settings(kube: KubeApiDouble, tmp_path: Path) -> Settings:
    """Settings whose kubeconfig context is the double; no waiting between readiness polls."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": CONTEXT,
                "clusters": [{"name": CONTEXT, "cluster": {"server": kube.url}}],
                "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}],
                "users": [{"name": CONTEXT, "user": {"token": "test-token"}}],
            }
        ),
        encoding="utf-8",
    )
    return Settings(
        state_dir=tmp_path / "state",
        gcp_project="acme-churn",
        manifests_dir=MANIFESTS,
        kubeconfig=kubeconfig,
        kube_context=CONTEXT,
        deploy_poll_interval_s=0.0,
        deploy_ready_timeout_s=5.0,
        canary_interval_s=0.0,
    )


def run_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, args: list[str], exit_code: int = 0) -> str:
    """``churnops ARGS`` with ``settings``; its output (asserting the exit status)."""
    for module in (cli_deploy, cli_canary):
        monkeypatch.setattr(module, "get_settings", lambda: settings)
    monkeypatch.setattr(cli, "setup_logging", lambda _settings: None)
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    return result.output
