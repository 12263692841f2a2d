"""The press programme's grid: every principal of the plan in its own cell, composed and
encoded once (the VP8 the viewers get, decoded here), for 2 to 8 principals."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest

from summitline.server.press.programme import (
    CELL_H,
    CELL_W,
    HEIGHT,
    WIDTH,
    Programme,
    cells,
    frame_size,
    grid,
)

WAIT_S = 10.0
EMPTY = 16  # the programme's black, where no principal is


def test_the_grid_grows_with_the_principals() -> None:
    assert [grid(n) for n in range(1, 9)] == [
        (1, 1), (2, 1), (2, 2), (2, 2), (3, 2), (3, 2), (3, 3), (3, 3)]
    assert frame_size(2) == (WIDTH, HEIGHT) == frame_size(4)
    assert frame_size(6) == (3 * CELL_W, 2 * CELL_H) and frame_size(8) == (3 * CELL_W, 3 * CELL_H)
    # two side by side, centred in height: the bilateral's programme as it was
    assert cells(2) == [(0, (HEIGHT - CELL_H) // 2), (CELL_W, (HEIGHT - CELL_H) // 2)]
    for n in range(1, 9):
        width, height = frame_size(n)
        boxes = cells(n)
        assert len(set(boxes)) == n
        for left, top in boxes:  # inside the picture, none overlapping another
            assert 0 <= left <= width - CELL_W and 0 <= top <= height - CELL_H
            assert all(abs(left - x) >= CELL_W or abs(top - y) >= CELL_H
                       for x, y in boxes if (x, y) != (left, top))


def grey(level: int) -> av.VideoFrame:
    """A 640x480 picture of one grey level (what a principal's camera sends)."""
    planes = np.vstack([np.full((480, 640), level, dtype=np.uint8),
                        np.full((240, 640), 128, dtype=np.uint8)])
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


@pytest.mark.parametrize("n", [2, 3, 5, 8])
async def test_every_principal_has_its_cell_in_the_programme(n: int) -> None:
    layout = [f"principal-{i}" for i in range(n)]
    levels = [60 + 22 * i for i in range(n)]  # each principal its own grey
    programme = Programme(layout)
    sub = programme.subscribe()
    programme.start()
    try:
        for device, level in zip(layout, levels, strict=True):
            programme.feed_video(device, grey(level))
        packet = await asyncio.wait_for(sub.video.get(), WAIT_S)  # the first, a keyframe
        assert packet is not None and packet.is_keyframe
        decoder = av.CodecContext.create("vp8", "r")
        (picture,) = decoder.decode(packet)  # type: ignore[arg-type]
    finally:
        await programme.stop()
    assert (picture.width, picture.height) == frame_size(n)
    luma = picture.to_ndarray()[:picture.height].astype(np.float64)  # the Y plane
    shown = np.zeros(luma.shape, dtype=bool)
    for (left, top), level in zip(cells(n), levels, strict=True):
        inner = luma[top + 8:top + CELL_H - 8, left + 8:left + CELL_W - 8]  # off the edges
        assert abs(inner.mean() - level) < 4, (left, top, inner.mean(), level)
        shown[top:top + CELL_H, left:left + CELL_W] = True
    grow = np.zeros_like(shown)  # the codec's blur across a cell's edge
    for dy in (-8, 0, 8):
        for dx in (-8, 0, 8):
            grow |= np.roll(np.roll(shown, dy, 0), dx, 1)
    if (~grow).any():  # where nobody is: black
        assert abs(luma[~grow].mean() - EMPTY) < 4
