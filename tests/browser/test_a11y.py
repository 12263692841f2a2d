"""Accessibility: axe-core (tests/browser/axe.py) on every page of the web client, in
English and Russian, finds no serious or critical violation (WCAG 2.1 A and AA and axe's
best practices). Each page's full report goes to $SUMMITLINE_ARTIFACTS/a11y as JSON,
with a screenshot."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from tests.browser import axe
from tests.browser.allpages import artifacts, cases, open_page


def summary(violations: list[dict[str, Any]]) -> list[str]:
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(" ".join(n["target"]) for n in v["nodes"][:4])
            for v in violations]


@pytest.mark.parametrize(("name", "lang"), cases())
async def test_axe_finds_no_serious_violation(
        name: str, lang: str, browser: Browser, server: str, http: httpx.AsyncClient) -> None:
    axe.script()  # before the page: a missing axe fails at once
    shown = await open_page(name, lang, browser, server, http, bypass_csp=True)
    try:
        await check(shown.page, name, lang)
    finally:
        await shown.close()


async def check(page: Page, name: str, lang: str) -> None:
    source = axe.script()
    await page.add_script_tag(content=source)
    result: dict[str, Any] = await page.evaluate(
        "() => axe.run(document, { resultTypes: ['violations'] })")
    out = artifacts("a11y")
    (out / f"{name}-{lang}.json").write_text(json.dumps(result["violations"], indent=2))
    await page.screenshot(path=str(out / f"{name}-{lang}.png"), full_page=True)
    assert result["testEngine"]["version"] == axe.VERSION
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert summary(bad) == []
    assert await unringed(page) == []
    await page.screenshot(path=str(out / f"{name}-{lang}-focus.png"), full_page=True)


# The keyboard: Tab goes through the page's controls, and each shows a focus ring (an
# outline of at least 2 px); returns the controls that show none.
FOCUS_RING = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const ring = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
  return ring ? '' : (el.id ? '#' + el.id : el.tagName.toLowerCase());
}"""
TABS = 12


async def unringed(page: Page) -> list[str]:
    missing = []
    for _ in range(TABS):
        await page.keyboard.press("Tab")
        found = await page.evaluate(FOCUS_RING)
        if found:
            missing.append(found)
    return missing
