"""Log-based metrics and alert policies for ingest anomalies and failed pipeline runs.

churnops logs every alert as one structured line (``jsonPayload.alert = true`` with ``alert_kind``;
see churnops/platform/alerts.py); Argo's workflow controller, which runs KFP, logs
``Updated phase Running -> Failed`` (or ``-> Error``) when a run fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from churnops_infra import names
from churnops_infra.config import MonitoringConfig

IN_KUBEFLOW = f'resource.type="k8s_container" AND resource.labels.namespace_name="{names.NS_KUBEFLOW}"'
ANOMALY_FILTER = f"{IN_KUBEFLOW} AND jsonPayload.alert=true"
FAILED_PHASE = r"Updated phase \w+ -> (Failed|Error)"
FAILURE_FILTER = (
    f'{IN_KUBEFLOW} AND resource.labels.container_name="workflow-controller" '
    f'AND (textPayload=~"{FAILED_PHASE}" OR jsonPayload.msg=~"{FAILED_PHASE}")'
)
ANOMALY_METRIC = "churnops_ingest_anomalies"
FAILURE_METRIC = "churnops_pipeline_failures"


@dataclass
class MonitoringArgs:
    """Inputs of :class:`Monitoring`."""

    config: MonitoringConfig
    webhook_url: pulumi.Input[str]


class Monitoring(pulumi.ComponentResource):
    """Two log-based counters, an alert policy on each, and the webhook notification channel."""

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
        ]
        self.register_outputs({"channel": self.channel.name})

    def _policy(
        self, name: str, title: str, metric: gcp.logging.Metric, threshold: int, runbook: str
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
                            lambda metric_name: f'metric.type="logging.googleapis.com/user/{metric_name}" '
                            'AND resource.type="k8s_container"'
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
