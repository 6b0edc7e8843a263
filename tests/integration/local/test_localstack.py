"""`churnops stack up|down|status` on real processes."""

from __future__ import annotations

import psutil

from churnops.local.localstack import LocalStack
from churnops.platform.settings import Settings
from churnops.platform.storage import list_objects, storage_client, write_object
from tests.conftest import free_port


def test_up_is_idempotent_and_down_stops_only_ours(tmp_path) -> None:
    settings = Settings(state_dir=tmp_path, gcs_port=free_port(), mlflow_port=free_port(), raw_bucket="raw-t")
    stack = LocalStack(settings)
    try:
        first = {s.name: s for s in stack.up()}
        assert all(s.healthy for s in first.values())
        pids = {name: s.pid for name, s in first.items()}
        assert None not in pids.values()

        again = {s.name: s for s in stack.up()}
        assert {name: s.pid for name, s in again.items()} == pids  # nothing restarted

        client = storage_client(settings)
        ref = write_object(client, "raw-t", "activity/x.csv", b"a,b\n1,2\n", "text/csv")
        assert [o.name for o in list_objects(client, "raw-t", "activity/")] == ["activity/x.csv"]
        assert ref.generation > 0
    finally:
        stopped = stack.down()
    assert sorted(stopped) == ["fake-gcs-server", "mlflow"]
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids.values()
    )
    assert all(not s.healthy and s.pid is None for s in stack.status())
    assert not stack.down()  # a second down is a no-op


def test_down_ignores_a_reused_pid(tmp_path) -> None:
    settings = Settings(state_dir=tmp_path, gcs_port=free_port(), mlflow_port=free_port())
    stack = LocalStack(settings, only=("fake-gcs-server",))
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    # A record naming this very test process, but with another start time: not ours to kill.
    me = psutil.Process()
    (run_dir / "fake-gcs-server.json").write_text(
        f'{{"pid": {me.pid}, "create_time": {me.create_time() - 100}, "argv": []}}', encoding="utf-8"
    )
    assert not stack.down()
    assert me.is_running()
