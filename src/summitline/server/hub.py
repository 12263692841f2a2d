"""The hub: the live call rooms of this server process, loaded from the store on demand."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

from summitline.client.ice import IceSettings
from summitline.core import call as c
from summitline.core.roles import Phase
from summitline.server import closecodes as cc
from summitline.server.cluster import Cluster, RemoteEndpoint
from summitline.server.events import EventStreams
from summitline.server.metrics import Metrics
from summitline.server.press.gateway import PressGateway
from summitline.server.room import CallRoom, Clock
from summitline.server.sfu import SfuBroker
from summitline.server.turn import TurnSettings, credentials
from summitline.store import Store

# A closed connection leaves once the device's socket closes: its client answers the close
# at once; a client that does not is left to the WebSocket keepalive.
DROP_WAIT_S = 5.0


class Hub:
    def __init__(self, store: Store, clock: Clock, turn: TurnSettings | None = None,
                 press: PressGateway | None = None,
                 events: EventStreams | None = None, redis_url: str | None = None,
                 sfu: SfuBroker | None = None) -> None:
        self.store = store
        # the delegations' consoles are told of every change of a call (server/events.py)
        self.events = events if events is not None else EventStreams()
        self.clock = clock
        self.turn = turn
        self.press = press or PressGateway(IceSettings(), clock)
        # Janus's VideoRoom for briefings whose plan wants the SFU (server/sfu.py); None:
        # every briefing is a mesh.
        self.sfu = sfu
        # Rooms of complete plans stay loaded (their calls can run). A room of a plan
        # not yet signed by both delegations is kept only while something uses it: such
        # plans cost a stranger nothing to submit, so they must not pile up in memory.
        self._rooms: dict[str, CallRoom] = {}
        self._unsigned: weakref.WeakValueDictionary[str, CallRoom] = \
            weakref.WeakValueDictionary()
        self._lock = asyncio.Lock()
        self.metrics = Metrics()
        self.metrics.watch(self)

        # Other nodes (server/cluster.py), with --redis-url; None: this process is alone.
        self.cluster = Cluster(redis_url, lambda: self._rooms, self._from_all) \
            if redis_url else None

    async def start(self) -> None:
        if self.cluster is not None:
            await self.cluster.start()

    def rooms(self) -> list[CallRoom]:
        """The rooms this process holds for good (complete plans)."""
        return list(self._rooms.values())

    async def room(self, call_id: str) -> CallRoom | None:
        async with self._lock:
            room = self._rooms.get(call_id) or self._unsigned.get(call_id)
            if room is not None and self.cluster is not None and not room.signed.complete:
                room = None  # another node may have taken the last signature: read again
            if room is None:
                room = await self._load(call_id)
                if room is not None:
                    (self._rooms if room.signed.complete else self._unsigned)[call_id] = room
            return room

    @property
    def loaded(self) -> int:
        """How many rooms this process holds for good (complete plans)."""
        return len(self._rooms)

    async def _load(self, call_id: str) -> CallRoom | None:
        signed = await self.store.plan_for_call(call_id)
        if signed is None:
            return None
        room = CallRoom(self.store, self.clock, signed, await self.store.entries(call_id))
        room.on_doors_shut = lambda: self._doors_shut(room)
        room.on_phase = lambda: self._phase(room)
        delegations = [d.id for d in signed.plan.delegations]
        room.on_entry = lambda: self.events.publish(delegations, "call", id=call_id,
                                                    phase=str(room.state.phase))
        if self.cluster is not None:
            cluster = self.cluster
            room.on_append = lambda entry: cluster.publish(call_id, {"op": "entry",
                                                                     "seq": entry.seq})
            # Devices connected to other nodes are theirs; those of a node that died are
            # recorded as left (no reset: other nodes hold connections of this call).
            for device, node in await cluster.attach(room):
                await room.gone(device, "node-lost")
                await cluster.gone(call_id, device, node)
            cluster.sync(room)
        elif room.state.admitted:
            # Endpoints were connected when this process (or an earlier one) stopped. Their
            # signaling is gone; their peer-to-peer media may well go on. They rejoin.
            await room.record("server.restarted", {"admitted": sorted(room.state.admitted)},
                              c.Reset())
        room.arm_press_timer()
        return room

    async def _doors_shut(self, room: CallRoom) -> None:
        if room.state.phase is Phase.ENDED:  # nothing of the window is kept after the call
            await self.press.forget(room.call_id)
        else:
            await self.press.close(room.call_id)

    def sfu_route(self, room: CallRoom) -> bool:
        """Whether the call's media goes through this server's SFU (welcome ``sfu``)."""
        return self.sfu is not None and room.signed.plan.wants_sfu

    async def _phase(self, room: CallRoom) -> None:
        """The feeds of the SFU follow the phase; the call's end destroys its room."""
        if self.sfu is None:
            return
        if room.state.phase is Phase.ENDED:
            await self.sfu.end(room.call_id)
        else:
            await self.sfu.settle(room)

    async def phase_of(self, call_id: str) -> str:
        room = await self.room(call_id)
        return str(room.state.phase) if room else "planned"

    def forget(self, call_id: str) -> None:
        self._unsigned.pop(call_id, None)
        room = self._rooms.pop(call_id, None)
        if room is not None:
            room.stop()

    async def close(self) -> None:
        for room in self._rooms.values():
            room.stop()
        self._rooms.clear()
        if self.cluster is not None:
            await self.cluster.close()
        await self.press.shutdown()
        if self.sfu is not None:
            await self.sfu.shutdown()

    async def _from_all(self, op: dict[str, Any]) -> None:
        """What another node asks of every node (or this node's heartbeat, ``lost``)."""
        if op["op"] == "drop":
            await self.drop(op["device"], op["code"], op["message"], op["close_code"],
                            op.get("by"), spread=False)
        elif op["op"] == "revoked":
            self.tell_revoked(op["revocation"], spread=False)
        elif op["op"] == "lost":
            for room in list(self._rooms.values()):
                for device, endpoint in list(room.endpoints.items()):
                    if not isinstance(endpoint, RemoteEndpoint):
                        del room.endpoints[device]
                        endpoint.error("node-lost", "this server node lost its cluster; "
                                       "reconnect", fatal=True)
                        endpoint.finish(cc.NODE_LOST, "node lost")

    async def drop(self, device: str, code: str, message: str, close_code: int,
                   by: str | None = None, spread: bool = True) -> int:
        """Close ``device``'s signaling in every call it is connected to (a revoked
        device; only where its plan names it under delegation ``by``, if given), and
        wait (at most ``DROP_WAIT_S``) until each has left the call's state; how many
        connections were closed (on this node: with other nodes, each drops its own)."""
        if self.cluster is not None and spread:
            self.cluster.publish_all({"op": "drop", "device": device, "code": code,
                                      "message": message, "close_code": close_code, "by": by})
        dropped = []
        for room in list(self._rooms.values()):
            endpoint = room.endpoints.get(device)
            if isinstance(endpoint, RemoteEndpoint):
                continue
            seat = room.signed.plan.participant(device)
            if by is not None and (seat is None or seat.delegation != by):
                continue
            if endpoint is not None:
                endpoint.error(code, message, fatal=True)
                endpoint.finish(close_code, code)
                dropped.append(endpoint)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DROP_WAIT_S):
                await asyncio.gather(*(e.left.wait() for e in dropped))
        return len(dropped)

    def tell_revoked(self, revocation: dict[str, Any], spread: bool = True) -> int:
        """Send a signed revocation (``{delegation, device, at, signature}``) to every
        endpoint of the loaded calls whose plans name the device (calls not loaded have
        nobody connected; their endpoints get it in ``welcome``); how many got it."""
        if self.cluster is not None and spread:
            self.cluster.publish_all({"op": "revoked", "revocation": revocation})
        told = 0
        message = {"type": "revoked", **revocation}
        for room in list(self._rooms.values()):
            seat = room.signed.plan.participant(revocation["device"])
            if seat is None or seat.delegation != revocation["delegation"]:
                continue
            for device, endpoint in list(room.endpoints.items()):
                if device != revocation["device"] and \
                        not isinstance(endpoint, RemoteEndpoint):
                    endpoint.send(message)
                    told += 1
        return told

    def ice_servers(self, device: str) -> list[dict[str, object]]:
        """The relay servers for an authenticated device, with fresh credentials."""
        if self.turn is None:
            return []
        self.metrics.turn_credentials.inc()
        return [credentials(self.turn, device, self.clock() // 1000)]
