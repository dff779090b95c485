"""Throwaway plugin distributions the tests install for real (wheel, entry point, metadata)."""

from __future__ import annotations

from pathlib import Path

from corral_core.testing import install_distribution

LAMP_PLUGIN = '''
"""A lamp whose switching is recorded in a file: the "world" the reconciler observes."""
import asyncio
import os
from pathlib import Path

import msgspec

from corral_sdk.plugin import ReconcileResult, ResourceKindRecord, hookimpl


class LampSpec(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    switch_seconds: float = 0.0


class LampReconciler:
    async def reconcile(self, resource, ctx):
        spec = msgspec.convert(resource.spec, LampSpec)
        world = Path(spec.path)
        lines = world.read_text().splitlines() if world.exists() else []
        last = lines[-1] if lines else "off"
        want = resource.desired_state
        if last == want:
            return ReconcileResult(observed_state=want)
        if last != f"start {want}":
            with world.open("a") as f:
                f.write(f"start {want}\\n")
            await ctx.emit("lamp.switching", {"to": want, "pid": os.getpid()})
            await asyncio.sleep(spec.switch_seconds)
        # Finishing a switch someone started (perhaps a worker that was killed) is safe.
        with world.open("a") as f:
            f.write(f"{want}\\n")
        return ReconcileResult(observed_state=want)


@hookimpl
def corral_register_resource_kinds():
    return [
        ResourceKindRecord(
            name="lamp",
            factory=LampReconciler,
            config=LampSpec,
            states=("off", "on"),
            initial_state="off",
            terminal_states=frozenset({"off", "on"}),
        )
    ]
'''


def install_lamp(target: Path) -> Path:
    return install_distribution(
        target,
        "corral-lamp",
        "1.0.0",
        {"corral_lamp/__init__.py": "", "corral_lamp/plugin.py": LAMP_PLUGIN},
        entry_points="[corral.plugins]\nlamp = corral_lamp.plugin\n",
        requires=("corral-sdk>=0.1",),
    )


def scheduler_plugin(name: str) -> dict[str, str]:
    module = f"corral_{name.replace('-', '_')}"
    return {
        f"{module}/__init__.py": "",
        f"{module}/plugin.py": (
            "from corral_sdk.plugin import SchedulerRecord, hookimpl\n\n"
            "@hookimpl\n"
            "def corral_register_schedulers():\n"
            f"    return [SchedulerRecord(name='lsf', factory='{module}.plugin:Scheduler')]\n\n"
            "class Scheduler:\n    pass\n"
        ),
    }
