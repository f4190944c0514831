"""Stage 1, reading: capture bytes in, frame windows out.

In: a path, a file object or a stream (pcap, pcapng, gzip/zstd/xz, stdin), memory-mapped
read-only when it is a file.  Out: `FrameWindow`s, fixed-size numpy columns per frame (offset,
lengths, timestamp, interface, Wireshark frame number, flags) plus a slab with each frame's
first bytes, and a `CaptureMeta` saying what the file held and what could not be read.
Damage is resynchronised past, reported with its byte offset, and never raised mid-file.

Imports only the base modules (errors, options, _ffi): nothing here knows about TCP or mail.
"""
