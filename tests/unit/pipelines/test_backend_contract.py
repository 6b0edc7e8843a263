"""Every compiled pipeline is what the installed KFP backend accepts, checked with that backend's own protos.

The SDK that compiles (kfp, kfp-kubernetes) and the backend the platform installs are one release: an
SDK ahead of the backend emits Kubernetes settings the backend's strict parsing refuses at "Create run".
``make pipelines`` runs this module.
"""

from __future__ import annotations

import copy
from importlib import metadata
from typing import Any

import pytest
import yaml

from pipelines.compile import compile_all
from pipelines.registry import PIPELINES
from tests.support import kfp_backend

INSTALLED = kfp_backend.installed_version()


@pytest.fixture(scope="module", name="compiled")
def compiled_fixture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """Every pipeline compiled once for the module: its YAML documents, by name."""
    paths = compile_all(tmp_path_factory.mktemp("pipelines"))
    return {p.stem: [d for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d is not None] for p in paths}


def test_the_sdk_and_kfp_kubernetes_are_the_release_of_the_installed_backend() -> None:
    assert metadata.version("kfp") == INSTALLED
    assert metadata.version("kfp-kubernetes") == INSTALLED
    assert metadata.version("kfp-pipeline-spec") == INSTALLED
    assert metadata.version("kfp-server-api") == INSTALLED


def test_the_installed_backend_protos_are_vendored() -> None:
    assert INSTALLED in kfp_backend.known_versions()


def test_every_pipeline_spec_and_task_config_parses_with_the_installed_backend_protos(
    compiled: dict[str, list[Any]],
) -> None:
    backend = kfp_backend.protos(INSTALLED)
    checked = {name: backend.check_documents(documents, name) for name, documents in compiled.items()}
    assert set(checked) == set(PIPELINES)
    # Every container task, the exit handlers' alert included, carries a Kubernetes config.
    assert checked == {
        "ingest": 9,
        "training": 11,
        "scoring": 5,
        "drift": 19,
        "purge": 3,
        "aggregates-backfill": 3,
    }  # gates included


def test_a_backend_older_than_the_sdk_refuses_the_task_configs(compiled: dict[str, list[Any]]) -> None:
    """2.14.3 (the release the platform installed before) has none of the optional-ConfigMap/Secret flags and
    no security context: the check fails on an SDK/backend skew, as the API server would at "Create run"."""
    older = kfp_backend.protos("2.14.3")
    for name, documents in compiled.items():
        with pytest.raises(kfp_backend.BackendRefused, match=rf"KFP 2\.14\.3 refuses {name}'s Kubernetes config"):
            older.check_documents(documents, name)


def test_an_unknown_field_in_one_task_config_is_refused_and_named(compiled: dict[str, list[Any]]) -> None:
    documents = copy.deepcopy(compiled["scoring"])
    executors = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    executor = sorted(executors)[0]
    executors[executor]["nodeSelector"]["weight"] = 1
    with pytest.raises(kfp_backend.BackendRefused, match=rf"Kubernetes config of {executor}.*weight"):
        kfp_backend.protos(INSTALLED).check_documents(documents, "scoring")


def test_an_unknown_field_in_the_pipeline_spec_is_refused(compiled: dict[str, list[Any]]) -> None:
    documents = copy.deepcopy(compiled["ingest"])
    documents[0]["pipelineInfo"]["owner"] = "someone"
    with pytest.raises(kfp_backend.BackendRefused, match="pipeline spec.*owner"):
        kfp_backend.protos(INSTALLED).check_documents(documents, "ingest")


def test_missing_protos_name_the_version_and_where_to_get_them() -> None:
    with pytest.raises(LookupError, match="kubeflow/pipelines at tag 9.9.9"):
        kfp_backend.protos("9.9.9")
