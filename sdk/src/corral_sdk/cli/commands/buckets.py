"""``corral buckets`` (``pw buckets``): list buckets and their objects, copy files in and out,
remove objects, and print a bucket's short-lived credentials (spec 60 §5.3).

Buckets are named ``pw://<namespace>/<bucket>[/<path>]`` or by their cloud URI
(``s3://<bucket>[/<path>]``, looked up on the server among the buckets you can see). Objects
are read and written straight at the cloud with the bucket's temporary credentials
(``POST /api/storage/{owner}/{name}/credentials``): for AWS with boto3, which this needs
(``pip install 'corral-sdk[buckets]'``). One side of a copy is local and the other a bucket;
bucket to bucket is a usage error.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec

from corral_sdk.cli.client import ApiClient, client_for
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import CorralError, Invalid, NotFound
from corral_sdk.wire import StorageCredentials, StorageList, StorageSummary

__all__ = ["BucketTarget", "cp", "get_token", "ls", "parse_target", "rm"]

STORAGE = "/api/storage"


@dataclass(frozen=True)
class BucketTarget:
    """A bucket and a path (object key or prefix) inside it."""

    owner: str
    name: str
    path: str = ""

    @property
    def uri(self) -> str:
        return f"pw://{self.owner}/{self.name}" + (f"/{self.path}" if self.path else "")

    def object_uri(self, key: str) -> str:
        return f"pw://{self.owner}/{self.name}/{key}"

    @property
    def api(self) -> str:
        return f"{STORAGE}/{quote(self.owner, safe='')}/{quote(self.name, safe='')}"


def is_remote(text: str) -> bool:
    return "://" in text


def parse_target(client: ApiClient, text: str) -> BucketTarget:
    """``pw://ns/bucket[/path]``, or a cloud URI the server maps back to its bucket."""
    if text.startswith("pw://"):
        parts = text.removeprefix("pw://").split("/", 2)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise Invalid(f"{text!r} is not a bucket URI (pw://<namespace>/<bucket>[/<path>])")
        return BucketTarget(parts[0], parts[1], parts[2] if len(parts) > 2 else "")
    found = client.get(f"{STORAGE}/resolve", StorageSummary, ref=text)
    if found.category != "bucket":
        raise Invalid(f"{text} is {found.uri}, {found.category} storage, not a bucket")
    root = found.csp_uri.rstrip("/")
    path = text[len(root) :].lstrip("/") if text.startswith(root) else ""
    return BucketTarget(found.owner, found.name, path)


def _credentials(client: ApiClient, target: BucketTarget) -> StorageCredentials:
    return client.post(f"{target.api}/credentials", StorageCredentials)


def _s3(creds: StorageCredentials) -> Any:
    """An S3 client on the bucket's temporary credentials."""
    if creds.csp != "aws":
        raise CorralError(
            f"this CLI copies objects of AWS buckets only; {creds.uri} is on "
            f"{creds.csp or 'no cloud'}"
        )
    try:
        import boto3
    except ImportError:
        raise CorralError("bucket objects need boto3: pip install 'corral-sdk[buckets]'") from None
    return boto3.session.Session().client(
        "s3",
        region_name=creds.region or None,
        endpoint_url=creds.endpoint_url or None,
        aws_access_key_id=creds.credentials["accessKeyId"],
        aws_secret_access_key=creds.credentials["secretAccessKey"],
        aws_session_token=creds.credentials.get("sessionToken"),
    )


def _cloud(doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A boto3 call with its errors as Corral's (no traceback for a missing key)."""
    try:
        return fn(*args, **kwargs)
    except CorralError:
        raise
    except Exception as exc:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            raise NotFound(f"{doing}: not found") from None
        raise CorralError(f"{doing} failed: {code or type(exc).__name__}: {exc}") from None


# --- ls -----------------------------------------------------------------------------------------


def _list_buckets(args: argparse.Namespace, client: ApiClient, owner: str | None) -> int:
    raw = client.get(
        STORAGE,
        msgspec.Raw,
        category="bucket",
        owner=owner,
        status="active" if args.csp_uris else None,
        limit=200,
    )
    items = msgspec.json.decode(raw, type=StorageList).items
    if args.output == "json":
        print_json(raw)
    elif args.output == "list":
        for item in items:
            print(f"{item.uri} {item.csp_uri}" if args.csp_uris else item.uri)
    else:
        headers = ["URI", "CSP", "STATUS", *(["CSP URI"] if args.csp_uris else [])]
        print_table(
            headers,
            [
                [i.uri, i.csp or "-", i.status, *([i.csp_uri or "-"] if args.csp_uris else [])]
                for i in items
            ],
        )
    return 0


def _list_objects(args: argparse.Namespace, client: ApiClient, target: BucketTarget) -> int:
    creds = _credentials(client, target)
    s3 = _s3(creds)
    prefix = target.path
    if prefix and not prefix.endswith("/"):
        # a key lists itself; a "directory" lists what is in it
        head = _cloud(
            f"list {target.uri}",
            s3.list_objects_v2,
            Bucket=creds.bucket_name,
            Prefix=prefix,
            MaxKeys=1,
        )
        if not any(o["Key"] == prefix for o in head.get("Contents", [])):
            prefix += "/"
    entries: list[dict[str, Any]] = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=creds.bucket_name, Prefix=prefix, Delimiter="/"
    )
    for page in _cloud(f"list {target.uri}", list, pages):
        for common in page.get("CommonPrefixes", []):
            entries.append({"key": common["Prefix"], "size": 0, "is_prefix": True})
        for item in page.get("Contents", []):
            entries.append(
                {
                    "key": item["Key"],
                    "size": item.get("Size", 0),
                    "modified_at": item["LastModified"].isoformat(),
                    "is_prefix": False,
                }
            )
    for entry in entries:
        entry["uri"] = target.object_uri(entry["key"])
    if args.output == "json":
        print_json(entries)
    elif args.output == "list":
        for entry in entries:
            print(entry["uri"])
    else:
        print_table(
            ["URI", "SIZE", "MODIFIED"],
            [
                [e["uri"], "-" if e["is_prefix"] else e["size"], e.get("modified_at", "-")]
                for e in entries
            ],
        )
    return 0


def ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        if not args.uri:
            return _list_buckets(args, client, None)
        if args.uri.startswith("pw://") and "/" not in args.uri.removeprefix("pw://").strip("/"):
            return _list_buckets(args, client, args.uri.removeprefix("pw://").strip("/"))
        return _list_objects(args, client, parse_target(client, args.uri))


# --- cp, rm -------------------------------------------------------------------------------------


def _upload(
    s3: Any, creds: StorageCredentials, target: BucketTarget, source: Path, recursive: bool
) -> int:
    if source.is_dir():
        if not recursive:
            raise Invalid(f"{source} is a directory: copy it with -r")
        prefix = target.path.rstrip("/")
        files = sorted(p for p in source.rglob("*") if p.is_file())
        for path in files:
            key = "/".join(filter(None, [prefix, path.relative_to(source).as_posix()]))
            _cloud(f"upload {path}", s3.upload_file, str(path), creds.bucket_name, key)
            print(f"upload: {path} to {target.object_uri(key)}")
        return len(files)
    if not source.is_file():
        raise NotFound(f"{source}: no such file")
    key = target.path
    if not key or key.endswith("/"):
        key += source.name  # into the bucket's root or a "directory": keep the file's name
    _cloud(f"upload {source}", s3.upload_file, str(source), creds.bucket_name, key)
    print(f"upload: {source} to {target.object_uri(key)}")
    return 1


def _download(
    s3: Any, creds: StorageCredentials, target: BucketTarget, dest: Path, recursive: bool
) -> int:
    if recursive:
        prefix = target.path.rstrip("/")
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=creds.bucket_name, Prefix=f"{prefix}/" if prefix else ""
        )
        count = 0
        for page in _cloud(f"list {target.uri}", list, pages):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/"):
                    continue  # a "directory" marker
                relative = key[len(prefix) :].lstrip("/") if prefix else key
                path = dest / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                _cloud(f"download {key}", s3.download_file, creds.bucket_name, key, str(path))
                print(f"download: {target.object_uri(key)} to {path}")
                count += 1
        return count
    key = target.path
    if not key or key.endswith("/"):
        raise Invalid(f"{target.uri} is not a file: copy a prefix with -r")
    path = dest / key.rsplit("/", 1)[-1] if dest.is_dir() or str(dest).endswith(os.sep) else dest
    path.parent.mkdir(parents=True, exist_ok=True)
    _cloud(f"download {target.uri}", s3.download_file, creds.bucket_name, key, str(path))
    print(f"download: {target.uri} to {path}")
    return 1


def cp(args: argparse.Namespace) -> int:
    source_remote, dest_remote = is_remote(args.source), is_remote(args.destination)
    if source_remote and dest_remote:
        raise Invalid(
            "copying from one bucket to another is not supported: copy through a local path"
        )
    if not source_remote and not dest_remote:
        raise Invalid(
            "one of the source and the destination must be a bucket (pw://... or s3://...)"
        )
    with client_for(args) as client:
        target = parse_target(client, args.destination if dest_remote else args.source)
        creds = _credentials(client, target)
        s3 = _s3(creds)
        if dest_remote:
            count = _upload(s3, creds, target, Path(args.source), args.recursive)
        else:
            count = _download(s3, creds, target, Path(args.destination), args.recursive)
    if args.recursive and count == 0:
        print("nothing to copy", file=sys.stderr)
    return 0


def rm(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        target = parse_target(client, args.uri)
        if not target.path or target.path.endswith("/"):
            raise Invalid(f"{args.uri} names no object: give pw://<namespace>/<bucket>/<file>")
        creds = _credentials(client, target)
        s3 = _s3(creds)
        found = _cloud(
            f"look up {target.uri}",
            s3.list_objects_v2,
            Bucket=creds.bucket_name,
            Prefix=target.path,
            MaxKeys=1,
        )
        if not any(o["Key"] == target.path for o in found.get("Contents", [])):
            raise NotFound(f"{target.uri}: no such object")
        _cloud(f"delete {target.uri}", s3.delete_object, Bucket=creds.bucket_name, Key=target.path)
    print(f"delete: {target.uri}")
    return 0


# --- get-token ----------------------------------------------------------------------------------


def get_token(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        target = parse_target(client, args.uri)
        raw: msgspec.Raw = client.post(f"{target.api}/credentials", msgspec.Raw)
    if args.output == "json":
        print_json(raw)
        return 0
    creds = msgspec.json.decode(raw, type=StorageCredentials)
    for key, value in creds.env.items():
        print(f"export {key}={shlex.quote(value)}")
    print(f"# expires at {creds.expires_at.isoformat()}", file=sys.stderr)
    for command in creds.commands:
        print(f"#   {command}", file=sys.stderr)
    return 0
