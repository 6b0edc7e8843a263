"""The lakeFS double itself: it holds traffic to the vendored lakeFS API spec."""

from __future__ import annotations

import requests

from tests.support.lakefs_double import LakeFSDouble


def test_the_double_rejects_traffic_outside_the_spec(lakefs_double: LakeFSDouble) -> None:
    auth = (lakefs_double.access_key_id, lakefs_double.secret_access_key)
    before = len(lakefs_double.validation_errors)
    try:
        answer = requests.post(f"{lakefs_double.url}/repositories", json={"name": "x"}, auth=auth, timeout=10)
        assert answer.status_code == 500
        assert len(lakefs_double.validation_errors) == before + 1
        assert "storage_namespace" in lakefs_double.validation_errors[-1]
    finally:
        del lakefs_double.validation_errors[before:]
