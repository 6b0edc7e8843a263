"""The recent ``production`` versions a new model is compared with, and the test rows they were not trained on.

A registered version was refit on every labelled cutoff of its commit (its ``labels_through`` tag says where its
last label window ends): the gate compares it with a new model only on test rows from that time on.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from churnops.errors import RegistryError
from churnops.model import registry
from churnops.model.scoring import load_model
from churnops.model.spec import FeatureSpec
from churnops.training import evaluate
from churnops.training.config import LABELS_THROUGH_TAG
from churnops.training.features import LABEL


def recent_production_scores(
    client: mlflow.MlflowClient, model_name: str, test: pd.DataFrame, spec: FeatureSpec, count: int
) -> dict[str, np.ndarray]:
    """Churn probabilities on these test rows of each of the last ``count`` versions that held ``production``
    (rolled-back versions left out, the current holder always in), oldest first: version -> probabilities."""
    versions = registry.production_history(client, model_name)[-count:]
    current = registry.alias_holder(client, model_name, "production")
    if current is not None and current not in versions:
        versions = [*versions[1:], current] if len(versions) >= count else [*versions, current]
    scores: dict[str, np.ndarray] = {}
    for version in versions:
        model = load_model(f"models:/{model_name}/{version}", client.tracking_uri).pipeline
        try:
            scores[version] = evaluate.churn_probability(model, test[spec.columns])
        except (KeyError, ValueError) as exc:
            raise RegistryError(
                f"production version {version} cannot score this test set (different feature spec?): {exc}"
            ) from exc
    return scores


def labels_through(splits: dict[str, pd.DataFrame], horizon_h: float) -> pd.Timestamp:
    """The end of the last label window in ``splits``: what a model refit on all of them has seen."""
    last = max(splits[name]["cutoff"].max() for name in ("train", "validation", "test"))
    return pd.Timestamp(last) + pd.Timedelta(hours=horizon_h)


def unseen_by_production(
    client: mlflow.MlflowClient, model_name: str, versions: list[str], test: pd.DataFrame
) -> tuple[np.ndarray, list[str]]:
    """The test rows none of ``versions`` was trained on (cutoff at or after each version's ``labels_through``
    tag), and the versions left out because they were trained on every test row (on both classes, at least).

    A version registered without the tag is compared on every test row.
    """
    cutoffs = pd.to_datetime(test["cutoff"], utc=True)
    keep = np.ones(len(test), dtype=bool)
    left_out: list[str] = []
    for version in versions:
        tag = client.get_model_version(model_name, version).tags.get(LABELS_THROUGH_TAG)
        if tag is None:
            continue
        unseen = (cutoffs >= pd.Timestamp(tag)).to_numpy()
        if test.loc[keep & unseen, LABEL].nunique() < 2:
            left_out.append(version)
        else:
            keep &= unseen
    return keep, left_out
