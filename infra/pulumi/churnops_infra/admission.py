"""What an InferenceService in a serving namespace may run: the serving image by digest, its own entry points,
its own identities.

Binary Authorization admits only attested or allowlisted images, but an admitted image can be given any
command, extra containers or another service account, and the deployer may create InferenceServices.
A ValidatingAdmissionPolicy (``admissionregistration.k8s.io/v1``, served by every GKE version in
support) holds each InferenceService created or updated in a serving namespace to what ``churnops
deploy`` renders:

- every predictor and transformer container runs the serving image of the project's registry, by digest;
- the predictor's containers keep the image's entry point (no ``command``), the transformer's run exactly
  :data:`churnops.platform.declaration.TRANSFORMER_COMMAND`;
- the predictor and the transformer run as the environment's predictor and transformer accounts;
- nothing else runs: no model-framework field (KServe would pick a runtime image), no worker spec, no init
  container, no image volume, no explainer and no separate canary component.

The policy belongs to the platform (this program), not to the deployer it constrains: the deployer's
Role cannot change admission policies. The rules are CEL; the assembled-system test runs them on the
rendered overlays and on broken copies of them.
"""

from __future__ import annotations

from typing import Any

from churnops.platform import declaration as platform

API_VERSION = "admissionregistration.k8s.io/v1"
# KServe v0.15.2's component fields (its InferenceService CRD) that would start a container of another
# image: the model frameworks (KServe chooses a serving runtime's image for them), the multi-node
# worker spec and init containers; ``serviceAccount`` is the deprecated alias of serviceAccountName.
PREDICTOR_FORBIDDEN = (
    "model",
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
    "workerSpec",
    "initContainers",
    "serviceAccount",
)
TRANSFORMER_FORBIDDEN = ("initContainers", "serviceAccount")
DIGEST_LENGTH = len("sha256:") + 64


def policy_name(env: str) -> str:
    """The policy (and its binding) of environment ``env``."""
    return f"churnops-inferenceservice-{env}"


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def validations(registry: str, env: str) -> list[dict[str, str]]:
    """The policy's CEL rules for environment ``env`` with images from ``registry``, each with its message."""
    image = f"{registry}/{platform.IMAGE_SERVING}@"
    by_digest = f"c.image.startsWith('{image}sha256:') && c.image.size() == {len(image) + DIGEST_LENGTH}"
    predictor = platform.serving_identity("predictor", env).ksa
    transformer = platform.serving_identity("transformer", env).ksa
    p, t = "object.spec.predictor", "object.spec.transformer"
    no_transformer = f"!has({t})"
    rules = [
        (f"{p}.containers.all(c, {by_digest})", f"predictor containers run {image}sha256:<digest>"),
        (
            f"{no_transformer} || {t}.containers.all(c, {by_digest})",
            f"transformer containers run {image}sha256:<digest>",
        ),
        (f"{p}.containers.all(c, !has(c.command))", "predictor containers keep the image's entry point (no command)"),
        (
            f"{no_transformer} || {t}.containers.all(c, has(c.command) && "
            f"c.command == {_cel_list(platform.TRANSFORMER_COMMAND)})",
            f"transformer containers run {' '.join(platform.TRANSFORMER_COMMAND)}",
        ),
        (
            f"has({p}.serviceAccountName) && {p}.serviceAccountName == '{predictor}'",
            f"the predictor runs as {predictor}",
        ),
        (
            f"{no_transformer} || (has({t}.serviceAccountName) && {t}.serviceAccountName == '{transformer}')",
            f"the transformer runs as {transformer}",
        ),
        (
            f"{_cel_list(PREDICTOR_FORBIDDEN)}.all(f, !(f in {p})) && "
            f"({no_transformer} || {_cel_list(TRANSFORMER_FORBIDDEN)}.all(f, !(f in {t})))",
            "no model framework, worker spec, init container or serviceAccount alias",
        ),
        (
            f"(!has({p}.volumes) || {p}.volumes.all(v, !has(v.image))) && "
            f"({no_transformer} || !has({t}.volumes) || {t}.volumes.all(v, !has(v.image)))",
            "no image volume",
        ),
        ("!has(object.spec.explainer) && !has(object.spec.canary)", "no explainer and no separate canary component"),
    ]
    return [{"expression": expression, "message": message} for expression, message in rules]


def policy(registry: str, env: str) -> dict[str, Any]:
    """The ValidatingAdmissionPolicy of environment ``env`` (arguments of the Pulumi resource)."""
    return {
        "metadata": {"name": policy_name(env)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["serving.kserve.io"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["inferenceservices"],
                    }
                ]
            },
            "validations": validations(registry, env),
        },
    }


def binding(env: str) -> dict[str, Any]:
    """The binding of environment ``env``'s policy to its serving namespace (refusals are denials)."""
    namespace = platform.SERVING_NAMESPACES[env]
    return {
        "metadata": {"name": policy_name(env)},
        "spec": {
            "policyName": policy_name(env),
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace]}
                    ]
                }
            },
        },
    }
