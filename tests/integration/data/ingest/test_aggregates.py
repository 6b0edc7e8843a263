"""Each ingest commit carries the hourly pre-aggregates of its events partitions, and training reads them."""

from __future__ import annotations

import io
from datetime import timedelta

import pandas as pd
import pyarrow.parquet as pq

from churnops.data.aggregates import AGGREGATES_PREFIX, aggregates_path, hourly_aggregates
from churnops.local import datagen
from churnops.training.features import HourlyActivity, build_training_set, choose_cutoffs
from churnops.training.train import load_activity, load_tables
from tests.integration.data.ingest.conftest import START, IngestEnv
from tests.support.raw_objects import lines_of, truncated, with_lines


def assert_aggregates_match_events(env: IngestEnv, ref: str = "main") -> int:
    """Every events partition at ``ref`` has aggregates equal to its rows' (and no other aggregates are there);
    returns how many partitions."""
    partitions = [p for p in env.repo.list_paths(ref, "events/") if p.endswith(".parquet")]
    assert sorted(env.repo.list_paths(ref, AGGREGATES_PREFIX)) == sorted(aggregates_path(p) for p in partitions)
    for path in partitions:
        expected = hourly_aggregates(pq.read_table(io.BytesIO(env.repo.get_object(ref, path))))
        assert pq.read_table(io.BytesIO(env.repo.get_object(ref, aggregates_path(path)))).equals(expected), path
    return len(partitions)


def test_aggregates_are_committed_with_their_events_and_follow_a_superseding_generation(
    ingest_env: IngestEnv,
) -> None:
    data = datagen.generate(hours=2, customers=60, start=START, seed=5)
    ingest_env.upload(data.objects)
    first = ingest_env.run(START + timedelta(hours=1), lookback=1)
    assert assert_aggregates_match_events(ingest_env) > 0
    # the commit that published the events is the one that holds their aggregates
    events = {o.partition for o in first.objects if o.partition and o.partition.startswith("events/")}
    assert events
    assert set(ingest_env.repo.list_paths(first.commit_id or "", AGGREGATES_PREFIX)) == {
        aggregates_path(p) for p in events
    }
    head = ingest_env.repo.head("main")
    assert not ingest_env.run(START + timedelta(hours=1), lookback=1).objects  # a re-run finds nothing new
    assert ingest_env.repo.head("main") == head

    target = next(o for o in data.objects if o.name.endswith(".jsonl.gz"))
    lines = lines_of(target)
    ingest_env.upload([with_lines(target, lines[: len(lines) // 2])])
    ingest_env.run(START + timedelta(hours=1), lookback=1)
    assert_aggregates_match_events(ingest_env)

    ingest_env.upload([truncated(target)])  # unreadable: its rows, and so their aggregates, leave main
    ingest_env.run(START + timedelta(hours=1), lookback=1)
    assert_aggregates_match_events(ingest_env)


def test_training_reads_the_aggregates_and_falls_back_to_the_events_of_a_commit_without_them(
    ingest_env: IngestEnv,
) -> None:
    data = datagen.generate(hours=6, customers=60, start=START, seed=6)
    ingest_env.upload(data.objects)
    ingest_env.run(START + timedelta(hours=5), lookback=5)
    repo = ingest_env.repo
    with_aggregates = repo.head("main")
    # a commit as an ingest before the aggregates left it: the events without them
    repo.create_branch("before-aggregates", source=with_aggregates)
    repo.delete_objects("before-aggregates", repo.list_paths(with_aggregates, AGGREGATES_PREFIX))
    without = repo.commit("before-aggregates", "the lake without aggregates", {}) or ""

    hourly, subscriptions = load_activity(repo, with_aggregates)
    raw, _ = load_activity(repo, without)
    assert isinstance(hourly, HourlyActivity)
    assert isinstance(raw, pd.DataFrame)
    pd.testing.assert_frame_equal(raw, load_tables(repo, without)[0])
    assert hourly.events == len(raw)

    cutoffs = choose_cutoffs(raw, subscriptions, horizon=1, step_h=1, min_history_h=2)
    assert choose_cutoffs(hourly, subscriptions, horizon=1, step_h=1, min_history_h=2) == cutoffs
    expected = build_training_set(raw, subscriptions, cutoffs, horizon=1, windows=(1, 3))
    assert expected["events_3h"].sum() > 0
    pd.testing.assert_frame_equal(
        build_training_set(hourly, subscriptions, cutoffs, horizon=1, windows=(1, 3)),
        expected,
        check_exact=False,
        rtol=1e-9,
    )

    # one partition without its aggregates (written by an older ingest) sends the whole commit to the raw events
    repo.create_branch("partly", source=with_aggregates)
    repo.delete_objects("partly", repo.list_paths(with_aggregates, AGGREGATES_PREFIX)[:1])
    partly = repo.commit("partly", "one partition without aggregates", {}) or ""
    assert isinstance(load_activity(repo, partly)[0], pd.DataFrame)
