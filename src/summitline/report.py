"""A readable HTML page of a record, for people; the JSON export stays the evidence.

The page says whether the record verified, and shows the call's facts, the plan's
participants, and every entry. Everything from the record is escaped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from html import escape
from pathlib import Path

from summitline.core.plan import CallPlan, SignedPlan
from summitline.core.record import Entry, summary
from summitline.crypto.keys import short_fingerprint


def and_list(names: list[str]) -> str:
    """"A", "A and B", "A, B and C": the signers of a bilateral or of a briefing."""
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"

# One stylesheet for the page wherever it is shown: inlined offline, served by the server
# (/api/record.css), and from the console's own origin when the console opens the page.
STYLE = (Path(__file__).parent / "web" / "record.css").read_text(encoding="utf-8")


def _when(ms: int | None) -> str:
    if ms is None:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d} UTC"


def _namer(plan: CallPlan) -> Callable[[object], str]:
    """Shows a device or delegation id by its name from the plan; other ids shortened."""
    names = {p.device: p.name for p in plan.participants}
    names.update({d.id: d.name for d in plan.delegations})

    def name(value: object) -> str:
        if isinstance(value, list):
            return ", ".join(name(v) for v in value)
        text = str(value)
        if text in names:
            return names[text]
        return text[:12] + "…" if len(text) == 64 else text

    return name


def _data(entry: Entry, name: Callable[[object], str]) -> str:
    return ", ".join(f"{escape(k)}: {escape(name(v))}" for k, v in entry.data.items())


def render(signed: SignedPlan, entries: list[Entry], verdict: str, verified: bool,
           stylesheet: str | None = None) -> str:
    """``stylesheet``: a URL for the style (a server whose CSP forbids inline styles);
    None inlines it (a file opened on its own)."""
    plan = signed.plan
    facts = summary(entries)
    duration = (f"{facts['duration_ms'] / 1000:.3f} s" if facts["duration_ms"] is not None
                else "–")
    name = _namer(plan)
    rows = "\n".join(
        f"<tr><td>{e.seq}</td><td class=mono>{_when(e.at)[11:23]}</td>"
        f"<td>{escape(e.kind)}</td><td>{_data(e, name)}</td></tr>" for e in entries)
    people = "\n".join(
        f"<tr><td>{escape(p.name)}</td><td>{escape(str(p.role))}</td>"
        f"<td>{escape(d.name if (d := plan.delegation(p.delegation)) else '?')}</td>"
        f"<td>{escape(p.language)}</td><td class=mono>{short_fingerprint(p.device)}</td></tr>"
        for p in plan.participants)
    style = (f'<link rel=stylesheet href="{escape(stylesheet)}">' if stylesheet
             else f"<style>{STYLE}</style>")
    delegations = ", ".join(f"{escape(d.name)} ({short_fingerprint(d.id)})"
                            for d in plan.delegations)
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8>
<title>Record of {escape(plan.title)}</title>{style}</head><body>
<h1>Record of “{escape(plan.title)}”</h1>
<p class="{'ok' if verified else 'bad'}" id=verdict>{escape(verdict)}</p>
<table><tr><th>Call</th><td class=mono>{escape(plan.call)}</td></tr>
<tr><th>Plan</th><td class=mono>{plan.hash}</td></tr>
<tr><th>Delegations</th><td>{delegations}</td></tr>
<tr><th>Start</th><td>{_when(facts['started_ms'])}</td></tr>
<tr><th>End</th><td>{_when(facts['ended_ms'])}</td></tr>
<tr><th>Duration</th><td>{duration}</td></tr></table>
<h2>Participants</h2><table><tr><th>Name</th><th>Role</th><th>Delegation</th>
<th>Language</th><th>Device</th></tr>{people}</table>
<h2>Events ({len(entries)})</h2><table><tr><th>#</th><th>Time (UTC)</th><th>Event</th>
<th>Detail</th></tr>{rows}</table>
<p>This page is a reading aid. The evidence is the JSON export; check it with
<code>summitline verify</code>.</p></body></html>
"""
