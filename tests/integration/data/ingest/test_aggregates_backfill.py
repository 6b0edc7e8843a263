"""The aggregates backfill on a lake whose partitions were published before the hourly pre-aggregates existed.

Every test runs on both lake backends (embedded git, lakeFS through the spec-validating double) and checks what
``main`` holds afterwards: the aggregates of every events partition, equal to the partition's own.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from churnops.cli import main as cli
from churnops.data import backfill
from churnops.data.aggregates import AGGREGATES_PREFIX, aggregates_path
from churnops.data.ingest_steps import HEAD_PATH
from churnops.data.privacy import Tokenizer
from churnops.data.subjects import forget
from churnops.local import datagen
from churnops.training.features import HourlyActivity
from churnops.training.train import load_activity, load_tables
from tests.integration.data.ingest.conftest import KEY, START, IngestEnv
from tests.integration.data.ingest.lake_checks import BeforeFirstMerge
from tests.integration.data.ingest.test_aggregates import assert_aggregates_match_events


@pytest.fixture(scope="module", name="three_hours")
def fixture_three_hours() -> datagen.GeneratedData:
    """Three hours of 60 customers."""
    return datagen.generate(hours=3, customers=60, start=START, seed=11)


def published_without_aggregates(env: IngestEnv, data: datagen.GeneratedData, hours: int) -> list[str]:
    """Ingest the first ``hours`` hours of ``data``, then take their aggregates off ``main`` (one merged commit, as
    a lake an ingest before the aggregates published); returns the events partitions."""
    env.upload([o for o in data.objects if o.hour < START + timedelta(hours=hours)])
    env.run(START + timedelta(hours=hours - 1), lookback=hours - 1)
    repo = env.repo
    repo.create_branch("older-ingest", source="main")
    repo.delete_objects("older-ingest", repo.list_paths("main", AGGREGATES_PREFIX))
    repo.commit("older-ingest", "events without aggregates", {})
    repo.merge("older-ingest", into="main")
    repo.delete_branch("older-ingest")
    assert not repo.list_paths("main", AGGREGATES_PREFIX)
    return backfill.events_partitions(repo, "main")


def run_cli(env: IngestEnv, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``churnops lake backfill-aggregates`` on this environment's lake; its JSON summary."""
    monkeypatch.setattr(cli, "get_settings", lambda: env.settings)
    monkeypatch.setattr(cli, "setup_logging", lambda _settings: None)
    monkeypatch.setattr(cli, "open_repository", lambda _settings: env.reopen())
    result = CliRunner().invoke(cli.main, ["lake", "backfill-aggregates"])
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.output)
    return summary


def test_the_backfill_writes_what_is_missing_training_reads_it_and_a_repeat_commits_nothing(
    ingest_env: IngestEnv, three_hours: datagen.GeneratedData, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = ingest_env.repo
    older = published_without_aggregates(ingest_env, three_hours, hours=2)
    before = repo.head("main")
    raw, _ = load_activity(repo, before)
    assert isinstance(raw, pd.DataFrame)  # without aggregates, training reads the raw events
    # a later hour, ingested with its aggregates: the backfill leaves them as they are
    ingest_env.upload([o for o in three_hours.objects if o.hour == START + timedelta(hours=2)])
    newer_report = ingest_env.run(START + timedelta(hours=2), lookback=0)
    newer = sorted(o.partition for o in newer_report.objects if o.partition and o.partition.startswith("events/"))
    assert newer
    kept = {path: repo.get_object("main", aggregates_path(path)) for path in newer}
    base = repo.head("main")

    summary = run_cli(ingest_env, monkeypatch)

    head = repo.head("main")
    assert summary["commit_id"] == head and summary["commits"] == [head] and summary["attempts"] == 1
    assert summary["backfilled_partitions"] == len(older) and summary["events_partitions"] == len(older) + len(newer)
    assert assert_aggregates_match_events(ingest_env) == len(older) + len(newer)
    assert {path: repo.get_object("main", aggregates_path(path)) for path in newer} == kept
    # the commit says what it backfilled, from which base, with which code; its manifest lists each partition
    info = repo.commit_info(head)
    assert info.parents[0] == base
    assert info.metadata["operation"] == "backfill-aggregates" and info.metadata["base_commit"] == base
    assert info.metadata["code_version"] and info.metadata["lock_sha256"]
    manifest = json.loads(repo.get_object("main", info.metadata["manifest"]))
    assert [item["partition"] for item in manifest["aggregates"]] == older
    assert sum(item["events"] for item in manifest["aggregates"]) == summary["backfilled_events"]
    assert json.loads(info.metadata["backfilled"])["events"] == summary["backfilled_events"]
    assert json.loads(repo.get_object("main", HEAD_PATH))["run_id"] == info.metadata["run_id"]
    assert repo.branches() == ["main"]

    hourly, _ = load_activity(repo, head)  # training now reads the aggregates
    assert isinstance(hourly, HourlyActivity)
    assert hourly.events == len(load_tables(repo, head)[0])
    assert summary["backfilled_events"] == len(raw)  # every published event of the older partitions

    again = backfill.backfill_aggregates(repo, ingest_env.settings)
    assert not again.commits and not again.backfilled and again.partitions == len(older) + len(newer)
    assert repo.head("main") == head and repo.branches() == ["main"]


def test_an_ingest_published_during_the_backfill_wins_and_the_backfill_retries_from_it(
    ingest_env: IngestEnv, three_hours: datagen.GeneratedData
) -> None:
    older = published_without_aggregates(ingest_env, three_hours, hours=2)
    ingest_env.upload([o for o in three_hours.objects if o.hour == START + timedelta(hours=2)])
    published: list[str] = []

    def ingest_meanwhile() -> None:
        report = ingest_env.run(START + timedelta(hours=2), lookback=0, repo=ingest_env.reopen())
        assert report.commit_id
        published.append(report.commit_id)

    racing = BeforeFirstMerge(ingest_env.reopen(), ingest_meanwhile)
    report = backfill.backfill_aggregates(racing, ingest_env.settings)  # type: ignore[arg-type]

    assert report.attempts == 2 and racing.merges == 2 and len(report.commits) == 1
    assert sorted(report.backfilled) == older  # the new partitions came with their aggregates
    repo = ingest_env.repo
    info = repo.commit_info(report.commits[0])
    assert info.metadata["base_commit"] == published[0] == info.parents[0]
    assert assert_aggregates_match_events(ingest_env) > len(older)
    assert repo.branches() == ["main"]


def test_the_backfill_counts_a_partition_as_it_is_after_an_erasure(
    ingest_env: IngestEnv, three_hours: datagen.GeneratedData
) -> None:
    published_without_aggregates(ingest_env, three_hours, hours=2)
    repo, tokenizer = ingest_env.repo, Tokenizer(KEY)
    tokens = set(repo.read_table("main", "events/", columns=["customer_token"]).column(0).to_pylist())
    subject = next(c for c in three_hours.customers["customer_id"] if tokenizer.token(c) in tokens)
    forget(repo, tokenizer, subject, ("main",))

    backfill.backfill_aggregates(repo, ingest_env.settings)

    assert assert_aggregates_match_events(ingest_env) > 0
    held = set(repo.read_table("main", AGGREGATES_PREFIX, columns=["customer_token"]).column(0).to_pylist())
    assert tokenizer.token(subject) not in held and held


def test_an_erasure_merged_between_the_compare_and_the_merge_has_the_aggregates_written_again(
    ingest_env: IngestEnv, three_hours: datagen.GeneratedData
) -> None:
    published_without_aggregates(ingest_env, three_hours, hours=2)
    repo, tokenizer = ingest_env.repo, Tokenizer(KEY)
    tokens = set(repo.read_table("main", "events/", columns=["customer_token"]).column(0).to_pylist())
    subject = next(c for c in three_hours.customers["customer_id"] if tokenizer.token(c) in tokens)

    racing = BeforeFirstMerge(
        ingest_env.reopen(), lambda: forget(ingest_env.reopen(), tokenizer, subject, ("main",)), compare=False
    )
    report = backfill.backfill_aggregates(racing, ingest_env.settings)  # type: ignore[arg-type]

    # the first publish merged aggregates that still counted the subject; the second wrote them again
    assert report.attempts == 2 and len(report.commits) == 2
    assert assert_aggregates_match_events(ingest_env) > 0
    held = set(repo.read_table("main", AGGREGATES_PREFIX, columns=["customer_token"]).column(0).to_pylist())
    assert tokenizer.token(subject) not in held and held


def test_the_check_finds_aggregates_that_do_not_count_their_partition_and_those_left_without_one(
    ingest_env: IngestEnv, three_hours: datagen.GeneratedData
) -> None:
    repo = ingest_env.repo
    partitions = published_without_aggregates(ingest_env, three_hours, hours=2)
    backfill.backfill_aggregates(repo, ingest_env.settings)
    assert not backfill.mismatched(repo, "main", partitions)
    first, second, third = partitions[:3]
    repo.create_branch("broken", source="main")
    # another partition's aggregates in place of the first's; the second's partition gone, its aggregates left;
    # the third's aggregates gone
    repo.put_objects("broken", {aggregates_path(first): repo.get_object("main", aggregates_path(second))})
    repo.delete_objects("broken", [second, aggregates_path(third)])
    repo.commit("broken", "aggregates that do not match", {})
    assert backfill.mismatched(repo, "broken", partitions) == [first, second, third]
    assert backfill.missing_aggregates(repo, "broken") == [third]
