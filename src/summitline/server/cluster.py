"""Several server nodes: presence and relay between them over Redis (``--redis-url``).

Each node keeps its own ``CallRoom`` per call, replayed from the shared store. What
crosses nodes (docs/operations.md, "Several nodes"):

- The record. The store refuses a second entry of the same sequence number (its primary
  key), so a node whose room is behind gets ``StoreError``, reads the entries it missed,
  and tries again (``CallRoom.record``). After each append a node publishes ``entry``;
  the others read the new entries before anything that node publishes next.
- Presence. ``summitline:presence:<call>`` maps each connected device to its node; it is
  written before the join is recorded and cleared after the leave is, so a device the
  record admits always has an entry, or had one on a node that died. Each node refreshes
  ``summitline:node:<id>`` every ``HEARTBEAT_S`` with a TTL of ``NODE_TTL_MS``: a node
  killed outright expires, and the nodes holding its calls record its devices as left.
- The relay. A device connected elsewhere is a ``RemoteEndpoint`` in the room's
  ``endpoints``: what is sent to it is published on ``summitline:call:<call>`` and its
  node delivers it. One task publishes everything a node sends, in order, on one Redis
  connection, and one subscription reads it on every other node in that order: messages
  between a pair keep their order, and an entry is read before the message it caused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from summitline.core import messages as m
from summitline.server import closecodes as cc

if TYPE_CHECKING:
    from summitline.server.room import CallRoom

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
NODE_TTL_MS = 4000  # a node silent this long is gone: its devices are recorded as left
CONNECT_TIMEOUT_S = 5.0
PREFIX = "summitline"
ALL = f"{PREFIX}:all"  # what every node acts on (revocations)

# HDEL a presence entry only if it is still the given node's (a device may have moved).
# HSET that answers the value it replaced (nil if none).
_HSWAP = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
"""
# Undo one's own HSET: if the entry still names this node, put back what it replaced
# (ARGV[3]; empty: delete it).
_HUNDO = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  if ARGV[3] == '' then return redis.call('HDEL', KEYS[1], ARGV[1]) end
  return redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return 0
"""
_HDEL_IF = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


def _node_key(node: str) -> str:
    return f"{PREFIX}:node:{node}"


def _presence_key(call: str) -> str:
    return f"{PREFIX}:presence:{call}"


def _channel(call: str) -> str:
    return f"{PREFIX}:call:{call}"


class RemoteEndpoint:
    """A device connected to another node, as a room sees it (room.Endpoint)."""

    def __init__(self, cluster: Cluster, call: str, device: str, node: str) -> None:
        self.cluster = cluster
        self.call = call
        self.device = device
        self.node = node
        self.left = asyncio.Event()  # set once its node says it left, or its node is gone

    def send(self, message: dict[str, Any]) -> None:
        self.cluster.publish(self.call, {"op": "send", "to": self.device, "msg": message})

    def error(self, code: str, message: str, fatal: bool = False,
              ref: str | None = None) -> None:
        self.send(m.ErrorMessage(code=code, message=message, fatal=fatal, ref=ref).model_dump())

    def finish(self, code: int, reason: str) -> None:
        """Its node closes its connection; that connection records its leaving."""
        self.cluster.publish(self.call, {"op": "finish", "to": self.device, "code": code,
                                         "reason": reason, "forget": False})

    def replaced(self) -> None:
        """A new connection of the device took over here (its leaving is recorded): its
        node closes the old one without recording anything."""
        self.cluster.publish(self.call, {"op": "finish", "to": self.device,
                                         "code": cc.REPLACED, "reason": "replaced by a new "
                                         "connection of this device", "forget": True,
                                         "error": "replaced"})


class Cluster:
    """This node's link to the others. ``rooms``: the loaded room of a call, if any."""

    def __init__(self, url: str, rooms: Callable[[], dict[str, CallRoom]],
                 on_all: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.url = url
        self.node = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self._rooms = rooms
        self._on_all = on_all
        self.redis: aioredis.Redis = aioredis.from_url(
            url, decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S,
            health_check_interval=10)
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._hdel_if = self.redis.register_script(_HDEL_IF)
        self._hswap = self.redis.register_script(_HSWAP)
        self._hundo = self.redis.register_script(_HUNDO)
        self._subscribed: set[str] = set()

    # -- life ----------------------------------------------------------------------------
    async def start(self) -> None:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await self.redis.set(_node_key(self.node), "1", px=NODE_TTL_MS)
            await self._pubsub.subscribe(ALL)
        self._tasks = [asyncio.create_task(self._publisher()),
                       asyncio.create_task(self._reader()),
                       asyncio.create_task(self._heartbeat())]
        log.info("cluster node %s on %s", self.node, self.url.split("@")[-1])

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await self.redis.delete(_node_key(self.node))
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.redis.aclose()

    # -- publishing ----------------------------------------------------------------------
    def publish(self, call: str, op: dict[str, Any]) -> None:
        self._outbox.put_nowait((_channel(call), json.dumps({**op, "node": self.node,
                                                             "call": call})))

    def publish_all(self, op: dict[str, Any]) -> None:
        self._outbox.put_nowait((ALL, json.dumps({**op, "node": self.node})))

    async def _publisher(self) -> None:
        """Everything this node sends, in order, on one connection (a pipeline per batch)."""
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for channel, data in batch:
                        pipe.publish(channel, data)
                    await pipe.execute()
            except Exception:
                log.exception("cluster: %d messages not published", len(batch))

    # -- presence ------------------------------------------------------------------------
    async def attach(self, room: CallRoom) -> list[tuple[str, str]]:
        """Follow ``room``'s call: subscribe, then the devices connected on live nodes
        become remote endpoints. Returns the admitted devices with no live node (gone with
        a node that died), with that node: the caller records them as left."""
        call = room.call_id
        if _channel(call) not in self._subscribed:
            self._subscribed.add(_channel(call))
            await self._pubsub.subscribe(_channel(call))
        room.on_caught_up = lambda: self.sync(room)
        await room.catch_up()  # what was appended before the subscription took
        presence = {str(k): str(v) for k, v in
                    (await self.redis.hgetall(_presence_key(call))).items()}
        alive = await self._alive(set(presence.values()))
        self.sync(room)
        for device, e in room.endpoints.items():
            if isinstance(e, RemoteEndpoint):
                e.node = presence.get(device, "")
        return [(d, presence.get(d, "")) for d in sorted(room.state.admitted)
                if presence.get(d) not in alive or presence.get(d) == self.node]

    def sync(self, room: CallRoom) -> None:
        """The devices the record admits are connected here or elsewhere: those not here
        are remote endpoints (their node learnt from presence when needed); a remote
        endpoint the record no longer admits is gone."""
        for device in room.state.admitted:
            if device not in room.endpoints:
                room.endpoints[device] = RemoteEndpoint(self, room.call_id, device, "")
        for device, e in list(room.endpoints.items()):
            if isinstance(e, RemoteEndpoint) and device not in room.state.admitted:
                del room.endpoints[device]
                e.left.set()

    async def joining(self, call: str, device: str) -> str | None:
        """Before the join is recorded: the device is here. Answers the node the entry
        named before (another node's join of the same device at the same moment), for
        ``refused``."""
        old = await self._hswap(keys=[_presence_key(call)], args=[device, self.node])
        return old.decode() if isinstance(old, bytes) else old

    async def refused(self, call: str, device: str, before: str | None) -> None:
        """Its join was refused (another node's join of it was recorded first): the entry
        this node wrote goes back to what it replaced, so presence keeps naming the node
        that holds the device (attacker round f1)."""
        with contextlib.suppress(Exception):
            await self._hundo(keys=[_presence_key(call)], args=[device, self.node,
                                                                before or ""])

    async def holds(self, call: str, device: str) -> bool:
        """Whether the device is still this node's (no other node has taken it over)."""
        try:
            return await self.redis.hget(_presence_key(call), device) in (self.node, None)
        except Exception:  # Redis away: this node's view is all there is
            return True

    def joined(self, call: str, device: str) -> None:
        self.publish(call, {"op": "joined", "device": device})

    async def gone(self, call: str, device: str, node: str | None = None) -> None:
        """After its leaving is recorded (or its join refused): not here any more."""
        with contextlib.suppress(Exception):
            await self._hdel_if(keys=[_presence_key(call)], args=[device, node or self.node])
        if node is None:
            self.publish(call, {"op": "left", "device": device})

    async def _alive(self, nodes: set[str]) -> set[str]:
        nodes.discard(self.node)
        alive = {self.node}
        for node in sorted(nodes):
            if await self.redis.exists(_node_key(node)):
                alive.add(node)
        return alive

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                was = await self.redis.set(_node_key(self.node), "1", px=NODE_TTL_MS,
                                           get=True)
                if was is None:
                    # This node was silent past its TTL: the others have recorded its
                    # devices as left. Close their connections; they reconnect.
                    log.warning("cluster: node %s was taken for gone; dropping its "
                                "connections", self.node)
                    await self._on_all({"op": "lost"})
                await self._reap()
            except Exception:
                log.exception("cluster: heartbeat failed")

    async def _reap(self) -> None:
        """Devices of nodes that are gone, in the rooms loaded here, are recorded left."""
        rooms = [r for r in list(self._rooms().values()) if any(
            isinstance(e, RemoteEndpoint) for e in r.endpoints.values())]
        for room in rooms:  # remote endpoints the record told of: which node
            for device, e in list(room.endpoints.items()):
                if isinstance(e, RemoteEndpoint) and not e.node:
                    e.node = str(await self.redis.hget(_presence_key(room.call_id), device)
                                 or "")
        nodes = {e.node for r in rooms for e in r.endpoints.values()
                 if isinstance(e, RemoteEndpoint)}
        if not nodes:
            return
        alive = await self._alive(set(nodes) - {""})
        for room in rooms:
            for device, e in list(room.endpoints.items()):
                if isinstance(e, RemoteEndpoint) and e.node not in alive:
                    await self.lost(room, device, e)

    async def lost(self, room: CallRoom, device: str, e: RemoteEndpoint) -> None:
        if room.endpoints.get(device) is e:
            del room.endpoints[device]
        e.left.set()
        await room.gone(device, "node-lost")
        await self.gone(room.call_id, device, e.node)

    # -- reading -------------------------------------------------------------------------
    async def _reader(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=HEARTBEAT_S)
                if message is None or message.get("type") != "message":
                    continue
                op = json.loads(message["data"])
                if op.get("node") == self.node:
                    continue
                if message["channel"] == ALL:
                    await self._on_all(op)
                else:
                    await self._handle(op)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster: a message from another node failed")
                await asyncio.sleep(0.1)  # Redis away: do not spin

    async def _handle(self, op: dict[str, Any]) -> None:
        from summitline.server.signaling import Connection

        room = self._rooms().get(str(op.get("call")))
        if room is None:
            return
        kind = op["op"]
        if kind == "entry":
            await room.catch_up()
            return
        if kind == "joined":
            device = op["device"]
            here = room.endpoints.get(device)
            room.endpoints[device] = RemoteEndpoint(self, room.call_id, device, op["node"])
            if isinstance(here, Connection):  # (its replacement should have come first)
                here.error("replaced", "a new connection of this device took over",
                           fatal=True)
                here.finish(cc.REPLACED, "replaced by a new connection of this device")
            return
        if kind == "left":
            there = room.endpoints.get(op["device"])
            if isinstance(there, RemoteEndpoint) and there.node == op["node"]:
                del room.endpoints[op["device"]]
                there.left.set()
            return
        target = room.endpoints.get(op.get("to", ""))
        if not isinstance(target, Connection):
            return  # it left just now, or is not here
        if kind == "send":
            target.send(op["msg"])
        elif kind == "finish":
            if op.get("forget"):
                del room.endpoints[target.device]
            if op.get("error"):
                target.error(op["error"], op["reason"], fatal=True)
            target.finish(int(op["code"]), str(op["reason"]))

