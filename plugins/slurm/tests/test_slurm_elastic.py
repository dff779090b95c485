"""The slurm.conf fragment and gres.conf of an elastic cluster."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest

from corral_sdk.errors import Invalid
from corral_sdk.providers.scheduler import ElasticClusterSpec, ElasticPartition
from corral_sdk.testing import TranscriptRunner
from corral_slurm.config import SlurmConfig
from corral_slurm.scheduler import Slurm

pytestmark = pytest.mark.anyio

CLUSTER = ElasticClusterSpec(
    cluster_name="demo",
    controller_host="demo-mgmt",
    partitions=(
        ElasticPartition(
            name="compute",
            node_prefix="demo-00060-1-",
            max_nodes=16,
            cpus=8,
            memory_mb=30000,
            default=True,
            features=("c5", "ondemand"),
        ),
        ElasticPartition(
            name="gpu",
            node_prefix="demo-00060-2-",
            max_nodes=2,
            cpus=16,
            memory_mb=60000,
            gpus=4,
            gpu_type="a100",
        ),
    ),
    resume_program="/opt/corral/bin/resume",
    suspend_program="/opt/corral/bin/suspend",
    suspend_time_seconds=600,
    resume_timeout_seconds=900,
    suspend_timeout_seconds=120,
    return_to_service=2,
    mail_program="/opt/corral/bin/mail",
)

SLURM_CONF = """\
# Corral: the elastic nodes of cluster demo (controller demo-mgmt).
# Written by Corral; slurm.conf includes it with: Include /etc/slurm/corral-elastic.conf
SuspendProgram=/opt/corral/bin/suspend
ResumeProgram=/opt/corral/bin/resume
SuspendTime=600
SuspendTimeout=120
ResumeTimeout=900
ReturnToService=2
# cloud nodes have no address in slurm.conf: slurmd must not relay messages to others
TreeWidth=65533
SlurmctldParameters=cloud_reg_addrs,idle_on_node_suspend
# addresses change as nodes come and go
CommunicationParameters=NoAddrCache
# show powered-down cloud nodes in sinfo (Slurm before 23.02; later ones always do)
PrivateData=cloud
GresTypes=gpu
MailProg=/opt/corral/bin/mail

NodeName=demo-00060-1-[0001-0016] State=CLOUD CPUs=8 RealMemory=30000 Features=c5,ondemand
NodeName=demo-00060-2-[0001-0002] State=CLOUD CPUs=16 RealMemory=60000 Gres=gpu:a100:4
PartitionName=compute Nodes=demo-00060-1-[0001-0016] Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=demo-00060-2-[0001-0002] Default=NO MaxTime=INFINITE State=UP
"""

GRES_CONF = """\
# Corral: the GPUs of the elastic nodes of cluster demo.
NodeName=demo-00060-2-[0001-0002] Name=gpu Type=a100 File=/dev/nvidia[0-3]
"""


async def test_two_partitions_one_with_gpus() -> None:
    runner = TranscriptRunner()
    files = await Slurm(runner, None).elastic_config(CLUSTER)
    assert [(f.path, f.mode) for f in files] == [
        ("/etc/slurm/corral-elastic.conf", 0o644),
        ("/etc/slurm/gres.conf", 0o644),
    ]
    assert files[0].content == SLURM_CONF
    assert files[1].content == GRES_CONF
    assert runner.calls == [], "elastic_config runs nothing"


async def test_without_gpus_there_is_no_gres_conf() -> None:
    cluster = msgspec.structs.replace(CLUSTER, partitions=CLUSTER.partitions[:1], mail_program="")
    files = await Slurm(TranscriptRunner(), None).elastic_config(cluster)
    assert [f.path for f in files] == ["/etc/slurm/corral-elastic.conf"]
    assert "GresTypes" not in files[0].content
    assert "MailProg" not in files[0].content


async def test_single_untyped_gpu_and_one_node() -> None:
    partition = ElasticPartition(
        name="viz", node_prefix="viz-", max_nodes=1, cpus=4, memory_mb=8000, gpus=1
    )
    cluster = msgspec.structs.replace(CLUSTER, partitions=(partition,))
    files = await Slurm(TranscriptRunner(), None).elastic_config(cluster)
    assert "NodeName=viz-0001 State=CLOUD CPUs=4 RealMemory=8000 Gres=gpu:1\n" in files[0].content
    assert "PartitionName=viz Nodes=viz-0001 Default=NO" in files[0].content
    assert files[1].content.endswith("NodeName=viz-0001 Name=gpu File=/dev/nvidia0\n")


async def test_configuration_directory_and_names_in_dns() -> None:
    config = SlurmConfig(config_dir="/opt/slurm/etc/", cloud_dns=True)
    files = await Slurm(TranscriptRunner(), config).elastic_config(CLUSTER)
    assert [f.path for f in files] == [
        "/opt/slurm/etc/corral-elastic.conf",
        "/opt/slurm/etc/gres.conf",
    ]
    assert "\nSlurmctldParameters=cloud_dns,idle_on_node_suspend\n" in files[0].content
    assert "Include /opt/slurm/etc/corral-elastic.conf" in files[0].content


def _partition(**changes: object) -> ElasticPartition:
    return msgspec.structs.replace(CLUSTER.partitions[0], **changes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"partitions": ()}, "partitions"),
        ({"partitions": (_partition(name="default"),)}, "partitions"),
        ({"partitions": (_partition(name="two words"),)}, "partitions"),
        ({"partitions": (_partition(node_prefix="0bad-"),)}, "partitions"),
        ({"partitions": (_partition(node_prefix="a b"),)}, "partitions"),
        ({"partitions": (_partition(max_nodes=0),)}, "partitions"),
        ({"partitions": (_partition(max_nodes=10000),)}, "partitions"),
        ({"partitions": (_partition(cpus=0),)}, "partitions"),
        ({"partitions": (_partition(features=("a b",)),)}, "partitions"),
        ({"partitions": (_partition(), _partition(node_prefix="other-"))}, "partitions"),
        ({"partitions": (_partition(), _partition(name="other"))}, "partitions"),
        (
            {"partitions": (_partition(), _partition(name="b", node_prefix="b-", default=True))},
            "partitions",
        ),
        ({"resume_program": "resume"}, "resume_program"),
        ({"suspend_program": "/opt/my suspend"}, "suspend_program"),
        ({"mail_program": "mail"}, "mail_program"),
        ({"suspend_time_seconds": 0}, "suspend_time_seconds"),
        ({"return_to_service": 3}, "return_to_service"),
    ],
)
async def test_what_slurm_could_not_be_configured_with(
    changes: dict[str, object], field: str
) -> None:
    cluster = msgspec.structs.replace(CLUSTER, **changes)
    with pytest.raises(Invalid) as info:
        await Slurm(TranscriptRunner(), None).elastic_config(cluster)
    assert info.value.field == field


def test_registering_the_plugin_imports_no_scheduler_code() -> None:
    code = (
        "import sys, corral_slurm.plugin as p; p.corral_register_schedulers(); "
        "print(sorted(m for m in sys.modules if m.startswith('corral_slurm')))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "['corral_slurm', 'corral_slurm.config', 'corral_slurm.plugin']"
