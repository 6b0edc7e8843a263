"""The churnops platform: composes the components and exports what operators and builds need."""

import pulumi
from churnops_infra import config, names
from churnops_infra.apis import Apis, ApisArgs
from churnops_infra.cicd import Cicd, CicdArgs
from churnops_infra.cluster import Cluster, ClusterArgs
from churnops_infra.database import Database, DatabaseArgs
from churnops_infra.identity import Identity, IdentityArgs
from churnops_infra.monitoring import Monitoring, MonitoringArgs
from churnops_infra.network import Network, NetworkArgs
from churnops_infra.platform import Platform, PlatformArgs
from churnops_infra.secrets import Secrets, SecretsArgs
from churnops_infra.storage import Storage, StorageArgs

from churnops.platform import declaration

cfg = config.load()
apis = Apis("apis", ApisArgs(project=cfg.project))
after_apis = pulumi.ResourceOptions(depends_on=apis.services)

network = Network("network", NetworkArgs(region=cfg.region, config=cfg.network), after_apis)
cluster = Cluster(
    "cluster",
    ClusterArgs(
        project=cfg.project,
        region=cfg.region,
        config=cfg.cluster,
        node_pools=cfg.node_pools,
        network=network.vpc.id,
        subnet=network.subnet.id,
        master_cidr=cfg.network.master_cidr,
    ),
    after_apis,
)
identity = Identity(
    "identity",
    IdentityArgs(project=cfg.project, workload_pool=cluster.cluster.workload_identity_config.workload_pool),
    after_apis,
)
members = {key: identity.member(key) for key in identity.accounts}
members["nodes"] = cluster.node_account.member
storage = Storage(
    "storage", StorageArgs(project=cfg.project, region=cfg.region, config=cfg.storage, members=members), after_apis
)
secrets = Secrets(
    "secrets",
    SecretsArgs(alert_webhook_url=cfg.alert_webhook_url, protect=cfg.environment == "prod", members=members),
    after_apis,
)
database = Database(
    "database",
    DatabaseArgs(
        region=cfg.region,
        config=cfg.database,
        network=network.vpc.id,
        private_services=network.private_services,
        mlflow_password=secrets.mlflow_db_password.result,
        lakefs_password=secrets.lakefs_db_password.result,
    ),
    after_apis,
)
platform = Platform(
    "platform",
    PlatformArgs(
        project=cfg.project,
        cluster_name=cluster.cluster.name,
        cluster_endpoint=cluster.cluster.endpoint,
        cluster_ca=cluster.cluster.master_auth.cluster_ca_certificate,
        accounts={key: identity.email(key) for key in identity.accounts},
        artifacts_bucket=storage.buckets["artifacts"].name,
        database_host=database.private_ip,
        control_plane_cidr=cfg.network.master_cidr,
        depends_on=cluster.node_pools,
        public_ingress=cfg.cluster.public_ingress,
        registry=declaration.registry(cfg.region, cfg.project),
        mlflow_image_tag=cfg.mlflow_image_tag,
    ),
)
cicd = Cicd(
    "cicd",
    CicdArgs(
        project=cfg.project,
        region=cfg.region,
        cluster_location=cfg.cluster.location,
        config=cfg.cicd,
        service_account=identity.accounts["deployer"].id,
        member=identity.member("deployer"),
        network=network.vpc.id,
        private_services=network.private_services,
        attestor=cluster.attestor,
        attestor_key=cluster.attestor_key,
        attestor_note=cluster.attestor_note,
        attestor_account=identity.accounts["attestor"].id,
    ),
    after_apis,
)
monitoring = Monitoring(
    "monitoring", MonitoringArgs(config=cfg.monitoring, webhook_url=cfg.alert_webhook_url), after_apis
)

pulumi.export("cluster", cluster.cluster.name)
pulumi.export("clusterLocation", cluster.cluster.location)
pulumi.export("registry", storage.registry)
pulumi.export("images", [f"{storage.registry}/{image}" for image in names.IMAGES])
for purpose in names.BUCKET_PURPOSES:
    pulumi.export(f"{purpose}Bucket", storage.buckets[purpose].name)
pulumi.export("lakefsStorageNamespace", storage.url("lake").apply(lambda url: f"{url}/churn-lake"))
pulumi.export("serviceAccounts", {key: identity.email(key) for key in identity.accounts})
pulumi.export("nodeServiceAccount", cluster.node_account.email)
pulumi.export("secrets", {secret_id: secret.id for secret_id, secret in secrets.secrets.items()})
pulumi.export("databaseInstance", database.instance.connection_name)
pulumi.export("trainingTopic", cicd.training_topic.id)
pulumi.export("attestTopic", cicd.attest_topic.id)
pulumi.export("attestor", cluster.attestor.name)
pulumi.export("workerPool", cicd.pool.id)
