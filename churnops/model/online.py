"""The online feature snapshot: its storage on the lake and its readers.

The snapshot holds the features of every customer at the latest cutoff; the transformer looks
customers up in it instead of recomputing features per request, and monitoring compares it with a
model's training data. :mod:`churnops.training.online` builds it with the training feature code;
this module stores and reads it, without the training stack, so the transformer imports nothing
of training.

Layout on the lake's ``features`` branch (which never merges into ``main``):

- ``features/online/snapshot.parquet``: one row per customer active at the cutoff,
  ``customer_token`` + the feature spec's columns;
- ``features/online/inactive.parquet``: customers known to the lake but not active at the cutoff
  (``customer_token``, ``status``), so a lookup can say "cancelled" rather than "unknown";
- ``features/online/manifest.json``: the data commit and cutoff the snapshot was built at, the
  feature spec, and the row counts.

Each publish is one commit on ``features`` (through a run branch and a merge), so readers see
either the old or the new snapshot, never a mix; the commit id identifies the snapshot.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.data.subjects import KEY_ID_METADATA, lake_key_id
from churnops.data.versioning import DataRepository, NotFoundError
from churnops.data.versioning.base import FEATURES_BRANCH
from churnops.model.spec import FeatureSpec

ONLINE_PREFIX = "features/online"
SNAPSHOT_PATH = f"{ONLINE_PREFIX}/snapshot.parquet"
INACTIVE_PATH = f"{ONLINE_PREFIX}/inactive.parquet"
MANIFEST_PATH = f"{ONLINE_PREFIX}/manifest.json"


@dataclass(frozen=True)
class OnlineSnapshot:
    """One published snapshot: feature rows by customer token, and where they come from."""

    features: pd.DataFrame  # indexed by customer_token, columns = spec.columns
    inactive: pd.Series  # status by customer_token, for customers not active at the cutoff
    data_commit: str
    cutoff: pd.Timestamp
    spec: FeatureSpec
    commit_id: str  # the features-branch commit that holds this snapshot

    def manifest(self) -> dict[str, Any]:
        """The JSON-ready description stored beside the tables."""
        return {
            "data_commit": self.data_commit,
            "cutoff": self.cutoff.isoformat(),
            "spec": self.spec.to_dict(),
            "rows": len(self.features),
            "inactive_rows": len(self.inactive),
        }


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=True), buffer)
    return buffer.getvalue()


def publish_snapshot(repo: DataRepository, snapshot: OnlineSnapshot) -> str:
    """Commit ``snapshot`` to the ``features`` branch in one merge; return the commit id holding it."""
    if not repo.branch_exists(FEATURES_BRANCH):
        repo.create_branch(FEATURES_BRANCH, source=snapshot.data_commit)
    run_branch = f"online-{uuid.uuid4().hex[:12]}"
    repo.create_branch(run_branch, source=FEATURES_BRANCH)
    metadata = {"source_commit": snapshot.data_commit, "cutoff": snapshot.cutoff.isoformat(), "kind": "online"}
    key_id = lake_key_id(repo, snapshot.data_commit)
    if key_id is not None:  # the key chain the snapshot's tokens were made with (the transformer's key)
        metadata[KEY_ID_METADATA] = key_id
    try:
        repo.put_objects(
            run_branch,
            {
                SNAPSHOT_PATH: _parquet(snapshot.features),
                INACTIVE_PATH: _parquet(snapshot.inactive.to_frame()),
                MANIFEST_PATH: json.dumps(snapshot.manifest(), indent=2, sort_keys=True).encode(),
            },
        )
        repo.commit(
            run_branch, f"online features at {snapshot.cutoff.isoformat()} of {snapshot.data_commit[:12]}", metadata
        )
        return repo.merge(run_branch, into=FEATURES_BRANCH, message="online feature snapshot", metadata=metadata)
    finally:
        repo.delete_branch(run_branch)


def snapshot_commit(repo: DataRepository) -> str | None:
    """The commit id the ``features`` branch points at, or None when no features were ever published."""
    return repo.head(FEATURES_BRANCH) if repo.branch_exists(FEATURES_BRANCH) else None


def load_snapshot(repo: DataRepository, ref: str | None = None) -> OnlineSnapshot:
    """The snapshot at ``ref`` (default: the head of ``features``); :class:`NotFoundError` if none was published."""
    commit = ref or snapshot_commit(repo)
    if commit is None:
        raise NotFoundError("no online feature snapshot: run `churnops features online` after an ingest")
    commit = repo.resolve(commit)
    manifest = json.loads(repo.get_object(commit, MANIFEST_PATH))
    features = pq.read_table(io.BytesIO(repo.get_object(commit, SNAPSHOT_PATH))).to_pandas()
    inactive = pq.read_table(io.BytesIO(repo.get_object(commit, INACTIVE_PATH))).to_pandas()["status"]
    return OnlineSnapshot(
        features=features,
        inactive=inactive,
        data_commit=manifest["data_commit"],
        cutoff=pd.Timestamp(manifest["cutoff"]),
        spec=FeatureSpec.from_dict(manifest["spec"]),
        commit_id=commit,
    )
