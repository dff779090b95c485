"""The IAM permissions Corral needs (spec §2.4.1) and how they are checked.

The check asks IAM's policy simulator (``iam:SimulatePrincipalPolicy``) about every action of
:data:`REQUIRED_ACTIONS` for the account's IAM user. When the simulator cannot be used (the user
may not call it, or the endpoint does not offer it) the EC2 actions that accept ``DryRun`` are
tried as dry runs instead: AWS answers ``DryRunOperation`` when the caller may act and
``UnauthorizedOperation`` when not, without doing anything. Both run on the account's own key (IAM
cannot be called with federation tokens), never create anything, and are blocking: call them in a
thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DRY_RUN_CHECKS", "GUIDE_URL", "REQUIRED_ACTIONS", "dry_run_missing", "simulate_missing"]

GUIDE_URL = "https://corral.dev/docs/clouds/aws/#permissions"
"""The preparation guide: the policies to attach (plugins/aws/README.md, docs)."""

_EC2 = """
AllocateAddress AssociateAddress AssociateDhcpOptions AssociateRouteTable AttachInternetGateway
AttachVolume AuthorizeSecurityGroupEgress AuthorizeSecurityGroupIngress CreateDhcpOptions
CreateImage CreateInternetGateway CreateKeyPair CreateNatGateway CreateNetworkInterface
CreatePlacementGroup CreateRoute CreateRouteTable CreateSecurityGroup CreateSnapshot CreateSubnet
CreateTags CreateVolume CreateVpc DeleteDhcpOptions DeleteInternetGateway DeleteKeyPair
DeleteNatGateway DeletePlacementGroup DeleteRoute DeleteRouteTable DeleteSecurityGroup
DeleteSnapshot DeleteSubnet DeleteVolume DeleteVpc DeregisterImage DescribeAccountAttributes
DescribeAddresses DescribeAvailabilityZones DescribeCapacityReservations DescribeDhcpOptions
DescribeImages DescribeInstanceAttribute DescribeInstanceTypeOfferings DescribeInstanceTypes
DescribeInstances DescribeInternetGateways DescribeKeyPairs DescribeNatGateways
DescribeNetworkAcls DescribeNetworkInterfaces DescribePlacementGroups DescribeRegions
DescribeRouteTables DescribeSecurityGroups DescribeSnapshots DescribeSubnets DescribeTags
DescribeVolumes DescribeVpcAttribute DescribeVpcs DetachInternetGateway DetachVolume
DisassociateAddress DisassociateRouteTable GetPasswordData ImportKeyPair ModifyImageAttribute
ModifyInstanceAttribute ModifyNetworkInterfaceAttribute ModifySubnetAttribute ModifyVpcAttribute
RegisterImage ReleaseAddress RevokeSecurityGroupEgress RevokeSecurityGroupIngress RunInstances
StartInstances StopInstances TerminateInstances
"""

REQUIRED_ACTIONS: tuple[str, ...] = (
    *(f"ec2:{name}" for name in _EC2.split()),
    "sts:GetCallerIdentity",
    "sts:GetFederationToken",
)
"""The spec's ``pw-ec2-mgmt`` and ``pw-sts-mgmt`` policies, with the gaps its flags name filled
(``RevokeSecurityGroupIngress``, ``DescribeCapacityReservations``) and
``DescribeInstanceTypeOfferings``, which the catalogue needs. Storage, DNS and billing actions
belong to the plugins that use them."""

_NO_INSTANCE = "i-00000000000000000"
_NO_IMAGE = "ami-00000000000000000"

DRY_RUN_CHECKS: dict[str, Callable[[Any], Any]] = {
    "ec2:DescribeInstances": lambda ec2: ec2.describe_instances(DryRun=True),
    "ec2:DescribeImages": lambda ec2: ec2.describe_images(DryRun=True, Owners=["self"]),
    "ec2:DescribeRegions": lambda ec2: ec2.describe_regions(DryRun=True),
    "ec2:DescribeAvailabilityZones": lambda ec2: ec2.describe_availability_zones(DryRun=True),
    "ec2:DescribeAddresses": lambda ec2: ec2.describe_addresses(DryRun=True),
    "ec2:DescribeVpcs": lambda ec2: ec2.describe_vpcs(DryRun=True),
    "ec2:DescribeSubnets": lambda ec2: ec2.describe_subnets(DryRun=True),
    "ec2:DescribeSecurityGroups": lambda ec2: ec2.describe_security_groups(DryRun=True),
    "ec2:RunInstances": lambda ec2: ec2.run_instances(
        DryRun=True, ImageId=_NO_IMAGE, InstanceType="t3.micro", MinCount=1, MaxCount=1
    ),
    "ec2:StartInstances": lambda ec2: ec2.start_instances(DryRun=True, InstanceIds=[_NO_INSTANCE]),
    "ec2:StopInstances": lambda ec2: ec2.stop_instances(DryRun=True, InstanceIds=[_NO_INSTANCE]),
    "ec2:TerminateInstances": lambda ec2: ec2.terminate_instances(
        DryRun=True, InstanceIds=[_NO_INSTANCE]
    ),
    "ec2:CreateTags": lambda ec2: ec2.create_tags(
        DryRun=True, Resources=[_NO_INSTANCE], Tags=[{"Key": "corral", "Value": "check"}]
    ),
    "ec2:CreateImage": lambda ec2: ec2.create_image(
        DryRun=True, InstanceId=_NO_INSTANCE, Name="corral-permission-check"
    ),
    "ec2:DeregisterImage": lambda ec2: ec2.deregister_image(DryRun=True, ImageId=_NO_IMAGE),
    "ec2:AllocateAddress": lambda ec2: ec2.allocate_address(DryRun=True, Domain="vpc"),
    "ec2:ReleaseAddress": lambda ec2: ec2.release_address(
        DryRun=True, AllocationId="eipalloc-00000000000000000"
    ),
    "ec2:CreateVpc": lambda ec2: ec2.create_vpc(DryRun=True, CidrBlock="10.0.0.0/16"),
    "ec2:CreateSecurityGroup": lambda ec2: ec2.create_security_group(
        DryRun=True, GroupName="corral-permission-check", Description="check"
    ),
}
"""EC2 actions checked by dry run when the simulator is not available."""

_DENIED = {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"}


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def simulate_missing(iam: Any, principal_arn: str) -> list[str]:
    """The actions of :data:`REQUIRED_ACTIONS` the simulator says ``principal_arn`` may not do.
    Raises whatever the simulator call raises (the caller falls back to dry runs)."""
    missing: list[str] = []
    actions = list(REQUIRED_ACTIONS)
    for start in range(0, len(actions), 50):
        paginator = iam.get_paginator("simulate_principal_policy")
        for page in paginator.paginate(
            PolicySourceArn=principal_arn, ActionNames=actions[start : start + 50]
        ):
            for result in page.get("EvaluationResults", []):
                if result.get("EvalDecision") != "allowed":
                    missing.append(result["EvalActionName"])
    return missing


def dry_run_missing(ec2: Any) -> list[str]:
    """The actions of :data:`DRY_RUN_CHECKS` that EC2 refuses to ``ec2`` (a client on the key
    being checked). Any other answer than a refusal (``DryRunOperation``, or a complaint about the
    placeholder ids) means the permission is there."""
    missing = []
    for action, attempt in DRY_RUN_CHECKS.items():
        try:
            attempt(ec2)
        except Exception as exc:
            if _code(exc) in _DENIED:
                missing.append(action)
    return missing
