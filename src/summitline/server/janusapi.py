"""Janus's HTTP API, as summitline speaks it: sessions, plugin handles, requests whose
answer comes at once or later on the session's long poll, and the poll itself.

Shared by the press (server/press/janus.py, the Streaming plugin) and the briefings
through an SFU (server/sfu.py, the VideoRoom plugin). Janus's API is summitline's alone:
loopback, an ``api_secret``, and each plugin's ``admin_key`` (deploy/janus/).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0  # one request to Janus, or the event that answers it
POLL_S = 30  # Janus answers a long poll with a keepalive after 30 s


class JanusError(Exception):
    """Janus refused a request, or did not answer in time."""


@dataclass(kw_only=True)
class JanusSession:
    """A Janus session, kept alive by its long poll; ``on_event`` gets every event that
    answers no pending request (a hangup, a plugin event)."""

    session: int
    poll: asyncio.Task[None] | None = None
    pending: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    detaching: set[asyncio.Task[None]] = field(default_factory=set)
    closed: bool = False
    on_event: Callable[[dict[str, Any]], None] | None = None


class JanusApi:
    def __init__(self, url: str, api_secret: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.api_secret = api_secret
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(REQUEST_TIMEOUT_S,
                                                             read=POLL_S + 10))
        self._tx = itertools.count()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict[str, Any],
                    tx: str | None = None) -> dict[str, Any]:
        """A request under transaction ``tx`` (a fresh one if None); Janus's reply, which
        may be an "ack" whose answer comes on the long poll."""
        body = {**body, "transaction": tx or f"t{next(self._tx)}"}
        if self.api_secret:
            body["apisecret"] = self.api_secret
        try:
            response = await self._http.post(self.url + path, json=body,
                                             timeout=REQUEST_TIMEOUT_S)
            reply: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise JanusError(f"Janus did not answer: {exc!r}") from None
        if reply.get("janus") == "error":
            raise JanusError(f"Janus: {reply.get('error', {}).get('reason')}")
        return reply

    async def _message(self, window: JanusSession, handle: int, body: dict[str, Any],
                       jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        """A request to a plugin; its reply, whether Janus gives it at once ("success")
        or later as an event on the session's long poll ("ack")."""
        request: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        tx = f"t{next(self._tx)}"
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        window.pending[tx] = waiter
        try:
            reply = await self._post(f"/{window.session}/{handle}", request, tx)
            if reply.get("janus") == "ack":
                try:
                    reply = await asyncio.wait_for(waiter, REQUEST_TIMEOUT_S)
                except TimeoutError:
                    raise JanusError("Janus did not answer in time") from None
        finally:
            window.pending.pop(tx, None)
        if reply.get("janus") == "error":
            raise JanusError(f"Janus: {reply.get('error', {}).get('reason')}")
        data: dict[str, Any] = reply.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"Janus {reply.get('plugindata', {}).get('plugin')}: "
                             f"{data['error']}")
        return reply

    async def _create_session(self) -> int:
        return int((await self._post("", {"janus": "create"}))["data"]["id"])

    async def _attach(self, session: int, plugin: str) -> int:
        reply = await self._post(f"/{session}", {"janus": "attach", "plugin": plugin})
        return int(reply["data"]["id"])

    def _start_poll(self, window: JanusSession) -> None:
        window.poll = asyncio.create_task(self._poll(window))

    async def _poll(self, window: JanusSession) -> None:
        """The session's long poll: answers to pending requests, and other events.
        It also keeps the session alive (Janus drops one nobody asks after for 60 s)."""
        params = {"maxev": "10", **({"apisecret": self.api_secret} if self.api_secret else {})}
        while not window.closed:
            try:
                response = await self._http.get(f"{self.url}/{window.session}", params=params)
                events = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("Janus long poll of session %s: %r", window.session, exc)
                await asyncio.sleep(1.0)
                continue
            for event in events if isinstance(events, list) else [events]:
                self._dispatch(window, event)

    def _dispatch(self, window: JanusSession, event: dict[str, Any]) -> None:
        waiter = window.pending.get(str(event.get("transaction", "")))
        if waiter is not None and not waiter.done() and event.get("janus") != "ack":
            waiter.set_result(event)
            return
        if window.on_event is not None:
            window.on_event(event)

    def _detach_later(self, window: JanusSession, handle: int) -> None:
        task = asyncio.create_task(self._detach(window, handle))
        window.detaching.add(task)
        task.add_done_callback(window.detaching.discard)

    async def _detach(self, window: JanusSession, handle: int) -> None:
        with contextlib.suppress(JanusError):
            await self._post(f"/{window.session}/{handle}", {"janus": "detach"})

    async def _end_session(self, window: JanusSession) -> None:
        """Destroy the session (Janus hangs up and detaches its handles); stop its poll."""
        window.closed = True
        with contextlib.suppress(JanusError):
            await self._post(f"/{window.session}", {"janus": "destroy"})
        if window.poll is not None:
            window.poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await window.poll
        for task in list(window.detaching):
            task.cancel()
