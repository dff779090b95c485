"""Buckets end to end: ``corral storage`` and ``corral buckets`` as real processes against a real
``corral up`` whose AWS plugin is pointed (by the cloud account's ``endpoint_url``) at moto in
server mode, the stand-in for AWS at its HTTP boundary (no AWS API is reachable from these
machines). The bucket is really created, filled, listed, emptied and deleted through the S3 API,
with the 12-hour credentials Corral mints for it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from corral_core.testing import CorralProcess, TestDeployment, api_key, free_port
from tests.test_cli_identity import Cli, Server

BUCKET = "demos3bucket"
USER_PASSWORD = "Buckets-tests-Passw0rd!"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, moto: str) -> Iterator[Server]:
    deployment = TestDeployment(tmp_path_factory.mktemp("buckets"))
    port = free_port()
    # workspace steps find this environment's programs first (the aws CLI of awscli)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    proc = CorralProcess(
        ["up", "--port", str(port)],
        deployment.process_env({"PATH": path}),
        deployment.tmp / "up.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        proc.wait_http(f"{url}/api/health")
        headers = {"Authorization": f"Bearer {api_key(url)}"}
        account = httpx.post(
            f"{url}/api/cloud-accounts",
            json={
                "name": "aws",
                "provider": "aws",
                "settings": {"endpoint_url": moto, "regions": ["us-east-1", "us-west-2"]},
                "credentials": {
                    "account_id": "123456789012",
                    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                },
            },
            headers=headers,
            timeout=30,
        )
        assert account.status_code == 201, account.text
        for name in ("carol", "dave"):
            user = httpx.post(
                f"{url}/api/users",
                json={"username": name, "password": USER_PASSWORD},
                headers=headers,
                timeout=30,
            )
            assert user.status_code == 201, user.text
        yield Server(deployment, url)
    finally:
        proc.stop()
        deployment.close()


@pytest.fixture(scope="module")
def admin(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    cli = Cli(server, tmp_path_factory.mktemp("admin-config"))
    assert cli.login().returncode == 0
    return cli


def signed_in(server: Server, path: Path, username: str) -> Cli:
    cli = Cli(server, path)
    assert cli.login(username, USER_PASSWORD).returncode == 0
    return cli


@pytest.fixture(scope="module")
def bucket(admin: Cli) -> str:
    """An active aws-s3 bucket of the admin's; its cloud name."""
    made = admin.json(
        "storage", "create", BUCKET, "--type", "aws-s3", "--cloud-account", "aws",
        "--option", "region=us-west-2", "--description", "demo", "--start", "--wait",
    )  # fmt: skip
    assert made["status"] == "active", made
    assert made["csp_uri"].startswith("s3://corral-demos3bucket-")
    return str(made["csp_uri"]).removeprefix("s3://")


def s3(moto: str) -> object:
    return boto3.client(
        "s3",
        region_name="us-west-2",
        endpoint_url=moto,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="x",
    )


def keys(moto: str, bucket: str) -> list[str]:
    listed = s3(moto).list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_buckets_ls_cp_rm_and_tokens(admin: Cli, bucket: str, moto: str, tmp_path: Path) -> None:
    table = admin.ok("buckets", "ls")
    assert f"pw://admin/{BUCKET}" in table and "aws" in table and "active" in table
    assert "CSP URI" not in table
    with_uris = admin.ok("buckets", "ls", "--csp-uris")
    assert f"s3://{bucket}" in with_uris.splitlines()[1]
    assert admin.ok("buckets", "ls", "-o", "list").split() == [f"pw://admin/{BUCKET}"]
    assert admin.ok("buckets", "ls", "pw://admin", "-o", "list").split() == [f"pw://admin/{BUCKET}"]

    sample = tmp_path / "sample.txt"
    sample.write_text("hello bucket\n")
    admin.ok("buckets", "cp", str(sample), f"pw://admin/{BUCKET}")
    tree = tmp_path / "sample-dir"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("b")
    refused = admin("buckets", "cp", str(tree), f"pw://admin/{BUCKET}/sample-dir")
    assert refused.returncode == 2 and "-r" in refused.stderr
    admin.ok("buckets", "cp", "-r", str(tree), f"pw://admin/{BUCKET}/sample-dir")
    assert keys(moto, bucket) == ["sample-dir/a.txt", "sample-dir/sub/b.txt", "sample.txt"]

    root = admin.ok("buckets", "ls", f"pw://admin/{BUCKET}", "-o", "list").split()
    assert root == [f"pw://admin/{BUCKET}/sample-dir/", f"pw://admin/{BUCKET}/sample.txt"]
    by_cloud = admin.json("buckets", "ls", f"s3://{bucket}/sample-dir")
    assert sorted((e["uri"], e["is_prefix"]) for e in by_cloud) == [
        (f"pw://admin/{BUCKET}/sample-dir/a.txt", False),
        (f"pw://admin/{BUCKET}/sample-dir/sub/", True),
    ]

    admin.ok("buckets", "cp", "-r", f"pw://admin/{BUCKET}/sample-dir", str(tmp_path / "back"))
    assert (tmp_path / "back" / "a.txt").read_text() == "a"
    assert (tmp_path / "back" / "sub" / "b.txt").read_text() == "b"
    admin.ok("buckets", "cp", "-r", f"pw://admin/{BUCKET}", str(tmp_path / "downloads"))
    assert (tmp_path / "downloads" / "sample.txt").read_text() == "hello bucket\n"
    assert (tmp_path / "downloads" / "sample-dir" / "sub" / "b.txt").read_text() == "b"
    admin.ok("buckets", "cp", f"s3://{bucket}/sample.txt", str(tmp_path / "one.txt"))
    assert (tmp_path / "one.txt").read_text() == "hello bucket\n"

    both = admin("buckets", "cp", f"pw://admin/{BUCKET}/sample.txt", f"s3://{bucket}/copy.txt")
    assert both.returncode == 2 and "one bucket to another" in both.stderr
    local = admin("buckets", "cp", str(sample), str(tmp_path / "x.txt"))
    assert local.returncode == 2

    admin.ok("buckets", "rm", f"pw://admin/{BUCKET}/sample.txt")
    assert "sample.txt" not in keys(moto, bucket)
    again = admin("buckets", "rm", f"pw://admin/{BUCKET}/sample.txt")
    assert again.returncode == 1 and "no such object" in again.stderr
    assert admin("buckets", "rm", f"pw://admin/{BUCKET}").returncode == 2

    exports = admin.ok("buckets", "get-token", f"pw://admin/{BUCKET}")
    env = {}
    for line in exports.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
    assert env["AWS_ENDPOINT_URL_S3"] == moto and env["BUCKET_NAME"] == bucket
    # what `aws s3 ls` does with these variables, with boto3 (the aws CLI is not installed)
    listing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import boto3, os; b = os.environ['BUCKET_NAME']; "
            "print(*[o['Key'] for o in boto3.client('s3').list_objects_v2(Bucket=b)['Contents']])",
        ],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert listing.stdout.split() == ["sample-dir/a.txt", "sample-dir/sub/b.txt"]
    token = admin.json("buckets", "get-token", f"s3://{bucket}")
    assert token["bucketName"] == bucket and token["credentials"]["sessionToken"]


def test_storage_commands_sessions_logs_and_sharing(
    admin: Cli, bucket: str, server: Server, tmp_path: Path, moto: str
) -> None:
    listed = admin.json("storage", "ls", "--category", "bucket")
    assert [i["uri"] for i in listed["items"]] == [f"pw://admin/{BUCKET}"]
    shown = admin.json("storage", "get", BUCKET)
    assert shown["storage_options"] == {"region": "us-west-2"} and shown["session"] == "00001"
    assert "AWS S3 Bucket" in admin.ok("storage", "types")

    logs = admin.ok("storage", "logs", BUCKET)
    download = httpx.get(
        f"{server.url}/api/storage/admin/{BUCKET}/sessions/1/logs/provision/download",
        headers={"Authorization": f"Bearer {api_key(server.url)}"},
        timeout=30,
    )
    assert logs == download.text
    assert f"Bucket created: s3://{bucket} (public access blocked)" in logs

    refused = admin("storage", "create", "DemoStorage", "--type", "aws-s3",
                    "--cloud-account", "aws", "--option", "region=us-west-2")  # fmt: skip
    assert refused.returncode == 2 and "lowercase letters and digits" in refused.stderr
    far = admin("storage", "create", "farbucket", "--type", "aws-s3",
                "--cloud-account", "aws", "--option", "region=eu-west-1")  # fmt: skip
    assert far.returncode == 2, far.stderr
    assert "storage_options.region" in far.stderr and "eu-west-1" in far.stderr

    carol = signed_in(server, tmp_path / "carol", "carol")
    hidden = carol("buckets", "get-token", f"pw://admin/{BUCKET}")
    assert hidden.returncode == 1 and "not found" in hidden.stderr
    assert carol.ok("buckets", "ls", "-o", "list").split() == []
    admin.ok("groups", "create", "readers")
    admin.ok("groups", "add-member", "readers", "carol")
    shared = admin.json("storage", "share", BUCKET, "readers", "--mount")
    assert shared == [{"group": "readers", "view_edit": False, "mount": True}]
    carol = signed_in(server, tmp_path / "carol2", "carol")  # a new sign-in sees the group
    assert carol.ok("buckets", "ls", "-o", "list").split() == [f"pw://admin/{BUCKET}"]
    assert carol("storage", "get", f"pw://admin/{BUCKET}").returncode == 1  # 403: mount only
    assert carol("storage", "stop", f"pw://admin/{BUCKET}").returncode == 1
    assert carol.json("buckets", "get-token", f"pw://admin/{BUCKET}")["credentials"]


FLOW = """\
'on':
  execute:
    inputs:
      b:
        type: bucket
        label: Data Bucket
        csp: aws
        generateCredentials: true
jobs:
  sync:
    steps:
      - run: |
          echo "key=${{ inputs.b.credentials.accessKeyId }}"
          echo "uri=${{ inputs.b.uri }} user=${{ inputs.b.user }} csp=${{ inputs.b.csp }}"
          echo "bucket=${{ inputs.b.bucketName }} region=${{ inputs.b.region }}"
          AWS_ACCESS_KEY_ID='${{ inputs.b.credentials.accessKeyId }}' \\
          AWS_SECRET_ACCESS_KEY='${{ inputs.b.credentials.secretAccessKey }}' \\
          AWS_SESSION_TOKEN='${{ inputs.b.credentials.sessionToken }}' \\
          AWS_DEFAULT_REGION='${{ inputs.b.region }}' \\
          AWS_ENDPOINT_URL_S3='${{ inputs.b.endpointUrl }}' \\
          PYTHON -c "import boto3; boto3.client('s3').put_object(Body=b'ran',
          Bucket='${{ inputs.b.bucketName }}', Key='from-run-$USER_TAG.txt')"
        env:
          USER_TAG: step
"""


def test_a_bucket_input_gives_steps_the_bucket_and_its_credentials(
    admin: Cli, bucket: str, server: Server, tmp_path: Path, moto: str
) -> None:
    """Spec 20 §5.6: inside a workspace step ``inputs.b.credentials.accessKeyId`` is set and
    ``uri`` is pw://user/name; a bucket the user cannot access fails the run, naming the
    input. The step writes to the bucket with those credentials."""
    flow = tmp_path / "bucket.yaml"
    flow.write_text(FLOW.replace("PYTHON", sys.executable))
    admin.ok("workflows", "create", "bucketflow", "--yaml", str(flow))
    done = admin("workflows", "run", "bucketflow", "-i", f"b=pw://admin/{BUCKET}", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    key = next(line for line in done.stdout.splitlines() if "key=" in line).split("key=")[1]
    assert key.strip(), done.stdout
    assert f"uri=pw://admin/{BUCKET} user=admin csp=aws" in done.stdout
    assert f"bucket={bucket} region=us-west-2" in done.stdout
    assert "from-run-step.txt" in keys(moto, bucket)
    run = admin.json("workflows", "runs", "list", "bucketflow")[0]
    shown = admin.json("workflows", "runs", "view", str(run["id"]))
    inputs = shown["inputs"]["b"]
    assert inputs["uri"] == f"pw://admin/{BUCKET}" and inputs["bucketName"] == bucket
    assert set(inputs["credentials"].values()) == {"********"}, inputs
    by_cloud = admin("workflows", "run", "bucketflow", "-i", f"b=s3://{bucket}", "--wait")
    assert by_cloud.returncode == 0, by_cloud.stderr

    # dave has no access to the admin's bucket: the run is refused, naming the input
    dave = signed_in(server, tmp_path / "dave", "dave")
    dave_flow = tmp_path / "dave.yaml"
    dave_flow.write_text(FLOW.replace("PYTHON", sys.executable))
    dave.ok("workflows", "create", "daveflow", "--yaml", str(dave_flow))
    refused = dave("workflows", "run", "daveflow", "-i", f"b=pw://admin/{BUCKET}", "--wait")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "inputs.b" in refused.stderr and "no bucket" in refused.stderr
    assert dave.json("workflows", "runs", "list", "daveflow") == []
    # carol's group may mount it: a shared bucket is accepted
    carol = signed_in(server, tmp_path / "carol", "carol")
    carol.ok("workflows", "create", "carolflow", "--yaml", str(dave_flow))
    shared = carol("workflows", "run", "carolflow", "-i", f"b=pw://admin/{BUCKET}", "--wait")
    assert shared.returncode == 0, shared.stdout + shared.stderr
    assert f"uri=pw://admin/{BUCKET} user=admin" in shared.stdout


SPEC_EXAMPLE = Path(__file__).parents[1] / "core" / "tests" / "workflows" / "bucket_input.yaml"

TWO_BUCKETS = """\
'on':
  execute:
    inputs:
      first: {type: bucket, csp: aws, generateCredentials: true}
      second: {type: bucket, csp: aws, generateCredentials: true}
jobs:
  show:
    steps:
      - run: echo "key=${AWS_ACCESS_KEY_ID:-none}"
"""


def test_the_spec_bucket_input_example_syncs_with_the_aws_cli(
    admin: Cli, bucket: str, server: Server, tmp_path: Path, moto: str
) -> None:
    """Spec 20 §5.4's example as written (core/tests/workflows/bucket_input.yaml): its step runs
    the real ``aws s3 sync`` (the awscli package), which finds the bucket's credentials, and the
    account's endpoint (moto here), in the environment Corral gives the run's steps."""
    client = s3(moto)
    for key, body in {"data/a.csv": b"1,2\n", "data/sub/b.txt": b"b", "other/c.txt": b"c"}.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)  # type: ignore[attr-defined]
    admin.ok("workflows", "create", "specbucket", "--yaml", str(SPEC_EXAMPLE))
    done = admin(
        "workflows", "run", "specbucket", "-i", f"data_bucket=pw://admin/{BUCKET}", "--wait"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"s3://{bucket}/data/a.csv" in done.stdout  # what aws s3 sync printed
    run = admin.json("workflows", "runs", "list", "specbucket")[0]
    jobs = server.deployment.data_dir / "workspaces" / "admin" / "pw" / "jobs" / "specbucket"

    def synced(number: int) -> dict[str, str]:
        local = jobs / f"{number:05d}" / "local-data"
        return {str(f.relative_to(local)): f.read_text() for f in local.rglob("*") if f.is_file()}

    assert synced(run["number"]) == {"a.csv": "1,2\n", "sub/b.txt": "b"}

    # the credentials the step got stay secret: not in its log, nor in the run's view
    step_env = max(
        (p for p in (jobs.parents[2] / ".corral" / "runs").glob("*/*/env")),
        key=lambda p: p.stat().st_mtime,
    ).read_text()
    assert f"AWS_ENDPOINT_URL_S3={moto}" in step_env and "BUCKET_NAME" not in step_env
    secret = next(
        line.partition("=")[2].strip("'")
        for line in step_env.splitlines()
        if line.startswith("export AWS_SECRET_ACCESS_KEY=")
    )
    assert secret and secret not in done.stdout + done.stderr
    shown = admin.ok("workflows", "runs", "view", str(run["id"]), "-o", "json")
    assert secret not in shown and secret not in admin.ok(
        "workflows", "runs", "logs", str(run["id"])
    )

    # a rerun keeps the run's inputs, the environment they give its steps included
    again = admin("workflows", "runs", "rerun", str(run["id"]), "--wait")
    assert again.returncode == 0, again.stdout + again.stderr
    assert synced(run["number"] + 1) == {"a.csv": "1,2\n", "sub/b.txt": "b"}

    # two buckets would both set AWS_ACCESS_KEY_ID...: steps get neither's, and the log says so
    flow = tmp_path / "two.yaml"
    flow.write_text(TWO_BUCKETS)
    admin.ok("workflows", "create", "twobuckets", "--yaml", str(flow))
    uri = f"pw://admin/{BUCKET}"
    two = admin("workflows", "run", "twobuckets", "-i", f"first={uri}", "-i", f"second={uri}",
                "--wait")  # fmt: skip
    assert two.returncode == 0, two.stdout + two.stderr
    assert "key=none" in two.stdout
    assert "inputs.first, inputs.second set the same environment variables" in two.stdout


def test_a_stopped_bucket_is_gone_and_gives_no_credentials(
    admin: Cli, bucket: str, moto: str
) -> None:
    stopped = admin.json("storage", "stop", BUCKET, "--wait")
    assert stopped["status"] == "stopped" and stopped["csp_uri"] == ""
    names = [b["Name"] for b in s3(moto).list_buckets()["Buckets"]]  # type: ignore[attr-defined]
    assert bucket not in names
    refused = admin("buckets", "get-token", f"pw://admin/{BUCKET}")
    assert refused.returncode == 1 and "stopped" in refused.stderr
    deletion = admin.ok("storage", "logs", BUCKET, "--deletion")
    assert f"Bucket {bucket} deleted" in deletion
    sessions = admin.json("storage", "logs", BUCKET, "--session", "1")
    assert sessions[0]["message"].startswith(f"Provisioning AWS S3 Bucket {BUCKET}")
    admin.ok("storage", "delete", BUCKET)
    assert admin("storage", "get", BUCKET).returncode == 1
