"""Stage 2, selection: frame windows in, the TCP frames on the mail ports out.

In: `FrameWindow`s from `read`.  Out: per window, the selected frames' decoded columns (flow id,
direction, sequence numbers, flags, payload offsets) and counters of what was skipped and why.
Headers are decoded for a whole window at once with numpy; no per-frame Python runs here.
`stats` is the same walk counted for `fastcap stats`.

Imports `read` and the base modules.
"""
