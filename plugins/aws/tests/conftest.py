"""AWS tests run against moto in server mode: a real HTTP endpoint on loopback, which boto3 is
pointed at through the account's ``endpoint_url`` setting as a user would point it at a regional
or GovCloud endpoint. No AWS API is reachable from these machines; moto is the stand-in at that
network boundary. Each test gets a fresh moto state (``/moto-api/reset``)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

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


@pytest.fixture
def account(moto: str) -> CloudAccount:
    return CloudAccount(
        name="awstest",
        credentials=AwsCredentials(
            account_id=MOTO_ACCOUNT_ID,
            access_key_id="AKIAIOSFODNN7EXAMPLE",
            secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        settings={"endpoint_url": moto},
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
