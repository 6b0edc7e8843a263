"""The churnops policy pack: run with ``pulumi preview --policy-pack infra/policy`` (and ``up``)."""

from pulumi_policy import EnforcementLevel, PolicyPack

from churnops_policy.policies import POLICIES

PolicyPack(name="churnops", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
