"""The identity commands of the CLI (auth, context, users, groups, orgs, audit), run as real
``corral`` processes against one real ``corral up`` shared by the module."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral_core.testing import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    CorralProcess,
    TestDeployment,
    api_key,
    free_port,
)

USER_PASSWORD = "Identity-tests-Passw0rd!"


@dataclass
class Server:
    deployment: TestDeployment
    url: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    deployment = TestDeployment(tmp_path_factory.mktemp("identity"))
    port = free_port()
    proc = CorralProcess(
        ["up", "--port", str(port)], deployment.process_env(), deployment.tmp / "up.log"
    )
    try:
        url = f"http://127.0.0.1:{port}"
        proc.wait_http(f"{url}/api/health")
        yield Server(deployment, url)
    finally:
        proc.stop()
        deployment.close()


@dataclass
class Cli:
    """``corral`` with its own credentials directory (``PW_CONFIG_DIR``)."""

    server: Server
    config_dir: Path

    def __call__(
        self, *args: str, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "corral_sdk.cli.main", *args],
            env=self._env(env),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def _env(self, env: dict[str, str]) -> dict[str, str]:
        base = self.server.deployment.process_env({"PW_CONFIG_DIR": str(self.config_dir), **env})
        for name in ("PW_API_KEY", "PW_TOKEN", "PW_CONTEXT"):
            if name not in env:
                base.pop(name, None)
        return base

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """``corral`` running in the background, its standard output a pipe."""
        return subprocess.Popen(
            [sys.executable, "-m", "corral_sdk.cli.main", *args],
            env=self._env({}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ok(self, *args: str, input: str | None = None, **env: str) -> str:
        result = self(*args, input=input, **env)
        assert result.returncode == 0, f"corral {args} failed:\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout

    def json(self, *args: str, **env: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json", **env))

    def login(
        self, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        return self(
            "auth",
            "login",
            "--platform-host",
            self.server.url,
            "--username",
            username,
            "--password-stdin",
            *extra,
            input=password + "\n",
        )

    @property
    def credentials(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.config_dir / "credentials.json").read_text())
        return data


@pytest.fixture
def cli(server: Server, tmp_path: Path) -> Cli:
    return Cli(server, tmp_path / "config")


@pytest.fixture
def admin(cli: Cli) -> Cli:
    """A CLI signed in as the platform admin (the current context)."""
    assert cli.login().returncode == 0
    return cli


def test_login_then_whoami_and_a_private_credentials_file(cli: Cli, server: Server) -> None:
    result = cli.login()
    assert result.returncode == 0, result.stderr
    assert f"[INFO] Authenticated as {ADMIN_USERNAME}" in result.stderr
    host = server.url.removeprefix("http://")
    assert cli.ok("context", "current").strip() == f"{ADMIN_USERNAME}@{host}"

    path = cli.config_dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config_dir.stat().st_mode) == 0o700
    context = cli.credentials["contexts"][f"{ADMIN_USERNAME}@{host}"]
    assert context["server"] == server.url
    assert context["username"] == ADMIN_USERNAME
    assert context["kind"] == "token"
    token = context["credential"]
    assert token not in result.stdout + result.stderr
    assert ADMIN_PASSWORD not in path.read_text()

    # later commands use the context's server and token: no --platform-host, no variable
    who = cli.json("auth", "whoami")
    assert who["username"] == ADMIN_USERNAME
    assert who["credential"] == "token"
    assert {"platform:admin", "org:admin"} <= set(who["roles"])
    table = cli.ok("auth", "whoami")
    assert table.splitlines()[0].split() == ["USERNAME", "ORG", "ROLES", "GROUPS", "CREDENTIAL"]
    assert table.splitlines()[1].startswith(ADMIN_USERNAME)

    # logout revokes the token on the server and forgets it locally
    assert cli("auth", "logout").returncode == 0
    assert "credential" not in cli.credentials["contexts"][f"{ADMIN_USERNAME}@{host}"]
    revoked = httpx.get(
        f"{server.url}/api/auth/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    assert revoked.status_code == 401
    after = cli("auth", "whoami")
    assert after.returncode == 1
    assert after.stderr.startswith("[ERROR] not authenticated")


def test_wrong_password_exits_1_with_a_clear_message(cli: Cli) -> None:
    result = cli.login(ADMIN_USERNAME, "Not-the-right-Passw0rd!")
    assert result.returncode == 1
    assert result.stderr.strip() == "[ERROR] wrong username or password"
    assert not (cli.config_dir / "credentials.json").exists()


def test_contexts_use_rename_delete_and_precedence(admin: Cli, server: Server) -> None:
    key = api_key(server.url)
    stored = admin(
        "auth", "apikey", "--context-name", "ci", "--platform-host", server.url, input=key + "\n"
    )
    assert stored.returncode == 0, stored.stderr
    assert key not in stored.stdout + stored.stderr
    login_context = f"{ADMIN_USERNAME}@{server.url.removeprefix('http://')}"
    listed = {c["name"]: c for c in admin.json("context", "ls")}
    assert set(listed) == {login_context, "ci"}
    assert listed["ci"]["current"] is True
    assert listed["ci"]["kind"] == "apikey"
    assert "credential" not in listed["ci"]
    assert key not in admin.ok("context", "ls")
    assert admin.ok("context", "ls", "-o", "list").split() == [login_context, "ci"]

    # --context over PW_CONTEXT over the current context; PW_API_KEY over all of them
    assert admin.json("auth", "whoami")["credential"] == "apikey"
    assert admin.json("auth", "whoami", PW_CONTEXT=login_context)["credential"] == "token"
    assert (
        admin.json("auth", "whoami", "--context", "ci", PW_CONTEXT=login_context)["credential"]
        == "apikey"
    )
    overridden = admin("auth", "whoami", PW_API_KEY="not-a-credential")
    assert overridden.returncode == 1
    missing = admin("auth", "whoami", "--context", "nope")
    assert missing.returncode == 1
    assert "no context named 'nope'" in missing.stderr

    admin.ok("context", "use", login_context)
    assert admin.ok("ctx", "current").strip() == login_context
    admin.ok("context", "rename", login_context, "main")
    assert admin.ok("context", "current").strip() == "main"
    assert admin("context", "rename", "main", "ci").returncode == 1  # the name is taken

    refused = admin("context", "delete", "main")
    assert refused.returncode == 2
    assert "-f" in refused.stderr
    admin.ok("context", "delete", "main", "-f")
    assert admin.ok("context", "current").strip() == "ci"
    assert admin.json("context", "ls") == [
        {
            "name": "ci",
            "current": True,
            "server": server.url,
            "username": ADMIN_USERNAME,
            "org": "default",
            "kind": "apikey",
            "expires_at": None,
        }
    ]


def test_users_create_list_disable_and_delete(admin: Cli, tmp_path: Path) -> None:
    created = admin.json(
        "users",
        "create",
        "carol",
        "--name",
        "Carol",
        "--email",
        "carol@example.com",
        "--password-stdin",
        input=USER_PASSWORD + "\n",
    )
    assert created["username"] == "carol"
    assert created["status"] == "active"

    page = admin.json("users", "ls", "--search", "carol", "--active", "true")
    assert [u["username"] for u in page["items"]] == ["carol"]
    assert page["total"] == 1
    assert "carol" in admin.ok("users", "ls", "-o", "list", "--sort-by", "username").split()
    assert admin.json("users", "ls", "--active", "false")["items"] == []

    carol = Cli(admin.server, tmp_path / "carol")
    assert carol.login("carol", USER_PASSWORD).returncode == 0
    assert carol.json("auth", "whoami")["username"] == "carol"

    assert admin.json("users", "disable", "carol")["status"] == "disabled"
    assert carol.login("carol", USER_PASSWORD).returncode == 1
    assert carol("auth", "whoami").returncode == 1  # her token stopped working too
    assert admin.json("users", "enable", "carol")["status"] == "active"

    unconfirmed = admin("users", "delete", "carol")
    assert unconfirmed.returncode == 2
    assert "pass -f" in unconfirmed.stderr
    admin.ok("users", "delete", "carol", "-f")
    assert admin.json("users", "ls", "--search", "carol")["items"] == []
    gone = admin("users", "delete", "carol", "-f")
    assert gone.returncode == 1
    assert "no user named 'carol'" in gone.stderr


def test_groups_members_and_roles(admin: Cli) -> None:
    admin.ok("users", "create", "dave")
    group = admin.json("groups", "create", "operators", "--description", "Operators")
    assert group["name"] == "operators"
    assert group["members"] == 0
    admin.ok("groups", "add-member", "operators", "dave")

    assert admin.ok("groups", "roles", "operators") == ""
    set_roles = admin.ok("groups", "roles", "operators", "org:users", "org:groups")
    assert sorted(set_roles.split()) == ["org:groups", "org:users"]
    assert set(admin.ok("groups", "roles", "operators").split()) == {"org:users", "org:groups"}
    assert set(admin.json("groups", "roles", "operators")["roles"]) == {"org:users", "org:groups"}

    assert [u["username"] for u in admin.json("groups", "members", "operators")] == ["dave"]
    listed = {g["name"]: g for g in admin.json("groups", "ls")}
    assert listed["operators"]["members"] == 1
    assert "operators" in admin.ok("groups", "ls")

    admin.ok("groups", "remove-member", "operators", "dave")
    assert admin.json("groups", "members", "operators") == []
    admin.ok("groups", "delete", "operators")
    assert "operators" not in {g["name"] for g in admin.json("groups", "ls")}
    admin.ok("users", "delete", "dave", "-f")


def test_orgs_and_the_audit_log(admin: Cli) -> None:
    assert "default" in {o["name"] for o in admin.json("orgs", "ls")}
    created = admin.json("orgs", "create", "acme", "--seats", "3")
    assert created["seats"] == 3
    assert admin.ok("orgs", "ls", "-o", "list").split() == ["acme", "default"]
    assert admin("orgs", "delete", "acme").returncode == 2  # no terminal, no -f
    admin.ok("orgs", "delete", "acme", "-f")
    assert [o["name"] for o in admin.json("orgs", "ls")] == ["default"]

    entries = admin.json("audit", "ls", "--actor", ADMIN_USERNAME, "--limit", "5")["items"]
    assert [(e["action"], e["target"]) for e in entries[:2]] == [
        ("DELETE /api/orgs/{name}", "/api/orgs/acme"),
        ("POST /api/orgs", "/api/orgs"),
    ]
    assert all(e["actor"] == ADMIN_USERNAME and e["outcome"] == "success" for e in entries[:2])
    table = admin.ok("audit", "ls", "--limit", "2")
    assert "DELETE /api/orgs/{name}" in table
    assert table.splitlines()[0].split()[:3] == ["ID", "AT", "ACTOR"]


def test_org_workflow_variables(admin: Cli) -> None:
    assert admin.json("orgs", "variables", "ls") == []
    made = admin.json("orgs", "variables", "set", "orgVariable", "hi")
    assert (made["key"], made["value"], made["updated_by"]) == ("orgVariable", "hi", ADMIN_USERNAME)
    admin.ok("orgs", "variables", "set", "LICENSE", "--stdin", input="line 1\nline 2\n")
    table = admin.ok("orgs", "variables", "ls")
    assert table.splitlines()[0].split() == ["KEY", "VALUE", "UPDATED", "BY", "UPDATED"]
    assert "line 1\\nline 2" in table
    listed = admin.json("orgs", "variables", "list", "--org", "default")
    assert [(v["key"], v["value"]) for v in listed] == [
        ("LICENSE", "line 1\nline 2"),
        ("orgVariable", "hi"),
    ]
    bad = admin("orgs", "variables", "set", "1bad", "x")
    assert bad.returncode == 2 and "letters, digits and underscores" in bad.stderr
    assert admin("orgs", "variables", "set", "k").returncode == 2  # no VALUE, no --stdin
    admin.ok("orgs", "variables", "unset", "LICENSE")
    admin.ok("orgs", "variables", "unset", "orgVariable")
    assert admin("orgs", "variables", "unset", "orgVariable").returncode == 1
    assert admin.json("orgs", "variables", "ls") == []


def test_apikey_secret_is_shown_once_and_works_with_auth_apikey(admin: Cli, tmp_path: Path) -> None:
    created = admin("auth", "apikeys", "create", "deploy", "--expires-days", "7")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert len(created.stdout.splitlines()) == 1 and secret
    assert "shown this once" in created.stderr

    listed = admin.ok("auth", "apikeys", "ls", "-o", "json")
    assert secret not in listed
    key = next(k for k in json.loads(listed) if k["name"] == "deploy")
    assert key["expires_at"] is not None
    assert "deploy" in admin.ok("auth", "apikeys", "ls")

    other = Cli(admin.server, tmp_path / "other")
    stored = other("auth", "apikey", "--platform-host", admin.server.url, input=f"{secret}\n")
    assert stored.returncode == 0, stored.stderr
    assert "Authenticated as admin" in stored.stderr
    assert other.json("auth", "whoami")["credential"] == "apikey"
    # an API key is only forgotten locally on logout: it keeps working until deleted
    other.ok("auth", "logout")
    assert other("auth", "whoami").returncode == 1
    assert other.json("auth", "whoami", PW_API_KEY=secret)["username"] == ADMIN_USERNAME

    admin.ok("auth", "apikeys", "delete", str(key["id"]))
    assert other("auth", "whoami", PW_API_KEY=secret).returncode == 1
    refused = other("auth", "apikey", "--platform-host", admin.server.url, input=f"{secret}\n")
    assert refused.returncode == 1
    assert "refused the API key" in refused.stderr


def test_usage_errors_exit_2(admin: Cli) -> None:
    for args in (
        ["users", "ls", "--active", "maybe"],
        ["users", "ls", "--limit", "0"],  # refused by the server (422)
        ["auth", "apikeys", "delete", "not-a-number"],
        ["context", "use"],
        ["groups", "roles", "g", "org:users", "--clear"],
        ["auth", "login"],  # no terminal: --username is needed
        ["auth", "login", "--username", "admin"],  # no terminal: --password-stdin is needed
    ):
        result = admin(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stdout == ""


def test_context_commands_work_without_a_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PW_", "CORRAL_"))}
    env["PW_CONFIG_DIR"] = str(tmp_path / "empty")
    run = [sys.executable, "-m", "corral_sdk.cli.main"]
    listed = subprocess.run(
        [*run, "context", "ls", "-o", "json"], env=env, capture_output=True, check=False
    )
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    current = subprocess.run(
        [*run, "context", "current"], env=env, capture_output=True, check=False
    )
    assert current.returncode == 1 and b"no current context" in current.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "credentials.json").write_text("{not json")
    env["PW_CONFIG_DIR"] = str(broken)
    bad = subprocess.run(
        [*run, "context", "ls"], env=env, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert "is not valid JSON" in bad.stderr and "Traceback" not in bad.stderr


def test_ssh_public_keys_prints_only_keys_without_a_context(server: Server, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    key = api_key(server.url)
    added = httpx.post(
        f"{server.url}/api/ssh-keys",
        json={"name": "cli-laptop", "key": public},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert added.status_code == 201
    env = server.deployment.process_env({"PW_CONFIG_DIR": str(tmp_path / "nobody")})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral_sdk.cli.main",
            "ssh-public-keys",
            "admin",
            "--platform-host",
            server.url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert public in lines
    assert all(line.startswith("ssh-") for line in lines)
    down = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral_sdk.cli.main",
            "ssh-public-keys",
            "admin",
            "--platform-host",
            "http://127.0.0.1:9",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 1 and down.stdout == ""
