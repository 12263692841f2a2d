"""Signed booth actions are kept in the record: after a server restart the booth state
still carries the action that put an interpreter on air, and the sequence goes on."""

from __future__ import annotations

from pathlib import Path

import httpx

from summitline.client.bilateral import provision
from summitline.client.ice import LOOPBACK
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey
from summitline.server.app import Settings
from summitline.server.run import running
from tests import wire
from tests.postgres import both_stores
from tests.server.test_bad_input import booth


@both_stores
async def test_booth_actions_survive_a_server_restart(tmp_path: Path, database: str) -> None:
    settings = Settings(data_dir=tmp_path / "server", database_url=database,
                        press_hosts=LOOPBACK)
    k1 = PrivateKey.generate()
    async with running(settings) as base, httpx.AsyncClient(base_url=base) as http:
        call = await provision(http, extra=[(1, k1, Role.INTERPRETER, "RU interpreter")])
        await call.a.operator.control(call.call, "start")
        i1, _ = await wire.join(base.replace("http", "ws", 1) + "/ws", call.call, k1)
        go_live = booth(call, k1, "live", 1)
        await wire.send(i1, go_live)
        assert (await wire.next_of(i1, "booth"))["live"] == {"ru": k1.fingerprint}
        await i1.close()
    async with running(settings) as base:  # the same data, a new server
        ws_url = base.replace("http", "ws", 1) + "/ws"
        i1, welcome = await wire.join(ws_url, call.call, k1)
        action = welcome["booth"]["actions"]["ru"]
        assert welcome["booth"]["live"] == {}  # it left: its booth fell quiet, unsigned
        assert action == {**{k: go_live[k] for k in ("action", "to", "seq", "at",
                                                     "signature")}, "from": k1.fingerprint}
        await wire.send(i1, booth(call, k1, "live", 1))  # the sequence did not restart
        assert (await wire.next_of(i1, "error"))["code"] == "stale-seq"
        await wire.send(i1, booth(call, k1, "live", 2))
        assert (await wire.next_of(i1, "booth"))["live"] == {"ru": k1.fingerprint}
        await i1.close()
