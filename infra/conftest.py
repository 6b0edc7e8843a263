"""Runs the Pulumi program under ``pulumi.runtime.set_mocks``: no CLI, no plugins, no cloud.

The ``stack`` fixture runs ``infra/pulumi/__main__.py`` once per stack with that stack's
``Pulumi.<stack>.yaml`` (plus the one secret an operator sets with the CLI) and records every resource
registration exactly as the engine would receive it (type token, name, camelCase inputs).
"""

from __future__ import annotations

import json
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

PROGRAM = Path(__file__).parent / "pulumi"
POLICY = Path(__file__).parent / "policy"
for path in (PROGRAM, POLICY):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

STACKS = ("staging", "prod")
WEBHOOK = "https://hooks.example.com/services/T000/B000/XXXX"
# What step 5 of docs/infrastructure.md sets on each stack (the stack files carry no installation id).
APP_INSTALLATION = 31337
# What step 12 of docs/infrastructure.md sets: the commit whose components image MLflow runs.
MLFLOW_IMAGE_TAG = "0123456789abcdef0123456789abcdef01234567"
PROJECT_NUMBER = "123456789012"
ATTESTOR_PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQc=\n-----END PUBLIC KEY-----\n"


def pytest_configure(config: pytest.Config) -> None:
    """The providers warn about their own deprecated aliases when a module is imported: not ours to fix."""
    config.addinivalue_line("filterwarnings", "ignore:.* has been deprecated in favor of:DeprecationWarning")


@dataclass
class Recorded:
    """One registered resource: its type token, logical name and inputs."""

    type: str
    name: str
    inputs: dict[str, Any]
    custom: bool


@dataclass
class StackRun:
    """What one mocked ``pulumi up`` registered."""

    stack: str
    project: str
    config: dict[str, Any]
    resources: list[Recorded] = field(default_factory=list)

    def of_type(self, token: str) -> list[Recorded]:
        """Every resource of type ``token``."""
        return [resource for resource in self.resources if resource.type == token]

    def one(self, token: str, name: str | None = None) -> Recorded:
        """The single resource of ``token`` (named ``name`` when given)."""
        found = [r for r in self.of_type(token) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {token} {name or ''}, found {[r.name for r in found]}"
        return found[0]


class RecordingMocks(pulumi.runtime.Mocks):
    """Records registrations; answers with the outputs GCP would compute that the program reads."""

    def __init__(self, run: StackRun) -> None:
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        self.run.resources.append(Recorded(args.typ, args.name, inputs, bool(args.custom)))
        state = dict(inputs)
        project = self.run.project
        resource_id = f"{args.name}-id"
        if args.typ == "gcp:serviceaccount/account:Account":
            email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
            resource_id = f"projects/{project}/serviceAccounts/{email}"
            state.update(email=email, member=f"serviceAccount:{email}", name=resource_id)
        elif args.typ == "gcp:secretmanager/secret:Secret":
            resource_id = f"projects/{project}/secrets/{inputs['secretId']}"
        elif args.typ == "gcp:kms/keyRing:KeyRing":
            resource_id = f"projects/{project}/locations/{inputs['location']}/keyRings/{inputs['name']}"
        elif args.typ == "gcp:kms/cryptoKey:CryptoKey":
            resource_id = f"{inputs['keyRing']}/cryptoKeys/{inputs['name']}"
        elif args.typ == "gcp:storage/bucket:Bucket":
            resource_id = inputs["name"]
        elif args.typ == "gcp:monitoring/notificationChannel:NotificationChannel":
            state.update(name=f"projects/{project}/notificationChannels/{args.name}")
        elif args.typ == "gcp:container/cluster:Cluster":
            state.update(endpoint="10.0.0.2", masterAuth={"clusterCaCertificate": "Q0E="})
        elif args.typ == "gcp:sql/databaseInstance:DatabaseInstance":
            state.update(privateIpAddress="10.60.0.3", connectionName=f"{project}:{inputs['region']}:{inputs['name']}")
        elif args.typ.startswith("random:"):
            state.update(result="r" * int(inputs.get("length", 16)), base64="cmFuZG9t")
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        if args.token == "gcp:organizations/getProject:getProject":
            return {"number": PROJECT_NUMBER, "projectId": self.run.project}
        if args.token == "gcp:kms/getKMSCryptoKeyVersion:getKMSCryptoKeyVersion":
            key = args.args["cryptoKey"]
            return {
                "id": f"{key}/cryptoKeyVersions/1",
                "name": f"{key}/cryptoKeyVersions/1",
                "cryptoKey": key,
                "version": 1,
                "algorithm": "EC_SIGN_P256_SHA256",
                "protectionLevel": "HSM",
                "state": "ENABLED",
                "publicKeys": [{"pem": ATTESTOR_PEM, "algorithm": "EC_SIGN_P256_SHA256"}],
            }
        raise AssertionError(f"unexpected invoke {args.token}")


def stack_config(stack_name: str) -> dict[str, Any]:
    """The stack's configuration as the CLI would pass it, plus what an SRE sets on the stack: the webhook
    secret, the GitHub App's installation id and the commit whose image MLflow runs."""
    values = yaml.safe_load((PROGRAM / f"Pulumi.{stack_name}.yaml").read_text(encoding="utf-8"))["config"]
    values["churnops:alertWebhookUrl"] = WEBHOOK
    values["churnops:cicd"] = {**values["churnops:cicd"], "githubAppInstallationId": APP_INSTALLATION}
    values["churnops:mlflowImageTag"] = MLFLOW_IMAGE_TAG
    return values


def run_program(stack_name: str, config: dict[str, Any]) -> StackRun:
    """Run the program for ``stack_name`` with ``config`` under mocks and return what it registered."""
    run = StackRun(stack=stack_name, project=str(config.get("gcp:project")), config=config)
    pulumi.runtime.set_mocks(RecordingMocks(run), project="churnops", stack=stack_name, preview=False)
    pulumi.runtime.set_all_config(
        {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()},
        secret_keys=["churnops:alertWebhookUrl"],
    )

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(PROGRAM / "__main__.py"), run_name="__main__")

    program()
    return run


@pytest.fixture(name="stack", scope="session", params=STACKS)
def stack_fixture(request: pytest.FixtureRequest) -> StackRun:
    """The program's resources for the ``staging`` and the ``prod`` stack."""
    return run_program(request.param, stack_config(request.param))
