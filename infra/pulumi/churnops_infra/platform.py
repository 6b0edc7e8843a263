"""What runs inside the cluster: namespaces, service accounts, RBAC, and the pinned platform services.

Kubeflow Pipelines (kustomize manifests at a release tag), Knative Serving with Kourier (through the
Knative operator), KServe in serverless mode, cert-manager (KServe's webhook certificates),
External Secrets Operator (Secret Manager -> Kubernetes Secrets for lakeFS and MLflow), lakeFS and
MLflow. Every Helm release is pinned to an exact chart version (:mod:`churnops_infra.versions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from churnops_infra import names, versions

# Pod Security Admission level per namespace: our own workloads meet "restricted"; the upstream
# platform services are held to "baseline" and warned about "restricted".
NAMESPACES: dict[str, str] = {
    names.NS_KUBEFLOW: "baseline",
    names.NS_STAGING: "restricted",
    names.NS_PRODUCTION: "restricted",
    names.NS_LAKEFS: "baseline",
    names.NS_MLFLOW: "baseline",
    "cert-manager": "baseline",
    "external-secrets": "baseline",
    "knative-operator": "baseline",
    "knative-serving": "baseline",
    "kserve": "baseline",
}
ON_SYSTEM_POOL = {names.POOL_LABEL: names.POOL_SYSTEM}
WI_ANNOTATION = "iam.gke.io/gcp-service-account"
# What the deployer may do in a serving namespace: manage InferenceServices and read what they create.
DEPLOYER_RULES = [
    {
        "apiGroups": ["serving.kserve.io"],
        "resources": ["inferenceservices"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps", "serviceaccounts", "services"],
        "verbs": ["get", "list", "watch", "create", "update", "patch"],
    },
    {"apiGroups": [""], "resources": ["pods", "pods/log", "events"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["serving.knative.dev"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
]
# In kubeflow the deployer reaches only the KFP API server (to upload pipelines and submit runs), through
# the API server's service proxy (the builds name it k8s://kubeflow/ml-pipeline:8888).
KFP_API_RULES = [
    {"apiGroups": [""], "resources": ["services/proxy"], "resourceNames": ["ml-pipeline", "ml-pipeline:8888"],
     "verbs": ["get", "create"]},
    {"apiGroups": [""], "resources": ["services"], "resourceNames": ["ml-pipeline"], "verbs": ["get"]},
]
# In mlflow the deployer reaches only the tracking server's API (k8s://mlflow/mlflow:5000): read the
# registry, move aliases (POST) and remove one (DELETE, when a rollback moves production back).
MLFLOW_API_RULES = [
    {"apiGroups": [""], "resources": ["services/proxy"], "resourceNames": ["mlflow", "mlflow:5000"],
     "verbs": ["get", "create", "delete"]},
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
    depends_on: list[pulumi.Resource]  # node pools: nothing schedules before they exist


def kubeconfig(name: pulumi.Input[str], endpoint: pulumi.Input[str], ca: pulumi.Input[str]) -> pulumi.Output[str]:
    """A kubeconfig that authenticates with gke-gcloud-auth-plugin (short-lived tokens, no static credential)."""
    return pulumi.Output.json_dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": pulumi.Output.concat("https://", endpoint),
                                                    "certificate-authority-data": ca}}],
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
        self._mlflow(args, external_secrets)
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
        accounts = [
            (names.NS_LAKEFS, names.KSA_LAKEFS, "lakefs"),
            (names.NS_MLFLOW, names.KSA_MLFLOW, "mlflow"),
            *((namespace, names.KSA_SERVING, "serving") for namespace in names.SERVING_NAMESPACES),
            *((namespace, names.KSA_DEPLOYER, "deployer") for namespace in names.SERVING_NAMESPACES),
        ]
        for namespace, ksa, workload in accounts:
            k8s.core.v1.ServiceAccount(
                f"{self._name}-sa-{namespace}-{ksa}",
                metadata={"name": ksa, "namespace": namespace, "annotations": {WI_ANNOTATION: args.accounts[workload]}},
                automount_service_account_token=workload in ("lakefs", "deployer"),
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
                metadata={"name": names.KSA_DEPLOYER, "namespace": namespace},
                rules=rules,
                opts=self._opts(namespace),
            )
            subjects = [{"kind": "User", "name": args.accounts["deployer"], "apiGroup": "rbac.authorization.k8s.io"}]
            if namespace in names.SERVING_NAMESPACES:
                subjects.append({"kind": "ServiceAccount", "name": names.KSA_DEPLOYER, "namespace": namespace})
            k8s.rbac.v1.RoleBinding(
                f"{self._name}-deployer-{namespace}",
                metadata={"name": names.KSA_DEPLOYER, "namespace": namespace},
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names.KSA_DEPLOYER},
                subjects=subjects,
                opts=self._opts(namespace, [role]),
            )

    def _knative(self) -> None:
        operator = self._release(versions.KNATIVE_OPERATOR, "knative-operator", {})
        k8s.apiextensions.CustomResource(
            f"{self._name}-knative-serving",
            api_version="operator.knative.dev/v1beta1",
            kind="KnativeServing",
            metadata={"name": "knative-serving", "namespace": "knative-serving"},
            spec={
                "version": versions.KNATIVE_SERVING,
                "ingress": {"kourier": {"enabled": True}},
                "config": {
                    "network": {"ingress-class": "kourier.ingress.networking.knative.dev"},
                    # Predictors select the serving node pool: let pod specs carry a selector and tolerations.
                    # fieldref: the predictor reads its service account name through the downward API
                    "features": {"kubernetes.podspec-nodeselector": "enabled",
                                 "kubernetes.podspec-tolerations": "enabled",
                                 "kubernetes.podspec-fieldref": "enabled"},
                },
            },
            opts=self._opts("knative-serving", [operator]),
        )

    def _kubeflow_pipelines(self, args: PlatformArgs) -> pulumi.Resource:
        """KFP (cluster-scoped resources, then the platform-agnostic install); returns pipeline-runner's patch."""
        cluster_scoped = k8s.kustomize.v2.Directory(
            f"{self._name}-kfp-cluster",
            directory=versions.kfp_manifests("cluster-scoped-resources"),
            opts=self._opts(names.NS_KUBEFLOW),
        )
        kfp = k8s.kustomize.v2.Directory(
            f"{self._name}-kfp",
            directory=versions.kfp_manifests("env/platform-agnostic"),
            namespace=names.NS_KUBEFLOW,
            opts=self._opts(names.NS_KUBEFLOW, [cluster_scoped]),
        )
        # Every pipeline's artifacts go to the artifacts bucket unless a run says otherwise.
        k8s.core.v1.ConfigMap(
            f"{self._name}-kfp-launcher",
            metadata={"name": "kfp-launcher", "namespace": names.NS_KUBEFLOW},
            data={"defaultPipelineRoot": pulumi.Output.concat("gs://", args.artifacts_bucket, "/pipeline-root")},
            opts=self._opts(names.NS_KUBEFLOW, [kfp]),
        )
        # KFP creates pipeline-runner; tasks act as the pipelines Google identity through it.
        return k8s.core.v1.ServiceAccountPatch(
            f"{self._name}-pipeline-runner",
            metadata={
                "name": names.KSA_PIPELINE_RUNNER,
                "namespace": names.NS_KUBEFLOW,
                "annotations": {WI_ANNOTATION: args.accounts["pipelines"]},
            },
            opts=self._opts(names.NS_KUBEFLOW, [kfp]),
        )

    def _workload_secrets(self, args: PlatformArgs, external_secrets: pulumi.Resource,
                          runner: pulumi.Resource) -> None:
        """The Secrets pipeline tasks and the transformer read, by reference, from Secret Manager.

        Each namespace's SecretStore authenticates as the workload's own Kubernetes service account,
        so it can read only the secrets that workload's Google identity may access (secrets.ACCESSORS).
        """
        lake_keys = {"lakefs-access-key-id": names.SECRET_LAKEFS_ACCESS_KEY_ID,
                     "lakefs-secret-access-key": names.SECRET_LAKEFS_SECRET_ACCESS_KEY}
        targets = [(names.NS_KUBEFLOW, names.KSA_PIPELINE_RUNNER, names.K8S_SECRET_PIPELINES,
                    {**lake_keys, "alert-webhook-url": names.SECRET_ALERT_WEBHOOK}, [external_secrets, runner])]
        targets += [(namespace, names.KSA_SERVING, names.K8S_SECRET_SERVING_LAKE, lake_keys, [external_secrets])
                    for namespace in names.SERVING_NAMESPACES]
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
            spec={"provider": {"gcpsm": {"projectID": project, "auth": {"workloadIdentity": {
                "serviceAccountRef": {"name": ksa}}}}}},
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
                "target": {"name": target, "creationPolicy": "Owner",
                           "template": {"engineVersion": "v2", "data": template}},
                "data": [{"secretKey": key, "remoteRef": {"key": secret}} for key, secret in refs.items()],
            },
            opts=self._opts(namespace, [after]),
        )

    def _lakefs(self, args: PlatformArgs, external_secrets: pulumi.Resource) -> None:
        self._secret_store(names.NS_LAKEFS, names.KSA_LAKEFS, args.project, external_secrets)
        connection = pulumi.Output.concat(
            "postgres://", names.DB_LAKEFS, ":{{ .dbPassword }}@", args.database_host, ":5432/", names.DB_LAKEFS,
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

    def _mlflow(self, args: PlatformArgs, external_secrets: pulumi.Resource) -> None:
        self._secret_store(names.NS_MLFLOW, names.KSA_MLFLOW, args.project, external_secrets)
        secret = self._external_secret(
            names.NS_MLFLOW,
            "mlflow-secrets",
            {"password": names.SECRET_MLFLOW_DB_PASSWORD},
            {"username": names.DB_MLFLOW, "password": "{{ .password }}"},
            external_secrets,
        )
        self._release(
            versions.MLFLOW,
            names.NS_MLFLOW,
            {
                "serviceAccount": {"create": False, "name": names.KSA_MLFLOW},
                "service": {"port": 5000},
                "nodeSelector": ON_SYSTEM_POOL,
                "backendStore": {
                    "databaseMigration": True,
                    "postgres": {
                        "enabled": True,
                        "host": args.database_host,
                        "port": 5432,
                        "database": names.DB_MLFLOW,
                    },
                    "existingDatabaseSecret": {"name": "mlflow-secrets", "usernameKey": "username",
                                               "passwordKey": "password"},
                },
                "artifactRoot": {"gcs": {"enabled": True, "bucket": args.artifacts_bucket, "path": "mlflow"}},
            },
            depends_on=[secret],
        )
