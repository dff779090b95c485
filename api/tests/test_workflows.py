"""Workflows through the API: names, descriptions, YAML problems with their places, versions,
favourites, and another tenant's workflows staying out of sight."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
from api_support import Api
from sqlmodel import select

from corral_core.db import utcnow
from corral_core.workflows.models import RunJob, RunLogLine, RunStep, WorkflowRun

pytestmark = pytest.mark.anyio

YAML = "jobs:\n  main:\n    steps:\n      - run: echo hello\n"


def workflow(**fields: Any) -> dict[str, Any]:
    return {"name": "my_flow2", "yaml": YAML, **fields}


async def test_create_read_list_and_versions(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    created = await api.client.post(
        "/api/workflows", json=workflow(tags=["a", " b "]), headers=alice
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["uri"], body["version"], body["yaml"], body["tags"]) == (
        "pw://alice/my_flow2",
        1,
        YAML,
        ["a", "b"],
    )
    changed = YAML.replace("hello", "again")
    patched = await api.client.patch(
        "/api/workflows/alice/my_flow2", json={"yaml": changed}, headers=alice
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["version"], patched.json()["yaml"]) == (2, changed)
    same = await api.client.patch(
        "/api/workflows/alice/my_flow2", json={"yaml": changed}, headers=alice
    )
    assert same.json()["version"] == 2  # the same YAML is no new version
    versions = await api.client.get("/api/workflows/alice/my_flow2/versions", headers=alice)
    assert [v["version"] for v in versions.json()] == [2, 1]
    first = await api.client.get("/api/workflows/alice/my_flow2/versions/1", headers=alice)
    assert first.json()["yaml"] == YAML
    listed = await api.client.get("/api/workflows", headers=alice)
    assert [w["uri"] for w in listed.json()["items"]] == ["pw://alice/my_flow2"]
    assert listed.json()["items"][0]["yaml"] == ""  # lists leave the YAML out


@pytest.mark.parametrize("name", ["My_flow", "my-flow", "x", "a" * 256])
async def test_workflow_names(api: Api, name: str) -> None:
    alice = await api.org_with_admin("acme", "alice")
    refused = await api.client.post("/api/workflows", json=workflow(name=name), headers=alice)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "name"
    assert "lowercase letters, numbers, and '_'" in refused.json()["detail"]


async def test_duplicate_names_and_long_descriptions(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    assert (
        await api.client.post("/api/workflows", json=workflow(), headers=alice)
    ).status_code == 201
    again = await api.client.post("/api/workflows", json=workflow(), headers=alice)
    assert again.status_code == 422 and again.json()["reason"] == "name-taken"
    long = await api.client.post(
        "/api/workflows", json=workflow(name="other", description="x" * 101), headers=alice
    )
    assert long.status_code == 422 and long.json()["errors"][0]["field"] == "description"


async def test_bad_yaml_is_refused_with_line_and_column(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    bad = "jobs:\n  main:\n    steps:\n      - run: echo hi\n        colour: red\n"
    refused = await api.client.post("/api/workflows", json=workflow(yaml=bad), headers=alice)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert "line 5, column 9" in problem["detail"]
    assert problem["errors"][0]["problems"] == [
        {"line": 5, "column": 9, "message": "unknown key 'colour'",
         "path": "jobs.main.steps.0.colour"}
    ]  # fmt: skip
    checked = await api.client.post("/api/workflows/lint", json={"yaml": bad}, headers=alice)
    assert checked.status_code == 200
    assert checked.json()["valid"] is False and checked.json()["problems"][0]["line"] == 5
    fine = await api.client.post("/api/workflows/lint", json={"yaml": YAML}, headers=alice)
    assert fine.json() == {"valid": True, "problems": []}
    assert (await api.client.get("/api/workflows", headers=alice)).json()["total"] == 0


async def test_favourites(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    await api.client.post("/api/workflows", json=workflow(), headers=alice)
    await api.client.post("/api/workflows", json=workflow(name="second"), headers=alice)
    done = await api.client.put("/api/workflows/alice/second/favorite", headers=alice)
    assert done.status_code == 204, done.text
    favorites = await api.client.get("/api/workflows?favorite=true", headers=alice)
    assert [w["name"] for w in favorites.json()["items"]] == ["second"]
    assert favorites.json()["items"][0]["favorite"] is True
    await api.client.delete("/api/workflows/alice/second/favorite", headers=alice)
    assert (await api.client.get("/api/workflows?favorite=true", headers=alice)).json()[
        "items"
    ] == []


async def test_another_tenant_gets_404(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    mallory = await api.org_with_admin("evil", "mallory")
    await api.client.post("/api/workflows", json=workflow(), headers=alice)
    for method, path in [
        ("get", "/api/workflows/alice/my_flow2"),
        ("get", "/api/workflows/alice/my_flow2/versions"),
        ("patch", "/api/workflows/alice/my_flow2"),
        ("delete", "/api/workflows/alice/my_flow2"),
        ("put", "/api/workflows/alice/my_flow2/favorite"),
    ]:
        kwargs: dict[str, Any] = {"json": {"description": "x"}} if method == "patch" else {}
        response = await getattr(api.client, method)(path, headers=mallory, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    assert (await api.client.get("/api/workflows", headers=mallory)).json()["items"] == []
    deleted = await api.client.delete("/api/workflows/alice/my_flow2", headers=alice)
    assert deleted.status_code == 204
    assert (await api.client.get("/api/workflows/alice/my_flow2", headers=alice)).status_code == 404


async def test_the_schema_is_published_without_credentials(api: Api) -> None:
    response = await api.client.get("/api/schema/workflow.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/schema+json")
    assert response.json()["$id"].endswith("/workflow.json")
    assert "Step" in response.json()["$defs"]


async def test_a_workflow_without_yaml_starts_from_the_starter(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    created = await api.client.post("/api/workflows", json={"name": "starter"}, headers=alice)
    assert created.status_code == 201, created.text
    assert "Starter Local Workflow" in created.json()["yaml"]


async def test_runs_refuse_bad_inputs_and_stay_private(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    mallory = await api.org_with_admin("evil", "mallory")
    yaml = YAML + "on:\n  execute:\n    inputs:\n      n:\n        type: number\n        max: 3\n"
    await api.client.post("/api/workflows", json=workflow(yaml=yaml), headers=alice)
    bad = await api.client.post(
        "/api/workflows/alice/my_flow2/runs", json={"inputs": {"n": 7}}, headers=alice
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "inputs.n", bad.text
    started = await api.client.post(
        "/api/workflows/alice/my_flow2/runs", json={"inputs": {"n": 2}}, headers=alice
    )
    assert started.status_code == 201, started.text
    run = started.json()
    assert (run["number"], run["inputs"]) == (1, {"n": 2})
    own = await api.client.get(f"/api/runs/{run['id']}", headers=alice)
    assert own.status_code == 200 and own.json()["jobs"][0]["name"] == "main"
    for path in (f"/api/runs/{run['id']}", f"/api/runs/{run['id']}/logs"):
        assert (await api.client.get(path, headers=mallory)).status_code == 404
    cancel = await api.client.post(f"/api/runs/{run['id']}/cancel", headers=mallory)
    assert cancel.status_code == 404
    listed = await api.client.get("/api/workflows/alice/my_flow2/runs", headers=mallory)
    assert listed.status_code == 404


# --- runs across workflows -----------------------------------------------------------------------

FAILING = """jobs:
  main:
    steps:
      - name: build
        run: make
      - name: test
        run: make test
  other:
    steps:
      - run: true
"""


async def start(api: Api, headers: dict[str, str], owner: str, name: str, **inputs: Any) -> Any:
    started = await api.client.post(
        f"/api/workflows/{owner}/{name}/runs", json={"inputs": inputs}, headers=headers
    )
    assert started.status_code == 201, started.text
    return started.json()


async def finish(
    api: Api,
    run_id: int,
    status: str = "completed",
    *,
    lines: Sequence[tuple[str, int | None, str]] = (),
    steps: Mapping[tuple[str, int], tuple[str, int | None]] | None = None,
    jobs: Mapping[str, str] | None = None,
    finished: bool = True,
    age_days: int = 0,
) -> None:
    """Write what the engine would have: log lines, step and job statuses, the run's end."""
    async with api.runtime.db.session() as session:
        run = await session.get(WorkflowRun, run_id)
        assert run is not None
        for line in lines:
            session.add(RunLogLine(run_id=run_id, offset=run.log_count, job=line[0],
                                   step=line[1], line=line[2]))  # fmt: skip
            run.log_count += 1
        found = await session.exec(select(RunJob).where(RunJob.run_id == run_id))
        rows = {j.name: j for j in found}
        for (job, index), (step_status, exit_status) in (steps or {}).items():
            step = (
                await session.exec(
                    select(RunStep)
                    .where(RunStep.run_job_id == rows[job].id)
                    .where(RunStep.index == index)
                )
            ).one()
            step.status, step.exit_status = step_status, exit_status
            session.add(step)
        for job, job_status in (jobs or {}).items():
            rows[job].status = job_status
            session.add(rows[job])
        run.status, run.finished = status, finished
        run.created_at = utcnow() - timedelta(days=age_days)
        if finished:
            run.started_at, run.finished_at = run.created_at, utcnow()
        session.add(run)
        await session.commit()


async def test_your_runs_of_every_workflow_newest_first_with_filters(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    bob = await api.user(alice, "bob")
    for name in ("alpha", "beta_flow"):
        await api.client.post("/api/workflows", json=workflow(name=name), headers=alice)
    await api.client.post("/api/workflows", json=workflow(name="gamma"), headers=bob)
    first = await start(api, alice, "alice", "alpha")
    await start(api, alice, "alice", "alpha")
    await start(api, alice, "alice", "beta_flow")
    await start(api, bob, "bob", "gamma")
    await finish(api, first["id"], "error")

    async def slugs(headers: dict[str, str], **params: Any) -> list[str]:
        listed = await api.client.get("/api/runs", params=params, headers=headers)
        assert listed.status_code == 200, listed.text
        return [r["slug"] for r in listed.json()["items"]]

    everything = await api.client.get("/api/runs", headers=alice)
    assert everything.json()["total"] == 3
    assert [r["workflow"] for r in everything.json()["items"]] == [
        "pw://alice/beta_flow", "pw://alice/alpha", "pw://alice/alpha",
    ]  # fmt: skip
    assert await slugs(alice) == ["alice.beta_flow.00001", "alice.alpha.00002", "alice.alpha.00001"]
    assert await slugs(alice, workflow="alpha") == ["alice.alpha.00002", "alice.alpha.00001"]
    assert await slugs(alice, workflow="alice/beta_flow") == ["alice.beta_flow.00001"]
    assert await slugs(alice, workflow="bob/alpha") == []
    assert await slugs(alice, status="error") == ["alice.alpha.00001"]
    assert await slugs(alice, status="queued", search="ALPHA") == ["alice.alpha.00002"]
    assert await slugs(alice, search="a.000") == ["alice.alpha.00002", "alice.alpha.00001"]
    assert await slugs(alice, search="beta_") == ["alice.beta_flow.00001"]
    assert await slugs(alice, search="%") == []  # a literal %, not a wildcard
    assert await slugs(alice, limit=1, offset=1) == ["alice.alpha.00002"]
    assert await slugs(bob) == ["bob.gamma.00001"]
    assert set(await slugs(await api.admin())) >= {"bob.gamma.00001", "alice.alpha.00001"}
    for params in ({"status": "done"}, {"limit": 0}, {"workflow": "a/b/c"}):
        refused = await api.client.get("/api/runs", params=params, headers=alice)
        assert refused.status_code == 422, (params, refused.text)
        assert next(iter(params)) in refused.text


async def test_runs_are_named_by_id_or_slug_and_stay_private(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    bob = await api.user(alice, "bob")
    mallory = await api.org_with_admin("evil", "mallory")
    await api.client.post("/api/workflows", json=workflow(), headers=alice)
    run = await start(api, alice, "alice", "my_flow2")
    assert run["slug"] == "alice.my_flow2.00001"
    for ref in (run["slug"], str(run["id"])):
        got = await api.client.get(f"/api/runs/{ref}", headers=alice)
        assert got.status_code == 200 and got.json()["id"] == run["id"], got.text
    for ref in ("nope.my_flow2.00001", "0", "99999999999", "2147483648", "x" * 255):
        missing = await api.client.get(f"/api/runs/{ref}", headers=alice)
        assert missing.status_code == 404, (ref, missing.text)
    assert (await api.client.get(f"/api/runs/{'x' * 256}", headers=alice)).status_code == 422
    for headers in (bob, mallory):
        for method, path in [
            ("get", ""), ("get", "/logs"), ("get", "/logs/stream"), ("get", "/errors"),
            ("post", "/cancel"), ("post", "/rerun"),
        ]:  # fmt: skip
            for ref in (run["slug"], str(run["id"])):
                url = f"/api/runs/{ref}{path}"
                response = await api.client.request(method, url, headers=headers)
                assert response.status_code == 404, (method, path, response.text)
        assert (await api.client.get("/api/runs", headers=headers)).json()["items"] == []
    cancelled = await api.client.post(f"/api/runs/{run['slug']}/cancel", headers=alice)
    assert cancelled.status_code == 202, cancelled.text


async def failed_run(api: Api, headers: dict[str, str]) -> Any:
    """A run whose step ``test`` of job ``main`` failed (exit 2), with a log."""
    await api.client.post("/api/workflows", json=workflow(name="failing", yaml=FAILING),
                          headers=headers)  # fmt: skip
    run = await start(api, headers, "alice", "failing")
    lines: list[tuple[str, int | None, str]] = [("main", None, "job main started")]
    lines += [("main", 0, f"build {n}") for n in range(4)]
    lines += [("other", 0, "other 0")]
    lines += [("main", 1, f"test {n}") for n in range(3)]
    lines += [("main", None, "job main: error"), ("", None, "run 00001 ended error")]
    await finish(api, run["id"], "error", lines=lines,
                 steps={("main", 0): ("completed", 0), ("main", 1): ("error", 2),
                        ("other", 0): ("completed", 0)},
                 jobs={"main": "error", "other": "completed"})  # fmt: skip
    return run


async def test_logs_by_job_step_failed_and_tail(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    run = await failed_run(api, alice)
    path = f"/api/runs/{run['slug']}/logs"

    async def texts(**params: Any) -> list[str]:
        got = await api.client.get(path, params=params, headers=alice)
        assert got.status_code == 200, got.text
        assert got.json()["finished"] is True and got.json()["status"] == "error"
        return [line["line"] for line in got.json()["lines"]]

    assert len(await texts()) == 11
    assert await texts(job="other") == ["other 0"]
    assert await texts(job="main", step="test") == ["test 0", "test 1", "test 2"]
    assert await texts(job="main", step="0") == ["build 0", "build 1", "build 2", "build 3"]
    assert await texts(failed=True) == ["test 0", "test 1", "test 2"]
    assert await texts(failed=True, tail=1) == ["test 2"]
    assert await texts(job="main", tail=2) == [
        "job main started", "build 2", "build 3", "test 1", "test 2", "job main: error",
    ]  # fmt: skip
    tailed = await texts(tail=1)
    assert tailed == ["build 3", "other 0", "test 2", "job main: error", "run 00001 ended error"]
    page = await api.client.get(path, params={"tail": 2, "limit": 2}, headers=alice)
    assert [x["line"] for x in page.json()["lines"]] == ["job main started", "build 2"]
    assert page.json()["finished"] is False
    rest = await api.client.get(
        path, params={"tail": 2, "offset": page.json()["next_offset"]}, headers=alice
    )
    assert rest.json()["finished"] is True
    assert "build 3" in [x["line"] for x in rest.json()["lines"]]
    for params, field in [
        ({"step": "test"}, "step"),
        ({"job": "main", "step": "deploy"}, "step"),
        ({"job": "main", "step": "7"}, "step"),
        ({"job": "ghost", "step": "test"}, "job"),
        ({"tail": -1}, "tail"),
        ({"failed": "maybe"}, "failed"),
    ]:
        refused = await api.client.get(path, params=params, headers=alice)
        assert refused.status_code == 422, (params, refused.text)
        assert field in refused.text, (params, refused.text)


async def test_errors_lists_failed_steps_with_their_log_tails(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    run = await failed_run(api, alice)
    got = await api.client.get(f"/api/runs/{run['slug']}/errors", params={"tail": 2}, headers=alice)
    assert got.status_code == 200, got.text
    assert got.json() == [
        {"job": "main", "step": 1, "name": "test", "kind": "step", "status": "error",
         "exit_status": 2, "reason": "", "log_tail": ["test 1", "test 2"]},
    ]  # fmt: skip
    assert len((await api.client.get(f"/api/runs/{run['id']}/errors", headers=alice)).json()[0][
        "log_tail"]) == 3  # fmt: skip
    # a job that failed without a failed step, and a run that failed without a failed job
    await api.client.post("/api/workflows", json=workflow(), headers=alice)
    timed_out = await start(api, alice, "alice", "my_flow2")
    await finish(api, timed_out["id"], "error", jobs={"main": "error"},
                 lines=[("main", None, "job main timed out"), ("", None, "run ended")])  # fmt: skip
    errors = (await api.client.get(f"/api/runs/{timed_out['id']}/errors", headers=alice)).json()
    assert [(e["job"], e["kind"], e["step"], e["log_tail"]) for e in errors] == [
        ("main", "job", None, ["job main timed out"])
    ]
    bare = await start(api, alice, "alice", "my_flow2")
    await finish(api, bare["id"], "error", lines=[("", None, "plan failed")])
    errors = (await api.client.get(f"/api/runs/{bare['id']}/errors", headers=alice)).json()
    assert [(e["job"], e["kind"], e["log_tail"]) for e in errors] == [("", "run", ["plan failed"])]
    fine = await start(api, alice, "alice", "my_flow2")
    await finish(api, fine["id"])
    assert (await api.client.get(f"/api/runs/{fine['id']}/errors", headers=alice)).json() == []
    refused = await api.client.get(f"/api/runs/{fine['id']}/errors?tail=5001", headers=alice)
    assert refused.status_code == 422 and "tail" in refused.text


def events(text: str) -> list[dict[str, str]]:
    """Server-Sent Events as dicts of their fields (comments left out)."""
    found = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
        if fields:
            found.append(fields)
    return found


async def test_the_log_streams_as_server_sent_events_and_resumes(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    await api.client.post("/api/workflows", json=workflow(), headers=alice)
    run = await start(api, alice, "alice", "my_flow2")
    path = f"/api/runs/{run['slug']}/logs/stream"
    await finish(api, run["id"], "running", lines=[("main", 0, "one"), ("main", 0, "two")],
                 finished=False)  # fmt: skip

    async def engine() -> None:  # the run goes on while the client listens
        try:
            for n in range(3):
                await asyncio.sleep(0.3)
                await finish(api, run["id"], "running", lines=[("main", 0, f"more {n}")],
                             finished=False)  # fmt: skip
            await finish(api, run["id"], "completed", lines=[("", None, "done")])
        except BaseException:
            await finish(api, run["id"], "error")  # or the stream would never end
            raise
        finally:
            await api.runtime.db.dispose(reader=False)

    # the test client blocks this loop while it serves a request: write from another thread
    writer = threading.Thread(target=asyncio.run, args=(engine(),))
    writer.start()
    try:
        streamed = await api.client.get(path, headers=alice, timeout=30)
    finally:
        writer.join(30)
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"].startswith("text/event-stream")
    got = events(streamed.text)
    assert [json.loads(e["data"])["line"] for e in got[:-1]] == [
        "one", "two", "more 0", "more 1", "more 2", "done",
    ]  # fmt: skip
    assert [e["id"] for e in got[:-1]] == ["1", "2", "3", "4", "5", "6"]
    assert got[-1]["event"] == "end" and "id" not in got[-1]
    assert json.loads(got[-1]["data"]) == {"status": "completed", "reason": "", "next_offset": 6}

    resumed = await api.client.get(path, headers={**alice, "Last-Event-ID": "4"})
    assert [e.get("id") for e in events(resumed.text)] == ["5", "6", None]
    from_offset = await api.client.get(path, params={"offset": 5, "job": ""}, headers=alice)
    assert [e.get("id") for e in events(from_offset.text)] == ["6", None]
    only_main = await api.client.get(path, params={"job": "main", "step": "0"}, headers=alice)
    assert [e.get("id") for e in events(only_main.text)] == ["1", "2", "3", "4", "5", None]
    for headers, params, field in [
        ({"Last-Event-ID": "x"}, {}, "Last-Event-ID"),
        ({"Last-Event-ID": "-1"}, {}, "Last-Event-ID"),
        ({}, {"offset": -1}, "offset"),
        ({}, {"step": "0"}, "step"),
    ]:
        refused = await api.client.get(path, params=params, headers={**alice, **headers})
        assert refused.status_code == 422, (headers, params, refused.text)
        assert field.lower() in refused.text.lower(), refused.text


async def test_clean_deletes_your_finished_runs_with_their_rows(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    bob = await api.user(alice, "bob")
    await api.client.post("/api/workflows", json=workflow(), headers=alice)
    await api.client.post("/api/workflows", json=workflow(name="bobs"), headers=bob)
    old = await start(api, alice, "alice", "my_flow2")
    failed = await start(api, alice, "alice", "my_flow2")
    running = await start(api, alice, "alice", "my_flow2")
    recent = await start(api, alice, "alice", "my_flow2")
    bobs = await start(api, bob, "bob", "bobs")
    await finish(api, old["id"], age_days=40, lines=[("main", 0, "x")] * 3,
                 steps={("main", 0): ("completed", 0)})  # fmt: skip
    await finish(api, failed["id"], "error", age_days=40)
    await finish(api, running["id"], "running", age_days=40, finished=False)
    await finish(api, recent["id"])
    await finish(api, bobs["id"], age_days=40)

    nothing = await api.client.post("/api/runs/clean", json={}, headers=alice)
    assert nothing.status_code == 422, nothing.text
    for field in ("older_than_days", "slugs", "status"):
        assert field in nothing.json()["detail"]
    for body in ({"status": "running"}, {"older_than_days": -1}, {"slugs": "a,b"}, {"x": 1}):
        refused = await api.client.post("/api/runs/clean", json=body, headers=alice)
        assert refused.status_code == 422, (body, refused.text)

    cleaned = await api.client.post(
        "/api/runs/clean", json={"older_than_days": 30, "status": "completed"}, headers=alice
    )
    assert cleaned.status_code == 200, cleaned.text
    assert cleaned.json() == {"deleted": [old["slug"]], "skipped": []}
    async with api.runtime.db.session() as session:
        for table in (RunJob, RunStep, RunLogLine):
            left = await session.exec(select(table).where(table.run_id == old["id"]))
            assert list(left) == [], table
    assert (await api.client.get(f"/api/runs/{old['slug']}", headers=alice)).status_code == 404

    named = await api.client.post(
        "/api/runs/clean",
        json={"slugs": [failed["slug"], running["slug"], bobs["slug"], "no.such.00001"]},
        headers=alice,
    )
    assert named.json() == {
        "deleted": [failed["slug"]],
        "skipped": sorted([running["slug"], bobs["slug"], "no.such.00001"]),
    }
    everything = await api.client.post(
        "/api/runs/clean", json={"older_than_days": 0}, headers=alice
    )
    assert everything.json()["deleted"] == [recent["slug"]]
    assert [r["slug"] for r in (await api.client.get("/api/runs", headers=alice)).json()[
        "items"]] == [running["slug"]]  # fmt: skip
    assert (await api.client.get(f"/api/runs/{bobs['slug']}", headers=bob)).status_code == 200


async def test_clean_keeps_sub_runs_of_running_parents_and_outlives_parents(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    await api.client.post("/api/workflows", json=workflow(), headers=alice)
    parent = await start(api, alice, "alice", "my_flow2")
    child = await start(api, alice, "alice", "my_flow2")
    async with api.runtime.db.session() as session:
        row = await session.get(WorkflowRun, child["id"])
        assert row is not None
        row.parent_run_id = parent["id"]
        session.add(row)
        await session.commit()
    await finish(api, child["id"])
    await finish(api, parent["id"], "running", finished=False)
    kept = await api.client.post("/api/runs/clean", json={"status": "completed"}, headers=alice)
    assert kept.json()["deleted"] == []
    await finish(api, parent["id"])
    deleted = await api.client.post(
        "/api/runs/clean", json={"slugs": [parent["slug"]]}, headers=alice
    )
    assert deleted.json()["deleted"] == [parent["slug"]]
    async with api.runtime.db.session() as session:
        row = await session.get(WorkflowRun, child["id"])
        assert row is not None and row.parent_run_id is None


async def test_rerun_uses_the_same_yaml_version_and_inputs(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    bob = await api.user(alice, "bob")
    inputs = (
        "on:\n  execute:\n    inputs:\n      n:\n        type: number\n"
        "      token:\n        type: password\n"
    )
    await api.client.post("/api/workflows", json=workflow(yaml=YAML + inputs), headers=alice)
    first = await start(api, alice, "alice", "my_flow2", n=2, token="s3cret")
    assert first["inputs"] == {"n": 2, "token": "********"}
    changed = await api.client.patch(
        "/api/workflows/alice/my_flow2",
        json={"yaml": YAML.replace("hello", "changed") + inputs},
        headers=alice,
    )
    assert changed.json()["version"] == 2, changed.text
    again = await api.client.post(f"/api/runs/{first['slug']}/rerun", headers=alice)
    assert again.status_code == 201, again.text
    rerun = again.json()
    assert (rerun["number"], rerun["slug"], rerun["version"]) == (2, "alice.my_flow2.00002", 1)
    assert rerun["inputs"] == {"n": 2, "token": "********"}
    assert "s3cret" not in again.text and "secret_inputs" not in again.text
    async with api.runtime.db.session() as session:
        old, new = [await session.get(WorkflowRun, r["id"]) for r in (first, rerun)]
        assert old is not None and new is not None
        assert "echo hello" in new.yaml and new.yaml == old.yaml
        secrets = [json.loads(api.runtime.secrets.decrypt(r.secret_inputs)) for r in (old, new)]
        assert secrets == [{"token": "s3cret"}] * 2
        assert new.plan["workflow_uri"] == "pw://alice/my_flow2" and new.parent_run_id is None
    by_id = await api.client.post(f"/api/runs/{first['id']}/rerun", headers=alice)
    assert by_id.status_code == 201 and by_id.json()["number"] == 3
    foreign = await api.client.post(f"/api/runs/{first['slug']}/rerun", headers=bob)
    assert foreign.status_code == 404
    admin = await api.client.post(f"/api/runs/{first['slug']}/rerun", headers=await api.admin())
    assert admin.status_code == 403, admin.text
