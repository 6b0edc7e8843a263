"""The vendored upstream specifications are present, parse, and are the ones the README names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

SPECS = Path(__file__).resolve().parent / "specs"
LISTED = re.findall(r"^\| `([^`]+)` \|", (SPECS / "README.md").read_text(encoding="utf-8"), flags=re.M)


def test_the_readme_lists_every_spec_the_tests_use() -> None:
    assert set(LISTED) == {
        "lakefs-api.yaml",
        "open-inference-rest.yaml",
        "open-inference-grpc.proto",
        "kserve-inferenceservice-crd.yaml",
        "gmp-podmonitoring-crd.yaml",
        "trivy/debian-buster.json",
        "trivy/pip.json",
        "trivy/secrets.json",
        "trivy/dockerfile.json",
        "kfp/2.17.0/pipeline_spec.proto",
        "kfp/2.17.0/kubernetes_executor_config.proto",
        "kfp/2.14.3/pipeline_spec.proto",
        "kfp/2.14.3/kubernetes_executor_config.proto",
        *(
            f"knative-serving-v1.18.2/{path}"
            for path in (
                "pkg/queue/request_metric.go",
                "pkg/queue/sharedmain/main.go",
                "pkg/metrics/key.go",
                "vendor/knative.dev/pkg/metrics/metricskey/constants.go",
                "vendor/knative.dev/pkg/metrics/utils.go",
                "LICENSE",
            )
        ),
    }


@pytest.mark.parametrize("name", LISTED)
def test_each_listed_spec_is_vendored_and_parses(name: str) -> None:
    path = SPECS / name
    assert path.is_file(), f"{path} is missing: copy it from its upstream source (tests/specs/README.md)"
    text = path.read_text(encoding="utf-8")
    if name.startswith("kfp/"):
        message = "PipelineSpec" if name.endswith("pipeline_spec.proto") else "KubernetesExecutorConfig"
        assert re.search(rf"^message {message}\s*\{{", text, flags=re.M)
        return
    if name.endswith(".go"):
        assert re.search(r"^package \w+$", text, flags=re.M) and "Licensed under the Apache License" in text
        return
    if name.endswith("LICENSE"):
        assert text.lstrip().startswith("Apache License")
        return
    if name.endswith(".proto"):
        assert re.search(r"^service GRPCInferenceService\s*\{", text, flags=re.M)
        return
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    if name.startswith("trivy/"):
        assert document["SchemaVersion"] == 2 and isinstance(document["Results"], list)
        return
    assert "openapi" in document or document.get("kind") == "CustomResourceDefinition"
