"""AWS tests run against moto in server mode: a real HTTP endpoint on loopback, which boto3 is
pointed at through the account's ``endpoint_url`` setting as a user would point it at a regional
or GovCloud endpoint. No AWS API is reachable from these machines; moto is the stand-in at that
network boundary. Each test gets a fresh moto state (``/moto-api/reset``).

Accounts reach moto through :class:`http_faults.FaultProxy`, which counts and records every call,
injects AWS faults when a test asks (throttling, zones without capacity) and answers the few EC2
actions moto lacks (placement groups, capacity reservations)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from http_faults import Ec2Extras, FaultProxy
from moto.server import ThreadedMotoServer

from corral_aws.provider import AwsCloud
from corral_aws.settings import AwsCredentials
from corral_sdk.providers.cloud import CloudAccount

MOTO_ACCOUNT_ID = "123456789012"
"""The account moto answers for (its default)."""


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto(moto_url: str) -> str:
    """The endpoint of a moto server with nothing in it."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()
    return moto_url


@pytest.fixture(scope="session")
def proxy_server(moto_url: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def proxy(proxy_server: FaultProxy, moto: str) -> FaultProxy:
    """The HTTP boundary in front of a fresh moto, with no faults and nothing recorded."""
    proxy_server.reset()
    return proxy_server


@pytest.fixture
def extras(proxy: FaultProxy) -> Ec2Extras:
    return Ec2Extras().install(proxy)


def make_account(endpoint: str, **settings: object) -> CloudAccount:
    return CloudAccount(
        name="awstest",
        credentials=AwsCredentials(
            account_id=MOTO_ACCOUNT_ID,
            access_key_id="AKIAIOSFODNN7EXAMPLE",
            secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        settings={"endpoint_url": endpoint, "regions": ["us-east-1", "us-west-2"], **settings},
    )


@pytest.fixture
def account(proxy: FaultProxy, extras: Ec2Extras) -> CloudAccount:
    return make_account(proxy.url)


@pytest.fixture
def provider() -> AwsCloud:
    return AwsCloud()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
