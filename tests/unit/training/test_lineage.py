"""Lineage without a tracking server: code version, run identity, recorded parameters, actors, URIs."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from churnops.data.versioning.base import NotFoundError
from churnops.data.versioning.uri import locate, parse_uri
from churnops.model.registry import AliasEvent, resolve_actor
from churnops.platform import buildinfo
from churnops.platform.settings import Settings
from churnops.training.features import feature_spec
from churnops.training.reproduce import recorded_config
from churnops.training.train import TrainingConfig, lineage_tags


def checkout(path: Path) -> pygit2.Repository:
    """A git checkout with one committed file."""
    repo = pygit2.init_repository(str(path))
    (path / "code.py").write_text("x = 1\n")
    repo.index.add("code.py")
    repo.index.write()
    signature = pygit2.Signature("t", "t@example.invalid")
    repo.create_commit("HEAD", signature, signature, "one", repo.index.write_tree(), [])
    return repo


def test_a_checkout_version_is_its_head_plus_a_hash_of_uncommitted_changes(tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    settings = Settings(state_dir=tmp_path)
    buildinfo.refresh()
    clean = buildinfo.code_version(settings, tmp_path)
    assert (clean.sha, clean.dirty, str(clean)) == (str(repo.head.target), False, str(repo.head.target))
    (tmp_path / "code.py").write_text("x = 2\n")
    buildinfo.refresh()
    dirty = buildinfo.code_version(settings, tmp_path)
    assert dirty.dirty and str(dirty).startswith(f"{clean.sha}-dirty.") and len(str(dirty)) == 40 + 7 + 12
    (tmp_path / "code.py").write_text("x = 3\n")
    buildinfo.refresh()
    assert str(buildinfo.code_version(settings, tmp_path)) != str(dirty), "other edits, other version"
    (tmp_path / "untracked.py").write_text("y = 1\n")
    (tmp_path / "code.py").write_text("x = 2\n")
    buildinfo.refresh()
    assert buildinfo.code_version(settings, tmp_path) == dirty, "untracked files are not part of the version"
    buildinfo.refresh()


def test_an_image_reports_the_revision_baked_in_at_build_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_GIT_SHA", "a" * 40)
    monkeypatch.setenv("CHURNOPS_GIT_DIRTY", "true")
    version = buildinfo.code_version(Settings(), tmp_path)
    assert (version.sha, version.dirty, version.source, str(version)) == ("a" * 40, True, "image", "a" * 40 + "-dirty")
    assert buildinfo.code_version(Settings(), tmp_path / "no-checkout-here").source == "image"
    monkeypatch.delenv("CHURNOPS_GIT_SHA")
    assert buildinfo.code_version(Settings(), Path("/")).sha == "unknown"


def test_lineage_tags_identify_a_training_by_data_code_parameters_and_seed(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, code_version="b" * 40, image_digest="sha256:" + "c" * 64)
    config, spec = TrainingConfig(), feature_spec()
    tags = lineage_tags(settings, "commit1", 42, config, spec, tokenizer_key_id="key_0123")
    assert tags["git_sha"] == "b" * 40 and tags["git_dirty"] == "false" and tags["image_digest"].startswith("sha256:")
    assert tags["tokenizer_key_id"] == "key_0123" and len(tags["params_sha256"]) == 64
    assert len(tags["feature_spec_sha256"]) == 64
    same = lineage_tags(settings, "commit1", 42, config, spec, tokenizer_key_id="key_0123")
    assert same["training_key"] == tags["training_key"]
    for other in (
        lineage_tags(settings, "commit2", 42, config, spec),
        lineage_tags(settings, "commit1", 43, config, spec),
        lineage_tags(settings, "commit1", 42, TrainingConfig(horizon_h=8), spec),
        lineage_tags(settings.model_copy(update={"code_version": "d" * 40}), "commit1", 42, config, spec),
    ):
        assert other["training_key"] != tags["training_key"]
    assert "image_digest" not in lineage_tags(Settings(state_dir=tmp_path), "commit1", 42, config, spec)


def test_the_recorded_parameters_give_back_the_configuration() -> None:
    config = TrainingConfig(windows_h=(2, 8), horizon_h=6, xgb_params={"n_estimators": 3, "max_depth": 2})
    assert recorded_config({**config.as_params(), "seed": "1", "estimator": "XGBClassifier"}) == config


def test_the_actor_is_explicit_then_ci_then_service_account_then_os_user() -> None:
    settings = Settings(ci_build_id="b-17", service_account="trainer@p.iam")
    assert (resolve_actor(settings, "alice").name, resolve_actor(settings, "alice").source) == ("alice", "explicit")
    assert resolve_actor(settings.model_copy(update={"actor": "release-bot"})).name == "release-bot"
    assert resolve_actor(settings).name == "ci:b-17"
    assert resolve_actor(settings.model_copy(update={"ci_build_id": None})).name == "sa:trainer@p.iam"
    assert resolve_actor(Settings()).source == "os-user"
    old = '{"alias": "production", "action": "promote", "version": "2", "from_version": null, "at": "t", "by": "root"}'
    assert AliasEvent.from_json(old).by_source == "", "events recorded before actors had a source still load"


def test_lake_uris_name_a_repository_a_ref_and_a_path() -> None:
    table = parse_uri("s3://churn-lake/0123abc/events/")
    assert (table.repository, table.ref, table.path, table.is_prefix) == ("churn-lake", "0123abc", "events/", True)
    obj = parse_uri("lakefs://churn-lake/main/features/c/r/schema.json")
    assert (obj.ref, obj.path, obj.is_prefix) == ("main", "features/c/r/schema.json", False)
    for bad in ("gs://b/o", "s3://churn-lake/abc", "s3://churn-lake//events/", "s3://churn-lake/abc/../x"):
        with pytest.raises(ValueError):
            parse_uri(bad)
    with pytest.raises(NotFoundError, match="this lake is 'churn-lake'"):
        locate("s3://other/abc/events/", "churn-lake")
