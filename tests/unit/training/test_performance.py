"""Judging a model on matured labels: the period it is judged on, and what it says when nothing has matured."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from churnops.data.versioning import open_repository
from churnops.errors import RegistryError
from churnops.local import datagen, rawformat
from churnops.platform.settings import Settings
from churnops.training.config import LABELS_THROUGH_TAG
from churnops.training.features import data_span
from churnops.training.performance import NotYetMatured, matured_cutoffs, unseen_since

START = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(name="tables", scope="module")
def tables_fixture() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Published-format events and subscriptions of 30 generated hours of 60 customers."""
    return rawformat.published_frames(datagen.generate(30, 60, start=START, seed=3).objects)


def test_nothing_matured_since_the_end_of_the_data_is_said_plainly(tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    events, subscriptions = tables
    _, end = data_span(events, subscriptions)
    since = end.ceil("h") - pd.Timedelta(hours=5)  # a 6-hour window from there ends after the data
    with pytest.raises(NotYetMatured, match=r"no label has matured since .* the data ends at .* needs 6 h after"):
        matured_cutoffs(events, subscriptions, since, 6)
    assert matured_cutoffs(events, subscriptions, since - pd.Timedelta(hours=1), 6) == [since - pd.Timedelta(hours=1)]


def test_the_unseen_period_starts_at_labels_through_else_at_the_end_of_the_version_s_data(
    tables: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    repo = open_repository(Settings(state_dir=tmp_path))
    repo.ensure()
    files = {}
    for name, frame in zip(("events", "subscriptions"), tables):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        files[f"{name}/part-0.parquet"] = buffer.getvalue()
    repo.put_objects("main", files)
    commit = repo.commit("main", "generated", {})
    assert commit is not None

    assert unseen_since({LABELS_THROUGH_TAG: "2026-11-02T01:00:00+00:00"}, repo) == pd.Timestamp("2026-11-02T01:00Z")
    assert unseen_since({"data_commit": commit}, repo) == data_span(*tables)[1].ceil("h")
    with pytest.raises(RegistryError, match="neither a 'labels_through' nor a 'data_commit' tag"):
        unseen_since({}, repo)
