"""A run staged in groups (the ingest pipeline's fan-out) stages what one sequential run stages.

The groups are staged at the same time, each by its own lake handle (as the pipeline's tasks are
separate processes); duplicate ids across groups and a re-sent object (a new generation) are in the
hour. Every test runs on both lake backends.
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import pytest

from churnops.data.ingest import IngestRun, publish_branch
from churnops.data.ingest_steps import (
    STAGING_PREFIX,
    IngestGroup,
    IngestPlan,
    StagedIngest,
    finish_run,
    plan_run,
    stage_group,
)
from churnops.data.privacy import Tokenizer
from churnops.data.versioning import DataRepository
from churnops.local import datagen
from churnops.platform.alerts import AlertSink
from churnops.platform.storage import storage_client
from tests.integration.data.ingest.conftest import KEY, NOW, START, IngestEnv
from tests.integration.data.ingest.lake_checks import assert_lake_matches_accounting

LATER = START + timedelta(hours=1)
EVENTS = f"activity/events/dt={LATER:%Y-%m-%d}/hr={LATER:%H}/"


@pytest.fixture(scope="module", name="hour_data")
def fixture_hour_data() -> datagen.GeneratedData:
    """Two clean hours of 40 customers."""
    return datagen.generate(hours=2, customers=40, start=START, seed=31)


def lines_of(raw: datagen.RawObject) -> list[dict[str, Any]]:
    """The JSON records of an events object."""
    return [json.loads(line) for line in gzip.decompress(raw.data).decode().splitlines()]


def events_object(name: str, records: list[dict[str, Any]], like: datagen.RawObject) -> datagen.RawObject:
    """An events object ``name`` holding ``records``, arriving like ``like``."""
    data = gzip.compress(("\n".join(json.dumps(r) for r in records) + "\n").encode())
    return datagen.RawObject(name, data, like.content_type, like.hour, like.arrival)


def producer(data: datagen.GeneratedData, part: str, hour_offset: int) -> datagen.RawObject:
    """The object of one producer (``web-``, ``app-``) in one hour."""
    hour = START + timedelta(hours=hour_offset)
    return next(o for o in data.objects if o.hour == hour and f"/{part}" in o.name)


def run_of(env: IngestEnv, repo: DataRepository | None = None) -> IngestRun:
    """An ingest run with a lake handle and a storage client of its own (as a pipeline task has)."""
    return IngestRun(
        env.settings,
        repo or env.reopen(),
        storage_client(env.settings),
        Tokenizer(KEY),
        AlertSink(env.settings),
        now=lambda: NOW,
    )


def staged_tree(repo: DataRepository, staged: StagedIngest) -> dict[str, bytes]:
    """Every file on the staged run branch, with the run's id (in paths, manifest, alerts) made ``RUN``."""
    assert staged.branch is not None
    run_id = staged.report.run_id
    return {
        path.replace(run_id, "RUN"): repo.get_object(staged.branch, path).replace(run_id.encode(), b"RUN")
        for path in repo.list_paths(staged.branch)
    }


def test_groups_staged_at_once_stage_what_one_sequential_run_stages(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData
) -> None:
    ingest_env.upload([o for o in hour_data.objects if o.hour == START])
    ingest_env.run(START, lookback=0)
    web, app = producer(hour_data, "web-", 1), producer(hour_data, "app-", 1)
    web_records, app_records = lines_of(web), lines_of(app)
    third = len(web_records) // 3
    # Listed between app-000 and web-000: repeats a third of web-000's events (which it is listed before) and
    # five of app-000's (listed before it), among events of its own.
    copy = events_object(
        f"{EVENTS}web-000.copy.jsonl.gz",
        [*web_records[:third], *app_records[:5], *({**r, "event_id": r["event_id"] + "-own"} for r in app_records)],
        web,
    )
    # A new generation of an object of the first hour, with fewer events: it supersedes the published one.
    earlier_web = producer(hour_data, "web-", 0)
    resent = events_object(earlier_web.name, lines_of(earlier_web)[:10], earlier_web)
    ingest_env.upload([o for o in hour_data.objects if o.hour == LATER] + [copy, resent])

    sequential = run_of(ingest_env).stage_run(LATER, 1)
    plan = plan_run(run_of(ingest_env), LATER, 1, fanout=3)
    plan = IngestPlan.from_json(plan.to_json())  # as the pipeline passes it on
    group_of = {source.ref.name: group.number for group in plan.groups for _, source in group.sources}
    assert len(plan.groups) == 3 and len(group_of) == 5
    assert len({group_of[copy.name], group_of[web.name], group_of[app.name]}) == 3  # the duplicates cross groups
    assert [source.ref.name for source in plan.sources()] == [obj.name for obj in sequential.report.objects]

    errors: list[BaseException] = []

    def stage(text: str) -> None:
        try:
            stage_group(run_of(ingest_env), IngestGroup.from_json(text))
        except BaseException as error:  # pylint: disable=broad-exception-caught  # reported below
            errors.append(error)

    threads = [threading.Thread(target=stage, args=(group.to_json(),)) for group in reversed(plan.groups)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    fanned = finish_run(run_of(ingest_env), plan)

    repo = ingest_env.repo
    assert fanned.branch is not None and sequential.branch is not None
    by_name = {obj.name: obj for obj in fanned.report.objects}
    assert by_name[copy.name].duplicates_dropped == 5 and by_name[web.name].duplicates_dropped == third
    assert by_name[resent.name].rows_published == 10 and fanned.superseded == sequential.superseded
    assert fanned.report.accounting() == sequential.report.accounting()
    fanned_report, sequential_report = asdict(fanned.report), asdict(sequential.report)
    assert json.dumps(fanned_report).replace(fanned.report.run_id, "RUN") == json.dumps(sequential_report).replace(
        sequential.report.run_id, "RUN"
    )
    assert not repo.list_paths(fanned.branch, f"{STAGING_PREFIX}/")
    assert staged_tree(repo, fanned) == staged_tree(repo, sequential)  # every file, byte for byte

    # A finish retried after it finished (its answer lost) returns the same run.
    again = finish_run(run_of(ingest_env), plan)
    assert asdict(again.report) == fanned_report and again.metadata == fanned.metadata
    repo.delete_branch(sequential.branch)
    publish_branch(repo, fanned.branch, fanned.metadata)
    assert assert_lake_matches_accounting(repo) > 0


def test_a_group_that_was_not_staged_stops_the_finish(ingest_env: IngestEnv, hour_data: datagen.GeneratedData) -> None:
    ingest_env.upload([o for o in hour_data.objects if o.hour == START])
    plan = plan_run(run_of(ingest_env), START, 0, fanout=2)
    stage_group(run_of(ingest_env), plan.groups[1])
    with pytest.raises(Exception, match="group 0 of ingest run .* was not staged"):
        finish_run(run_of(ingest_env), plan)
    assert ingest_env.repo.head("main") == plan.base


def test_subscription_records_repeated_across_groups_leave_the_later_partition(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData
) -> None:
    billing = next(o for o in hour_data.objects if o.hour == START and "/billing-" in o.name)
    rows = billing.data.decode().splitlines()
    # A second billing export of the hour that repeats the first one's records and adds one of its own.
    own = rows[1].split(",")
    own[0] = own[0] + "-own"
    copy = datagen.RawObject(
        billing.name.replace("billing-000.csv", "billing-001.csv"),
        ("\n".join([*rows, ",".join(own)]) + "\n").encode(),
        billing.content_type,
        billing.hour,
        billing.arrival,
    )
    ingest_env.upload([o for o in hour_data.objects if o.hour == START] + [copy])

    sequential = run_of(ingest_env).stage_run(START, 0)
    plan = plan_run(run_of(ingest_env), START, 0, fanout=4)
    group_of = {source.ref.name: group.number for group in plan.groups for _, source in group.sources}
    assert group_of[billing.name] != group_of[copy.name]
    for group in plan.groups:
        stage_group(run_of(ingest_env), group)
    fanned = finish_run(run_of(ingest_env), plan)

    by_name = {obj.name: obj for obj in fanned.report.objects}
    assert by_name[copy.name].duplicates_dropped == len(rows) - 1 and by_name[copy.name].rows_published == 1
    assert fanned.report.accounting() == sequential.report.accounting()
    assert staged_tree(ingest_env.repo, fanned) == staged_tree(ingest_env.repo, sequential)
