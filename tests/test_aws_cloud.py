"""Elastic Slurm clusters on AWS, end to end: ``corral up`` in a subprocess with the AWS plugin
pointed (by the account's ``endpoint_url`` setting) at moto in server mode, behind the tests'
HTTP boundary proxy (plugins/aws/tests/http_faults.py: it records every call, and answers the
placement-group calls moto does not implement).

moto is only an API: its instances run nothing. ``tests/ec2.py`` is the hypervisor that stands
in for EC2's: each instance moto runs is booted as a local host (a network namespace) with the
private IP moto gave it, running the user data the AWS provider rendered, with an instance
metadata service (IMDSv2) answering from moto. So the bootstrap the provider generates is run,
not only rendered: it names the host from its launch index, starts munge, slurmctld or slurmd
and sshd, and calls Corral back; Slurm's resume and suspend programs drive RunInstances and
TerminateInstances through Corral. As root, with Slurm installed (contrib/lab/slurm.sh).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from tests.ec2 import Ec2Hypervisor
from tests.lab import LabServer, corral_server
from tests.test_local_cloud import _get, _post, host_report, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins" / "aws" / "tests"))
from http_faults import Ec2Extras, FaultProxy

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("slurmctld"),
    reason="EC2 instances are booted as network namespaces (root) running Slurm "
    "(contrib/lab/slurm.sh installs it)",
)

REGION, ZONE = "us-east-1", "us-east-1a"
CIDR, GATEWAY, BRIDGE = "10.86.0.0/16", "10.86.0.1", "crlaws0"
ACCOUNT_ID = "123456789012"  # moto's
COST_TAGS = ("Date", "GroupID", "Name", "OrganizationID", "Pool", "Project", "Session",
             "SessionID", "User")  # fmt: skip


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def proxy(moto: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto).start()
    Ec2Extras().install(proxy)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def ec2(moto: str) -> Any:
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="test",
    )


@pytest.fixture(scope="module")
def hypervisor(moto: str) -> Iterator[Ec2Hypervisor]:
    root = Path("/var/lib/corral-local-tests") / f"aws-{uuid.uuid4().hex[:8]}"
    hypervisor = Ec2Hypervisor(
        endpoint_url=moto, region=REGION, root=root, subnet=CIDR, bridge=BRIDGE
    )
    hypervisor.start()
    try:
        yield hypervisor
    finally:
        hypervisor.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, proxy: FaultProxy, hypervisor: Ec2Hypervisor
) -> Iterator[LabServer]:
    def settings(port: int) -> dict[str, str]:
        return {
            "CORRAL_CLUSTERS_CALLBACK_URL": f"http://{GATEWAY}:{port}",
            "CORRAL_RECONCILE_LEASE_SECONDS": "10",
            "CORRAL_RECONCILE_SWEEP_INTERVAL": "2",
        }

    # what an admin does first: an IAM user for Corral, and an access key of it to type in
    iam = boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=proxy.url,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="test",
    )
    iam.create_user(UserName="corral")
    key = iam.create_access_key(UserName="corral")["AccessKey"]
    typed = {
        "account_id": ACCOUNT_ID,
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
    }
    for server in corral_server(tmp_path_factory.mktemp("aws-cloud"), settings):
        _post(
            server,
            "/api/cloud-accounts",
            {
                "name": "awslab",
                "provider": "aws",
                "credentials": typed,
                "settings": {"endpoint_url": proxy.url},
            },
            headers=server.admin,
        )
        checked = wait_until(
            "the AWS account is validated", functools.partial(validated, server), timeout=120
        )
        assert checked["permissions"] == "sufficient", checked
        assert typed["secret_access_key"] not in json.dumps(checked)
        # the typed key was rotated (spec 2.3.1): the account works on a key only Corral knows
        assert checked["principal"] != typed["access_key_id"], checked
        keys = iam.list_access_keys(UserName="corral")["AccessKeyMetadata"]
        assert [k["AccessKeyId"] for k in keys] == [checked["principal"]]
        response = httpx.put(
            f"{server.url}/api/cloud-accounts/awslab/access",
            json={"org_wide": True},
            headers=server.admin,
            timeout=30,
        )
        assert response.status_code == 200, response.text
        _post(
            server,
            "/api/networks",
            {
                "name": "labnet",
                "cloud_account": "awslab",
                "regions": [{"region": REGION, "cidr": CIDR, "zone": ZONE}],
                "mode": "private-subnets",
            },
            headers=server.admin,
        )
        network = wait_until(
            "the network is provisioned", functools.partial(provisioned, server), 180
        )
        assert network["status"] == "Provisioned", network
        yield server


def validated(server: LabServer) -> dict[str, Any] | None:
    account = _get(server, "/api/cloud-accounts/awslab")
    return None if account["permissions"] == "checking" else dict(account)


def provisioned(server: LabServer) -> dict[str, Any] | None:
    network = _get(server, "/api/networks/labnet")
    return dict(network) if network["status"] in ("Provisioned", "Failed") else None


def definition(**partition: Any) -> dict[str, Any]:
    return {
        "cloud_account": "awslab",
        "network": "labnet",
        "controller": {"region": REGION, "zone": ZONE, "instance_type": "c5.large"},
        "partitions": [
            {
                "name": "compute",
                "instance_type": "c5.large",
                "max_nodes": 2,
                "zones": [ZONE],
                "use_placement_group": True,
                **partition,
            }
        ],
        "advanced": {"suspend_time": 15, "suspend_timeout": 10, "resume_timeout": 240},
    }


def cluster_id(ec2: Any, name: str) -> str | None:
    """The resource id of alice's cluster ``name``, from its controller's tags."""
    for page in ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:corral-role", "Values": ["controller"]}]
    ):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = tags_of(instance)
                if tags.get("Name", "").startswith(f"alice-{name}-"):
                    return tags["corral-cluster"]
    return None


def cluster_instances(ec2: Any, resource_id: str, *, live: bool = True) -> list[dict[str, Any]]:
    found = []
    for page in ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:corral-cluster", "Values": [resource_id]}]
    ):
        for reservation in page["Reservations"]:
            found += reservation["Instances"]
    if live:
        found = [i for i in found if i["State"]["Name"] not in ("shutting-down", "terminated")]
    return found


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def settle(server: LabServer, name: str, hypervisor: Ec2Hypervisor) -> dict[str, Any]:
    found = wait_until(
        f"cluster {name} settles",
        lambda: (
            (c := _get(server, f"/api/clusters/alice/{name}"))["status"] in ("active", "failed")
            and c
        ),
        timeout=300,
        diagnose=lambda: host_report(hypervisor.hosts.root) + f"\n{hypervisor.errors}",
    )
    assert found["status"] == "active", f"{found['reason']}\n{host_report(hypervisor.hosts.root)}"
    return dict(found)


def test_an_aws_cluster_boots_runs_a_two_node_job_in_its_placement_group_and_leaves_nothing(
    server: LabServer, ec2: Any, proxy: FaultProxy, hypervisor: Ec2Hypervisor
) -> None:
    _post(server, "/api/clusters", {"name": "ec2", "type": "cloud", "cloud": definition()})
    _post(server, "/api/clusters/alice/ec2/start", expect=202)
    settle(server, "ec2", hypervisor)
    resource_id = cluster_id(ec2, "ec2")
    assert resource_id is not None

    # the controller: launched in the network's subnet and security group, tagged, and its user
    # data is the provider's prelude around the kernel's bootstrap (which really ran)
    [controller] = cluster_instances(ec2, resource_id)
    tags = tags_of(controller)
    assert tags["corral-role"] == "controller"
    for key in COST_TAGS:
        assert key in tags, (key, tags)
    for key in ("OrganizationID", "GroupID", "User", "SessionID"):
        assert tags[key], (key, tags)
    network = _get(server, "/api/networks/labnet")
    [region] = network["resources"]
    # (a controller with a public IP is launched with an interface spec: its groups are the
    # interface's, which moto does not copy to the instance as AWS does)
    [interface] = controller["NetworkInterfaces"]
    assert [g["GroupId"] for g in interface["Groups"]] == region["security_group_ids"]
    assert controller["SubnetId"] in region["subnet_ids"]
    data = ec2.describe_instance_attribute(
        InstanceId=controller["InstanceId"], Attribute="userData"
    )
    script = base64.b64decode(data["UserData"]["Value"]).decode()
    assert "meta ami-launch-index" in script and "Corral: bootstrap of" in script
    status, output = hypervisor.user_data_result(controller["InstanceId"])
    assert status == 0, output

    done = server.corral(
        "alice", "cluster", "submit", "ec2", "--nodes", "2", "--wrap", "srun hostname | sort",
        "-o", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    path = f"/api/clusters/alice/ec2/jobs/{job['id']}"
    finished = wait_until(
        "the two-node job finishes",
        lambda: (j := _get(server, path))["state"] in ("completed", "failed", "node_fail") and j,
        timeout=300,
        diagnose=lambda: host_report(hypervisor.hosts.root),
    )
    assert finished["state"] == "completed", finished
    with server.client("alice") as client:
        output_text = client.get(f"{path}/output").text
    nodes = sorted(output_text.split())
    assert len(nodes) == 2 and all(n.startswith("alice-ec2-") for n in nodes), output_text

    # ResumeProgram -> one RunInstances for both nodes, in the partition's placement group
    launches = [
        sent for sent in proxy.sent("RunInstances") if sent.get("MinCount") == "2"
    ]  # fmt: skip
    assert len(launches) == 1, proxy.sent("RunInstances")
    group = f"corral-{resource_id}-compute"
    assert launches[0]["Placement.GroupName"] == group
    assert proxy.sent("CreatePlacementGroup")
    compute = [
        i for i in cluster_instances(ec2, resource_id) if tags_of(i)["corral-role"] != "controller"
    ]
    assert len(compute) == 2 and all(tags_of(i)["Pool"] == "compute" for i in compute)

    # SuspendProgram, after SuspendTime: the nodes are terminated
    wait_until(
        "the idle nodes are terminated",
        lambda: len(cluster_instances(ec2, resource_id)) == 1,
        timeout=180,
        every=1,
    )

    _post(server, "/api/clusters/alice/ec2/destroy", expect=202)
    wait_until(
        "the cluster is off",
        lambda: _get(server, "/api/clusters/alice/ec2")["status"] == "off",
        timeout=120,
    )
    assert cluster_instances(ec2, resource_id) == []
    assert proxy.sent("DeletePlacementGroup")
    volumes = ec2.describe_volumes(
        Filters=[{"Name": "tag:corral-cluster", "Values": [resource_id]}]
    )["Volumes"]
    assert [v for v in volumes if v["State"] != "deleted"] == []
    wait_until("its hosts are gone", lambda: not hypervisor.booted_live(), timeout=60)


def test_killing_corral_after_the_controller_was_launched_does_not_launch_a_second(
    server: LabServer, ec2: Any, hypervisor: Ec2Hypervisor
) -> None:
    _post(server, "/api/clusters", {"name": "killed", "type": "cloud", "cloud": definition()})
    _post(server, "/api/clusters/alice/killed/start", expect=202)
    resource_id = wait_until(
        "the controller is launched", lambda: cluster_id(ec2, "killed"), timeout=120, every=0.2
    )
    server.restart()  # SIGKILL every Corral process, start again
    settle(server, "killed", hypervisor)
    launched = cluster_instances(ec2, resource_id, live=False)
    assert len(launched) == 1, [(i["InstanceId"], i["State"]["Name"]) for i in launched]
    _post(server, "/api/clusters/alice/killed/destroy", expect=202)
    wait_until(
        "the cluster is off",
        lambda: _get(server, "/api/clusters/alice/killed")["status"] == "off",
        timeout=120,
    )
    assert cluster_instances(ec2, resource_id) == []
