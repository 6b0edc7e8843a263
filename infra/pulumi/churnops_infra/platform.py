"""What runs inside the cluster: namespaces, service accounts, RBAC, and the pinned platform services.

Kubeflow Pipelines (its release manifests, rendered and vendored under ``infra/pulumi/upstream``),
Knative Serving with Kourier (through the Knative operator), KServe in serverless mode, cert-manager
(KServe's webhook certificates), External Secrets Operator (Secret Manager -> Kubernetes Secrets for
the pipelines, the transformer, lakeFS and MLflow), lakeFS and MLflow (its basic-auth app, on the components
image, and a Job that creates its users). Every Helm release is pinned
to an exact chart version (:mod:`churnops_infra.versions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from churnops_infra import admission, names, netpol, versions

from churnops.platform import declaration as platform

# Pod Security Admission level per namespace (the platform declaration's).
NAMESPACES: dict[str, str] = dict(platform.NAMESPACES)
# Objects of KFP's release manifests this program declares itself (so that each has one owner): the
# namespace (with its Pod Security labels) and the launcher's defaults (the pipeline root).
OWNED_HERE: frozenset[tuple[str, str]] = frozenset({("Namespace", names.NS_KUBEFLOW), ("ConfigMap", "kfp-launcher")})
ON_SYSTEM_POOL = {names.POOL_LABEL: names.POOL_SYSTEM}
WI_ANNOTATION = platform.WI_ANNOTATION
# KFP's Role for the pods of a run (its release manifests, base/pipeline/pipeline-runner-role.yaml):
# every pipeline's service account is bound to it.
KFP_RUNNER_ROLE = "pipeline-runner"
# What the deployer may do in a serving namespace: manage InferenceServices and read what they create.
# The deploy writes only by server-side apply (a patch, which creates what does not exist) and merge patches
# (churnops/deploy/kube.py): no update, no delete.
DEPLOYER_RULES = [
    {
        "apiGroups": ["serving.kserve.io"],
        "resources": ["inferenceservices"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps", "serviceaccounts", "services"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    {"apiGroups": [""], "resources": ["pods", "pods/log", "events"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["serving.knative.dev"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
    # The smoke test reaches each new revision's pods through the API server's service proxy (its
    # Knative private Service <revision>-private, whose name changes with every revision).
    {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get", "create"]},
]
# The API server's service proxy connects to a revision's pods (the queue-proxy's HTTP port) from the
# control plane's range; the serving namespaces' default-deny policy lets nothing else in from there.
SERVING_POD_SELECTOR = {"matchLabels": platform.serving_pod_labels()}
# In kubeflow the deployer reaches only the KFP API server (to upload pipelines and submit runs), through
# the API server's service proxy (the builds name it k8s://kubeflow/ml-pipeline:8888).
KFP_API_RULES = [
    {
        "apiGroups": [""],
        "resources": ["services/proxy"],
        "resourceNames": ["ml-pipeline", "ml-pipeline:8888"],
        "verbs": ["get", "create"],
    },
    {"apiGroups": [""], "resources": ["services"], "resourceNames": ["ml-pipeline"], "verbs": ["get"]},
]
# MLflow's Secret: the database login, the admin's and every cluster user's password (keys: the secrets' ids).
MLFLOW_SECRET = "mlflow-secrets"
MLFLOW_USERS = tuple(names.MLFLOW_CLUSTER_USERS)
MLFLOW_BOOTSTRAP_LABELS = dict(netpol.MLFLOW_BOOTSTRAP_LABELS)
COMPONENTS_USER = 10001  # the components image's user (components/Dockerfile)
MLFLOW_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": False,
    "runAsNonRoot": True,
    "privileged": False,
    "runAsUser": COMPONENTS_USER,
    "runAsGroup": COMPONENTS_USER,
}
# In mlflow the deployer reaches only the tracking server's API (k8s://mlflow/mlflow:5000): read the
# registry, move aliases (POST) and remove one (DELETE, when a rollback moves production back).
MLFLOW_API_RULES = [
    {
        "apiGroups": [""],
        "resources": ["services/proxy"],
        "resourceNames": ["mlflow", "mlflow:5000"],
        "verbs": ["get", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["services"], "resourceNames": ["mlflow"], "verbs": ["get"]},
]


@dataclass
class PlatformArgs:
    """Inputs of :class:`Platform`."""

    project: str
    cluster_name: pulumi.Input[str]
    cluster_endpoint: pulumi.Input[str]
    cluster_ca: pulumi.Input[str]
    accounts: dict[str, pulumi.Input[str]]  # workload key -> Google service account e-mail
    artifacts_bucket: pulumi.Input[str]
    database_host: pulumi.Input[str]
    control_plane_cidr: str  # where the API server's service proxy connects to pods from
    registry: str  # the Artifact Registry repository serving images come from (the admission policy's)
    depends_on: list[pulumi.Resource]  # node pools: nothing schedules before they exist
    public_ingress: bool = False  # Kourier's gateway as an external load balancer
    # The commit whose components image runs MLflow (config churnops:mlflowImageTag); None: MLflow is not installed.
    mlflow_image_tag: str | None = None


def kubeconfig(name: pulumi.Input[str], endpoint: pulumi.Input[str], ca: pulumi.Input[str]) -> pulumi.Output[str]:
    """A kubeconfig that authenticates with gke-gcloud-auth-plugin (short-lived tokens, no static credential)."""
    return pulumi.Output.json_dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {"server": pulumi.Output.concat("https://", endpoint), "certificate-authority-data": ca},
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "gke-gcloud-auth-plugin",
                            "installHint": "gcloud components install gke-gcloud-auth-plugin",
                            "provideClusterInfo": True,
                        }
                    },
                }
            ],
        }
    )


class Platform(pulumi.ComponentResource):
    """Namespaces, service accounts and the platform services, on the cluster's own provider."""

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("churnops:infra:Platform", name, None, opts)
        self._name = name
        self._public_ingress = args.public_ingress
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=kubeconfig(args.cluster_name, args.cluster_endpoint, args.cluster_ca),
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.namespaces = {
            namespace: k8s.core.v1.Namespace(
                f"{name}-ns-{namespace}",
                metadata={
                    "name": namespace,
                    "labels": {
                        "pod-security.kubernetes.io/enforce": level,
                        "pod-security.kubernetes.io/warn": "restricted",
                    },
                },
                opts=self._opts(),
            )
            for namespace, level in NAMESPACES.items()
        }
        self._service_accounts(args)
        self._deployer_rbac(args)
        self._admission(args)
        self._network_policies(args)
        cert_manager = self._release(versions.CERT_MANAGER, "cert-manager", {"crds": {"enabled": True}})
        external_secrets = self._release(versions.EXTERNAL_SECRETS, "external-secrets", {"installCRDs": True})
        self._knative()
        kserve_crd = self._release(versions.KSERVE_CRD, "kserve", {}, release="kserve-crd")
        self._release(
            versions.KSERVE,
            "kserve",
            {"kserve": {"controller": {"deploymentMode": "Serverless"}}},
            depends_on=[kserve_crd, cert_manager],
        )
        runner = self._kubeflow_pipelines(args)
        self._workload_secrets(args, external_secrets, runner)
        self._lakefs(args, external_secrets)
        if args.mlflow_image_tag is None:
            pulumi.log.warn("churnops:mlflowImageTag is not set: MLflow is not installed (docs/infrastructure.md)")
        else:
            self._mlflow(args, args.mlflow_image_tag, external_secrets)
        self.register_outputs({"namespaces": list(NAMESPACES)})

    def _opts(
        self, namespace: str | None = None, depends_on: list[pulumi.Resource] | None = None
    ) -> pulumi.ResourceOptions:
        deps = list(depends_on or [])
        if namespace is not None:
            deps.append(self.namespaces[namespace])
        return pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=deps)

    def _release(
        self,
        chart: versions.Chart,
        namespace: str,
        values: dict,
        release: str | None = None,
        depends_on: list[pulumi.Resource] | None = None,
    ) -> k8s.helm.v3.Release:
        release = release or chart.name
        return k8s.helm.v3.Release(
            f"{self._name}-{release}",
            name=release,
            chart=chart.reference,
            version=chart.version,
            repository_opts=None if chart.is_oci else {"repo": chart.repo},
            namespace=namespace,
            values=values,
            atomic=True,
            cleanup_on_fail=True,
            timeout=900,
            opts=self._opts(namespace, depends_on),
        )

    def _service_accounts(self, args: PlatformArgs) -> None:
        """Every Kubernetes service account a workload runs as, annotated with its Google identity.

        Only the accounts of processes that call the Kubernetes API mount a token: lakeFS, the
        deployer, and the pipelines (KFP's launcher in every task pod reads and patches its pod).
        """
        accounts = [
            (identity.namespace, identity.ksa, key)
            for key, identity in platform.IDENTITIES.items()
            if identity.namespace and identity.ksa
        ]
        accounts += [(namespace, ksa, "deployer") for namespace, ksa in platform.DEPLOYER_KSAS]
        pipelines = set(platform.PIPELINE_IDENTITY.values())
        self.service_accounts: dict[tuple[str, str], pulumi.Resource] = {}
        for namespace, ksa, workload in accounts:
            self.service_accounts[(namespace, ksa)] = k8s.core.v1.ServiceAccount(
                f"{self._name}-sa-{namespace}-{ksa}",
                metadata={"name": ksa, "namespace": namespace, "annotations": {WI_ANNOTATION: args.accounts[workload]}},
                automount_service_account_token=workload in ("lakefs", "deployer", *pipelines),
                opts=self._opts(namespace),
            )

    def _deployer_rbac(self, args: PlatformArgs) -> None:
        """Cloud Build (as the deployer's Google identity) and in-cluster deploy jobs (as its KSA)."""
        scopes = [(namespace, DEPLOYER_RULES) for namespace in names.SERVING_NAMESPACES]
        scopes.append((names.NS_KUBEFLOW, KFP_API_RULES))
        scopes.append((names.NS_MLFLOW, MLFLOW_API_RULES))
        for namespace, rules in scopes:
            role = k8s.rbac.v1.Role(
                f"{self._name}-deployer-{namespace}",
                metadata={"name": platform.DEPLOYER_ROLE, "namespace": namespace},
                rules=rules,
                opts=self._opts(namespace),
            )
            subjects = [{"kind": "User", "name": args.accounts["deployer"], "apiGroup": "rbac.authorization.k8s.io"}]
            if namespace in names.SERVING_NAMESPACES:
                subjects.append({"kind": "ServiceAccount", "name": names.KSA_DEPLOYER, "namespace": namespace})
            if namespace in names.SERVING_NAMESPACES:
                k8s.networking.v1.NetworkPolicy(
                    f"{self._name}-proxy-{namespace}",
                    metadata={"name": "serving-from-control-plane", "namespace": namespace},
                    spec={
                        "podSelector": SERVING_POD_SELECTOR,
                        "policyTypes": ["Ingress"],
                        "ingress": [
                            {
                                "from": [{"ipBlock": {"cidr": args.control_plane_cidr}}],
                                "ports": [{"port": platform.QUEUE_PROXY_PORT, "protocol": "TCP"}],
                            }
                        ],
                    },
                    opts=self._opts(namespace),
                )
            k8s.rbac.v1.RoleBinding(
                f"{self._name}-deployer-{namespace}",
                metadata={"name": platform.DEPLOYER_ROLE, "namespace": namespace},
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": platform.DEPLOYER_ROLE},
                subjects=subjects,
                opts=self._opts(namespace, [role]),
            )

    def _admission(self, args: PlatformArgs) -> None:
        """Per serving environment, what its InferenceServices may run (:mod:`churnops_infra.admission`)."""
        for env in platform.ENVIRONMENTS:
            created = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
                f"{self._name}-admission-{env}", **admission.policy(args.registry, env), opts=self._opts()
            )
            k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
                f"{self._name}-admission-{env}",
                **admission.binding(env),
                opts=self._opts(depends_on=[created]),
            )

    def _network_policies(self, args: PlatformArgs) -> None:
        """Default deny and the flows each needs, in the namespaces of KFP, MLflow and lakeFS, and the
        PodMonitorings of what is scraped there (:mod:`churnops_infra.netpol`)."""
        for policy in netpol.all_policies(args.control_plane_cidr, args.database_host):
            metadata = policy["metadata"]
            k8s.networking.v1.NetworkPolicy(
                f"{self._name}-netpol-{metadata['namespace']}-{metadata['name']}",
                metadata=metadata,
                spec=policy["spec"],
                opts=self._opts(metadata["namespace"]),
            )
        # What Managed Service for Prometheus scrapes there (the policies above let exactly that in).
        for monitoring in netpol.pod_monitorings():
            metadata = monitoring["metadata"]
            k8s.apiextensions.CustomResource(
                f"{self._name}-podmonitoring-{metadata['namespace']}-{metadata['name']}",
                api_version=monitoring["apiVersion"],
                kind=monitoring["kind"],
                metadata=metadata,
                spec=monitoring["spec"],
                opts=self._opts(metadata["namespace"]),
            )

    def _knative(self) -> None:
        operator = self._release(versions.KNATIVE_OPERATOR, "knative-operator", {})
        k8s.apiextensions.CustomResource(
            f"{self._name}-knative-serving",
            api_version="operator.knative.dev/v1beta1",
            kind="KnativeServing",
            metadata={"name": "knative-serving", "namespace": platform.NS_KNATIVE_SERVING},
            spec={
                "version": versions.KNATIVE_SERVING,
                # The serving ingress is internal (a ClusterIP Service) unless the stack sets
                # churnops:cluster.publicIngress.
                "ingress": {
                    "kourier": {
                        "enabled": True,
                        "service-type": "LoadBalancer" if self._public_ingress else "ClusterIP",
                    }
                },
                "config": {
                    "network": {"ingress-class": "kourier.ingress.networking.knative.dev"},
                    # The pod-spec fields Knative refuses unless their flag is enabled (the declaration
                    # says which our InferenceServices use and why).
                    "features": dict(platform.KNATIVE_FEATURES),
                },
            },
            opts=self._opts("knative-serving", [operator]),
        )

    def _kubeflow_pipelines(self, args: PlatformArgs) -> pulumi.Resource:
        """KFP (cluster-scoped resources, then the platform-agnostic install), the settings ConfigMap its tasks
        read and the pipelines' RBAC; returns the install."""
        cluster_scoped = k8s.yaml.v2.ConfigGroup(
            f"{self._name}-kfp-cluster",
            objs=versions.kfp_objects("cluster-scoped-resources", skip=OWNED_HERE),
            opts=self._opts(names.NS_KUBEFLOW),
        )
        kfp = k8s.yaml.v2.ConfigGroup(
            f"{self._name}-kfp",
            objs=versions.kfp_objects("platform-agnostic", skip=OWNED_HERE),
            opts=self._opts(names.NS_KUBEFLOW, [cluster_scoped]),
        )
        # Every pipeline's artifacts go to the artifacts bucket unless a run says otherwise.
        k8s.core.v1.ConfigMap(
            f"{self._name}-kfp-launcher",
            metadata={"name": "kfp-launcher", "namespace": names.NS_KUBEFLOW},
            data={"defaultPipelineRoot": pulumi.Output.concat("gs://", args.artifacts_bucket, "/pipeline-root")},
            opts=self._opts(names.NS_KUBEFLOW, [kfp]),
        )
        # What every task reads as environment (pipelines/common.py): the declaration's keys and values.
        k8s.core.v1.ConfigMap(
            f"{self._name}-pipeline-settings",
            metadata={"name": platform.CONFIG_MAP_PIPELINES, "namespace": names.NS_KUBEFLOW},
            data=platform.pipeline_settings(args.project),
            opts=self._opts(names.NS_KUBEFLOW),
        )
        # Each pipeline runs as its own service account (created by _service_accounts), with the rights
        # KFP gives its own pipeline-runner account in the pods of a run.
        for pipeline in sorted(set(platform.PIPELINE_IDENTITY.values())):
            ksa = str(platform.identity(pipeline).ksa)
            k8s.rbac.v1.RoleBinding(
                f"{self._name}-kfp-runner-{ksa}",
                metadata={"name": f"{ksa}-{KFP_RUNNER_ROLE}", "namespace": names.NS_KUBEFLOW},
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": KFP_RUNNER_ROLE},
                subjects=[{"kind": "ServiceAccount", "name": ksa, "namespace": names.NS_KUBEFLOW}],
                opts=self._opts(names.NS_KUBEFLOW, [kfp]),
            )
        return kfp

    def _workload_secrets(self, args: PlatformArgs, external_secrets: pulumi.Resource, runner: pulumi.Resource) -> None:
        """The Secrets pipeline tasks and the transformer read, by reference, from Secret Manager.

        Each namespace's SecretStore authenticates as the workload's own Kubernetes service account,
        so it can read only the secrets that workload's Google identity may access (secrets.ACCESSORS).
        """
        # The store in kubeflow reads as the ingest pipeline's identity (it may read every key of the
        # pipelines' Secret); in a serving namespace as the transformer's, the only reader there.
        ingest = platform.identity(platform.PIPELINE_IDENTITY["ingest"])
        targets = [
            (
                names.NS_KUBEFLOW,
                str(ingest.ksa),
                platform.SECRET_PIPELINES.name,
                dict(platform.SECRET_PIPELINES.keys),
                [external_secrets, runner, self.service_accounts[(names.NS_KUBEFLOW, str(ingest.ksa))]],
            )
        ]
        for env, namespace in platform.SERVING_NAMESPACES.items():
            transformer = platform.serving_identity("transformer", env)
            targets.append(
                (
                    namespace,
                    str(transformer.ksa),
                    platform.SECRET_SERVING_LAKE.name,
                    dict(platform.SECRET_SERVING_LAKE.keys),
                    [external_secrets, self.service_accounts[(namespace, str(transformer.ksa))]],
                )
            )
        for namespace, ksa, target, refs, after in targets:
            store = self._secret_store(namespace, ksa, args.project, *after)
            self._external_secret(namespace, target, refs, {key: f"{{{{ .{key} }}}}" for key in refs}, store)

    def _secret_store(self, namespace: str, ksa: str, project: str, *after: pulumi.Resource) -> pulumi.Resource:
        """A SecretStore reading Secret Manager as ``ksa``'s Google identity (Workload Identity)."""
        return k8s.apiextensions.CustomResource(
            f"{self._name}-secretstore-{namespace}",
            api_version="external-secrets.io/v1",
            kind="SecretStore",
            metadata={"name": "secret-manager", "namespace": namespace},
            spec={
                "provider": {
                    "gcpsm": {"projectID": project, "auth": {"workloadIdentity": {"serviceAccountRef": {"name": ksa}}}}
                }
            },
            opts=self._opts(namespace, list(after)),
        )

    def _external_secret(
        self, namespace: str, target: str, refs: dict[str, str], template: dict[str, str], after: pulumi.Resource
    ) -> pulumi.Resource:
        return k8s.apiextensions.CustomResource(
            f"{self._name}-externalsecret-{namespace}",
            api_version="external-secrets.io/v1",
            kind="ExternalSecret",
            metadata={"name": target, "namespace": namespace},
            spec={
                "refreshInterval": "1h",
                "secretStoreRef": {"kind": "SecretStore", "name": "secret-manager"},
                "target": {
                    "name": target,
                    "creationPolicy": "Owner",
                    "template": {"engineVersion": "v2", "data": template},
                },
                "data": [{"secretKey": key, "remoteRef": {"key": secret}} for key, secret in refs.items()],
            },
            opts=self._opts(namespace, [after]),
        )

    def _lakefs(self, args: PlatformArgs, external_secrets: pulumi.Resource) -> None:
        self._secret_store(names.NS_LAKEFS, names.KSA_LAKEFS, args.project, external_secrets)
        connection = pulumi.Output.concat(
            "postgres://",
            names.DB_LAKEFS,
            ":{{ .dbPassword }}@",
            args.database_host,
            ":5432/",
            names.DB_LAKEFS,
            "?sslmode=require",
        )
        secret = self._external_secret(
            names.NS_LAKEFS,
            "lakefs-secrets",
            {
                "dbPassword": names.SECRET_LAKEFS_DB_PASSWORD,
                "encryptKey": names.SECRET_LAKEFS_ENCRYPT_KEY,
                "accessKeyId": names.SECRET_LAKEFS_ACCESS_KEY_ID,
                "secretAccessKey": names.SECRET_LAKEFS_SECRET_ACCESS_KEY,
            },
            {
                "connection_string": connection,
                "encrypt_key": "{{ .encryptKey }}",
                "access_key_id": "{{ .accessKeyId }}",
                "secret_access_key": "{{ .secretAccessKey }}",
            },
            external_secrets,
        )

        def env(variable: str, key: str) -> dict:
            return {"name": variable, "valueFrom": {"secretKeyRef": {"name": "lakefs-secrets", "key": key}}}

        self._release(
            versions.LAKEFS,
            names.NS_LAKEFS,
            {
                "serviceAccount": {"name": names.KSA_LAKEFS},
                "service": {"port": 8000},
                "nodeSelector": ON_SYSTEM_POOL,
                "lakefsConfig": pulumi.Output.concat(
                    "database:\n  type: postgres\nblockstore:\n  type: gs\n",
                    "installation:\n  user_name: churnops-admin\n",
                    "logging:\n  format: json\n",
                ),
                "extraEnvVars": [
                    env("LAKEFS_DATABASE_POSTGRES_CONNECTION_STRING", "connection_string"),
                    env("LAKEFS_AUTH_ENCRYPT_SECRET_KEY", "encrypt_key"),
                    env("LAKEFS_INSTALLATION_ACCESS_KEY_ID", "access_key_id"),
                    env("LAKEFS_INSTALLATION_SECRET_ACCESS_KEY", "secret_access_key"),
                ],
            },
            depends_on=[secret],
        )

    def _mlflow(self, args: PlatformArgs, tag: str, external_secrets: pulumi.Resource) -> None:
        """The tracking server with MLflow's basic-auth app (our authorization function, users and permissions in
        their own database, READ by default), on the components image, and the Job that creates its users."""
        self._secret_store(names.NS_MLFLOW, names.KSA_MLFLOW, args.project, external_secrets)
        passwords = {user: platform.mlflow_password_secret(user) for user in (names.MLFLOW_ADMIN, *MLFLOW_USERS)}
        refs = {"password": names.SECRET_MLFLOW_DB_PASSWORD}
        refs |= {_template_key(secret): secret for secret in passwords.values()}
        secret = self._external_secret(
            names.NS_MLFLOW,
            MLFLOW_SECRET,
            refs,
            {
                "username": names.DB_MLFLOW,
                "password": "{{ .password }}",
                "admin-username": names.MLFLOW_ADMIN,
                **{secret: f"{{{{ .{_template_key(secret)} }}}}" for secret in passwords.values()},
            },
            external_secrets,
        )
        image = {"repository": f"{args.registry}/{names.IMAGE_COMPONENTS}", "tag": tag}
        database = {"name": MLFLOW_SECRET, "usernameKey": "username", "passwordKey": "password"}
        release = self._release(
            versions.MLFLOW,
            names.NS_MLFLOW,
            {
                "image": image,
                # The chart's init containers (the backend's migration, the auth configuration's rendering) run the
                # same image: nothing else needs admitting.
                "initImages": {"mlflowDbMigration": dict(image), "iniFileInitializer": dict(image)},
                "serviceAccount": {"create": False, "name": names.KSA_MLFLOW},
                "service": {"port": platform.MLFLOW.port},
                "nodeSelector": ON_SYSTEM_POOL,
                "securityContext": MLFLOW_CONTAINER_SECURITY,
                "podSecurityContext": {"fsGroup": COMPONENTS_USER, "fsGroupChangePolicy": "OnRootMismatch"},
                "backendStore": {
                    "databaseMigration": True,
                    "postgres": {
                        "enabled": True,
                        "host": args.database_host,
                        "port": platform.POSTGRES_PORT,
                        "database": names.DB_MLFLOW,
                    },
                    "existingDatabaseSecret": database,
                },
                "artifactRoot": {"gcs": {"enabled": True, "bucket": args.artifacts_bucket, "path": "mlflow"}},
                "auth": {
                    "enabled": True,
                    "appName": "basic-auth",
                    "authorizationFunction": names.MLFLOW_AUTHORIZATION_FUNCTION,
                    "defaultPermission": "READ",
                    "existingAdminSecret": {
                        "name": MLFLOW_SECRET,
                        "usernameKey": "admin-username",
                        "passwordKey": passwords[names.MLFLOW_ADMIN],
                    },
                    "postgres": {
                        "enabled": True,
                        "host": args.database_host,
                        "port": platform.POSTGRES_PORT,
                        "database": names.DB_MLFLOW_AUTH,
                        "existingSecret": database,
                    },
                },
            },
            depends_on=[secret],
        )
        self._mlflow_bootstrap(image, passwords, [release, secret])

    def _mlflow_bootstrap(
        self, image: dict[str, str], passwords: dict[str, str], after: list[pulumi.Resource]
    ) -> pulumi.Resource:
        """A Job that creates the MLflow users with their passwords (``python -m churnops.platform.mlflow_users``,
        the module the local stack provisions with), as the admin, once the server is up."""
        mount = "/var/run/mlflow-users"
        return k8s.batch.v1.Job(
            f"{self._name}-mlflow-bootstrap",
            metadata={"name": "mlflow-bootstrap", "namespace": names.NS_MLFLOW, "labels": MLFLOW_BOOTSTRAP_LABELS},
            spec={
                "backoffLimit": 6,
                "template": {
                    "metadata": {"labels": MLFLOW_BOOTSTRAP_LABELS},
                    "spec": {
                        "serviceAccountName": names.KSA_MLFLOW,
                        "automountServiceAccountToken": False,
                        "restartPolicy": "Never",
                        "nodeSelector": ON_SYSTEM_POOL,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": COMPONENTS_USER,
                            "runAsGroup": COMPONENTS_USER,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "bootstrap",
                                "image": f"{image['repository']}:{image['tag']}",
                                "command": [
                                    "python",
                                    "-m",
                                    "churnops.platform.mlflow_users",
                                    "--url",
                                    platform.MLFLOW.url,
                                    "--passwords",
                                    mount,
                                ],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "passwords", "mountPath": mount, "readOnly": True}],
                            }
                        ],
                        "volumes": [
                            {
                                "name": "passwords",
                                "secret": {
                                    "secretName": MLFLOW_SECRET,
                                    "items": [{"key": key, "path": key} for key in passwords.values()],
                                },
                            }
                        ],
                    },
                },
            },
            opts=self._opts(names.NS_MLFLOW, after),
        )


def _template_key(secret_id: str) -> str:
    """A Secret Manager secret's key in an ExternalSecret template (a template field: no dashes)."""
    return secret_id.replace("-", "_")
