"""Find where readable records start again after a corrupt stretch of a capture.

A flipped bit in one length field must not cost the rest of a multi-GB file.  After a bad
block or record the reader asks here for the next offset where a chain of plausible records
begins, and reports the bytes in between as unreadable.  The search is vectorized over
chunks of candidate offsets, so even gigabytes of garbage cost linear numpy work and a
hostile file cannot make it quadratic or slow in Python.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import pcap, pcapng
from .walkstatus import MAX_BLOCK

CHUNK = 1 << 20  # offsets per numpy step; only the few that pass a byte test go further
RUN_MAX = 64  # blocks of unknown types followed in a run for the known block that ends it
FIRST_CHUNK = 1 << 12  # ... after smaller first steps: a record usually starts within a few KB
_SHB_MIN, _MIN_LEN = 28, 12
# Smallest legal length of each known block type (packet blocks carry fixed fields).
_MIN_BY_TYPE = {pcapng.BT_IDB: 20, pcapng.BT_PB: 32, pcapng.BT_SPB: 16, pcapng.BT_NRB: 12,
                pcapng.BT_ISB: 24, pcapng.BT_EPB: 32, pcapng.BT_DSB: 20,
                0x00000009: 12, 0x00000BAD: 16, 0x40000BAD: 16}
_KNOWN = np.array(sorted(_MIN_BY_TYPE), np.uint32)
_MINS = np.array([_MIN_BY_TYPE[t] for t in sorted(_MIN_BY_TYPE)], np.int64)
_BOM_LE, _BOM_BE = 0x1A2B3C4D, 0x4D3C2B1A  # the byte-order magic read little-endian


def _words(buf: np.ndarray, big: bool) -> np.ndarray:
    """The 32-bit word at every byte offset of `buf`, a view of its bytes (no copy): one
    gather per word read, not four byte gathers, shifts and both byte orders."""
    return np.ndarray((max(len(buf) - 3, 0),), np.dtype(">u4" if big else "<u4"), buf,
                      strides=(1,))


def u32(buf: np.ndarray, pos: np.ndarray, big: np.ndarray | bool) -> np.ndarray:
    """32-bit words at arbitrary byte offsets (all pos + 4 <= len(buf)); `big` one byte
    order for all, or one per offset."""
    if isinstance(big, np.ndarray):
        return np.where(big, u32(buf, pos, True), u32(buf, pos, False))
    return _words(buf, bool(big))[pos].astype(np.int64)


def _steps(start: int, size: int) -> Iterator[tuple[int, int]]:
    """(first offset, count) of the offsets from `start` to `size`, in steps growing from
    FIRST_CHUNK to CHUNK: where a record is near, the search costs microseconds, not the
    milliseconds of a full step; across garbage, it stays linear."""
    a, n = start, FIRST_CHUNK
    while a < size:
        yield a, min(n, size - a)
        a += n
        n = min(CHUNK, n * 16)


def _window(buf: np.ndarray, a: int, n: int, size: int, k: int) -> np.ndarray:
    """Byte k of the records at offsets a .. a+n-1 (0 past the end of the file): a view
    of the bytes where all are inside it, so garbage is not copied."""
    if a + k + n <= size:
        return buf[a + k : a + k + n]
    out = np.zeros(n, np.uint8)
    got = buf[a + k : min(size, a + k + n)]
    out[: len(got)] = got
    return out


def _length_probe(buf: np.ndarray, a: int, n: int, size: int, max_block: int) -> np.ndarray:
    """Whether a block may begin at each offset a .. a+n-1, told from one byte test: every
    block, of any type, has a length of at most `max_block`, so the top byte of its length
    field (at 7 little-endian, at 4 big-endian: a section header has its own byte order,
    so either) is at most max_block >> 24.  It discards ~98% of the offsets of random bytes
    before the full check, and no block for its type's bytes (an earlier test on a byte
    of the type passed over blocks of types the reader does not know)."""
    top = max_block >> 24
    if top > 0xFF:
        return np.ones(n, bool)
    return np.minimum(_window(buf, a, n, size, 4), _window(buf, a, n, size, 7)) <= top


def _block_len(buf: np.ndarray, pos: np.ndarray, size: int, big: bool | None, max_block: int
               ) -> np.ndarray:
    """Length of a well-framed pcapng block at each of `pos`, or 0 where there is none
    (see `_framing`)."""
    return _framing(buf, pos, size, big, max_block)[0]


def _framing(buf: np.ndarray, pos: np.ndarray, size: int, big: bool | None, max_block: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Length of a well-framed pcapng block at each of `pos` (0 where there is none),
    whether its type is one the reader knows, and whether bytes past `size` decide it (its
    header is not all there, or a block's sane length reaches past `size`).

    Well framed: a length that is legal for its type (12 for a type not known: a reader
    skips those by their length, as tshark does) and inside the file, and a trailing length
    equal to the leading one.  As the walkers read them, lengths are
    rounded up to a multiple of 4 (some writers leave the padding out of both; Wireshark
    reads them so) and the length is the rounded one, except a section header's, whose
    reader takes a multiple of 4 only.  Section headers carry their own byte order; other
    blocks are read in the current section's (`big`; None when there is no section yet,
    so only a section header can start one)."""
    out, known_out = np.zeros(len(pos), np.int64), np.zeros(len(pos), bool)
    fits = pos + _MIN_LEN <= size  # the smallest block (a section header's is checked below)
    pending = ~fits
    pos_ok = pos[fits]
    if not len(pos_ok):
        return out, known_out, pending
    le_type = u32(buf, pos_ok, False)
    is_shb = le_type == pcapng.BT_SHB
    shb_big = np.zeros(len(pos_ok), bool)
    if is_shb.any():  # the byte-order magic, read only where a section header may begin
        at = np.flatnonzero(is_shb)
        bom = u32(buf, pos_ok[at] + 8, False)
        shb_big[at] = bom == _BOM_BE
        is_shb[at] = (bom == _BOM_LE) | shb_big[at]
    if big is None:
        own_big, known = shb_big, is_shb
        framed = known
        mins = np.full(len(pos_ok), _SHB_MIN)
    else:
        own_big = np.where(is_shb, shb_big, big)
        btype = np.where(is_shb, pcapng.BT_SHB, u32(buf, pos_ok, True) if big else le_type)
        idx = np.clip(np.searchsorted(_KNOWN, btype), 0, len(_KNOWN) - 1)
        known = is_shb | (_KNOWN[idx] == btype)
        framed = known | (le_type != pcapng.BT_SHB)  # not a section header, its magic bad
        mins = np.where(is_shb, _SHB_MIN, np.where(known, _MINS[idx], _MIN_LEN))
    field = u32(buf, pos_ok + 4, own_big)
    blen = (field + 3) & ~3
    ok = framed & (field >= mins) & ((blen == field) | ~is_shb) & (field <= max_block)
    pending[np.flatnonzero(fits)] = ok & (pos_ok + blen > size)
    ok &= pos_ok + blen <= size
    at = np.flatnonzero(ok)
    trailer = u32(buf, pos_ok[at] + blen[at] - 4, own_big[at])
    ok[at] = ((trailer + 3) & ~3) == blen[at]
    where = np.flatnonzero(fits)[ok]
    out[where] = blen[ok]
    known_out[where] = known[ok]
    return out, known_out, pending


def next_pcapng_block(buf: np.ndarray, start: int, size: int, big: bool | None,
                      max_block: int = MAX_BLOCK, allow_eof: bool = True,
                      eof_in_step: int | None = None, more: bool = False) -> int | None:
    """First offset >= start where a well-framed block begins whose successor is also well
    framed or (if `allow_eof`) is the end of the file; None if the rest of the file holds no
    such block.  Every byte offset is tried, not only 32-bit aligned ones: a copy that lost
    or gained a byte shifts everything after it.  A block of a type the reader does not
    know (a local one, say) is sound as any other, but of such a pair one must be of a
    known type: the known types are the evidence, the more so as any type may be bytes of
    packet data.  Of a run of them in a row, reading resumes at the first where the run
    ends in a block of a known type (or at the end of the file, as a chain may), within
    RUN_MAX blocks.

    `eof_in_step`: the offset of a block whose sound-looking length runs past the end of the
    file (cut there, or its length damaged).  Without `allow_eof`, a block that ends the file
    still counts where it begins a multiple of 4 bytes from it, in step with it: the blocks
    after a damaged length are, and a cut block's own bytes hold no such block (its length
    and its trailer at the file's last 4 bytes would have to agree).  Without it, the last
    block after such a damaged length was lost.

    `more`: bytes may follow `size` (a stream piece's end).  Then None too where, before
    any block found, an offset's verdict needs them (a block or its successor reaching past
    `size`): the search never passes on into that block's data, where a block held in a
    packet (a pcapng file sent over TCP) would be found, so where a piece ends never changes
    where reading resumes."""
    for a, n in _steps(start, size):
        pos = a + np.flatnonzero(_length_probe(buf, a, n, size, max_block))
        blen, known, pending = _framing(buf, pos, size, big, max_block)
        cand = np.flatnonzero(blen)
        nxt = pos[cand] + blen[cand]
        last = (nxt == size) & (allow_eof or (
            eof_in_step is not None and (pos[cand] - eof_in_step) % 4 == 0))
        after, after_known, after_pending = _framing(buf, nxt, size, big, max_block)
        chained = last | ((after > 0) & (known[cand] | after_known))
        hit = np.flatnonzero(chained)
        found = int(pos[cand[hit[0]]]) if len(hit) else None
        run_found, run_pending = _run_end(buf, pos[cand], nxt, after, ~chained & (after > 0),
                                          found, size, big, max_block, allow_eof, eof_in_step)
        if run_found is not None:
            found = run_found
        if more:  # the first offset told only by bytes past `size`, if before `found`
            undecided = np.concatenate((pos[pending], pos[cand][after_pending & ~chained],
                                        run_pending))
            if len(undecided) and (found is None or int(undecided.min()) < found):
                return None
        if found is not None:
            return found
    return None


def _run_end(buf: np.ndarray, starts: np.ndarray, nxt: np.ndarray, after: np.ndarray,
             run: np.ndarray, found: int | None, size: int, big: bool | None, max_block: int,
             allow_eof: bool, eof_in_step: int | None) -> tuple[int | None, np.ndarray]:
    """The first of `starts` (where `run`: it and the block after it, framed, are both of
    unknown types) before `found` whose run of framed blocks of unknown types ends in a
    framed block of a known type, or at the end of the file as a chain may (see
    next_pcapng_block), within RUN_MAX blocks; and the starts whose run needs bytes past
    `size`.  A reader skips such blocks by their length, so the first of the run is as
    sound as the last; packet data holding framed blocks of unknown types is no block at
    all where its run ends in bytes that frame none."""
    idx = np.flatnonzero(run)
    if found is not None:
        idx = idx[starts[idx] < found]
    cur = nxt[idx] + after[idx]
    best, waiting = None, []
    for _ in range(RUN_MAX):
        if not len(idx):
            break
        blen, known, pending = _framing(buf, cur, size, big, max_block)
        end = (cur == size) & (allow_eof or (
            eof_in_step is not None and (starts[idx] - eof_in_step) % 4 == 0))
        good = end | ((blen > 0) & known)
        if good.any():
            first = int(starts[idx[good]].min())
            best = first if best is None else min(best, first)
        waiting.append(starts[idx[pending & ~good]])
        keep = (blen > 0) & ~known & ~end
        if best is not None:
            keep &= starts[idx] < best
        idx, cur = idx[keep], cur[keep] + blen[keep]
    return best, np.concatenate(waiting) if waiting else np.zeros(0, np.int64)


def pcap_record_ok(buf: np.ndarray, pos: np.ndarray, size: int, big: bool, rules: int,
                   max_caplen: int, ts_lo: int, ts_hi: int, whole: bool = True) -> np.ndarray:
    """Length of the plausible pcap record (header + caplen) at each of `pos`, or 0.
    `rules`: pcap.PcapHeader.rules (time resolution, record header length).

    Plausible: caplen <= max_caplen and <= the original length, fraction below one second,
    seconds within [ts_lo, ts_hi], and (when `whole`) the data inside the file."""
    hl = pcap.record_len(rules)
    out = np.zeros(len(pos), np.int64)
    fits = pos + hl <= size
    p = pos[fits]
    sec, frac = u32(buf, p, big), u32(buf, p + 4, big)
    incl, orig = u32(buf, p + 8, big), u32(buf, p + 12, big)
    flip = bool(rules & pcap.R_SWAPPED) | (bool(rules & pcap.R_MAYBE_SWAPPED) & (incl > orig))
    incl, orig = np.where(flip, orig, incl), np.where(flip, incl, orig)
    ok = ((incl <= max_caplen) & (incl <= orig) & (frac < (10**9 if rules & pcap.R_NANO else 10**6))
          & (sec >= ts_lo) & (sec <= ts_hi) & (incl > 0))  # empty records: legal, but rare
    if whole:
        ok &= p + hl + incl <= size
    out[np.flatnonzero(fits)[ok]] = hl + incl[ok]
    return out


def cut_not_damaged_pcap(buf: np.ndarray, off: int, size: int, big: bool, rules: int,
                         max_caplen: int, ts_lo: int, ts_hi: int) -> bool:
    """The record at `off` runs past the end of the file: is its header sound, so the file
    was most likely cut off (a capture still running, a partial copy) rather than damaged?
    Then only a full chain may resume reading, never one that merely reaches the end of the
    file, so the cut record's own bytes are not taken for records."""
    hl = pcap.record_len(rules)
    return size - off < hl or bool(pcap_record_ok(
        buf, np.array([off], np.int64), size, big, rules, max_caplen, ts_lo, ts_hi,
        whole=False)[0])


def cut_not_damaged_pcapng(buf: np.ndarray, off: int, size: int, big: bool) -> bool:
    """Like cut_not_damaged_pcap for a pcapng block: a known type and a legal length.  A
    length left unpadded (93, not 96) is legal too, as the walkers read it: tshark calls a
    file cut inside such a block "cut short in the middle of a packet", as any other."""
    if size - off < 8:
        return True
    pos = np.array([off], np.int64)
    btype, blen = int(u32(buf, pos, big)[0]), int(u32(buf, pos + 4, big)[0])
    known = btype in _MIN_BY_TYPE or btype == pcapng.BT_SHB
    return known and _MIN_LEN <= blen <= MAX_BLOCK


def next_pcap_record(buf: np.ndarray, start: int, size: int, big: bool, rules: int,
                     max_caplen: int, ts_lo: int, ts_hi: int, chain: int = 3,
                     allow_eof: bool = True) -> int | None:
    """First byte offset >= start where `chain` plausible pcap records follow each other
    (fewer when the file ends first, if `allow_eof`); None if there is none.  pcap records
    carry no magic and no alignment, so only a chain of consistent headers is evidence."""
    args = (size, big, rules, max_caplen, ts_lo, ts_hi)
    for a, n in _steps(start, size):
        if max_caplen < 1 << 24 and not rules & (pcap.R_SWAPPED | pcap.R_MAYBE_SWAPPED):
            # the captured length's top byte is 0: a one-byte test
            pos = a + np.flatnonzero(_window(buf, a, n, size, 8 if big else 11) == 0)
        else:
            pos = np.arange(a, a + n, dtype=np.int64)
        keep = np.ones(len(pos), bool)
        cur = pos
        for _ in range(chain):
            step = pcap_record_ok(buf, cur, *args)
            done = (cur == size) & allow_eof  # a chain may end exactly at the end of the file
            keep &= (step > 0) | done
            cur = np.where(done, cur, cur + step)
            if not keep.any():
                break
        hit = np.flatnonzero(keep)
        if len(hit):
            return int(pos[hit[0]])
    return None


def pcapng_block_len(buf: np.ndarray, off: int, size: int, big: bool, more: bool = False
                     ) -> int | None:
    """Length of the well-framed block at `off`, or 0 (see `_block_len`); 0 too where its
    trailer may be another block's leading length (pcapng.trailer_is_a_header), it swallowed
    a block (pcapng.swallows_a_block) or its length left unpadded is damage
    (pcapng.unpadded_damage), as the walkers refuse it: stepping over it whole would lose
    the block after it.  None where that (or whether it is framed at all: its header or
    its sane length reaching past `size`) needs bytes past `size` and `more` may follow it
    (a stream piece's end)."""
    pos = np.array([off], np.int64)
    lens, _known, pending = _framing(buf, pos, size, big, MAX_BLOCK)
    if more and pending[0]:
        return None
    blen = int(lens[0])
    order = ">" if big else "<"
    if not blen or pcapng.trailer_is_a_header(buf, off, blen, order):
        return 0
    verdict = 0
    if int(u32(buf, pos + 4, big)[0]) != blen:  # its length left unpadded
        verdict = pcapng.unpadded_damage(buf, size, off, blen, order, MAX_BLOCK, more)
    if not verdict:
        first = pcapng.swallow_from(buf, off, blen, order)
        verdict = pcapng.swallows_a_block(buf, size, off, first, blen, order, MAX_BLOCK, more)
    if verdict:
        return None if verdict > 1 else 0
    return blen
