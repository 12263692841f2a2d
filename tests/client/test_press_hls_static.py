"""The press HLS from a static web server: a real nginx with deploy/nginx's configuration
serves the playlist and segments the server writes as plain files, checking the HLS key
of the token answer itself (no Python on the request path)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from summitline.client.ice import LOOPBACK
from summitline.core.roles import MediaKind, Phase
from summitline.server.app import Settings
from summitline.server.press.static import StaticHls
from summitline.server.run import running
from tests.client.test_press import WAIT_S, WINDOW_S, ffprobe, started_window
from tests.client.test_session import leave_all
from tests.nginx import nginx


async def test_a_static_server_serves_the_press_hls_to_key_holders_only(
        tmp_path: Path) -> None:
    async with nginx(tmp_path / "nginx", tmp_path / "hls") as web:
        settings = Settings(data_dir=tmp_path / "server", press_hosts=LOOPBACK,
                            hls_dir=web.hls_dir, hls_url=web.url, hls_secret=web.secret)
        async with running(settings) as base, httpx.AsyncClient(base_url=base) as http, \
                httpx.AsyncClient() as cdn:
            ws = base.replace("http", "ws", 1) + "/ws"
            call, a, b, tasks = await started_window(http, ws, WINDOW_S)
            await asyncio.wait_for(a.press_answered.wait(), WAIT_S)
            issued = await call.a.operator.press_token(call.call)
            playlist, key = issued["hls_static"], issued["hls_key"]
            assert playlist == f"{web.url}/{call.call}/index.m3u8"
            assert issued["token"] not in playlist and key not in playlist
            bearer = {"Authorization": f"Bearer {key}"}

            # the files are the server's, written where nginx serves them
            while "segment" not in (reply := await cdn.get(playlist, headers=bearer)).text:
                assert reply.status_code in (200, 404), reply.status_code  # 404: not yet
                n = a.frames(MediaKind.VIDEO)  # a second of the call between two looks
                await asyncio.wait_for(a.wait_for(lambda n=n: a.frames(MediaKind.VIDEO) > n + 15),
                                       WAIT_S)
            assert reply.headers["content-type"] == "application/vnd.apple.mpegurl"
            assert (web.hls_dir / call.call / "index.m3u8").is_file()
            streams = await ffprobe(playlist, key)
            assert "codec_name=h264|width=640|height=480" in streams
            assert "codec_name=aac" in streams

            # nginx refuses: no key, the press token itself, a key of another call, an
            # expired key, a forged one, a key in the URL; nothing else is served
            now_ms = int(time.time() * 1000)
            static, guessed = StaticHls(web.url, web.secret), StaticHls(web.url, "guess")
            # one character of the MD5 changed: the first, whose six bits all count (the
            # last base64 character of 16 bytes carries two bits and four of padding,
            # which a decoder drops: changing it may change nothing, CI, this stop)
            expires, _, digest = key.partition(".")
            forged = f"{expires}.{'A' if digest[0] != 'A' else 'B'}{digest[1:]}"
            refused = [
                {}, {"Authorization": f"Bearer {issued['token']}"},
                {"Authorization": f"Bearer {static.key('another-call', now_ms + 60_000)}"},
                {"Authorization": f"Bearer {static.key(call.call, now_ms - 1000)}"},
                {"Authorization": f"Bearer {guessed.key(call.call, now_ms + 60_000)}"},
                {"Authorization": f"Bearer {forged}"}]
            for headers in refused:
                assert (await cdn.get(playlist, headers=headers)).status_code == 401, headers
            assert (await cdn.get(f"{playlist}?key={key}")).status_code == 401
            for path in ("/hls/../nginx.conf", f"/hls/{call.call}/../../nginx/nginx.conf",
                         "/nginx.conf"):
                url = web.url.removesuffix("/hls") + path
                assert (await cdn.get(url, headers=bearer)).status_code in (400, 401, 404)

            # the window's end ends the playlist; the call's end deletes the files
            await asyncio.wait_for(a.wait_for(lambda: a.phase is Phase.CLOSED), WAIT_S)
            assert (await cdn.get(playlist, headers=bearer)).text.rstrip().endswith(
                "#EXT-X-ENDLIST")
            await call.a.operator.control(call.call, "end")
            await asyncio.wait_for(a.wait_for(lambda: a.phase is Phase.ENDED), WAIT_S)
            await leave_all((a, b), tasks)
            assert not (web.hls_dir / call.call).exists()
            assert (await cdn.get(playlist, headers=bearer)).status_code == 404
