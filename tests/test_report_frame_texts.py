"""The page's `frames` texts written in whole-array steps (`unnamed_texts`) against the
one-frame-at-a-time writing they replace, and read back by the page's own decoding."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcap.out.html.data import _HALF, DIGITS, _frames, _named, unnamed_texts
from fastcap.run.frameruns import FrameRuns

from .test_frameruns import _own


def _one_by_one(first: int, last: int, runs: list[int], flat: list[int]) -> str:
    """The writing `unnamed_texts` replaced: a Python step per frame."""
    known = set(_named(first, last, flat))
    out, before = [], first
    for f in _own(first, last, runs):
        if f in known:
            continue
        v, digits = f - before - 1, []
        digits.append(DIGITS[v % _HALF])
        v //= _HALF
        while v:
            digits.append(DIGITS[_HALF + v % _HALF])
            v //= _HALF
        out.append("".join(reversed(digits)))
        before = f
    return "".join(out)


@st.composite
def _session(draw):
    """(first, last, runs or None, flat ladder): runs alternate own and others' frames,
    own first and last; gaps up to beyond 45**3 so that values take several digits."""
    first = draw(st.integers(1, 10**9))
    whole = draw(st.booleans())
    # own runs short, others' long: gaps past 45**3 take four digits
    gaps = draw(st.lists(st.integers(1, 200_000), max_size=4))
    own_n = draw(st.lists(st.integers(1, 30), min_size=len(gaps) + 1,
                          max_size=len(gaps) + 1))
    lengths = [x for pair in zip(own_n, [*gaps, 0], strict=True) for x in pair][:-1]
    runs = [] if whole else lengths
    span = draw(st.integers(1, 200)) if whole else sum(lengths)
    last = first + span - 1
    own = [first] if whole else [first + sum(lengths[:k]) for k in range(0, len(lengths), 2)]
    arrows = draw(st.lists(st.sampled_from(own + [last]), max_size=6))
    flat = [x for f in arrows for x in (f - first, None, 0, 0)]
    return first, last, (None if draw(st.integers(0, 9)) == 0 else runs), flat


@settings(max_examples=150, deadline=None)
@given(st.lists(_session(), max_size=8), st.booleans(), st.integers(1, 4))
def test_frame_texts_in_whole_array_steps_are_those_written_frame_by_frame(sessions, flat,
                                                                          chunk):
    first = [s[0] for s in sessions]
    last = [s[1] for s in sessions]
    runs = [s[2] for s in sessions]
    ladders = [s[3] for s in sessions]
    if flat:  # as FrameRuns holds them: two flat arrays
        size = [len(r) if r else 0 for r in runs]
        runs = FrameRuns(np.array([r is not None for r in runs], bool),
                         np.r_[0, np.cumsum(size)].astype(np.int64),
                         np.array([x for r in runs if r for x in r], np.int32))
    got = unnamed_texts(first, last, ladders, runs, chunk=chunk)
    want = [None if r is None else _one_by_one(f, la, r, fl)
            for f, la, r, fl in zip(first, last, [s[2] for s in sessions], ladders,
                                    strict=True)]
    assert got == want
    for f, la, fl, text, r in zip(first, last, ladders, got, [s[2] for s in sessions],
                                  strict=True):
        if r is not None:  # read back the page's way: every own frame
            assert _frames(f, la, fl, text) == _own(f, la, r)

