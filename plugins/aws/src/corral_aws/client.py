"""boto3 clients for an account: short-lived STS federation credentials, the account's endpoints,
retries with back-off, blocking calls off the event loop, and AWS errors mapped to Corral's.

boto3 is imported here on first use only, so loading the plugin stays cheap.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from corral_aws.settings import AwsCredentials, AwsSettings, parse_settings
from corral_sdk.errors import (
    Conflict,
    CorralError,
    Invalid,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    ProviderError,
    TransportError,
)
from corral_sdk.providers.cloud import CAPACITY_UNAVAILABLE, QUOTA_EXCEEDED, CloudAccount

__all__ = ["AwsClients", "aws_errors", "call"]

FEDERATION_SECONDS = 3600
"""How long an STS federation token lives; a new one is asked for 5 minutes before it ends."""
_RENEW_BEFORE = 300
POOL_CONNECTIONS = 32
"""Connections per client: batched tagging runs this many calls at once."""
_FEDERATION_POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
)
"""A federation token has the intersection of this and the IAM user's own policies: exactly the
user's permissions."""

_NOT_AUTHENTICATED = {
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
}
_PERMISSION = {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "Blocked"}
_CAPACITY = {
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "ReservationCapacityExceeded",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "Unsupported",
}
_QUOTA = {"InstanceLimitExceeded", "VcpuLimitExceeded", "AddressLimitExceeded", "VpcLimitExceeded"}
_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalError",
    "Unavailable",
}


class _Cached:
    __slots__ = ("expires", "session")

    def __init__(self, session: Any, expires: float) -> None:
        self.session = session
        self.expires = expires


class AwsClients:
    """Clients of one account, on short-lived credentials. One instance per provider; the cache
    is keyed by the account's access key, so new credentials get new tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, _Cached] = {}
        self._clients: dict[tuple[str, str, str, float], Any] = {}

    @staticmethod
    def settings(account: CloudAccount) -> AwsSettings:
        return parse_settings(account.settings)

    @staticmethod
    def credentials(account: CloudAccount) -> AwsCredentials:
        if not isinstance(account.credentials, AwsCredentials):
            raise Invalid("an AWS account needs AWS credentials", field="credentials")
        return account.credentials

    @staticmethod
    def config(settings: AwsSettings, max_attempts: int | None = None) -> Any:
        from botocore.config import Config

        return Config(
            retries={
                "mode": "standard",
                "total_max_attempts": max_attempts or settings.max_attempts,
            },
            max_pool_connections=POOL_CONNECTIONS,
            connect_timeout=10,
            read_timeout=60,
            user_agent_extra="corral-aws",
        )

    def long_term_client(
        self, account: CloudAccount, service: str, *, max_attempts: int | None = None
    ) -> Any:
        """A client on the account's own access key: only for STS and IAM calls about the key
        itself (validation, federation, rotation) and the permission check's dry runs."""
        import boto3

        settings = self.settings(account)
        creds = self.credentials(account)
        return boto3.session.Session().client(
            service,
            region_name=settings.home_region(account.govcloud),
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            endpoint_url=settings.endpoint(service),
            verify=settings.verify_tls,
            config=self.config(settings, max_attempts),
        )

    def _key(self, account: CloudAccount) -> str:
        creds = self.credentials(account)
        raw = f"{creds.access_key_id}\0{creds.secret_access_key}\0{account.settings!r}"
        return hashlib.sha256(raw.encode()).hexdigest()

    def session(self, account: CloudAccount) -> Any:
        """A boto3 session on an STS federation token of the account (blocking: call it in a
        thread)."""
        import boto3

        key = self._key(account)
        with self._lock:
            cached = self._sessions.get(key)
            if cached is not None and cached.expires - _RENEW_BEFORE > time.time():
                return cached.session
        sts = self.long_term_client(account, "sts")
        token = sts.get_federation_token(
            Name=f"corral-{account.name}"[:32],
            Policy=_FEDERATION_POLICY,
            DurationSeconds=FEDERATION_SECONDS,
        )["Credentials"]
        session = boto3.session.Session(
            aws_access_key_id=token["AccessKeyId"],
            aws_secret_access_key=token["SecretAccessKey"],
            aws_session_token=token["SessionToken"],
        )
        expires = token["Expiration"].timestamp()
        with self._lock:
            self._sessions[key] = _Cached(session, expires)
        return session

    def client(self, account: CloudAccount, service: str, region: str) -> Any:
        """A client of ``service`` in ``region`` on short-lived credentials (blocking; boto3
        clients are thread-safe, so one is kept per token, service and region)."""
        settings = self.settings(account)
        session = self.session(account)
        key = (self._key(account), service, region, self._sessions[self._key(account)].expires)
        with self._lock:
            found = self._clients.get(key)
        if found is not None:
            return found
        made = session.client(
            service,
            region_name=region,
            endpoint_url=settings.endpoint(service),
            verify=settings.verify_tls,
            config=self.config(settings),
        )
        with self._lock:
            stale = [k for k in self._clients if k[0] == key[0] and k[3] != key[3]]
            for old in stale:
                del self._clients[old]
            self._clients[key] = made
        return made


def _message(error: Any) -> tuple[str, str]:
    body = error.response.get("Error", {}) if hasattr(error, "response") else {}
    return str(body.get("Code", "")), str(body.get("Message", "")) or str(error)


def map_error(exc: BaseException, doing: str) -> CorralError:
    """The Corral error for a boto3/botocore exception raised while ``doing`` something."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        code, message = _message(exc)
        text = f"AWS refused to {doing}: {code}: {message}"
        if code in _NOT_AUTHENTICATED:
            return NotAuthenticated(text)
        if code in _PERMISSION or code.endswith("AccessDenied"):
            return PermissionDenied(text)
        if code in _CAPACITY:
            return ProviderError(text, reason=CAPACITY_UNAVAILABLE, retryable=True)
        if code in _QUOTA:
            return ProviderError(text, reason=QUOTA_EXCEEDED)
        if code in _THROTTLED:
            return TransportError(text, retryable=True)
        if code.endswith((".NotFound", "NotFound", ".Malformed")) and "NotFound" in code:
            return NotFound(text)
        if code in {
            "DependencyViolation",
            "IncorrectState",
            "IncorrectInstanceState",
            "IdempotentParameterMismatch",
            "InvalidPlacementGroup.InUse",
            "InvalidIPAddress.InUse",
        }:
            return Conflict(text)
        if code.startswith(("InvalidParameter", "MissingParameter", "ValidationError")):
            return Invalid(text)
        return ProviderError(text, reason=code or None)
    if isinstance(exc, NoCredentialsError):
        return NotAuthenticated(f"no AWS credentials to {doing}")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return TransportError(f"AWS could not be reached to {doing}: {exc}", retryable=True)
    if isinstance(exc, BotoCoreError):
        return ProviderError(f"AWS call failed to {doing}: {exc}")
    return ProviderError(f"unexpected error while trying to {doing}: {exc!r}")


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Turn any AWS exception raised inside into a Corral error (vendor exceptions never escape
    a provider)."""
    try:
        yield
    except CorralError:
        raise
    except Exception as exc:
        raise map_error(exc, doing) from None


async def call(doing: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking boto3 call in a thread, its errors mapped (see :func:`aws_errors`)."""

    def run() -> Any:
        with aws_errors(doing):
            return fn(*args, **kwargs)

    return await asyncio.to_thread(run)
