"""Auth methods: how users sign in (password, LDAP bind, OIDC, ...).

An auth plugin registers an :class:`~corral_sdk.records.AuthMethodRecord` whose factory is
called as ``factory(config)`` with the method's settings as an org admin entered them (an
instance of the record's ``config`` struct, ``None`` without one). Building an instance does no
I/O, so the kernel builds one per sign-in, and one from unsaved settings for "Test Connection".
Providers are stateless: what a redirect flow must remember between the redirect and the
callback travels in :attr:`LoginRedirect.session_data`, which the kernel keeps server-side.

Errors: wrong credentials, a refused or forged callback raise
:class:`~corral_sdk.errors.NotAuthenticated` with a message that does not say which part was
wrong; settings that break a rule raise :class:`~corral_sdk.errors.Invalid` with ``field``; an
identity provider that cannot be reached raises :class:`~corral_sdk.errors.TransportError`
(``retryable=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import msgspec

from corral_sdk.features import AuthFeature
from corral_sdk.providers._common import redacted_repr, unsupported, unsupported_default

__all__ = [
    "AUTH_FEATURE_METHODS",
    "AuthMethod",
    "AuthMethodBase",
    "Identity",
    "LoginCallback",
    "LoginRedirect",
    "PosixAttributes",
]


class PosixAttributes(msgspec.Struct, frozen=True, kw_only=True):
    """Unix account attributes from the directory (LDAP ``uidNumber``...), used on clusters."""

    username: str | None = None
    uid: int | None = None
    gid: int | None = None
    group_name: str | None = None
    home: str | None = None
    shell: str | None = None


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Who signed in, as the identity provider says."""

    subject: str
    """The stable id at the identity provider (OIDC ``sub``, LDAP entry's unique identifier);
    the kernel links accounts by it."""
    username: str
    email: str = ""
    email_verified: bool = False
    full_name: str = ""
    groups: tuple[str, ...] = ()
    """Group names, with :attr:`~corral_sdk.features.AuthFeature.GROUP_SYNC`."""
    posix: PosixAttributes | None = None
    attributes: dict[str, str] = msgspec.field(default_factory=dict)
    """Other user-safe claims or attributes worth keeping."""


class LoginRedirect(msgspec.Struct, frozen=True, kw_only=True):
    """Where to send the browser to sign in, and what to remember until it comes back."""

    url: str
    state: str
    """An unguessable value the callback must carry back (OIDC ``state``)."""
    session_data: dict[str, str] = msgspec.field(default_factory=dict)
    """Opaque values for :meth:`AuthMethod.complete_login` (PKCE verifier, nonce); stored by
    the kernel server-side, never sent to the browser."""
    expires_in_seconds: int = 600

    def __repr__(self) -> str:
        return redacted_repr(self, frozenset({"session_data"}))


class LoginCallback(msgspec.Struct, frozen=True, kw_only=True):
    """The browser's return to Corral's callback URL."""

    params: dict[str, str]
    """The callback's query (or form) parameters (``code``, ``state``, ``error``)."""
    redirect_uri: str
    """The callback URL given to :meth:`AuthMethod.begin_login`."""
    state: str
    """The state :meth:`AuthMethod.begin_login` returned for this sign-in."""
    session_data: dict[str, str] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return redacted_repr(self, frozenset({"params", "session_data"}))


@runtime_checkable
class AuthMethod(Protocol):
    """What an auth plugin implements. See the module docstring for construction and errors.

    Methods in :data:`AUTH_FEATURE_METHODS` are needed only with their feature;
    :class:`AuthMethodBase` gives "unsupported" defaults for them.
    """

    async def validate_config(self) -> None:
        """Check the settings the method was built with, without contacting anyone (OIDC
        without discovery needs a token endpoint; LDAP with TLS needs a client key); raise
        ``Invalid`` naming the field."""
        ...

    # --- AuthFeature.PASSWORD

    async def authenticate_password(self, username: str, password: str) -> Identity:
        """Check a username and password (a local hash, an LDAP bind) and return who it is.

        Wrong credentials and unknown users raise the same ``NotAuthenticated``. The password is
        never logged, not even on failure.
        """
        ...

    # --- AuthFeature.REDIRECT

    async def begin_login(self, redirect_uri: str) -> LoginRedirect:
        """Start a browser sign-in: the identity provider's URL to redirect to, carrying a
        fresh ``state`` and ``redirect_uri`` as the callback."""
        ...

    async def complete_login(self, callback: LoginCallback) -> Identity:
        """Finish a browser sign-in from the callback's parameters (exchange the code, check
        the ID token) and return who signed in.

        Raises ``NotAuthenticated`` when the callback carries an ``error``, its ``state`` does
        not match ``callback.state``, or the code or token is refused.
        """
        ...

    # --- AuthFeature.MFA

    async def verify_mfa(self, identity: Identity, code: str) -> None:
        """Check a second-factor code for ``identity``; raises ``NotAuthenticated`` when it is
        wrong or used already."""
        ...


AUTH_FEATURE_METHODS: Mapping[AuthFeature, tuple[str, ...]] = MappingProxyType(
    {
        AuthFeature.PASSWORD: ("authenticate_password",),
        AuthFeature.REDIRECT: ("begin_login", "complete_login"),
        AuthFeature.GROUP_SYNC: (),
        AuthFeature.MFA: ("verify_mfa",),
    }
)
"""The methods each :class:`~corral_sdk.features.AuthFeature` needs; ``GROUP_SYNC`` means the
returned :class:`Identity` carries ``groups``."""


class AuthMethodBase:
    """Optional mixin: every feature method raises ``ProviderError(reason="unsupported")``."""

    @unsupported_default
    async def authenticate_password(self, username: str, password: str) -> Identity:
        raise unsupported(self, "authenticate_password")

    @unsupported_default
    async def begin_login(self, redirect_uri: str) -> LoginRedirect:
        raise unsupported(self, "begin_login")

    @unsupported_default
    async def complete_login(self, callback: LoginCallback) -> Identity:
        raise unsupported(self, "complete_login")

    @unsupported_default
    async def verify_mfa(self, identity: Identity, code: str) -> None:
        raise unsupported(self, "verify_mfa")
