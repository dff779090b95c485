"""A 200-node scale-up on AWS (moto in server mode): what Slurm's ResumeProgram asks of Corral
when 200 nodes of one partition power up, done by the AWS provider as one batch
(``create_instances`` with 200 names: one ``RunInstances`` with ``MinCount = MaxCount = 200``
whose instances take their names by launch index, see ``corral_aws.names``), beside the same
200 instances requested one per call in the same run (the baseline).

Printed: wall time to all instances requested, and AWS API calls made (counted at the HTTP
proxy between boto3 and moto, the tests' fault proxy with no faults). Target: batched at least
10 times faster.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from run import Figure

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins" / "aws" / "tests"))

from http_faults import FaultProxy  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from corral_aws.provider import AwsCloud  # noqa: E402
from corral_aws.settings import AwsCredentials  # noqa: E402
from corral_sdk.providers.cloud import CloudAccount, InstanceRequest  # noqa: E402
from corral_sdk.testing.recording import RecordingLog  # noqa: E402

NODES = 200
REGION = "us-east-1"


def _request(image: str, names: tuple[str, ...], key: str) -> InstanceRequest:
    return InstanceRequest(
        region=REGION,
        instance_type="c5.large",
        image=image,
        names=names,
        idempotency_key=key,
        placement_group="pg-bench",
        tags={"Project": "bench", "corral:cluster": "bench"},
    )


async def _scale_up(account: CloudAccount, proxy: FaultProxy) -> dict[str, tuple[float, int]]:
    provider = AwsCloud()
    images = await provider.list_images(account, REGION)
    image = next(i.id for i in images if i.latest and i.architecture == "x86_64")
    names = tuple(f"bench-00001-1-{n:04d}" for n in range(1, NODES + 1))
    await provider.describe_instances(account, REGION, tags={"warm": "up"})  # token, client
    figures = {}

    proxy.reset()
    start = time.perf_counter()
    for name in names:
        await provider.create_instances(
            account, _request(image, (name,), f"one-{name}"), log=RecordingLog()
        )
    figures["one per call"] = (time.perf_counter() - start, sum(proxy.calls.values()))

    proxy.reset()
    start = time.perf_counter()
    made = await provider.create_instances(
        account, _request(image, names, "batch"), log=RecordingLog()
    )
    figures["batched"] = (time.perf_counter() - start, sum(proxy.calls.values()))
    assert len(made) == NODES and len(proxy.sent("RunInstances")) == 1
    return figures


def run() -> list[Figure]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    proxy = FaultProxy(f"http://{host}:{port}").start()
    try:
        account = CloudAccount(
            name="bench",
            credentials=AwsCredentials(
                account_id="123456789012",
                access_key_id="AKIAIOSFODNN7EXAMPLE",
                secret_access_key="bench",
            ),
            settings={"endpoint_url": proxy.url, "regions": [REGION]},
        )
        figures = asyncio.run(_scale_up(account, proxy))
    finally:
        proxy.stop()
        server.stop()
    batched_s, batched_calls = figures["batched"]
    single_s, single_calls = figures["one per call"]
    return [
        Figure(
            name=f"{NODES} nodes batched: time to all requested",
            value=batched_s * 1000,
            unit="ms",
            baseline_name="one instance per call",
            baseline=single_s * 1000,
            target="ratio <= 0.10 (10x faster)",
        ),
        Figure(
            name=f"{NODES} nodes batched: AWS API calls",
            value=batched_calls,
            unit="calls",
            baseline_name="one instance per call",
            baseline=single_calls,
        ),
    ]


if __name__ == "__main__":
    for figure in run():
        print(figure.line())
