"""Alert policies: ingest anomalies, failed pipeline runs, failed builds, and serving 5xx and latency.

churnops logs every alert as one structured line (``jsonPayload.alert = true`` with ``alert_kind``;
see churnops/platform/alerts.py); Argo's workflow controller, which runs KFP, logs
``Updated phase Running -> Failed`` (or ``-> Error``) when a run fails; Cloud Build ends the log of a
failed build with its own ``ERROR: ...`` line (a failed step, a timeout). Serving is watched from
Knative's queue-proxy metrics as Managed Service for Prometheus collects them (the PodMonitoring of
each serving namespace), in PromQL: the share of 5xx answers and the p99 latency of production.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
from churnops_infra import names
from churnops_infra.config import MonitoringConfig

from churnops.platform import declaration as platform

IN_KUBEFLOW = f'resource.type="k8s_container" AND resource.labels.namespace_name="{names.NS_KUBEFLOW}"'
ANOMALY_FILTER = f"{IN_KUBEFLOW} AND jsonPayload.alert=true"
FAILED_PHASE = r"Updated phase \w+ -> (Failed|Error)"
FAILURE_FILTER = (
    f'{IN_KUBEFLOW} AND resource.labels.container_name="workflow-controller" '
    f'AND (textPayload=~"{FAILED_PHASE}" OR jsonPayload.msg=~"{FAILED_PHASE}")'
)
BUILD_FAILURE_FILTER = 'resource.type="build" AND textPayload=~"^ERROR: "'
ANOMALY_METRIC = "churnops_ingest_anomalies"
FAILURE_METRIC = "churnops_pipeline_failures"
BUILD_FAILURE_METRIC = "churnops_build_failures"
# Production serving, from the queue-proxy's metrics (names in the platform declaration).
SERVING_WINDOW = "5m"
SERVING_MAX_5XX_SHARE = 0.02
SERVING_MAX_P99_MS = 1000
_PRODUCTION = f'{platform.KNATIVE_NAMESPACE_LABEL}="{names.NS_PRODUCTION}"'
SERVING_5XX_QUERY = (
    f'sum(rate({platform.KNATIVE_REQUESTS_METRIC}{{{_PRODUCTION},{platform.KNATIVE_CODE_CLASS_LABEL}="5xx"}}'
    f"[{SERVING_WINDOW}])) / sum(rate({platform.KNATIVE_REQUESTS_METRIC}{{{_PRODUCTION}}}[{SERVING_WINDOW}])) "
    f"> {SERVING_MAX_5XX_SHARE}"
)
SERVING_LATENCY_QUERY = (
    f"histogram_quantile(0.99, sum by (le) (rate({platform.KNATIVE_LATENCY_METRIC}_bucket{{{_PRODUCTION}}}"
    f"[{SERVING_WINDOW}]))) > {SERVING_MAX_P99_MS}"
)


@dataclass
class MonitoringArgs:
    """Inputs of :class:`Monitoring`."""

    config: MonitoringConfig
    webhook_url: pulumi.Input[str]


class Monitoring(pulumi.ComponentResource):
    """Three log-based counters and two PromQL conditions, an alert policy on each, and the webhook channel."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("churnops:infra:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.channel = gcp.monitoring.NotificationChannel(
            f"{name}-webhook",
            display_name="churnops alert webhook",
            type="webhook_tokenauth",
            labels={"url": pulumi.Output.secret(args.webhook_url)},
            opts=child,
        )
        anomalies = gcp.logging.Metric(
            f"{name}-anomalies",
            name=ANOMALY_METRIC,
            description="Ingest anomaly alerts (quarantined rows, late or unreadable files, contract drift)",
            filter=ANOMALY_FILTER,
            metric_descriptor={
                "metric_kind": "DELTA",
                "value_type": "INT64",
                "unit": "1",
                "labels": [{"key": "alert_kind", "value_type": "STRING", "description": "churnops alert kind"}],
            },
            label_extractors={"alert_kind": "EXTRACT(jsonPayload.alert_kind)"},
            opts=child,
        )
        failures = gcp.logging.Metric(
            f"{name}-failures",
            name=FAILURE_METRIC,
            description="Kubeflow Pipelines runs that ended Failed or Error",
            filter=FAILURE_FILTER,
            metric_descriptor={"metric_kind": "DELTA", "value_type": "INT64", "unit": "1"},
            opts=child,
        )
        self.policies = [
            self._policy(
                f"{name}-anomalies",
                "churnops ingest anomaly",
                anomalies,
                0,
                "An ingest run raised an anomaly alert. Its log line names the kind, the counts and the "
                "objects; quarantined rows are in the lake's quarantine with their reasons.",
            ),
            self._policy(
                f"{name}-failures",
                "churnops pipeline run failed",
                failures,
                args.config.pipeline_failure_threshold,
                "A Kubeflow Pipelines run failed. Open the run in the KFP UI (kubectl -n kubeflow "
                "port-forward svc/ml-pipeline-ui 8080:80) to see the failed task and its logs.",
            ),
            self._policy(
                f"{name}-builds",
                "churnops build failed",
                gcp.logging.Metric(
                    f"{name}-builds",
                    name=BUILD_FAILURE_METRIC,
                    description="Cloud Build builds that failed (a step failed or the build timed out)",
                    filter=BUILD_FAILURE_FILTER,
                    metric_descriptor={"metric_kind": "DELTA", "value_type": "INT64", "unit": "1"},
                    opts=child,
                ),
                0,
                "A Cloud Build build failed: `gcloud builds list --filter=status=FAILURE --limit=5` names it, "
                "`gcloud builds log <id>` shows the failed step (docs/cicd.md says what each step needs).",
                resource="build",
            ),
            self._promql(
                f"{name}-serving-5xx",
                "churnops production 5xx",
                SERVING_5XX_QUERY,
                f"More than {SERVING_MAX_5XX_SHARE:.0%} of production requests answered 5xx over {SERVING_WINDOW}. "
                "`churnops canary analyze` compares a running canary with the stable revision; otherwise "
                "read the predictor's and transformer's logs (kubectl -n churnops-production logs -l "
                "serving.kserve.io/inferenceservice=churn-predictor -c kserve-container).",
            ),
            self._promql(
                f"{name}-serving-latency",
                "churnops production p99 latency",
                SERVING_LATENCY_QUERY,
                f"Production's p99 latency was above {SERVING_MAX_P99_MS} ms over {SERVING_WINDOW}: check the "
                "replicas (maxReplicas reached?), the serving node pool and a running canary.",
            ),
        ]
        self.register_outputs({"channel": self.channel.name})

    def _promql(self, name: str, title: str, query: str, runbook: str) -> gcp.monitoring.AlertPolicy:
        """An alert while ``query`` (PromQL over Managed Service for Prometheus) returns a series for 5 minutes."""
        return gcp.monitoring.AlertPolicy(
            name,
            display_name=title,
            combiner="OR",
            conditions=[
                {
                    "display_name": title,
                    "condition_prometheus_query_language": {
                        "query": query,
                        "duration": "300s",
                        "evaluation_interval": "60s",
                    },
                }
            ],
            notification_channels=[self.channel.name],
            alert_strategy={"auto_close": "86400s"},
            documentation={"content": runbook, "mime_type": "text/markdown"},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _policy(  # pylint: disable=too-many-arguments
        self,
        name: str,
        title: str,
        metric: gcp.logging.Metric,
        threshold: int,
        runbook: str,
        resource: str = "k8s_container",
    ) -> gcp.monitoring.AlertPolicy:
        return gcp.monitoring.AlertPolicy(
            name,
            display_name=title,
            combiner="OR",
            conditions=[
                {
                    "display_name": f"{title} (more than {threshold} in 5 min)",
                    "condition_threshold": {
                        "filter": metric.name.apply(
                            lambda metric_name: (
                                f'metric.type="logging.googleapis.com/user/{metric_name}" '
                                f'AND resource.type="{resource}"'
                            )
                        ),
                        "comparison": "COMPARISON_GT",
                        "threshold_value": threshold,
                        "duration": "0s",
                        "aggregations": [{"alignment_period": "300s", "per_series_aligner": "ALIGN_SUM"}],
                        "trigger": {"count": 1},
                    },
                }
            ],
            notification_channels=[self.channel.name],
            alert_strategy={"auto_close": "86400s"},
            documentation={"content": runbook, "mime_type": "text/markdown"},
            opts=pulumi.ResourceOptions(parent=self),
        )
