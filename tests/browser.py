"""A headless Chromium driven over the DevTools protocol (Debian's ``chromium``, installed by
contrib/lab/chromium.sh): open a page with extra request headers (a bearer credential), wait
for an expression to hold in it, read the DOM, take a screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import websockets

__all__ = ["Page", "open_page"]


class Page:
    """One tab, attached with a flat session."""

    def __init__(self, ws: Any, session: str) -> None:
        self.ws = ws
        self.session = session
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self.ws.send(
            json.dumps(
                {"id": call_id, "method": method, "params": params, "sessionId": self.session}
            )
        )
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        found = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return found.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 90) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{expression} never held; the page: {await self.text()}")
            await asyncio.sleep(0.5)

    async def text(self) -> str:
        return str(
            await self.evaluate("document.body ? document.body.innerText.slice(0, 500) : ''")
        )

    async def screenshot(self) -> bytes:
        """The page as a PNG."""
        shot = await self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])


@contextlib.asynccontextmanager
async def open_page(url: str, headers: dict[str, str]) -> AsyncIterator[Page]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "no chromium: run contrib/lab/chromium.sh"
    with tempfile.TemporaryDirectory() as profile:
        browser = await asyncio.create_subprocess_exec(
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0",
            f"--user-data-dir={profile}", "--window-size=1280,800", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert browser.stderr is not None
            endpoint = ""
            while not endpoint:
                line = (await asyncio.wait_for(browser.stderr.readline(), 60)).decode()
                assert line, "chromium exited before it listened"
                found = re.search(r"DevTools listening on (ws://\S+)", line)
                endpoint = found.group(1) if found else ""
            async with websockets.connect(endpoint, max_size=None, proxy=None) as ws:
                root = Page(ws, "")
                target = await _browser_call(ws, "Target.createTarget", url="about:blank")
                attached = await _browser_call(
                    ws, "Target.attachToTarget", targetId=target["targetId"], flatten=True
                )
                page = Page(ws, attached["sessionId"])
                del root
                await page.call("Network.enable")
                await page.call("Network.setExtraHTTPHeaders", headers=headers)
                await page.call("Page.enable")
                await page.call("Page.navigate", url=url)
                yield page
        finally:
            with contextlib.suppress(ProcessLookupError):
                browser.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(browser.wait(), 10)


async def _browser_call(ws: Any, method: str, **params: Any) -> dict[str, Any]:
    call_id = int(time.monotonic() * 1000) % 1_000_000_000
    await ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if message.get("id") == call_id:
            if "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            return dict(message.get("result", {}))
