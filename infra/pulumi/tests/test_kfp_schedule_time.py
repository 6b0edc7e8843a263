"""A recurring run's scheduled time reaches the ingest task: each pipeline's account may read its run's Workflow.

The KFP 2.17 driver (``backend/src/v2/cmd/driver/main.go`` at the tag) fills in
``{{$.pipeline_job_schedule_time_utc}}`` from the ``scheduledworkflows.kubeflow.org/workflowEpoch`` label of
the run's Argo Workflow, which it ``get``s as the run's service account; without that right it
silently falls back to the run's creation time (every catch-up run after an outage would ingest the
same hour).
"""

from __future__ import annotations

from churnops_infra import names, versions
from conftest import StackRun

from churnops.platform import declaration as platform


def _grants(rules: list[dict], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        and not rule.get("resourceNames")
        for rule in rules
    )


def test_every_pipeline_account_may_get_the_workflow_of_its_run(stack: StackRun) -> None:
    roles = {obj["metadata"]["name"]: obj for obj in versions.kfp_objects("platform-agnostic") if obj["kind"] == "Role"}
    bound = {}
    for binding in stack.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"):
        inputs = binding.inputs
        if inputs["metadata"]["namespace"] != names.NS_KUBEFLOW or inputs["roleRef"]["kind"] != "Role":
            continue
        for subject in inputs["subjects"]:
            bound.setdefault(subject["name"], set()).add(inputs["roleRef"]["name"])
    for pipeline, ksa in platform.pipeline_service_accounts().items():
        rules = [rule for role in bound.get(ksa, set()) if role in roles for rule in roles[role]["rules"]]
        assert _grants(rules, "argoproj.io", "workflows", "get"), (pipeline, ksa, sorted(bound.get(ksa, set())))


def test_the_check_fails_for_an_account_bound_to_nothing_that_reads_workflows() -> None:
    assert not _grants(
        [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}], "argoproj.io", "workflows", "get"
    )
    assert not _grants(
        [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get"], "resourceNames": ["another"]}],
        "argoproj.io",
        "workflows",
        "get",
    )
