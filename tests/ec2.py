"""An EC2 stand-in for tests: moto answers the EC2 API, and this module is the hypervisor and
the instance metadata service that moto does not have.

EC2 itself cannot run on these machines, so the boundary is drawn where a real instance begins:
every instance moto says is running is booted as a local cloud host (a network namespace, see
:mod:`corral_local.hosts`) with the private IP moto assigned it, its ``Name``, and the user data
it was launched with, which the host runs once as root at first boot, as cloud-init would. An
instance moto stops or terminates is halted or deleted. The instance metadata service (IMDSv2:
a session token, then ``meta-data/...``, ``user-data`` and instance tags) answers at
169.254.169.254 for the instance whose address asks, from what moto reports about it.

Everything else is real: Corral calls moto through boto3 as it would call AWS, the user data is
what the AWS provider rendered, and the Slurm daemons it starts are real.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import ipaddress
import secrets
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from corral_local.hosts import LocalHosts

from corral_aws.names import expand

IMDS_ADDRESS = "169.254.169.254"
_TOKEN_TTL = "X-aws-ec2-metadata-token-ttl-seconds"
_TOKEN = "X-aws-ec2-metadata-token"


class Ec2Hypervisor:
    """Boots moto's instances as local hosts (see the module docstring). ``subnet`` is the
    bridge's network: it must hold every subnet of the VPCs the instances are launched in."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        root: Path,
        subnet: str,
        bridge: str,
        vcpus: int = 2,
        memory_mib: int = 2048,
    ) -> None:
        import boto3

        self.ec2 = boto3.client(
            "ec2",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="hypervisor",  # moto accepts any secret
        )
        self.region = region
        self.hosts = LocalHosts(root, subnet, bridge)
        self.vcpus, self.memory_mib = vcpus, memory_mib
        self.instances: dict[str, dict[str, Any]] = {}
        """What moto last said of each instance, by id."""
        self.by_address: dict[str, dict[str, Any]] = {}
        self.booted: dict[str, str] = {}
        """Local host id by instance id."""
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._imds: _ImdsServer | None = None

    # --- the hypervisor -------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring the local hosts in line with what moto says of each instance."""
        seen: dict[str, dict[str, Any]] = {}
        for page in self.ec2.get_paginator("describe_instances").paginate():
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    seen[instance["InstanceId"]] = instance
        self.instances = seen
        self.by_address = {
            i["PrivateIpAddress"]: i for i in seen.values() if i.get("PrivateIpAddress")
        }
        for instance_id, instance in seen.items():
            state = instance["State"]["Name"]
            host = self.booted.get(instance_id)
            if state in ("pending", "running") and host is None:
                self._boot(instance)
            elif state in ("stopping", "stopped") and host is not None:
                self.hosts.stop([host])
            elif state in ("shutting-down", "terminated") and host is not None:
                self.hosts.delete([host])
                del self.booted[instance_id]

    def _boot(self, instance: dict[str, Any]) -> None:
        instance_id = instance["InstanceId"]
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        answer = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        encoded = answer.get("UserData", {}).get("Value", "")
        user_data = base64.b64decode(encoded).decode() if encoded else ""
        address = instance["PrivateIpAddress"]
        if ipaddress.ip_address(address) not in self.hosts.network:
            self.errors.append(f"{instance_id}'s address {address} is not in {self.hosts.network}")
            self.booted[instance_id] = ""
            return
        name = tags.get("Name", "")
        if tags.get("corral:names"):  # a batch's names, by launch index (corral_aws.names)
            listed = expand(tags["corral:names"])
            index = int(instance.get("AmiLaunchIndex", 0))
            name = listed[index] if index < len(listed) else name
        [record] = self.hosts.create(
            names=[_hostname(name, instance_id)],
            instance_type="local.small",
            image="debian",
            vcpus=self.vcpus,
            memory_mib=self.memory_mib,
            user_data=user_data,
            tags={"ec2-instance-id": instance_id},
            idempotency_key=instance_id,
            addresses=[address],
        )
        self.booted[instance_id] = record.id

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # the next round tries again; the test sees the error
                self.errors.append(repr(exc))
            self._stop.wait(0.3)

    def user_data_result(self, instance_id: str) -> tuple[int | None, str]:
        """The exit status (``None`` while it runs) and output of an instance's user data."""
        host = self.booted.get(instance_id)
        record = next((r for r in self.hosts.records() if r.id == host), None)
        if record is None:
            return None, ""
        return self.hosts.user_data_result(record)

    def booted_live(self) -> list[str]:
        """The local hosts standing for instances that have not been terminated."""
        return [record.id for record in self.hosts.records()]

    # --- running it ----------------------------------------------------------------------------

    def start(self) -> None:
        self.hosts.delete([record.id for record in self.hosts.records()])
        self._imds = _ImdsServer(self)
        self._imds.start(self.hosts)
        self._thread = threading.Thread(target=self._loop, name="ec2-hypervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._imds is not None:
            self._imds.stop()
        self.hosts.delete([record.id for record in self.hosts.records()])


@contextlib.contextmanager
def ec2_hypervisor(**kwargs: Any) -> Iterator[Ec2Hypervisor]:
    hypervisor = Ec2Hypervisor(**kwargs)
    hypervisor.start()
    try:
        yield hypervisor
    finally:
        hypervisor.stop()


def _hostname(name: str, instance_id: str) -> str:
    """The host's first hostname: the Name tag when it is one, as the AWS bootstrap sets it."""
    if name and all(c.isalnum() or c in "-." for c in name) and len(name) <= 63:
        return name
    return f"ip-{instance_id.removeprefix('i-')[:12]}"


# --- the instance metadata service ----------------------------------------------------------------


class _ImdsServer:
    """IMDSv2 at 169.254.169.254:80 on the bridge: hosts reach it through their gateway."""

    def __init__(self, hypervisor: Ec2Hypervisor) -> None:
        self.hypervisor = hypervisor
        self.tokens: dict[str, tuple[str, float]] = {}
        self.server: socketserver.ThreadingTCPServer | None = None
        self.bridge = ""

    def start(self, hosts: LocalHosts) -> None:
        hosts.ensure_bridge()
        self.bridge = hosts.bridge
        subprocess.run(
            ["ip", "addr", "replace", f"{IMDS_ADDRESS}/32", "dev", hosts.bridge], check=True
        )
        imds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:
                if self.path != "/latest/api/token" or _TOKEN_TTL not in self.headers:
                    self._send(400, "")
                    return
                token = secrets.token_urlsafe(24)
                ttl = int(self.headers[_TOKEN_TTL])
                imds.tokens[token] = (self.client_address[0], time.monotonic() + ttl)
                self._send(200, token)

            def do_GET(self) -> None:
                owner, until = imds.tokens.get(self.headers.get(_TOKEN, ""), ("", 0.0))
                if owner != self.client_address[0] or until < time.monotonic():
                    self._send(401, "")
                    return
                answer = imds.answer(self.client_address[0], self.path)
                self._send(404, "") if answer is None else self._send(200, answer)

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((IMDS_ADDRESS, 80), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, address: str, path: str) -> str | None:
        instance = self.hypervisor.by_address.get(address)
        if instance is None:
            self.hypervisor.sync()
            instance = self.hypervisor.by_address.get(address)
        if instance is None:
            return None
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        zone = instance.get("Placement", {}).get("AvailabilityZone", "")
        local = f"ip-{address.replace('.', '-')}.ec2.internal"
        facts = {
            "instance-id": instance["InstanceId"],
            "instance-type": instance.get("InstanceType", ""),
            "ami-id": instance.get("ImageId", ""),
            "local-ipv4": address,
            "ami-launch-index": str(instance.get("AmiLaunchIndex", 0)),
            "local-hostname": local,
            "hostname": local,
            "placement/availability-zone": zone,
            "placement/region": self.hypervisor.region,
            "tags/instance": "\n".join(tags),
            **{f"tags/instance/{key}": value for key, value in tags.items()},
        }
        if instance.get("PublicIpAddress"):
            facts["public-ipv4"] = instance["PublicIpAddress"]
        if path == "/latest/user-data":
            answer = self.hypervisor.ec2.describe_instance_attribute(
                InstanceId=instance["InstanceId"], Attribute="userData"
            )
            encoded = answer.get("UserData", {}).get("Value", "")
            return base64.b64decode(encoded).decode() if encoded else None
        if path in ("/latest/meta-data", "/latest/meta-data/"):
            return "\n".join(sorted({key.split("/")[0] for key in facts}))
        return facts.get(path.removeprefix("/latest/meta-data/").rstrip("/"))

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        subprocess.run(
            ["ip", "addr", "del", f"{IMDS_ADDRESS}/32", "dev", self.bridge],
            check=False,
            capture_output=True,
        )
