"""Recovery: from the network's return to decoded video on both sides, after outages.

A bilateral call between two principal processes, each in a network namespace of its
own, and the server in a third (summitline.netlab); one principal's link is cut
entirely (media and signaling) for 1, 3, 10 and 35 s, each several times, in turn.
After each return the time to steady video (5 frames within 1 s) on the later of the
two sides is noted.

value:    median ms from the network's return to video on both sides.
max_ms:   the worst; unrecovered: outages after which video was not back in 30 s.
baseline: a fresh call's setup time in the same lab (start order -> video both ways).
Aim: value <= 1000 ms and max_ms <= 2000 ms.

Usage: python bench/recovery.py [--repeat N] [--outages 1,3,10,35]
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

WATCH_S = 30.0  # an outage whose video is not back by then counts as unrecovered
SETTLE_S = 3.0  # steady media between outages, so that each starts from a healthy call


def measure(outages: list[int], repeat: int) -> dict[str, object]:
    recoveries: list[float] = []
    per_outage: dict[int, list[float]] = {s: [] for s in outages}
    unrecovered = 0
    with tempfile.TemporaryDirectory() as tmp, Lab() as lab:
        call = LabCall(lab, Path(tmp) / "server").open()
        try:
            setup = call.start()
            plan = [s for _ in range(repeat) for s in outages]
            for i, seconds in enumerate(plan):
                time.sleep(SETTLE_S)
                a = call.principals[i % 2]  # each side's link in turn
                lab.cut(a.host)
                time.sleep(seconds)
                lab.restore(a.host)
                back = call.recovered(time.monotonic(), WATCH_S)
                if None in back:
                    unrecovered += 1
                    print(f"outage {i + 1}/{len(plan)} ({seconds} s): NOT back in "
                          f"{WATCH_S:.0f} s", file=sys.stderr)
                    continue
                ms = 1000 * max(b for b in back if b is not None)
                recoveries.append(ms)
                per_outage[seconds].append(ms)
                print(f"outage {i + 1}/{len(plan)} ({seconds} s): video back on both sides "
                      f"after {ms:.0f} ms", file=sys.stderr)
            call.settled()
            record = call.end()
            kinds = record["kinds"]
        finally:
            call.close()
    value = statistics.median(recoveries) if recoveries else float("nan")
    baseline = setup * 1000
    return {"bench": "recovery", "unit": "ms", "value": round(value, 1),
            "baseline": round(baseline, 1), "ratio": round(value / baseline, 2),
            "aim": "value <= 1000 and max_ms <= 2000 and unrecovered == 0",
            "runs": len(recoveries) + unrecovered, "machine": f"{os.cpu_count()} cores",
            "max_ms": round(max(recoveries), 1) if recoveries else None,
            "unrecovered": unrecovered,
            "median_ms_by_outage_s": {str(s): round(statistics.median(v), 1)
                                      for s, v in per_outage.items() if v},
            "record_link_lost": kinds.count("link.lost"),
            "record_link_restored": kinds.count("link.restored")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="times each outage (default 3)")
    p.add_argument("--outages", default="1,3,10,35",
                   help="outage lengths in seconds, comma-separated (default 1,3,10,35)")
    args = p.parse_args()
    outages = [int(s) for s in args.outages.split(",")]
    netns.isolate()
    print(json.dumps(measure(outages, args.repeat)))


if __name__ == "__main__":
    main()
