"""``corral ssh-public-keys <username>``: sshd's AuthorizedKeysCommand.

It runs without a context (often as ``nobody``): only the server is needed, from
``--platform-host`` or ``PW_PLATFORM_HOST``. Nothing but keys goes to stdout; errors go to stderr
with a non-zero exit, so sshd never mistakes a message for a key.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import quote

from corral_sdk.cli.client import ApiClient, resolve_server

__all__ = ["ssh_public_keys"]


def ssh_public_keys(args: argparse.Namespace) -> int:
    with ApiClient(resolve_server(args.platform_host)) as client:
        keys = client.get(f"/api/users/{quote(args.username, safe='')}/ssh-public-keys", str)
    sys.stdout.write(keys)
    return 0
