"""Uploading generated objects to fake-gcs-server, in arrival order."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from google.cloud import storage

from churnops.local.datagen import generate, objects_by_arrival, upload
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket, list_objects, read_object

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
BUCKET = "datagen-upload-test"  # a bucket of its own: other tests write the same object names


def test_upload_honours_until_and_replays_late_files(gcs_stack: Settings, gcs_client: storage.Client) -> None:
    assert gcs_stack.gcs_endpoint
    ensure_bucket(gcs_client, BUCKET)
    data = generate(4, 40, start=START, seed=3, anomaly_rate=0.6)
    late = [obj for obj in data.objects if obj.arrival > obj.hour]
    assert late

    until = START + timedelta(hours=1)
    refs = upload(gcs_client, BUCKET, data.objects, until=until)
    expected = {obj.name for obj in data.objects if obj.arrival <= until}
    assert {ref.name for ref in refs} == expected
    listed = {ref.name: ref for ref in list_objects(gcs_client, BUCKET, "activity/")}
    assert set(listed) == expected
    by_name = {obj.name: obj for obj in data.objects}
    for ref in refs:
        assert read_object(gcs_client, ref) == by_name[ref.name].data  # empty and corrupt files too
        assert listed[ref.name].generation == ref.generation
    assert not any(obj.name in listed for obj in late if obj.arrival > until)

    for arrival, group in objects_by_arrival(data.objects).items():
        if arrival > until:
            upload(gcs_client, BUCKET, group)
    assert {ref.name for ref in list_objects(gcs_client, BUCKET, "activity/")} == set(by_name)


def test_upload_refuses_a_naive_until(gcs_client: storage.Client) -> None:
    data = generate(1, 5, start=START, seed=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        upload(gcs_client, BUCKET, data.objects, until=datetime(2026, 11, 1))
