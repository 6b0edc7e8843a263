"""The churnops policy pack: run with ``pulumi preview --policy-pack infra/policy`` (and ``up``)."""

from churnops_policy.policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name="churnops", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
