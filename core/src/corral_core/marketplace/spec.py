"""The marketplace's rules: slugs, versions, privacy, lengths, and how the home page lists."""

from __future__ import annotations

import re

from corral_core.identity.names import NameRule

__all__ = [
    "DESCRIPTION_MAX",
    "FIRST_VERSION",
    "HOME_PER_TYPE",
    "LATEST",
    "NAME_MAX",
    "PRIVACIES",
    "SLUG",
    "SUMMARY_MAX",
    "TYPES",
    "VERSION",
    "subscription_name",
]

SLUG = NameRule(
    "marketplace slug",
    re.compile(r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?"),
    63,
    "1-63 lowercase letters, digits, '-' and '_', starting and ending with a letter or digit",
)
VERSION = NameRule(
    "marketplace version",
    # the spec's ^v.{2,}$, in the characters a `uses: marketplace/<slug>/<version>` can hold
    re.compile(r"v[A-Za-z0-9_.-]{2,}"),
    64,
    "'v' followed by at least two letters, digits, '.', '-' or '_' (v1.0.0, v10)",
)
LATEST = "latest"
"""The virtual version: the newest published one, whenever it is asked for."""
FIRST_VERSION = "v1.0.0"
"""The version publishing an item creates."""
TYPES = ("workflow", "storage", "compute")
"""The marketplace's types, in the order of the home page's sections."""
PRIVACIES = ("everyone", "org_and_partners", "org", "groups")
NAME_MAX = 255
SUMMARY_MAX = 200
DESCRIPTION_MAX = 65536
HOME_PER_TYPE = 10
"""How many items of each type the home page shows (View all: ``type=``)."""


def subscription_name(slug: str, version: str) -> str:
    """The name of a user's marketplace workflow: ``marketplace.<slug>.<version>``."""
    return f"marketplace.{slug}.{version}"
