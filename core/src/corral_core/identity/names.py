"""The naming rules of every named thing, each with a message that names the field and the rule."""

from __future__ import annotations

import re
from dataclasses import dataclass

from corral_sdk.errors import Invalid

__all__ = [
    "GROUP_NAME",
    "ORG_NAME",
    "ORG_VARIABLE_KEY",
    "RESOURCE_NAME",
    "USERNAME",
    "NameRule",
    "ResourceRef",
]


@dataclass(frozen=True)
class NameRule:
    what: str
    pattern: re.Pattern[str]
    max_length: int
    rule: str

    def check(self, value: str, field: str) -> str:
        if len(value) > self.max_length or not self.pattern.fullmatch(value):
            raise Invalid(
                f"{field}: {value[:80]!r}{'...' if len(value) > 80 else ''} is not a valid "
                f"{self.what}: {self.rule}",
                field=field,
                details={"rule": self.rule},
            )
        return value


USERNAME = NameRule(
    "username",
    re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*"),
    64,
    "letters, digits, periods and hyphens, starting with a letter or digit, at most 64 characters",
)
GROUP_NAME = NameRule(
    "group name",
    re.compile(r"[A-Za-z0-9_-]+"),
    63,
    "letters, digits, dashes and underscores, at most 63 characters",
)
ORG_NAME = NameRule(
    "organization name",
    re.compile(r"[a-z][a-z0-9-]*[a-z0-9]"),
    63,
    "lowercase letters, digits and hyphens, starting with a letter, 2 to 63 characters",
)
RESOURCE_NAME = NameRule(
    "resource name",
    re.compile(r"[a-z][a-z0-9-]*[a-z0-9]"),
    63,
    "lowercase letters, digits and hyphens, starting with a letter and not ending with a "
    "hyphen, 2 to 63 characters, unique among all your resources of every kind",
)
ORG_VARIABLE_KEY = NameRule(
    "organization variable name",
    re.compile(r"[A-Za-z_][A-Za-z0-9_]*"),
    128,
    "letters, digits and underscores, not starting with a digit, at most 128 characters",
)


@dataclass(frozen=True)
class ResourceRef:
    """A resource named as ``pw://owner/name``, ``owner/name`` or ``name`` (the caller's)."""

    owner: str
    name: str

    @classmethod
    def parse(cls, text: str, caller: str, field: str = "resource") -> ResourceRef:
        body = text.removeprefix("pw://")
        parts = body.split("/")
        if len(parts) == 1 and parts[0]:
            return cls(caller, parts[0])
        if len(parts) == 2 and all(parts):
            return cls(parts[0], parts[1])
        raise Invalid(
            f"{field}: {text!r} is not a resource reference (pw://owner/name, owner/name or name)",
            field=field,
        )

    @property
    def uri(self) -> str:
        return f"pw://{self.owner}/{self.name}"
