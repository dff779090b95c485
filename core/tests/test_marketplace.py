"""The marketplace in the kernel, with workflows run for real in the lab's workspace (spec 40
§2.3-2.8, spec 20 §1.1 and §4.6): ``uses: marketplace/<slug>[/<version>]`` runs that version or
the newest; the §4.6 example; Use (``latest`` follows the item, a pinned version never
changes); Fork (independent); deleting an item or a version breaks subscriptions, not forks;
recursion and privacy through ``uses:``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select
from workflow_lab import Finished, Lab

from corral_core.identity.models import User
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.workflows.models import WorkflowRun
from corral_sdk.errors import Conflict, Invalid, NotFound
from corral_sdk.wire import (
    MarketplaceFork,
    MarketplacePublish,
    MarketplaceUpdate,
    MarketplaceVersionCreate,
    WorkflowCreate,
    WorkflowUpdate,
)

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).parent / "workflows"

PASSWORD = "Correct-horse-battery-9!"

GREETER = """on:
  execute:
    inputs:
      greeting:
        type: string
        default: hello
jobs:
  greet:
    steps:
      - run: echo "{version} says ${{{{ inputs.greeting }}}}"
"""


async def user(lab: Lab, username: str, groups: tuple[str, ...] = ()) -> Principal:
    """A user of the lab's organization (its admin makes them), as a principal."""
    await lab.runtime.identity.create_user(
        lab.principal, username=username, password=PASSWORD, groups=groups
    )
    async with lab.runtime.db.session() as session:
        row = (await session.exec(select(User).where(col(User.username) == username))).one()
    return await lab.runtime.authn.principal(row)


async def publish_greeter(
    lab: Lab, alice: Principal, slug: str = "greeter", **fields: object
) -> None:
    """alice's workflow ``greeter`` saying v1, published as ``slug``; she then changes it to
    say v2 and publishes that as v2.0.0 only when asked (:func:`publish_v2`)."""
    await lab.runtime.workflows.create(
        alice, WorkflowCreate(name=slug.replace("-", "_"), yaml=GREETER.format(version="v1"))
    )
    await lab.runtime.marketplace.publish(
        alice,
        MarketplacePublish(
            source=slug.replace("-", "_"),
            name=slug.title(),
            slug=slug,
            summary="Greets",
            **fields,  # type: ignore[arg-type]
        ),
    )


async def publish_v2(lab: Lab, alice: Principal, slug: str = "greeter") -> None:
    await lab.runtime.workflows.update(
        alice,
        ResourceRef("alice", slug.replace("-", "_")),
        WorkflowUpdate(yaml=GREETER.format(version="v2")),
    )
    await lab.runtime.marketplace.publish_version(
        alice, slug, MarketplaceVersionCreate(version="v2.0.0")
    )


async def run_own(
    lab: Lab, who: Principal, name: str, inputs: dict[str, str] | None = None
) -> Finished:
    started = await lab.runs.start(who, ResourceRef(who.username, name), inputs or {})
    return await lab.finish(started.id or 0)


async def test_uses_a_pinned_version_runs_that_version_and_without_one_the_latest(
    lab: Lab,
) -> None:
    alice = await user(lab, "alice")
    lab.principal = await user(lab, "sam")
    await publish_greeter(lab, alice)
    await publish_v2(lab, alice)
    done = await lab.run(
        """jobs:
  main:
    steps:
      - uses: marketplace/greeter/v1.0.0
        with:
          greeting: hi
      - uses: marketplace/greeter
        with:
          greeting: hi
      - uses: marketplace/greeter/latest
"""
    )
    assert done.run.status == "completed", done.lines
    lines = done.job_lines("main")
    assert "[marketplace/greeter/v1.0.0/greet] v1 says hi" in lines, lines
    assert "[marketplace/greeter/greet] v2 says hi" in lines, lines
    assert "[marketplace/greeter/latest/greet] v2 says hello" in lines, lines
    async with lab.runtime.db.session() as session:
        children = {
            run.plan["uses"]: run
            for run in await session.exec(
                select(WorkflowRun).where(col(WorkflowRun.parent_run_id) == done.run.id)
            )
        }
    # each sub-run records the version it ran, and the run's chain names it
    assert children["marketplace/greeter/v1.0.0"].plan["commit"] == "v1.0.0"
    assert children["marketplace/greeter"].plan["commit"] == "v2.0.0"
    assert children["marketplace/greeter"].plan["chain"][-1] == "marketplace/default/greeter/v2.0.0"
    # a version that does not exist is refused before anything runs, naming it
    with pytest.raises(
        Invalid, match=r"^uses: marketplace/greeter/v9\.9\.9: greeter has no version"
    ):
        await lab.start("jobs:\n  main:\n    steps:\n      - uses: marketplace/greeter/v9.9.9\n")


async def test_the_spec_example_runs_default_local_workflow_with_its_resource_input(
    lab: Lab,
) -> None:
    alice = await user(lab, "alice")
    lab.principal = await user(lab, "sam")
    await lab.runtime.workflows.create(
        alice,
        WorkflowCreate(
            name="starter",
            yaml="""'on':
  execute:
    inputs:
      resource:
        type: string
jobs:
  main:
    steps:
      - run: echo "Starter Local Workflow on ${{ inputs.resource }}"
""",
        ),
    )
    await lab.runtime.marketplace.publish(
        alice,
        MarketplacePublish(
            source="starter", name="Default local workflow", slug="default-local-workflow"
        ),
    )
    # spec 20 §4.6, word for word
    done = await lab.run((EXAMPLES / "uses_marketplace.yaml").read_text())
    assert done.run.status == "completed", done.lines
    assert (
        "[marketplace/default-local-workflow/main] Starter Local Workflow on sample-cluster"
        in done.job_lines("job-name")
    )


async def test_use_latest_follows_the_item_and_a_pinned_version_never_changes(lab: Lab) -> None:
    alice = await user(lab, "alice")
    sam = await user(lab, "sam")
    await publish_greeter(lab, alice)
    latest = await lab.runtime.marketplace_copies.use(sam, "greeter")
    pinned = await lab.runtime.marketplace_copies.use(sam, "greeter", "v1.0.0")
    # spec 20 §1.1: named marketplace.<slug>.<version>, shown "<Name> <version>", tagged
    assert (latest.name, latest.display_name, latest.tags) == (
        "marketplace.greeter.latest", "Greeter latest", ["latest"]
    )  # fmt: skip
    assert (pinned.name, pinned.display_name, pinned.tags) == (
        "marketplace.greeter.v1.0.0", "Greeter v1.0.0", ["v1.0.0"]
    )  # fmt: skip
    with pytest.raises(Conflict, match="you already use greeter at latest"):
        await lab.runtime.marketplace_copies.use(sam, "greeter")
    assert (await run_own(lab, sam, latest.name)).printed("greet") == ["v1 says hello"]
    await publish_v2(lab, alice)
    assert (await run_own(lab, sam, latest.name)).printed("greet") == ["v2 says hello"]
    assert (await run_own(lab, sam, pinned.name, {"greeting": "yo"})).printed("greet") == [
        "v1 says yo"
    ]
    # the publisher's edits of the item show on the subscriber's entries
    await lab.runtime.marketplace.update(
        alice, "greeter", MarketplaceUpdate(name="Hello", slug="hello")
    )
    again = await lab.runtime.workflows.get(sam, ResourceRef("sam", latest.name))
    assert again.display_name == "Hello latest"
    used = await lab.runtime.marketplace_copies.subscriptions([latest.id, pinned.id])
    assert (used[latest.id or 0].runs, used[pinned.id or 0].runs) == ("v2.0.0", "v1.0.0")
    assert used[latest.id or 0].slug == "hello"
    assert (await run_own(lab, sam, latest.name)).printed("greet") == ["v2 says hello"]
    # a marketplace workflow's YAML is the item's
    with pytest.raises(
        Invalid, match=r"yaml: a marketplace workflow's YAML is the marketplace item's"
    ):
        await lab.runtime.workflows.update(
            sam, ResourceRef("sam", latest.name), WorkflowUpdate(yaml=GREETER)
        )


async def test_a_fork_is_independent_and_deletes_break_subscriptions_not_forks(
    lab: Lab,
) -> None:
    alice = await user(lab, "alice")
    sam = await user(lab, "sam")
    await publish_greeter(lab, alice)
    await publish_v2(lab, alice)
    forked = await lab.runtime.marketplace_copies.fork(
        sam, "greeter", MarketplaceFork(name="my_greeter", version="v1.0.0")
    )
    assert (forked.uri, forked.version, forked.tags) == ("pw://sam/my_greeter", "v1.0.0",
                                                         ["v1.0.0"])  # fmt: skip
    newest = await lab.runtime.marketplace_copies.fork(
        sam, "greeter", MarketplaceFork(name="newest")
    )
    assert newest.tags == ["v2.0.0"]  # latest: tagged with the version it was
    latest = await lab.runtime.marketplace_copies.use(sam, "greeter")
    pinned = await lab.runtime.marketplace_copies.use(sam, "greeter", "v1.0.0")
    # deleting v1.0.0 breaks what is pinned to it and nothing else
    await lab.runtime.marketplace.delete_version(alice, "greeter", "v1.0.0")
    with pytest.raises(Conflict, match=r"is broken: version v1\.0\.0 of greeter was deleted"):
        await lab.runs.start(sam, ResourceRef("sam", pinned.name), {})
    assert (await run_own(lab, sam, latest.name)).printed("greet") == ["v2 says hello"]
    with pytest.raises(Conflict, match=r"v2\.0\.0 is the only version of greeter"):
        await lab.runtime.marketplace.delete_version(alice, "greeter", "v2.0.0")
    await lab.runtime.marketplace.delete(alice, "greeter")
    with pytest.raises(Conflict, match=r"is broken: the marketplace item 'Greeter' \(greeter\) "
                       "was deleted"):  # fmt: skip
        await lab.runs.start(sam, ResourceRef("sam", latest.name), {})
    used = await lab.runtime.marketplace_copies.subscriptions([latest.id])
    assert used[latest.id or 0].broken.startswith("the marketplace item 'Greeter'")
    # the forks are the caller's own workflows, unchanged
    assert (await run_own(lab, sam, "my_greeter")).printed("greet") == ["v1 says hello"]
    assert (await run_own(lab, sam, "newest")).printed("greet") == ["v2 says hello"]


async def test_recursion_through_the_marketplace_is_refused_before_the_run_starts(
    lab: Lab,
) -> None:
    alice = await user(lab, "alice")
    lab.principal = await user(lab, "sam")
    await lab.runtime.workflows.create(
        alice,
        WorkflowCreate(
            name="loop", yaml="jobs:\n  j:\n    steps:\n      - uses: marketplace/loop\n"
        ),
    )
    await lab.runtime.marketplace.publish(
        alice, MarketplacePublish(source="loop", name="Loop", slug="loop")
    )
    with pytest.raises(
        Invalid,
        match="marketplace/default/loop/v1.0.0 calls marketplace/loop "
        r"\(marketplace/default/loop/v1.0.0\) again \(recursion\)",
    ):
        await lab.start("jobs:\n  main:\n    steps:\n      - uses: marketplace/loop\n")
    async with lab.runtime.db.session() as session:
        assert not list(await session.exec(select(WorkflowRun)))


async def test_uses_sees_only_what_the_runs_user_may_see(lab: Lab) -> None:
    await lab.runtime.identity.create_group(lab.principal, "team")
    alice = await user(lab, "alice", groups=("team",))
    sam = await user(lab, "sam")
    await publish_greeter(lab, alice, privacy="groups", groups=["team"])
    lab.principal = sam
    step = "jobs:\n  main:\n    steps:\n      - uses: marketplace/greeter\n"
    with pytest.raises(Invalid, match=r"^uses: marketplace/greeter: the marketplace has no item"):
        await lab.start(step)
    # a Use made while sam could see it stops running once he cannot
    await lab.runtime.marketplace.update(alice, "greeter", MarketplaceUpdate(privacy="org"))
    used = await lab.runtime.marketplace_copies.use(sam, "greeter")
    assert (await lab.run(step)).run.status == "completed"
    await lab.runtime.marketplace.update(
        alice, "greeter", MarketplaceUpdate(privacy="groups", groups=["team"])
    )
    with pytest.raises(NotFound, match="no longer shown to sam"):
        await lab.runs.start(sam, ResourceRef("sam", used.name), {})
