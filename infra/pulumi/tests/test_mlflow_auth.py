"""The cluster's MLflow authenticates every caller: MLflow's basic-auth app with the project's authorization
function, users and permissions in their own database, an admin and one password per workload from Secret
Manager, and a Job that creates the users (the same module the local stack provisions with). Each chart value
is one the pinned chart declares (its vendored values.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from churnops_infra import names, netpol
from churnops_infra.secrets import ACCESSORS
from conftest import MLFLOW_IMAGE_TAG, StackRun, run_program, stack_config

from churnops.platform import declaration as platform

REPOSITORY = Path(__file__).resolve().parents[3]
CHART_VALUES = REPOSITORY / "tests/specs/upstream/charts/mlflow-1.7.3/values.yaml"
HELM = "kubernetes:helm.sh/v3:Release"
JOB = "kubernetes:batch/v1:Job"
EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"


def release(stack: StackRun) -> dict[str, Any]:
    """The inputs of the program's MLflow Helm release."""
    (found,) = [r.inputs for r in stack.of_type(HELM) if r.inputs["name"] == "mlflow"]
    return found


def undeclared(values: Any, chart: Any, prefix: str = "") -> list[str]:
    """The keys of ``values`` the chart's defaults (``chart``) do not declare; a map the chart leaves empty
    (``nodeSelector: {}``) takes any key."""
    if not isinstance(values, dict) or (isinstance(chart, dict) and not chart):
        return []
    if not isinstance(chart, dict):
        return [prefix.rstrip(".")]
    found = []
    for key, item in values.items():
        if key not in chart:
            found.append(f"{prefix}{key}")
        else:
            found += undeclared(item, chart[key], f"{prefix}{key}.")
    return found


def mlflow_secret(stack: StackRun) -> dict[str, Any]:
    """The spec of the ExternalSecret in the mlflow namespace."""
    (spec,) = [
        r.inputs["spec"] for r in stack.of_type(EXTERNAL_SECRET) if r.inputs["metadata"]["namespace"] == names.NS_MLFLOW
    ]
    return spec


def test_the_release_runs_the_basic_auth_app_with_our_authorization_function(stack: StackRun) -> None:
    values = release(stack)["values"]
    auth = values["auth"]
    assert auth["enabled"] is True and auth["appName"] == "basic-auth"
    assert auth["authorizationFunction"] == "churnops.platform.mlflow_server_auth:authenticate_request"
    assert auth["defaultPermission"] == "READ"
    # users and permissions in Cloud SQL (a pod restart keeps them), in a database of their own
    assert auth["postgres"]["enabled"] is True and auth["postgres"]["database"] == names.DB_MLFLOW_AUTH
    assert auth["postgres"]["database"] in {d.inputs["name"] for d in stack.of_type("gcp:sql/database:Database")}
    assert auth["postgres"]["host"] == values["backendStore"]["postgres"]["host"]


def test_every_value_set_is_one_the_pinned_chart_declares(stack: StackRun) -> None:
    chart = yaml.safe_load(CHART_VALUES.read_text(encoding="utf-8"))
    assert not (extra := undeclared(release(stack)["values"], chart)), f"not declared by the chart: {extra}"
    assert undeclared({"auth": {"enable": True}}, chart) == ["auth.enable"]  # a misspelt key is caught


def test_the_server_its_init_containers_and_the_bootstrap_run_the_projects_components_image(stack: StackRun) -> None:
    values = release(stack)["values"]
    image = {
        "repository": f"{platform.registry(stack.config['gcp:region'], stack.project)}/{platform.IMAGE_COMPONENTS}",
        "tag": MLFLOW_IMAGE_TAG,
    }
    assert values["image"] == image
    assert values["initImages"] == {"mlflowDbMigration": image, "iniFileInitializer": image}
    (job,) = [r.inputs for r in stack.of_type(JOB)]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"


def test_the_admin_and_database_logins_come_from_secret_manager(stack: StackRun) -> None:
    auth = release(stack)["values"]["auth"]
    spec = mlflow_secret(stack)
    template, refs = spec["target"]["template"]["data"], {d["secretKey"]: d["remoteRef"]["key"] for d in spec["data"]}
    admin = auth["existingAdminSecret"]
    assert admin["name"] == spec["target"]["name"]
    assert template[admin["usernameKey"]] == names.MLFLOW_ADMIN
    admin_secret = platform.mlflow_password_secret(platform.MLFLOW_ADMIN)
    assert template[admin["passwordKey"]] == "{{ .%s }}" % admin_secret.replace("-", "_")
    assert refs[admin_secret.replace("-", "_")] == admin_secret
    assert admin_secret in {s.inputs["secretId"] for s in stack.of_type("gcp:secretmanager/secret:Secret")}
    assert ACCESSORS[admin_secret] == ("mlflow",)  # the SecretStore in mlflow reads as the server's identity
    assert auth["postgres"]["existingSecret"] == release(stack)["values"]["backendStore"]["existingDatabaseSecret"]
    assert "adminPassword" not in auth and "password" not in auth["postgres"]  # no secret in the release's values


def test_the_bootstrap_job_creates_every_cluster_user_with_its_secret_manager_password(stack: StackRun) -> None:
    (job,) = [r.inputs for r in stack.of_type(JOB)]
    assert job["metadata"]["namespace"] == names.NS_MLFLOW
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == names.KSA_MLFLOW and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"][:3] == ["python", "-m", "churnops.platform.mlflow_users"]
    assert container["command"][container["command"].index("--url") + 1] == platform.MLFLOW.url
    mount = container["command"][container["command"].index("--passwords") + 1]
    (volume,) = pod["volumes"]
    assert [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume["name"]] == [mount]
    spec = mlflow_secret(stack)
    assert volume["secret"]["secretName"] == spec["target"]["name"]
    files = {item["path"] for item in volume["secret"]["items"]}
    cluster_users = [user.name for user in platform.MLFLOW_USERS if user.identities]
    # the files the module reads (churnops.platform.mlflow_users.read_passwords): the admin's and each user's
    assert files == {platform.mlflow_password_secret(u) for u in (platform.MLFLOW_ADMIN, *cluster_users)}
    refs = {d["secretKey"]: d["remoteRef"]["key"] for d in spec["data"]}
    for item in volume["secret"]["items"]:
        key = item["key"]
        assert spec["target"]["template"]["data"][key] == "{{ .%s }}" % key.replace("-", "_")
        assert refs[key.replace("-", "_")] == key  # each file is the Secret Manager secret of the same name
    assert job["metadata"]["labels"] == job["spec"]["template"]["metadata"]["labels"] == netpol.MLFLOW_BOOTSTRAP_LABELS


def test_each_workload_that_calls_mlflow_reads_its_own_users_password_and_no_other(stack: StackRun) -> None:
    """Secret Manager grants per password: the identities that log in as that user, and the server's."""
    for user in platform.MLFLOW_USERS:
        if not user.identities:
            assert platform.mlflow_password_secret(user.name) not in ACCESSORS  # no cluster identity logs in as it
            continue
        secret = platform.mlflow_password_secret(user.name)
        granted = {
            b.inputs["member"]
            for b in stack.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
            if b.inputs["secretId"].endswith(f"/secrets/{secret}")
        }
        expected = {f"serviceAccount:{platform.identity(k).email(stack.project)}" for k in (*user.identities, "mlflow")}
        assert granted == expected, user.name


def test_without_an_image_mlflow_is_not_installed_rather_than_installed_without_auth() -> None:
    config = stack_config("staging")
    del config["churnops:mlflowImageTag"]
    run = run_program("staging", config)
    assert not [r for r in run.of_type(HELM) if r.inputs["name"] == "mlflow"]
    assert not run.of_type(JOB)
