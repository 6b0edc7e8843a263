"""The infer route in front of FastAPI takes exactly the V2 infer paths; everything else goes to the app."""

from __future__ import annotations

import pytest

from serving.server import infer_path


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/v2/models/churn/infer", ("churn", None)),
        ("/v2/models/churn/versions/3/infer", ("churn", "3")),
        ("/v2/models//infer", None),
        ("/v2/models/churn/versions//infer", None),
        ("/v2/models/churn/infer/", None),  # left to FastAPI's router, like every other path
        ("/v2/models/churn/other/3/infer", None),
        ("/v2/models/infer", None),
        ("/v1/models/churn:predict", None),
        ("/v2/models/churn/ready", None),
    ],
)
def test_infer_paths(path: str, target: tuple[str, str | None] | None) -> None:
    assert infer_path(path) == target
