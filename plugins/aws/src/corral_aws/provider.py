"""Amazon Web Services as a :class:`~corral_sdk.providers.cloud.CloudProvider`."""

from __future__ import annotations

from corral_aws.client import AwsClients
from corral_sdk.providers.cloud import CloudProviderBase

__all__ = ["AwsCloud"]


class AwsCloud(CloudProviderBase):
    """Stateless but for its cache of short-lived credentials and clients."""

    def __init__(self) -> None:
        self.clients = AwsClients()
