"""Stage 3, TCP reassembly: selected frame columns in, `Connection`s out.

In: `FrameCols` (the usable rows of a selection window).  Out: one `Connection` per TCP
connection when it closes or is evicted, each direction a `StreamDir` of byte ranges mapped back
to the capture (every byte to its frame), with gaps, retransmissions and limits recorded.
The C core (`core_c`, through `_ffi`) and the pure-Python core in `reassembly` give identical
results; memory is bounded by a budget and an open-connection cap.

Imports `select`, `read` and the base modules.
"""
