"""Soak: a long call on a long-haul path, watched for freezes, audio loss and growth.

Two principal processes and the server, each in a network namespace of its own
(summitline.netlab); both principals' links through the lab's userspace relay, each
adding 75 ms +- 10 ms and 1 % loss with reordering, so the path between them is
150 ms +- 20 ms with about 2 % loss. The call runs ``--minutes`` (default 125, the
length of the call the project is modelled on), with a progress line each minute.

value:    freezes over 1 s (gaps between decoded video frames), both sides together.
baseline: the same count over the first minute, before anything could have grown.
Also: freezes_over_1s_not_from_stalls (each freeze less the time either endpoint's
event loop was stalled by the machine within it), audio_loss_pct (20 ms Opus frames
missing against what was sent), median fps per minute, rss_growth_mb of each
principal and of the server (last minute - first).
Aim: 0 freezes, and growth under 20 MB over the whole call.

Usage: python bench/soak.py [--minutes N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from summitline import netns
from summitline.labcall import LabCall
from summitline.netlab import Lab

AUDIO_FPS = 50  # 20 ms Opus frames


def measure(minutes: int) -> dict[str, object]:
    fps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, Lab() as lab:
        call = LabCall(lab, Path(tmp) / "server", relayed=True).open()
        try:
            call.start()
            for p in call.principals:
                lab.impair(p.host, delay_ms=75, jitter_ms=10, loss=0.01, reorder=True)
                p.ask("reset-gaps")
            start = time.monotonic()
            audio0 = [p.frames()["audio"] for p in call.principals]
            rss0 = [p.report()["rss_kb"] for p in call.principals] + [call.order("rss")]
            first_minute_freezes = 0
            last = [p.frames()["video"] for p in call.principals]
            for minute in range(1, minutes + 1):
                time.sleep(max(0.0, start + 60 * minute - time.monotonic()))
                reports = [p.report() for p in call.principals]
                now = [p.frames()["video"] for p in call.principals]
                fps += [(n - b) / 60 for n, b in zip(now, last, strict=True)]
                last = now
                freezes = sum(r["freezes_over_1s"] for r in reports)
                if minute == 1:
                    first_minute_freezes = freezes
                print(f"minute {minute}/{minutes}: fps {fps[-2]:.1f}/{fps[-1]:.1f}, "
                      f"freezes {freezes}, rss {[r['rss_kb'] // 1024 for r in reports]} MB, "
                      f"stalls {[len(r['stalls']) for r in reports]}", file=sys.stderr,
                      flush=True)
            elapsed = time.monotonic() - start
            reports = [p.report() for p in call.principals]
            audio = [p.frames()["audio"] - a0 for p, a0 in zip(call.principals, audio0,
                                                                strict=True)]
            rss1 = [r["rss_kb"] for r in reports] + [call.order("rss")]
            raw, net = call.freezes()
            call.settled(60)
            record = call.end()
        finally:
            call.close()
    freezes = sum(r["freezes_over_1s"] for r in reports)
    expected = AUDIO_FPS * elapsed
    growth = [round((b - a) / 1024, 1) for a, b in zip(rss0, rss1, strict=True)]
    return {"bench": "soak", "unit": "freezes", "value": freezes,
            "baseline": first_minute_freezes, "ratio": None,
            "aim": "0 freezes; rss growth < 20 MB each", "runs": 1,
            "machine": f"{os.cpu_count()} cores", "minutes": minutes,
            "freezes_over_1s": freezes,
            "max_video_gap_s": round(max(r["max_video_gap_s"] for r in reports), 2),
            # freezes less the time the machine stalled either endpoint's event loop
            "freezes_over_1s_not_from_stalls": sum(n > 1.0 for n in net),
            "freezes_kept": len(raw),
            "audio_loss_pct": round(100 * (1 - min(audio) / expected), 2),
            "median_fps": round(statistics.median(fps), 1) if fps else None,
            "rss_growth_mb": {"a": growth[0], "b": growth[1], "server": growth[2]},
            "stalls": [len(r["stalls"]) // 2 for r in reports],
            "record_entries": len(record["kinds"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=int, default=125,
                   help="length of the call in minutes (default 125)")
    args = p.parse_args()
    if args.minutes < 1:
        p.error("--minutes must be at least 1")
    netns.isolate()
    print(json.dumps(measure(args.minutes)))


if __name__ == "__main__":
    main()
