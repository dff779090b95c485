"""The CLI's credentials file: named contexts, each a server and a credential for it.

``$PW_CONFIG_DIR/credentials.json``, or ``~/.config/corral/credentials.json``::

    {
      "current-context": "admin@127.0.0.1:8080",
      "contexts": {
        "admin@127.0.0.1:8080": {
          "server": "http://127.0.0.1:8080",
          "username": "admin",
          "org": "default",
          "kind": "token",
          "credential": "<secret>",
          "credential_id": 12,
          "expires_at": "2025-01-02T03:04:05Z"
        }
      }
    }

The file holds secrets: it is written atomically (a temporary file in the same directory, then a
rename) with mode 0600, in a directory created with mode 0700. Only the standard library is used
here, so the local-only ``corral context`` commands start fast.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from corral_sdk.errors import Conflict, CorralError, Invalid, NotFound

__all__ = [
    "CONFIG_DIR_ENV",
    "Context",
    "CredentialsFile",
    "config_dir",
    "credentials_path",
    "default_context_name",
    "read_secret",
]

CONFIG_DIR_ENV = "PW_CONFIG_DIR"
FILE_NAME = "credentials.json"
KINDS = ("token", "apikey")


def config_dir() -> Path:
    """``$PW_CONFIG_DIR``, else ``~/.config/corral``."""
    configured = os.environ.get(CONFIG_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".config" / "corral"


def credentials_path() -> Path:
    return config_dir() / FILE_NAME


def default_context_name(username: str, server: str) -> str:
    """``<username>@<host[:port]>`` of the server."""
    return f"{username}@{urlsplit(server).netloc or server}"


@dataclass(frozen=True)
class Context:
    """One named context. ``credential`` is secret: never print it."""

    name: str
    server: str
    username: str = ""
    org: str = ""
    kind: str = ""
    """``token`` or ``apikey``; empty when the credential was removed (``auth logout``)."""
    credential: str = ""
    credential_id: int | None = None
    """The server's id of a token issued by ``auth login``, to revoke it on logout."""
    expires_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"server": self.server, "username": self.username}
        if self.org:
            data["org"] = self.org
        if self.credential:
            data["kind"] = self.kind
            data["credential"] = self.credential
            if self.credential_id is not None:
                data["credential_id"] = self.credential_id
            if self.expires_at:
                data["expires_at"] = self.expires_at
        return data

    def public(self, current: bool) -> dict[str, Any]:
        """What ``context ls -o json`` shows: everything but the secret."""
        return {
            "name": self.name,
            "current": current,
            "server": self.server,
            "username": self.username,
            "org": self.org,
            "kind": self.kind if self.credential else None,
            "expires_at": self.expires_at if self.credential else None,
        }

    def without_credential(self) -> Context:
        return replace(self, kind="", credential="", credential_id=None, expires_at=None)


def _context(path: Path, name: str, data: Any) -> Context:
    if not isinstance(data, dict) or not isinstance(data.get("server"), str):
        raise CorralError(f"{path}: context {name!r} has no server; fix or delete the file")
    kind = data.get("kind") or ""
    credential = data.get("credential") or ""
    if not isinstance(credential, str) or (credential and kind not in KINDS):
        raise CorralError(f"{path}: context {name!r} has an invalid credential; fix or delete it")
    credential_id = data.get("credential_id")
    expires_at = data.get("expires_at")
    return Context(
        name=name,
        server=data["server"],
        username=str(data.get("username") or ""),
        org=str(data.get("org") or ""),
        kind=kind if credential else "",
        credential=credential,
        credential_id=credential_id if isinstance(credential_id, int) else None,
        expires_at=expires_at if isinstance(expires_at, str) else None,
    )


class CredentialsFile:
    """The contexts, in file order, and which one is current."""

    def __init__(
        self, path: Path, contexts: dict[str, Context] | None = None, current: str | None = None
    ) -> None:
        self.path = path
        self.contexts: dict[str, Context] = dict(contexts or {})
        self.current = current

    @classmethod
    def load(cls, path: Path | None = None) -> CredentialsFile:
        """The file's contents; an empty set of contexts when there is no file yet."""
        path = path or credentials_path()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise CorralError(f"cannot read {path}: {exc.strerror}") from None
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise CorralError(f"{path} is not valid JSON ({exc}); fix or delete it") from None
        if not isinstance(data, dict) or not isinstance(data.get("contexts", {}), dict):
            raise CorralError(f"{path}: expected an object with 'contexts'; fix or delete it")
        contexts = {
            str(name): _context(path, str(name), value)
            for name, value in data.get("contexts", {}).items()
        }
        current = data.get("current-context")
        return cls(path, contexts, current if isinstance(current, str) else None)

    def save(self) -> None:
        """Write atomically: mode 0600, in a directory created with mode 0700."""
        directory = self.path.parent
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)  # mkdir's mode is filtered by the umask
        document = {
            "current-context": self.current,
            "contexts": {name: c.to_json() for name, c in self.contexts.items()},
        }
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=2)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    # --- queries --------------------------------------------------------------------------------

    def get(self, name: str) -> Context:
        try:
            return self.contexts[name]
        except KeyError:
            raise NotFound(
                f"no context named {name!r} in {self.path} (see `corral context ls`)"
            ) from None

    def current_context(self) -> Context | None:
        return self.contexts.get(self.current) if self.current else None

    # --- changes (call save() afterwards) -------------------------------------------------------

    def put(self, context: Context, *, make_current: bool = True) -> None:
        """Add or replace a context (re-authenticating overwrites its credential)."""
        self.contexts[context.name] = context
        if make_current:
            self.current = context.name

    def use(self, name: str) -> Context:
        context = self.get(name)
        self.current = name
        return context

    def rename(self, old: str, new: str) -> None:
        context = self.get(old)
        if not new.strip():
            raise Invalid("the new context name must not be empty", field="new")
        if new in self.contexts and new != old:
            raise Conflict(f"a context named {new!r} exists: delete or rename it first")
        self.contexts = {
            (new if name == old else name): (replace(context, name=new) if name == old else c)
            for name, c in self.contexts.items()
        }
        if self.current == old:
            self.current = new

    def delete(self, name: str, *, force: bool = False) -> str | None:
        """Remove a context; returns the new current context when the current one was removed.

        Removing the current context needs ``force``; the first remaining context becomes current.
        """
        self.get(name)
        if name == self.current and not force:
            raise Invalid(f"{name!r} is the current context: pass -f to delete it anyway")
        del self.contexts[name]
        if self.current == name:
            self.current = next(iter(self.contexts), None)
        return self.current


def read_secret(prompt: str, what: str) -> str:
    """A secret from the terminal without echo, or one line from stdin when it is not a TTY."""
    if sys.stdin is not None and sys.stdin.isatty():
        value = getpass.getpass(prompt)
    else:
        value = sys.stdin.readline() if sys.stdin is not None else ""
    value = value.strip()
    if not value:
        raise Invalid(f"no {what} given (paste it on one line, or pipe it to stdin)")
    return value
