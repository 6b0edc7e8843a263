"""The feature spec: the names and kinds of a churn model's input columns.

Training writes it beside every model and into the online snapshot; the transform, batch scoring,
monitoring and the transformer read it. :func:`churnops.training.features.feature_spec` builds the
spec of a set of windows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FeatureSpec:
    """Names and kinds of the model's input columns; transform and serving read it."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    windows_h: tuple[int, ...]

    @property
    def columns(self) -> list[str]:
        """Every feature column, numeric first, in model-input order."""
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (kinds and the windows that produced the names)."""
        return {"numeric": list(self.numeric), "categorical": list(self.categorical), "windows_h": list(self.windows_h)}

    def to_json(self) -> str:
        """The spec as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatureSpec":
        """Inverse of :meth:`to_dict`."""
        return cls(
            numeric=tuple(data["numeric"]),
            categorical=tuple(data["categorical"]),
            windows_h=tuple(int(w) for w in data["windows_h"]),
        )
