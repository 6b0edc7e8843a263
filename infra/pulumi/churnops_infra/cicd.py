"""Cloud Build triggers: the deployer's, and the attestor's one that signs.

- ``churnops-ci``: every push to ``main`` runs the CI/CD build (``cloudbuild.yaml``).
- ``churnops-promote`` (a release tag ``vX.Y.Z``) and ``churnops-promote-manual`` (run by hand) run the
  production canary (``cloudbuild.production.yaml``); both wait for an approval.
- ``churnops-train``: a message on the ``churnops-train`` topic (published daily by Cloud Scheduler, or
  by anyone allowed to publish) submits the training pipeline (``cloudbuild.training.yaml``).
- ``churnops-attest``: a message on the ``churnops-attest`` topic (published by the CI build, the only
  publisher) runs the attestation build (``cloudbuild.attest.yaml``) as the attestor account, which alone
  may sign: the accounts that run third-party code (the deployer runs ``make test``) hold no signing role.

Every trigger but ``churnops-attest`` runs as the deployer.

The triggers watch the GitHub repository through a Cloud Build (2nd gen) connection this program creates
(``churnops-github``, regional, with the repository linked as ``churnops``). The connection reads
GitHub with an OAuth token kept in Secret Manager (``churnops-github-oauth-token``), which a person
creates once per project, with the Cloud Build GitHub App's installation id in the stack configuration
(docs/infrastructure.md, "First pulumi up on a new project"); only Cloud Build's service agent may read
the token, and its value is never in the repository, the stack configuration or Pulumi's state.

The build configurations declare their own defaults; a trigger passes only ``_REGION`` and
``_CLUSTER_LOCATION`` (the stack's cluster location: a zone for the zonal staging cluster, a region
for production; every config declares both, and a substitution a config does not declare would fail
the build).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
from churnops_infra import names
from churnops_infra.config import CicdConfig

from churnops.platform import declaration as platform

RELEASE_TAG = r"^v[0-9]+\.[0-9]+\.[0-9]+$"
ATTESTOR_PROJECT_ROLES = (
    "roles/cloudbuild.workerPoolUser",
    "roles/logging.logWriter",
    "roles/containeranalysis.occurrences.editor",
)


@dataclass
class CicdArgs:
    """Inputs of :class:`Cicd`."""

    project: str
    region: str
    cluster_location: str  # where .ci/kubeconfig finds the cluster (zone or region)
    config: CicdConfig
    service_account: pulumi.Input[str]  # projects/<project>/serviceAccounts/<email>
    member: pulumi.Input[str]  # serviceAccount:<email> of the same account
    network: pulumi.Input[str]
    private_services: pulumi.Resource  # the peering the private pool uses
    attestor: gcp.binaryauthorization.Attestor
    attestor_key: gcp.kms.CryptoKey
    attestor_note: gcp.containeranalysis.Note
    attestor_account: pulumi.Input[str]  # projects/<project>/serviceAccounts/<email> of the signer


class Cicd(pulumi.ComponentResource):
    """CI/CD, promotion and training triggers, and the schedule that starts training."""

    def __init__(self, name: str, args: CicdArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("churnops:infra:Cicd", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg = args.config
        self.repository = self._repository(name, args)
        repository = self.repository.id
        substitutions = {"_REGION": args.region, "_CLUSTER_LOCATION": args.cluster_location}
        approval = {"approval_required": True}

        def main_branch_file(path: str) -> dict:
            return {"path": path, "repository": repository, "revision": "refs/heads/main", "repo_type": "GITHUB"}

        main_branch = {"repository": repository, "ref": "refs/heads/main", "repo_type": "GITHUB"}
        self.triggers = [
            gcp.cloudbuild.Trigger(
                f"{name}-ci",
                name="churnops-ci",
                description="CI/CD on every merge to main",
                location=args.region,
                repository_event_config={"repository": repository, "push": {"branch": "^main$"}},
                filename=names.BUILD_CI,
                service_account=args.service_account,
                substitutions=substitutions,
                opts=child,
            ),
            gcp.cloudbuild.Trigger(
                f"{name}-promote-tag",
                name="churnops-promote",
                description="Promotion on a release tag",
                location=args.region,
                repository_event_config={"repository": repository, "push": {"tag": RELEASE_TAG}},
                filename=names.BUILD_PROMOTE,
                approval_config=approval,
                service_account=args.service_account,
                substitutions=substitutions,
                opts=child,
            ),
            gcp.cloudbuild.Trigger(
                f"{name}-promote-manual",
                name="churnops-promote-manual",
                description="Promotion run by hand (gcloud builds triggers run churnops-promote-manual)",
                location=args.region,
                source_to_build=main_branch,
                git_file_source=main_branch_file(names.BUILD_PROMOTE),
                approval_config=approval,
                service_account=args.service_account,
                substitutions=substitutions,
                opts=child,
            ),
        ]
        self._build_identity(name, args)
        self._attestation(name, args, main_branch, main_branch_file(platform.BUILD_ATTEST))
        self.training_topic = gcp.pubsub.Topic(f"{name}-train", name=names.TRAINING_TOPIC, opts=child)
        self.triggers.append(
            gcp.cloudbuild.Trigger(
                f"{name}-train",
                name="churnops-train",
                description="Training pipeline on a message to the churnops-train topic",
                location=args.region,
                pubsub_config={"topic": self.training_topic.id},
                source_to_build=main_branch,
                git_file_source=main_branch_file(names.BUILD_TRAIN),
                service_account=args.service_account,
                substitutions=substitutions,
                opts=child,
            )
        )
        gcp.cloudscheduler.Job(
            f"{name}-train-schedule",
            name="churnops-train",
            region=args.region,
            schedule=cfg.training_schedule,
            time_zone=cfg.time_zone,
            pubsub_target={
                "topic_name": self.training_topic.id,
                "data": base64.b64encode(b'{"reason": "schedule"}').decode("ascii"),
            },
            opts=child,
        )
        self.register_outputs({"triggers": [trigger.name for trigger in self.triggers], "pool": self.pool.id})

    def _repository(self, name: str, args: CicdArgs) -> gcp.cloudbuildv2.Repository:
        """The connection to GitHub (through the Cloud Build GitHub App's installation, authorised by the
        OAuth token in Secret Manager, which only Cloud Build's service agent may read) and the repository."""
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        token = f"projects/{args.project}/secrets/{names.SECRET_GITHUB_TOKEN}"
        agent = gcp.organizations.get_project_output(project_id=args.project).number.apply(
            lambda number: f"serviceAccount:service-{number}@gcp-sa-cloudbuild.iam.gserviceaccount.com"
        )
        read_token = gcp.secretmanager.SecretIamMember(
            f"{name}-github-token-agent",
            secret_id=token,
            role="roles/secretmanager.secretAccessor",
            member=agent,
            opts=child,
        )
        connection = gcp.cloudbuildv2.Connection(
            f"{name}-github",
            name=names.BUILD_CONNECTION,
            location=args.region,
            github_config={
                "app_installation_id": cfg.github_app_installation_id,
                "authorizer_credential": {"oauth_token_secret_version": f"{token}/versions/latest"},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[read_token]),
        )
        return gcp.cloudbuildv2.Repository(
            f"{name}-repository",
            name=names.BUILD_REPOSITORY,
            location=args.region,
            parent_connection=connection.name,
            remote_uri=f"https://github.com/{cfg.github_owner}/{cfg.github_repo}.git",
            opts=child,
        )

    def _build_identity(self, name: str, args: CicdArgs) -> None:
        """The private pool builds run in, and what the build account may do to sign and use it."""
        self.pool = gcp.cloudbuild.WorkerPool(
            f"{name}-pool",
            name=names.WORKER_POOL,
            location=args.region,
            worker_config={"machine_type": "e2-standard-4", "disk_size_gb": 100, "no_external_ip": False},
            network_config={"peered_network": args.network},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.private_services]),
        )
        child = pulumi.ResourceOptions(parent=self)
        gcp.projects.IAMMember(
            f"{name}-builds-workerPoolUser",
            project=args.project,
            role="roles/cloudbuild.workerPoolUser",
            member=args.member,
            opts=child,
        )

    def _attestation(self, name: str, args: CicdArgs, source: dict, config_file: dict) -> None:
        """The topic the CI build asks for an attestation on, the trigger that runs the attestation build
        as the attestor, and what the attestor (and only it) may do to sign."""
        child = pulumi.ResourceOptions(parent=self)
        attestor = pulumi.Output.from_input(args.attestor_account).apply(
            lambda account: f"serviceAccount:{account.rsplit('/', 1)[-1]}"
        )
        self.attest_topic = gcp.pubsub.Topic(f"{name}-attest", name=platform.ATTEST_TOPIC, opts=child)
        gcp.pubsub.TopicIAMMember(
            f"{name}-attest-publisher",
            topic=self.attest_topic.name,
            role="roles/pubsub.publisher",
            member=args.member,
            opts=child,
        )
        self.triggers.append(
            gcp.cloudbuild.Trigger(
                f"{name}-attest",
                name="churnops-attest",
                description="Scan, gate and sign the images a CI build pushed (runs as the attestor)",
                location=args.region,
                pubsub_config={"topic": self.attest_topic.id},
                source_to_build=source,
                git_file_source=config_file,
                service_account=args.attestor_account,
                substitutions={
                    "_REGION": args.region,
                    **{key: f"$(body.message.data.{field})" for key, field in platform.ATTEST_MESSAGE_FIELDS.items()},
                },
                opts=child,
            )
        )
        # Project-level, as they have no narrower resource: run in the pool, write the build's logs, and
        # create the attestation and SBOM occurrences.
        for role in ATTESTOR_PROJECT_ROLES:
            gcp.projects.IAMMember(
                f"{name}-attestor-{role.rsplit('.', 1)[-1].rsplit('/', 1)[-1]}",
                project=args.project,
                role=role,
                member=attestor,
                opts=child,
            )
        gcp.kms.CryptoKeyIAMMember(
            f"{name}-attestor-sign",
            crypto_key_id=args.attestor_key.id,
            role="roles/cloudkms.signerVerifier",
            member=attestor,
            opts=child,
        )
        gcp.containeranalysis.NoteIamMember(
            f"{name}-attestor-attach",
            note=args.attestor_note.name,
            role="roles/containeranalysis.notes.attacher",
            member=attestor,
            opts=child,
        )
        # `gcloud ... attestations sign-and-create` reads the attestor (viewer) and, by default, has the
        # API check that the attestor verifies the new attestation (verifier); both on this attestor only.
        for role in ("roles/binaryauthorization.attestorsViewer", "roles/binaryauthorization.attestorsVerifier"):
            gcp.binaryauthorization.AttestorIamMember(
                f"{name}-attestor-attestor" + ("" if role.endswith("Viewer") else "-verify"),
                attestor=args.attestor.name,
                role=role,
                member=attestor,
                opts=child,
            )
