"""The Pulumi program, run under mocks for both stacks: the security properties of what it declares."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pulumi
import pytest
import yaml
from churnops_infra import names, versions
from churnops_infra.config import ConfigError, load
from churnops_infra.identity import WORKLOADS
from churnops_infra.secrets import ACCESSORS
from conftest import PROGRAM, PROJECT_NUMBER, WEBHOOK, StackRun, run_program, stack_config
from pulumi.runtime import rpc

from churnops.platform import declaration as platform

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
PRIMITIVE = {"roles/owner", "roles/editor", "roles/viewer"}
REPOSITORY = Path(__file__).resolve().parents[3]
SECRET_SIG, SECRET_SIG_VALUE = rpc._special_sig_key, rpc._special_secret_sig  # pylint: disable=protected-access


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair nested anywhere in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def secret_value(value: Any) -> tuple[bool, Any]:
    """(whether ``value`` arrived as a Pulumi secret, the plain value)."""
    if isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_SIG_VALUE:
        return True, value["value"]
    return False, value


def email(run: StackRun, account_id: str) -> str:
    """The e-mail of ``account_id`` in the run's project."""
    return names.gsa_email(account_id, run.project)


def test_every_area_is_one_component(stack: StackRun) -> None:
    components = {r.type for r in stack.resources if not r.custom}
    for area in (
        "Apis",
        "Network",
        "Cluster",
        "Identity",
        "Storage",
        "Secrets",
        "Database",
        "Platform",
        "Cicd",
        "Monitoring",
    ):
        assert f"churnops:infra:{area}" in components
    assert len(stack.of_type("gcp:container/cluster:Cluster")) == 1


def test_managed_prometheus_collects_for_the_canary_analysis(stack: StackRun) -> None:
    monitoring = stack.one(CLUSTER).inputs["monitoringConfig"]
    assert monitoring["managedPrometheus"] == {"enabled": True}
    assert "SYSTEM_COMPONENTS" in monitoring["enableComponents"]


def test_nodes_are_private_and_the_endpoint_is_restricted(stack: StackRun) -> None:
    cluster = stack.one(CLUSTER).inputs
    private = cluster["privateClusterConfig"]
    assert private["enablePrivateNodes"] is True
    assert private["masterIpv4CidrBlock"] == stack.config["churnops:network"]["masterCidr"]
    assert private["masterGlobalAccessConfig"] == {"enabled": False}
    blocks = cluster["masterAuthorizedNetworksConfig"]["cidrBlocks"]
    expected = [n["cidr"] for n in stack.config["churnops:cluster"]["authorizedNetworks"]]
    assert [b["cidrBlock"] for b in blocks] == expected
    assert all(ipaddress.ip_network(b["cidrBlock"]).prefixlen > 0 for b in blocks)
    assert cluster["masterAuthorizedNetworksConfig"]["gcpPublicCidrsAccessEnabled"] is False
    assert cluster["masterAuth"]["clientCertificateConfig"]["issueClientCertificate"] is False


def test_workload_identity_pool_and_metadata_server(stack: StackRun) -> None:
    cluster = stack.one(CLUSTER).inputs
    assert cluster["workloadIdentityConfig"]["workloadPool"] == f"{stack.project}.svc.id.goog"
    for node_config in [cluster["nodeConfig"]] + [p.inputs["nodeConfig"] for p in stack.of_type(NODE_POOL)]:
        assert node_config["workloadMetadataConfig"]["mode"] == "GKE_METADATA"
        assert node_config["metadata"]["disable-legacy-endpoints"] == "true"


def test_shielded_nodes(stack: StackRun) -> None:
    cluster = stack.one(CLUSTER).inputs
    assert cluster["enableShieldedNodes"] is True
    for pool in stack.of_type(NODE_POOL):
        shielded = pool.inputs["nodeConfig"]["shieldedInstanceConfig"]
        assert shielded == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}


def test_network_policy_is_enforced_by_dataplane_v2(stack: StackRun) -> None:
    assert stack.one(CLUSTER).inputs["datapathProvider"] == "ADVANCED_DATAPATH"


def test_binary_authorization_denies_untrusted_images(stack: StackRun) -> None:
    assert stack.one(CLUSTER).inputs["binaryAuthorization"]["evaluationMode"] == "PROJECT_SINGLETON_POLICY_ENFORCE"
    policy = stack.one("gcp:binaryauthorization/policy:Policy").inputs
    assert policy["defaultAdmissionRule"] == {
        "evaluationMode": "REQUIRE_ATTESTATION",
        "requireAttestationsBies": [names.ATTESTOR],
        "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG",
    }
    # Our own images are not admitted by name: they need the build's attestation.
    patterns = [p["namePattern"] for p in policy["admissionWhitelistPatterns"]]
    assert not [p for p in patterns if "docker.pkg.dev" in p]
    # Upstream images by exact reference: no wildcard admits a registry namespace (the assembled-system test
    # checks each is an image a pinned release runs).
    assert patterns and not [p for p in patterns if "*" in p or "/" not in p]
    attestor = stack.one("gcp:binaryauthorization/attestor:Attestor").inputs
    note = stack.one("gcp:containeranalysis/note:Note").inputs
    assert attestor["name"] == note["name"] == names.ATTESTOR
    key = attestor["attestationAuthorityNote"]["publicKeys"][0]
    region = stack.config["gcp:region"]
    assert key["id"] == (
        f"//cloudkms.googleapis.com/v1/projects/{stack.project}/locations/{region}/keyRings/"
        f"{names.ATTESTOR_KEYRING}/cryptoKeys/{names.ATTESTOR_KEY}/cryptoKeyVersions/1"
    )
    assert key["pkixPublicKey"]["signatureAlgorithm"] == "EC_SIGN_P256_SHA256"


def test_secrets_are_encrypted_with_a_kms_key_the_gke_agent_may_use(stack: StackRun) -> None:
    encryption = stack.one(CLUSTER).inputs["databaseEncryption"]
    region = stack.config["gcp:region"]
    key_id = f"projects/{stack.project}/locations/{region}/keyRings/churnops-gke/cryptoKeys/gke-secrets"
    assert encryption == {"state": "ENCRYPTED", "keyName": key_id}
    key = [k.inputs for k in stack.of_type("gcp:kms/cryptoKey:CryptoKey") if k.inputs["purpose"] == "ENCRYPT_DECRYPT"]
    assert key[0]["rotationPeriod"] == "7776000s"
    grants = [
        g.inputs
        for g in stack.of_type("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
        if g.inputs["cryptoKeyId"] == key_id
    ]
    assert len(grants) == 1
    grant = grants[0]
    assert grant["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    gke_agent = r"serviceAccount:service-\d+@container-engine-robot\.iam\.gserviceaccount\.com"
    assert re.fullmatch(gke_agent, grant["member"])


def test_nodes_never_run_as_the_default_service_account(stack: StackRun) -> None:
    nodes = email(stack, names.GSA_NODES)
    cluster = stack.one(CLUSTER).inputs
    assert cluster["removeDefaultNodePool"] is True
    assert cluster["nodeConfig"]["serviceAccount"] == nodes
    pools = stack.of_type(NODE_POOL)
    assert sorted(p.inputs["name"] for p in pools) == sorted(
        [names.POOL_SYSTEM, names.POOL_PIPELINES, names.POOL_SERVING]
    )
    assert all(p.inputs["nodeConfig"]["serviceAccount"] == nodes for p in pools)
    project_grants = stack.of_type("gcp:projects/iAMMember:IAMMember")
    node_roles = [r.inputs["role"] for r in project_grants if r.inputs["member"] == f"serviceAccount:{nodes}"]
    assert node_roles == ["roles/container.defaultNodeServiceAccount"]


def test_node_pools_follow_the_stack_configuration(stack: StackRun) -> None:
    configured = stack.config["churnops:nodePools"]
    for pool in stack.of_type(NODE_POOL):
        expected = configured[pool.inputs["name"]]
        bounds = {"minNodeCount": expected["minNodes"], "maxNodeCount": expected["maxNodes"]}
        assert pool.inputs["autoscaling"] == bounds
        assert pool.inputs["nodeConfig"]["machineType"] == expected["machineType"]
        assert pool.inputs["nodeConfig"]["spot"] is expected["spot"]
        assert pool.inputs["management"] == {"autoRepair": True, "autoUpgrade": True}


def test_no_service_account_keys(stack: StackRun) -> None:
    assert not [r for r in stack.resources if r.type.startswith("gcp:serviceaccount/key")]


def test_no_primitive_role_anywhere(stack: StackRun) -> None:
    roles = [
        value for r in stack.resources for key, value in walk(r.inputs) if key == "role" and isinstance(value, str)
    ]
    assert roles, "the program grants roles"
    assert not PRIMITIVE.intersection(roles)
    assert not [r for r in stack.resources if r.type.endswith(("IAMPolicy", "IamPolicy", "IAMBinding", "IamBinding"))]


def test_each_secret_accessor_binding_is_one_secret_and_one_identity(stack: StackRun) -> None:
    grants = stack.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
    seen = set()
    for grant in grants:
        assert grant.inputs["role"] == "roles/secretmanager.secretAccessor"
        secret = grant.inputs["secretId"]
        assert re.fullmatch(rf"projects/{stack.project}/secrets/[A-Za-z0-9_-]+", secret)
        assert grant.inputs["member"].startswith("serviceAccount:") and "," not in grant.inputs["member"]
        seen.add((secret.rsplit("/", 1)[-1], grant.inputs["member"]))
    expected = {
        (secret, f"serviceAccount:{email(stack, WORKLOADS[workload].account_id)}")
        for secret, workloads in ACCESSORS.items()
        for workload in workloads
    }
    # the GitHub token of Cloud Build's repository connection: read by Cloud Build's service agent only
    expected.add(
        (
            names.SECRET_GITHUB_TOKEN,
            f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-cloudbuild.iam.gserviceaccount.com",
        )
    )
    assert seen == expected and len(grants) == len(expected)
    secret_roles = [
        r
        for r in stack.resources
        if "secretmanager" in str(r.inputs.get("role", "")) and not r.type.startswith("gcp:secretmanager/")
    ]
    assert not secret_roles, "no secret role may be granted above a single secret"


def test_secrets_and_their_generated_values(stack: StackRun) -> None:
    secrets = {s.inputs["secretId"] for s in stack.of_type("gcp:secretmanager/secret:Secret")}
    assert secrets == set(ACCESSORS)
    assert names.SECRET_TOKENIZATION_KEY in secrets
    versions_by_secret = {
        v.inputs["secret"].rsplit("/", 1)[-1]: v.inputs
        for v in stack.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    }
    assert set(versions_by_secret) == secrets
    assert versions_by_secret[names.SECRET_TOKENIZATION_KEY]["isSecretDataBase64"] is True
    # Every payload is a Pulumi secret: encrypted in the state, masked in previews.
    assert all(secret_value(v["secretData"])[0] for v in versions_by_secret.values())
    assert secret_value(versions_by_secret[names.SECRET_ALERT_WEBHOOK]["secretData"]) == (True, WEBHOOK)
    key = stack.one("random:index/randomBytes:RandomBytes").inputs
    assert key["length"] == 32  # churnops refuses a tokenization key shorter than 32 bytes
    passwords = stack.of_type("random:index/randomPassword:RandomPassword")
    assert all(p.inputs["length"] >= 32 and p.inputs["special"] is False for p in passwords)


def test_workload_identity_bindings_match_the_kubernetes_service_accounts(stack: StackRun) -> None:
    pool = f"{stack.project}.svc.id.goog"
    grants = stack.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    bindings = {(b.inputs["serviceAccountId"].rsplit("/", 1)[-1], b.inputs["member"]) for b in grants}
    assert all(b.inputs["role"] == "roles/iam.workloadIdentityUser" for b in grants)
    expected = {
        (email(stack, identity.gsa), f"serviceAccount:{pool}[{identity.namespace}/{identity.ksa}]")
        for identity in platform.IDENTITIES.values()
        if identity.ksa
    } | {
        (email(stack, names.GSA_DEPLOYER), f"serviceAccount:{pool}[{namespace}/{ksa}]")
        for namespace, ksa in platform.DEPLOYER_KSAS
    }
    # one identity per workload and environment: the predictors, transformers and each pipeline
    assert f"serviceAccount:{pool}[churnops-production/churnops-transformer]" in {m for _, m in expected}
    assert f"serviceAccount:{pool}[kubeflow/churnops-ingest]" in {m for _, m in expected}
    assert bindings == expected
    # The Kubernetes side carries the matching annotation.
    ksas = stack.of_type("kubernetes:core/v1:ServiceAccount") + stack.of_type("kubernetes:core/v1:ServiceAccountPatch")
    annotated = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs["metadata"]["annotations"][
            "iam.gke.io/gcp-service-account"
        ]
        for r in ksas
    }
    for gsa, member in expected:
        namespace, ksa = member.split("[", 1)[1].rstrip("]").split("/")
        assert annotated[(namespace, ksa)] == gsa


def bucket_grants(stack: StackRun) -> dict[str, set[tuple[str, str]]]:
    """bucket name -> {(role, member)} granted on it."""
    grants: dict[str, set[tuple[str, str]]] = {}
    for grant in stack.of_type("gcp:storage/bucketIAMMember:BucketIAMMember"):
        assert "condition" not in grant.inputs
        grants.setdefault(grant.inputs["bucket"], set()).add((grant.inputs["role"], grant.inputs["member"]))
    return grants


def test_buckets_are_private_with_uniform_access_except_the_badge(stack: StackRun) -> None:
    buckets = {b.inputs["name"]: b.inputs for b in stack.of_type("gcp:storage/bucket:Bucket")}
    assert set(buckets) == {names.bucket_name(stack.project, p) for p in names.BUCKET_PURPOSES}
    assert set(names.BUCKET_PURPOSES) == {"raw", "lake", "artifacts", "build", "badges"}
    badges = names.bucket_name(stack.project, "badges")
    for name, bucket in buckets.items():
        assert bucket["uniformBucketLevelAccess"] is True
        assert bucket["publicAccessPrevention"] == ("inherited" if name == badges else "enforced")
    raw = buckets[names.bucket_name(stack.project, "raw")]
    days = stack.config["churnops:storage"]["rawRetentionDays"]
    assert raw["lifecycleRules"] == [{"action": {"type": "Delete"}, "condition": {"age": days}}]
    # Versioned artifacts: a generation the purge overwrote or deleted is gone within the configured days.
    artifacts = buckets[names.bucket_name(stack.project, "artifacts")]
    noncurrent = stack.config["churnops:storage"]["artifactsNoncurrentDays"]
    assert artifacts["versioning"] == {"enabled": True} and 1 <= noncurrent <= 7
    assert artifacts["lifecycleRules"] == [
        {"action": {"type": "Delete"}, "condition": {"daysSinceNoncurrentTime": noncurrent}}
    ]
    grants = bucket_grants(stack)
    public = {
        (bucket, role)
        for bucket, pairs in grants.items()
        for role, member in pairs
        if not member.startswith("serviceAccount:")
    }
    assert public == {(badges, "roles/storage.objectViewer")}  # allUsers may read the badge, nothing else
    assert all(
        member == "allUsers"
        for pairs in grants.values()
        for _, member in pairs
        if not member.startswith("serviceAccount:")
    )


def test_data_residency_is_what_the_compliance_section_states(stack: StackRun) -> None:
    """docs/security.md, Compliance: buckets in the EU multi-region, the stack in europe-west1, secrets
    replicated automatically (Google chooses where)."""
    assert stack.config["gcp:region"] == "europe-west1"
    assert {b.inputs["location"] for b in stack.of_type("gcp:storage/bucket:Bucket")} == {"EU"}
    secrets = stack.of_type("gcp:secretmanager/secret:Secret")
    assert secrets and all(s.inputs["replication"] == {"auto": {}} for s in secrets)


def test_only_the_purge_pipeline_may_change_the_raw_bucket(stack: StackRun) -> None:
    """Ingest only reads raw objects; the erasure purge (its own identity) rewrites and deletes them."""
    raw = bucket_grants(stack)[names.bucket_name(stack.project, "raw")]
    purge = platform.identity(platform.PIPELINE_IDENTITY["purge"])
    ingest = platform.identity(platform.PIPELINE_IDENTITY["ingest"])
    assert raw == {
        ("roles/storage.objectViewer", f"serviceAccount:{email(stack, str(ingest.gsa))}"),
        ("roles/storage.objectAdmin", f"serviceAccount:{email(stack, str(purge.gsa))}"),
    }
    artifacts = bucket_grants(stack)[names.bucket_name(stack.project, "artifacts")]
    assert ("roles/storage.objectAdmin", f"serviceAccount:{email(stack, str(purge.gsa))}") in artifacts


def test_the_build_writes_its_own_buckets_only(stack: StackRun) -> None:
    deployer = f"serviceAccount:{email(stack, names.GSA_DEPLOYER)}"
    writes = {
        bucket: {role for role, member in pairs if member == deployer} for bucket, pairs in bucket_grants(stack).items()
    }
    # builds/<commit>/ lives in a bucket of its own: the bucket-level role reaches nothing else
    assert {bucket: roles for bucket, roles in writes.items() if roles} == {
        names.bucket_name(stack.project, "build"): {"roles/storage.objectUser"},
        names.bucket_name(stack.project, "badges"): {"roles/storage.objectUser"},
    }


def test_cloud_build_triggers_run_as_the_deployer(stack: StackRun) -> None:
    deployer = email(stack, names.GSA_DEPLOYER)
    triggers = {t.inputs["name"]: t.inputs for t in stack.of_type("gcp:cloudbuild/trigger:Trigger")}
    assert set(triggers) == {
        "churnops-ci",
        "churnops-promote",
        "churnops-promote-manual",
        "churnops-train",
        "churnops-attest",
    }
    attest = triggers.pop("churnops-attest")  # the attestor's (test_the_attestation_build_...)
    assert attest["location"] == stack.config["gcp:region"]
    for trigger in triggers.values():
        assert trigger["serviceAccount"] == f"projects/{stack.project}/serviceAccounts/{deployer}"
    repository = f"{stack.one('gcp:cloudbuildv2/repository:Repository').name}-id"
    assert triggers["churnops-ci"]["repositoryEventConfig"] == {"repository": repository, "push": {"branch": "^main$"}}
    assert triggers["churnops-ci"]["filename"] == names.BUILD_CI
    assert "tag" in triggers["churnops-promote"]["repositoryEventConfig"]["push"]
    for manual in ("churnops-promote-manual", "churnops-train"):
        assert triggers[manual]["sourceToBuild"]["repository"] == repository
        assert triggers[manual]["gitFileSource"]["repository"] == repository
    assert {t["location"] for t in triggers.values()} == {stack.config["gcp:region"]}
    for promotion in ("churnops-promote", "churnops-promote-manual"):
        assert triggers[promotion]["approvalConfig"] == {"approvalRequired": True}
        build_file = triggers[promotion].get("filename") or triggers[promotion]["gitFileSource"]["path"]
        assert build_file == names.BUILD_PROMOTE
    passed = {"_REGION": stack.config["gcp:region"], "_CLUSTER_LOCATION": stack.config["churnops:cluster"]["location"]}
    assert all(t["substitutions"] == passed for t in triggers.values())
    topic = stack.one("gcp:pubsub/topic:Topic", name="cicd-train")
    assert topic.inputs["name"] == names.TRAINING_TOPIC
    assert triggers["churnops-train"]["pubsubConfig"]["topic"] == f"{topic.name}-id"
    schedule = stack.one("gcp:cloudscheduler/job:Job").inputs
    assert schedule["pubsubTarget"]["topicName"] == f"{topic.name}-id"
    assert schedule["schedule"] == stack.config["churnops:cicd"]["trainingSchedule"]
    deployer_roles = sorted(
        r.inputs["role"]
        for r in stack.of_type("gcp:projects/iAMMember:IAMMember")
        if r.inputs["member"] == f"serviceAccount:{deployer}"
    )
    assert deployer_roles == [
        "roles/cloudbuild.workerPoolUser",
        "roles/container.clusterViewer",
        "roles/logging.logWriter",
        "roles/monitoring.viewer",  # the canary analysis reads Managed Service for Prometheus
    ]
    pool = stack.one("gcp:cloudbuild/workerPool:WorkerPool").inputs
    assert pool["name"] == names.WORKER_POOL and pool["location"] == stack.config["gcp:region"]
    assert pool["networkConfig"]["peeredNetwork"] == stack.one("gcp:compute/network:Network").name + "-id"


def test_only_the_attestor_signs_and_only_with_the_attestor(stack: StackRun) -> None:
    member = f"serviceAccount:{email(stack, platform.identity('attestor').gsa)}"
    region = stack.config["gcp:region"]
    signers = [g.inputs for g in stack.of_type("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")]
    assert [g for g in signers if g["role"].startswith("roles/cloudkms.signer")] == [
        {
            "cryptoKeyId": f"projects/{stack.project}/locations/{region}/keyRings/{names.ATTESTOR_KEYRING}/cryptoKeys/"
            f"{names.ATTESTOR_KEY}",
            "role": "roles/cloudkms.signerVerifier",
            "member": member,
        }
    ]
    attach = stack.one("gcp:containeranalysis/noteIamMember:NoteIamMember").inputs
    assert (attach["note"], attach["role"], attach["member"]) == (
        names.ATTESTOR,
        "roles/containeranalysis.notes.attacher",
        member,
    )
    attestor = {
        (g.inputs["attestor"], g.inputs["role"], g.inputs["member"])
        for g in stack.of_type("gcp:binaryauthorization/attestorIamMember:AttestorIamMember")
    }
    assert attestor == {
        (names.ATTESTOR, "roles/binaryauthorization.attestorsViewer", member),
        (names.ATTESTOR, "roles/binaryauthorization.attestorsVerifier", member),
    }
    key = stack.one("gcp:kms/cryptoKey:CryptoKey", name="cluster-attestor-key").inputs
    assert key["purpose"] == "ASYMMETRIC_SIGN" and key["versionTemplate"]["algorithm"] == "EC_SIGN_P256_SHA256"
    keyring = stack.one("gcp:kms/keyRing:KeyRing", name="cluster-attestor-keyring").inputs
    assert keyring["name"] == names.ATTESTOR_KEYRING
    # nobody may act as the attestor (a build submitted as it by another account would sign)
    attestor_account = f"projects/{stack.project}/serviceAccounts/{member.removeprefix('serviceAccount:')}"
    assert not [
        g
        for g in stack.of_type("gcp:serviceaccount/iAMMember:IAMMember")
        if g.inputs["serviceAccountId"] == attestor_account
    ]


def test_the_attestation_build_is_asked_for_by_the_ci_build_and_runs_as_the_attestor(stack: StackRun) -> None:
    attestor = email(stack, platform.identity("attestor").gsa)
    trigger = stack.one("gcp:cloudbuild/trigger:Trigger", name="cicd-attest").inputs
    assert trigger["serviceAccount"] == f"projects/{stack.project}/serviceAccounts/{attestor}"
    assert trigger["gitFileSource"]["path"] == platform.BUILD_ATTEST
    assert trigger["gitFileSource"]["revision"] == "refs/heads/main"  # the reviewed config, never the message's
    assert trigger["sourceToBuild"]["ref"] == "refs/heads/main"
    topic = stack.one("gcp:pubsub/topic:Topic", name="cicd-attest")
    assert topic.inputs["name"] == platform.ATTEST_TOPIC
    assert trigger["pubsubConfig"]["topic"] == f"{topic.name}-id"
    assert trigger["substitutions"] == {
        "_REGION": stack.config["gcp:region"],
        "_REQUEST": "$(body.message.data.request)",
        "_COMMIT": "$(body.message.data.commit)",
        "_COMPONENTS_IMAGE": "$(body.message.data.components)",
        "_SERVING_IMAGE": "$(body.message.data.serving)",
    }
    publishers = {
        (g.inputs["topic"], g.inputs["role"], g.inputs["member"])
        for g in stack.of_type("gcp:pubsub/topicIAMMember:TopicIAMMember")
    }
    assert publishers == {
        (platform.ATTEST_TOPIC, "roles/pubsub.publisher", f"serviceAccount:{email(stack, names.GSA_DEPLOYER)}")
    }


def glob(pattern: str) -> re.Pattern[str]:
    """A Binary Authorization name pattern as a regex (``*`` within one path segment, ``**`` across)."""
    parts = (re.escape(piece).replace(r"\*", "[^/]*") for piece in pattern.split("**"))
    return re.compile(".*".join(parts) + "$")


def test_the_projects_images_are_admitted_only_with_the_gate_attestation(stack: StackRun) -> None:
    policy = stack.one("gcp:binaryauthorization/policy:Policy").inputs
    registry = f"{stack.config['gcp:region']}-docker.pkg.dev/{stack.project}/{names.REGISTRY_REPOSITORY}"
    allowed = [glob(p["namePattern"]) for p in policy["admissionWhitelistPatterns"]]
    assert glob("docker.io/kserve/*").match("docker.io/kserve/kserve-controller")  # the matcher works
    for image in names.IMAGES:
        reference = f"{registry}/{image}@sha256:{'0' * 64}"
        assert not any(pattern.match(reference) for pattern in allowed), reference
    rule = policy["defaultAdmissionRule"]  # what every image the allow-list does not name must pass
    assert rule["evaluationMode"] == "REQUIRE_ATTESTATION" and rule["requireAttestationsBies"] == [names.ATTESTOR]
    assert "clusterAdmissionRules" not in policy  # no cluster-specific rule bypasses it


def test_platform_charts_and_manifests_are_pinned(stack: StackRun) -> None:
    releases = {r.inputs["name"]: r.inputs for r in stack.of_type("kubernetes:helm.sh/v3:Release")}
    assert set(releases) == {
        "cert-manager",
        "external-secrets",
        "knative-operator",
        "kserve-crd",
        "kserve",
        "lakefs",
        "mlflow",
    }
    for release in releases.values():
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", release["version"]), release
    assert releases["kserve"]["values"]["kserve"]["controller"]["deploymentMode"] == "Serverless"
    # KFP from its release manifests at the pinned version, vendored (no remote kustomization to resolve)
    assert not stack.of_type("kubernetes:kustomize/v2:Directory")
    groups = {g.name: g.inputs["objs"] for g in stack.of_type("kubernetes:yaml/v2:ConfigGroup")}
    assert set(groups) == {"platform-kfp-cluster", "platform-kfp"}
    images = {
        c["image"]
        for obj in groups["platform-kfp"]
        if obj["kind"] == "Deployment"
        for c in obj["spec"]["template"]["spec"]["containers"]
    }
    assert f"ghcr.io/kubeflow/kfp-api-server:{versions.KFP}" in images
    # the namespace and the launcher defaults are this program's own objects, not declared twice
    assert not [
        o
        for objs in groups.values()
        for o in objs
        if (o["kind"], o["metadata"]["name"]) in {("Namespace", "kubeflow"), ("ConfigMap", "kfp-launcher")}
    ]
    serving = stack.one("kubernetes:operator.knative.dev/v1beta1:KnativeServing").inputs
    assert serving["spec"]["ingress"]["kourier"]["enabled"] is True
    # the predictor's manifest takes CHURNOPS_SERVICE_ACCOUNT from spec.serviceAccountName (downward API)
    assert serving["spec"]["config"]["features"]["kubernetes.podspec-fieldref"] == "enabled"


def test_namespaces_and_service_accounts_the_manifests_use(stack: StackRun) -> None:
    namespaces = {
        n.inputs["metadata"]["name"]: n.inputs["metadata"]["labels"]
        for n in stack.of_type("kubernetes:core/v1:Namespace")
    }
    for namespace in (names.NS_KUBEFLOW, names.NS_STAGING, names.NS_PRODUCTION, names.NS_LAKEFS, names.NS_MLFLOW):
        assert namespace in namespaces
    for namespace in names.SERVING_NAMESPACES:
        assert namespaces[namespace]["pod-security.kubernetes.io/enforce"] == "restricted"
    launcher = stack.one("kubernetes:core/v1:ConfigMap", "platform-kfp-launcher").inputs
    artifacts = names.bucket_name(stack.project, "artifacts")
    assert launcher["data"]["defaultPipelineRoot"] == f"gs://{artifacts}/pipeline-root"


def test_cloud_sql_is_private_and_requires_tls(stack: StackRun) -> None:
    instance = stack.one("gcp:sql/databaseInstance:DatabaseInstance").inputs
    ip = instance["settings"]["ipConfiguration"]
    assert ip["ipv4Enabled"] is False and ip["privateNetwork"] and ip["sslMode"] == "ENCRYPTED_ONLY"
    ha = stack.config["churnops:database"]["highAvailability"]
    assert instance["settings"]["availabilityType"] == ("REGIONAL" if ha else "ZONAL")
    assert {d.inputs["name"] for d in stack.of_type("gcp:sql/database:Database")} == {"mlflow", "mlflow_auth", "lakefs"}


def test_alerts_notify_the_webhook(stack: StackRun) -> None:
    channel = stack.one("gcp:monitoring/notificationChannel:NotificationChannel").inputs
    assert secret_value(channel["labels"]) == (True, {"url": WEBHOOK})  # the URL makes the labels secret
    metrics = {m.inputs["name"]: m.inputs for m in stack.of_type("gcp:logging/metric:Metric")}
    assert "jsonPayload.alert=true" in metrics["churnops_ingest_anomalies"]["filter"]
    policies = stack.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    logged = [p for p in policies if "conditionThreshold" in p.inputs["conditions"][0]]
    filters = sorted(p.inputs["conditions"][0]["conditionThreshold"]["filter"] for p in logged)
    assert [f.split('"')[1] for f in filters] == [f"logging.googleapis.com/user/{m}" for m in sorted(metrics)]
    channel_name = f"projects/{stack.project}/notificationChannels/monitoring-webhook"
    assert all(p.inputs["notificationChannels"] == [channel_name] for p in policies)


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("churnops:cluster", {"authorizedNetworks": [{"name": "all", "cidr": "0.0.0.0/0"}]}, "everyone"),
        ("churnops:cluster", {"authorizedNetworks": []}, "must list"),
        ("churnops:cluster", {"releaseChannel": "UNSPECIFIED"}, "releaseChannel"),
        ("churnops:network", {"podsCidr": "10.10.0.0/16"}, "overlaps"),
        ("churnops:network", {"masterCidr": "172.16.0.0/24"}, "/28"),
        ("churnops:storage", {"rawRetentionDays": 0}, "rawRetentionDays"),
        ("churnops:storage", {"rawRetentionDays": 31}, "rawRetentionDays must be 1 to 30"),
        ("churnops:storage", {"artifactsNoncurrentDays": 0}, "artifactsNoncurrentDays must be 1 to 7"),
        ("churnops:storage", {"artifactsNoncurrentDays": 8}, "artifactsNoncurrentDays must be 1 to 7"),
    ],
)
def test_configuration_that_would_weaken_a_control_is_refused(section: str, change: dict, message: str) -> None:
    config = stack_config("staging")
    config[section] = {**config[section], **change}
    pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    with pytest.raises(ConfigError, match=message):
        load()


def test_pipeline_tasks_and_the_transformer_get_their_secrets_from_secret_manager(stack: StackRun) -> None:
    stores = {
        r.inputs["metadata"]["namespace"]: r.inputs["spec"]["provider"]["gcpsm"]
        for r in stack.of_type("kubernetes:external-secrets.io/v1:SecretStore")
    }
    rendered = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs["spec"]
        for r in stack.of_type("kubernetes:external-secrets.io/v1:ExternalSecret")
    }
    lake = {
        "lakefs-access-key-id": names.SECRET_LAKEFS_ACCESS_KEY_ID,
        "lakefs-secret-access-key": names.SECRET_LAKEFS_SECRET_ACCESS_KEY,
    }
    pipeline_refs = {**lake, "alert-webhook-url": names.SECRET_ALERT_WEBHOOK}
    wanted = {
        (names.NS_KUBEFLOW, names.K8S_SECRET_PIPELINES): ("pipeline-ingest", "churnops-ingest", pipeline_refs),
        **{
            (namespace, names.K8S_SECRET_SERVING_LAKE): (f"transformer-{env}", "churnops-transformer", lake)
            for env, namespace in platform.SERVING_NAMESPACES.items()
        },
    }
    for (namespace, target), (workload, ksa, refs) in wanted.items():
        spec = rendered[(namespace, target)]
        # the Secret the workload references by name, with exactly the keys it reads
        assert spec["target"]["name"] == target and set(spec["target"]["template"]["data"]) == set(refs)
        assert {d["secretKey"]: d["remoteRef"]["key"] for d in spec["data"]} == refs
        # read as the workload's own identity, which may access exactly these secrets (and no more is asked)
        assert stores[namespace] == {
            "projectID": stack.project,
            "auth": {"workloadIdentity": {"serviceAccountRef": {"name": ksa}}},
        }
        assert all(workload in ACCESSORS[secret] for secret in refs.values())
    # the names the pipelines and the InferenceService reference
    assert names.K8S_SECRET_PIPELINES == "churnops-pipelines"
    assert names.K8S_SECRET_SERVING_LAKE == "churnops-serving-lake"


def _daily_minute(cron: str, seconds_field: bool = False) -> int:
    """Minutes after midnight at which a daily cron fires (``M H * * *``; KFP's crons lead with seconds)."""
    fields = cron.split()[1:] if seconds_field else cron.split()
    assert len(fields) == 5 and fields[2:] == ["*", "*", "*"], f"not a daily cron: {cron!r}"
    return int(fields[1]) * 60 + int(fields[0])


def test_training_is_scheduled_before_the_daily_pipelines_that_use_its_model(stack: StackRun) -> None:
    """Cloud Scheduler's training time (this stack's setting) leads scoring by the declared lead, and the drift
    check follows scoring, all in UTC, so each day's scoring and drift check use that day's model."""
    cicd = stack.config["churnops:cicd"]
    assert cicd["timeZone"] in {"Etc/UTC", "UTC"}
    training = _daily_minute(cicd["trainingSchedule"])
    scoring = _daily_minute(platform.PIPELINE_CRONS["scoring"] or "", seconds_field=True)
    drift = _daily_minute(platform.PIPELINE_CRONS["drift"] or "", seconds_field=True)
    assert training + platform.TRAINING_LEAD_MINUTES <= scoring < drift


# The Kubernetes API verbs each call of the deploy's dynamic client needs (a server-side apply is a patch that
# creates the object when it does not exist yet).
DYNAMIC_CLIENT_VERBS = {
    "server_side_apply": {"patch", "create"},
    "patch": {"patch"},
    "get": {"get"},
    "resources": set(),
}
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def test_the_deployer_may_write_in_the_serving_namespaces_exactly_as_the_deploy_client_writes(stack: StackRun) -> None:
    """Every call the deploy makes through its Kubernetes client (churnops/deploy/kube.py) is allowed on the objects
    it applies, and the deployer holds no write verb the client never uses (no update, no delete)."""
    calls = set(re.findall(r"self\._dynamic\.([a-z_]+)", (REPOSITORY / "churnops/deploy/kube.py").read_text()))
    assert calls <= set(DYNAMIC_CLIENT_VERBS), (
        f"a client call this test does not know: {calls - set(DYNAMIC_CLIENT_VERBS)}"
    )
    needed = set().union(*(DYNAMIC_CLIENT_VERBS[call] for call in calls)) & WRITE_VERBS
    assert needed == {"patch", "create"}
    roles = [
        role.inputs
        for role in stack.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
        if role.inputs["metadata"]["name"] == names.KSA_DEPLOYER
        and role.inputs["metadata"]["namespace"] in names.SERVING_NAMESPACES
    ]
    assert {role["metadata"]["namespace"] for role in roles} == set(names.SERVING_NAMESPACES)
    for role in roles:
        for rule in role["rules"]:
            if rule["resources"] == ["services/proxy"]:
                continue  # the smoke test's requests to a revision, not writes to an object
            writes = set(rule["verbs"]) & WRITE_VERBS
            assert not writes or writes == needed, (role["metadata"]["namespace"], rule)
        isvc = [rule for rule in role["rules"] if "inferenceservices" in rule["resources"]]
        assert len(isvc) == 1 and needed <= set(isvc[0]["verbs"])


def test_the_builds_reach_exactly_the_in_cluster_services_they_name_through_the_api_server(stack: StackRun) -> None:
    named = {
        (namespace, service)
        for config in REPOSITORY.glob("cloudbuild*.yaml")
        for namespace, service in re.findall(r"k8s://([a-z0-9-]+)/([a-z0-9-]+:[a-z0-9-]+)", config.read_text())
    }
    assert named == {(names.NS_KUBEFLOW, "ml-pipeline:8888"), (names.NS_MLFLOW, "mlflow:5000")}
    deployer = {
        role.inputs["metadata"]["namespace"]: role.inputs["rules"]
        for role in stack.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
        if role.inputs["metadata"]["name"] == names.KSA_DEPLOYER
    }
    for namespace, service in named:
        proxied = [rule for rule in deployer[namespace] if rule["resources"] == ["services/proxy"]]
        assert len(proxied) == 1 and service in proxied[0]["resourceNames"]
        assert proxied[0]["resourceNames"] == [service.split(":")[0], service]  # that service, nothing else
        assert {"get", "create"} <= set(proxied[0]["verbs"]) <= {"get", "create", "delete"}
        others = [rule for rule in deployer[namespace] if rule not in proxied]
        assert all(rule["verbs"] == ["get"] and rule.get("resourceNames") == [service.split(":")[0]] for rule in others)


def test_the_settings_config_map_pipeline_tasks_read_exists_in_kubeflow(stack: StackRun) -> None:
    settings = stack.one("kubernetes:core/v1:ConfigMap", "platform-pipeline-settings").inputs
    assert settings["metadata"] == {"name": platform.CONFIG_MAP_PIPELINES, "namespace": names.NS_KUBEFLOW}
    assert set(settings["data"]) == set(platform.PIPELINE_CONFIG_KEYS)
    assert settings["data"]["CHURNOPS_GCP_PROJECT"] == stack.project
    assert settings["data"]["CHURNOPS_RAW_BUCKET"] == names.bucket_name(stack.project, "raw")


def test_each_pipeline_runs_as_its_own_bound_service_account_with_kfp_runner_rights(stack: StackRun) -> None:
    accounts = {
        (a.inputs["metadata"]["namespace"], a.inputs["metadata"]["name"]): a.inputs
        for a in stack.of_type("kubernetes:core/v1:ServiceAccount")
    }
    bindings = [
        b.inputs
        for b in stack.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
        if b.inputs["roleRef"]["name"] == "pipeline-runner"
    ]
    for pipeline, ksa in platform.pipeline_service_accounts().items():
        identity = platform.identity(platform.PIPELINE_IDENTITY[pipeline])
        account = accounts[(names.NS_KUBEFLOW, ksa)]
        assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == email(stack, identity.gsa)
        assert account["automountServiceAccountToken"] is True  # KFP's launcher reads its pod
        assert any(
            b["subjects"] == [{"kind": "ServiceAccount", "name": ksa, "namespace": names.NS_KUBEFLOW}] for b in bindings
        ), pipeline


def test_tainted_pools_carry_the_taint_their_workloads_tolerate(stack: StackRun) -> None:
    taints = {p.inputs["name"]: p.inputs["nodeConfig"].get("taints", []) for p in stack.of_type(NODE_POOL)}
    assert taints[names.POOL_SYSTEM] == []
    for pool in platform.TAINTED_POOLS:
        assert taints[pool] == [{"key": platform.POOL_TAINT_KEY, "value": pool, "effect": "NO_SCHEDULE"}]


def test_the_smoke_test_reaches_new_revisions_through_the_api_server(stack: StackRun) -> None:
    """churnops.deploy.release smoke-tests k8s://<serving namespace>/<revision>-private:http through the API server:
    the deployer may proxy to services there (and nowhere else), and the pods admit the control plane's range."""
    deployer = {
        role.inputs["metadata"]["namespace"]: role.inputs["rules"]
        for role in stack.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
        if role.inputs["metadata"]["name"] == names.KSA_DEPLOYER
    }
    policies = {
        policy.inputs["metadata"]["namespace"]: policy.inputs["spec"]
        for policy in stack.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if policy.inputs["metadata"]["name"] == "serving-from-control-plane"
    }
    master = stack.config["churnops:network"]["masterCidr"]
    for namespace in names.SERVING_NAMESPACES:
        proxied = [rule for rule in deployer[namespace] if rule["resources"] == ["services/proxy"]]
        assert len(proxied) == 1 and set(proxied[0]["verbs"]) == {"get", "create"}
        spec = policies[namespace]
        assert spec["podSelector"] == {"matchLabels": {"serving.kserve.io/inferenceservice": "churn-predictor"}}
        queue_proxy = [{"port": 8012, "protocol": "TCP"}]
        assert spec["ingress"] == [{"from": [{"ipBlock": {"cidr": master}}], "ports": queue_proxy}]
    assert set(policies) == set(names.SERVING_NAMESPACES)


def test_the_repository_connection_reads_its_token_from_secret_manager(stack: StackRun) -> None:
    """Cloud Build's GitHub connection is a resource of the program: the App installation from the stack's
    configuration, the OAuth token by reference to its Secret Manager secret (never a value), which only
    Cloud Build's service agent may read; the repository is linked through it."""
    token = f"projects/{stack.project}/secrets/{names.SECRET_GITHUB_TOKEN}"
    connection = stack.one("gcp:cloudbuildv2/connection:Connection")
    assert connection.inputs["name"] == names.BUILD_CONNECTION
    assert connection.inputs["location"] == stack.config["gcp:region"]
    github = connection.inputs["githubConfig"]
    assert github["appInstallationId"] == stack.config["churnops:cicd"]["githubAppInstallationId"]
    assert github["authorizerCredential"] == {"oauthTokenSecretVersion": f"{token}/versions/latest"}
    repository = stack.one("gcp:cloudbuildv2/repository:Repository").inputs
    owner, repo = stack.config["churnops:cicd"]["githubOwner"], stack.config["churnops:cicd"]["githubRepo"]
    assert repository["remoteUri"] == f"https://github.com/{owner}/{repo}.git"
    assert repository["parentConnection"] == names.BUILD_CONNECTION
    readers = [
        g.inputs
        for g in stack.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
        if g.inputs["secretId"] == token
    ]
    agent = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-cloudbuild.iam.gserviceaccount.com"
    assert readers == [{"secretId": token, "role": "roles/secretmanager.secretAccessor", "member": agent}]
    # the program creates no version of it: the token never passes through the program or its state
    assert token not in {s.inputs.get("secret") for s in stack.of_type("gcp:secretmanager/secretVersion:SecretVersion")}


@pytest.mark.parametrize("installation", [None, 0, "12345678"])
def test_a_missing_app_installation_is_refused_with_the_step_to_take(installation: Any) -> None:
    config = stack_config("staging")
    cicd = {key: value for key, value in config["churnops:cicd"].items() if key != "githubAppInstallationId"}
    config["churnops:cicd"] = cicd if installation is None else {**cicd, "githubAppInstallationId": installation}
    pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    with pytest.raises(ConfigError, match="githubAppInstallationId must be the installation id of the Cloud Build"):
        load()


@pytest.mark.parametrize("stack_name", ["staging", "prod"])
def test_the_stack_files_leave_the_app_installation_to_the_operator(stack_name: str) -> None:
    """No made-up installation id is committed: a stack as checked out is refused until step 5's id is set."""
    committed = yaml.safe_load((PROGRAM / f"Pulumi.{stack_name}.yaml").read_text(encoding="utf-8"))["config"]
    assert "githubAppInstallationId" not in committed["churnops:cicd"]
    pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in committed.items()})
    with pytest.raises(ConfigError, match="'First pulumi up', step 5"):
        load()


def test_day_one_operations_alert_on_failed_builds_and_production_5xx_and_latency(stack: StackRun) -> None:
    metrics = {m.inputs["name"]: m.inputs for m in stack.of_type("gcp:logging/metric:Metric")}
    assert metrics["churnops_build_failures"]["filter"] == 'resource.type="build" AND textPayload=~"^ERROR: "'
    policies = {p.inputs["displayName"]: p.inputs for p in stack.of_type("gcp:monitoring/alertPolicy:AlertPolicy")}
    build = policies["churnops build failed"]["conditions"][0]["conditionThreshold"]
    assert 'resource.type="build"' in build["filter"] and build["thresholdValue"] == 0
    errors = policies["churnops production 5xx"]["conditions"][0]["conditionPrometheusQueryLanguage"]
    latency = policies["churnops production p99 latency"]["conditions"][0]["conditionPrometheusQueryLanguage"]
    # the queue-proxy's metrics and labels the canary analysis uses too (the platform declaration's)
    assert errors["query"] == (
        'sum(rate(revision_app_request_count{namespace_name="churnops-production",response_code_class="5xx"}[5m])) '
        '/ sum(rate(revision_app_request_count{namespace_name="churnops-production"}[5m])) > 0.02'
    )
    assert latency["query"] == (
        "histogram_quantile(0.99, sum by (le) (rate(revision_app_request_latencies_bucket"
        '{namespace_name="churnops-production"}[5m]))) > 1000'
    )
    assert errors["duration"] == latency["duration"] == "300s"
    channel_name = f"projects/{stack.project}/notificationChannels/monitoring-webhook"
    assert all(p["notificationChannels"] == [channel_name] for p in policies.values())


def test_the_cluster_has_a_maintenance_window_and_the_pipeline_metadata_store_is_backed_up(stack: StackRun) -> None:
    cluster = stack.one(CLUSTER).inputs
    window = cluster["maintenancePolicy"]["recurringWindow"]
    assert window["recurrence"] == "FREQ=WEEKLY;BYDAY=SA,SU"
    assert window["startTime"].endswith("T01:00:00Z") and window["endTime"].endswith("T05:00:00Z")
    assert cluster["addonsConfig"]["gkeBackupAgentConfig"] == {"enabled": True}
    plan = stack.one("gcp:gkebackup/backupPlan:BackupPlan").inputs
    assert plan["cluster"] == f"{stack.one(CLUSTER).name}-id"
    assert plan["backupConfig"] == {
        "includeVolumeData": True,
        "includeSecrets": False,
        "selectedNamespaces": {"namespaces": [names.NS_KUBEFLOW]},
    }
    assert plan["backupSchedule"] == {"cronSchedule": "0 2 * * *"}
    assert plan["retentionPolicy"] == {"backupRetainDays": 30}


def test_the_serving_ingress_is_internal_unless_configured(stack: StackRun) -> None:
    serving = stack.one("kubernetes:operator.knative.dev/v1beta1:KnativeServing").inputs
    public = stack.config["churnops:cluster"].get("publicIngress", False)
    assert serving["spec"]["ingress"]["kourier"]["service-type"] == ("LoadBalancer" if public else "ClusterIP")
    assert public is False  # neither stack exposes it


def test_public_ingress_is_a_stack_setting() -> None:
    configured = stack_config("staging")
    configured["churnops:cluster"] = {**configured["churnops:cluster"], "publicIngress": True}
    run = run_program("staging", configured)
    serving = run.one("kubernetes:operator.knative.dev/v1beta1:KnativeServing").inputs
    assert serving["spec"]["ingress"]["kourier"]["service-type"] == "LoadBalancer"
