"""Buckets (raw, lake, artifacts, build, badges) and the Artifact Registry repository, with per-resource grants.

Every bucket is private (uniform access, public access prevention enforced) except ``badges``, which
holds only the CI status badge: anyone may read its objects (``allUsers`` objectViewer on that bucket
alone), only the build account writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
from churnops_infra import names
from churnops_infra.config import StorageConfig

from churnops.platform import declaration as platform

# Who may do what on each bucket: (workload key, role). Nothing is granted at the project level.
PIPELINES = tuple(sorted(set(platform.PIPELINE_IDENTITY.values())))
PREDICTORS = tuple(f"predictor-{env}" for env in platform.ENVIRONMENTS)
BUCKET_GRANTS: dict[str, tuple[tuple[str, str], ...]] = {
    # Producers' landing zone: the ingest pipeline only reads it; the erasure purge rewrites the objects
    # that hold an erased subject and deletes their earlier generations.
    "raw": (("pipeline-ingest", "roles/storage.objectViewer"), ("pipeline-purge", "roles/storage.objectAdmin")),
    # lakeFS's storage namespace: the lakeFS server; clients go through lakeFS. The erasure purge reads history's
    # objects there and deletes those holding an erased subject (objectUser: read and delete, no IAM or ACLs).
    "lake": (("lakefs", "roles/storage.objectAdmin"), ("pipeline-purge", "roles/storage.objectUser")),
    # KFP pipeline root and MLflow artifacts: tasks and MLflow write, predictors read models.
    "artifacts": (
        *((pipeline, "roles/storage.objectAdmin") for pipeline in PIPELINES),
        ("mlflow", "roles/storage.objectAdmin"),
        *((predictor, "roles/storage.objectViewer") for predictor in PREDICTORS),
    ),
    # What a build produced (digests, SBOMs, reports, compiled pipelines under builds/<commit>/): a bucket
    # of its own, so a bucket-level grant reaches nothing else. objectUser: create, read and overwrite
    # (a retried build rewrites its commit's objects), no IAM or ACL changes.
    # The attestor writes its reports, SBOMs and outcome under attestations/<commit>/ (the CI build waits
    # for it there) and the SBOMs it attaches.
    "build": (("deployer", "roles/storage.objectUser"), ("attestor", "roles/storage.objectUser")),
    # The badge, overwritten by every build; read by anyone (PUBLIC_READ).
    "badges": (("deployer", "roles/storage.objectUser"),),
}
# Buckets whose objects anyone may read, and the only role granted to allUsers on them.
PUBLIC_READ: dict[str, str] = {"badges": "roles/storage.objectViewer"}
PUBLIC_MEMBER = "allUsers"
# The attestor pulls the images it scans and signs, by digest.
REPOSITORY_GRANTS = (
    ("nodes", "roles/artifactregistry.reader"),
    ("deployer", "roles/artifactregistry.writer"),
    ("attestor", "roles/artifactregistry.reader"),
)


@dataclass
class StorageArgs:
    """Inputs of :class:`Storage`; ``members`` maps a workload key to its IAM member."""

    project: str
    region: str
    config: StorageConfig
    members: dict[str, pulumi.Input[str]] = field(default_factory=dict)


class Storage(pulumi.ComponentResource):
    """Private buckets with uniform access and the image repository."""

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("churnops:infra:Storage", name, None, opts)
        cfg = args.config
        self.buckets: dict[str, gcp.storage.Bucket] = {}
        for purpose in names.BUCKET_PURPOSES:
            lifecycle = []
            if purpose == "raw":
                lifecycle = [{"action": {"type": "Delete"}, "condition": {"age": cfg.raw_retention_days}}]
            if purpose == "artifacts":  # versioned: what is overwritten or deleted goes after this many days
                lifecycle = [
                    {
                        "action": {"type": "Delete"},
                        "condition": {"days_since_noncurrent_time": cfg.artifacts_noncurrent_days},
                    }
                ]
            bucket = gcp.storage.Bucket(
                f"{name}-{purpose}",
                name=names.bucket_name(args.project, purpose),
                location=cfg.location,
                storage_class="STANDARD",
                uniform_bucket_level_access=True,
                public_access_prevention="inherited" if purpose in PUBLIC_READ else "enforced",
                versioning={"enabled": purpose == "artifacts"},
                lifecycle_rules=lifecycle,
                force_destroy=cfg.force_destroy,
                labels={"app": "churnops", "purpose": purpose},
                # The lake holds every published version of the data: never delete it by accident.
                opts=pulumi.ResourceOptions(parent=self, protect=purpose == "lake" and not cfg.force_destroy),
            )
            self.buckets[purpose] = bucket
            for workload, role in BUCKET_GRANTS[purpose]:
                gcp.storage.BucketIAMMember(
                    f"{name}-{purpose}-{workload}-{role.rsplit('.', 1)[-1]}",
                    bucket=bucket.name,
                    role=role,
                    member=args.members[workload],
                    opts=pulumi.ResourceOptions(parent=self),
                )
            if purpose in PUBLIC_READ:
                gcp.storage.BucketIAMMember(
                    f"{name}-{purpose}-public-read",
                    bucket=bucket.name,
                    role=PUBLIC_READ[purpose],
                    member=PUBLIC_MEMBER,
                    opts=pulumi.ResourceOptions(parent=self),
                )

        self.repository = gcp.artifactregistry.Repository(
            f"{name}-images",
            repository_id=names.REGISTRY_REPOSITORY,
            location=args.region,
            format="DOCKER",
            description="churnops images: " + ", ".join(names.IMAGES),
            docker_config={"immutable_tags": True},
            cleanup_policies=[
                {"id": "keep-recent", "action": "KEEP", "most_recent_versions": {"keep_count": 20}},
                {
                    "id": "delete-old-untagged",
                    "action": "DELETE",
                    "condition": {"tag_state": "UNTAGGED", "older_than": "2592000s"},
                },
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        for workload, role in REPOSITORY_GRANTS:
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-images-{workload}-{role.rsplit('.', 1)[-1]}",
                project=args.project,
                location=args.region,
                repository=self.repository.name,
                role=role,
                member=args.members[workload],
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.registry = f"{args.region}-docker.pkg.dev/{args.project}/{names.REGISTRY_REPOSITORY}"
        self.register_outputs(
            {
                **{f"{purpose}_bucket": bucket.name for purpose, bucket in self.buckets.items()},
                "registry": self.registry,
            }
        )

    def url(self, purpose: str) -> pulumi.Output[str]:
        """``gs://<bucket>`` of the ``purpose`` bucket."""
        return self.buckets[purpose].name.apply(lambda bucket: f"gs://{bucket}")
