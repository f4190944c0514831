/* Frame walker: follows pcap record headers / pcapng blocks through a memory-mapped file and
 * fills one window of columns.  It only frames records; link/IP/TCP decoding happens later in
 * numpy on the slab copied here while the packet's first cache lines are hot.
 *
 * Every length read from the file is checked against the bytes that remain before it is used,
 * so a hostile file can at worst stop the walk with FC_TRUNCATED / FC_CORRUPT. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "fastcap.h"

#define PREFETCH_AHEAD 4096
/* Lines are prefetched as a stream a few KiB ahead of the cursor: the next record header
 * can only be found by reading this one, so without it every header is a serial cache
 * miss.  Streaming every line keeps the walk at memory bandwidth instead of latency. */
#define PREFETCH_LINE 64

static inline uint32_t rd32(const uint8_t *p, int swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

static inline uint16_t rd16(const uint8_t *p, int swapped)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return swapped ? __builtin_bswap16(v) : v;
}

static inline int64_t clamp_i128(__int128 v)
{
    if (v > (__int128)INT64_MAX)
        return INT64_MAX;
    if (v < (__int128)INT64_MIN)
        return INT64_MIN;
    return (int64_t)v;
}

/* Exact integer conversion (floor) so the Python fallback can reproduce it bit for bit. */
int64_t fc_ts_to_ns(uint64_t units, int32_t pow2, int32_t exp, int64_t offset_s)
{
    __int128 ns;
    if (exp < 0) /* if_tsresol holds 0..127; the API reads anything below as 0 */
        exp = 0;
    if (pow2) {
        __int128 scaled = (__int128)units * 1000000000;
        ns = exp >= 127 ? 0 : (exp <= 0 ? scaled : scaled >> exp);
    } else if (exp <= 9) {
        __int128 mul = 1;
        for (int i = exp; i < 9; i++)
            mul *= 10;
        ns = (__int128)units * mul;
    } else if (exp - 9 >= 20) {
        ns = 0; /* 10^20 > 2^64: every value floors to zero */
    } else {
        uint64_t div = 1;
        for (int i = 9; i < exp; i++)
            div *= 10;
        ns = (__int128)(units / div);
    }
    ns += (__int128)offset_s * 1000000000;
    return clamp_i128(ns);
}

int32_t fc_release(const uint8_t *buf, int64_t lo, int64_t hi)
{
    int64_t page = (int64_t)sysconf(_SC_PAGESIZE);
    if (page <= 0 || lo < 0 || hi <= lo)
        return 0;
    lo -= lo % page;
    hi -= hi % page;
    if (hi <= lo)
        return 0;
    return (int32_t)madvise((void *)(buf + lo), (size_t)(hi - lo), MADV_DONTNEED);
}

static inline void put_row(fc_cols *c, int64_t n, const uint8_t *data, int64_t data_off,
                           uint32_t caplen, uint32_t orig_len, int64_t ts_ns, uint32_t iface,
                           int64_t frame_no, uint8_t flags)
{
    int32_t w = c->slab_width;
    uint8_t *row = c->slab + n * (int64_t)w;
    uint32_t k = caplen < (uint32_t)w ? caplen : (uint32_t)w;
    memcpy(row, data, k);
    if (k < (uint32_t)w)
        memset(row + k, 0, (size_t)(w - k));
    c->offset[n] = data_off;
    c->caplen[n] = caplen;
    c->orig_len[n] = orig_len;
    c->ts_ns[n] = ts_ns;
    c->iface[n] = iface;
    c->frame_no[n] = frame_no;
    c->flags[n] = flags;
}

static inline int64_t stop(fc_status *st, int32_t code, int64_t off, int64_t fno, int64_t detail,
                           int64_t n)
{
    st->code = code;
    st->offset = off;
    st->next_frame = fno;
    st->detail = detail;
    return n;
}

/* One pcap record header checked exactly as the serial walk checks it: its length, or -1
 * when the walk must stop at it (the serial loop then says why). */
/* Whether a record header is in truth another capture's file header, where files were
 * concatenated: a pcap magic number in either byte order (so either reading of the first
 * word), then version 2.0 to 2.4 in either byte order.  A packet stamped so would be from
 * 2055 or 2083 or 2106, with a fraction that is that version. */
static inline int pcap_magic(uint32_t w, const uint8_t *v)
{
    if (w != 0xA1B2C3D4u && w != 0xA1B23C4Du && w != 0xA1B2CD34u && w != 0xD4C3B2A1u
        && w != 0x4D3CB2A1u && w != 0x34CDB2A1u)
        return 0;
    return (v[0] == 2 && v[1] == 0 && v[2] <= 4 && v[3] == 0)
        || (v[0] == 0 && v[1] == 2 && v[2] == 0 && v[3] <= 4);
}

/* rules (fc_walk_pcap): bit 0 nanosecond times; bit 1 the record's two lengths in the
 * order of files before version 2.3 (original first); bit 2 in that order where the first
 * is the larger (version 2.3 files, written either way); bits 8-15 the bytes each record
 * header has after the usual 16 (modified pcap). */
static inline int rec_hl(int32_t rules)
{
    return 16 + ((rules >> 8) & 0xFF);
}

/* A record's captured and original lengths, in the order `rules` says they are written. */
static inline void rec_lens(const uint8_t *h, int swapped, int32_t rules, uint32_t *incl,
                            uint32_t *orig)
{
    uint32_t a = rd32(h + 8, swapped), b = rd32(h + 12, swapped);
    int flip = (rules & 2) || ((rules & 4) && a > b);
    *incl = flip ? b : a;
    *orig = flip ? a : b;
}

static inline int64_t pcap_step(const uint8_t *buf, int64_t len, int64_t off, int swapped,
                                uint32_t max_caplen, int32_t rules)
{
    int hl = rec_hl(rules);
    if (len - off < hl || pcap_magic(rd32(buf + off, swapped), buf + off + 4))
        return -1;
    uint32_t incl, orig;
    rec_lens(buf + off, swapped, rules, &incl, &orig);
    if (incl > max_caplen || (int64_t)incl > len - off - hl)
        return -1;
    return hl + (int64_t)incl;
}

/* Could a record start at `off`?  A guess only: the header and the next few after it hold
 * plausible lengths and times.  A wrong guess costs speed, never results (see skeleton). */
static int pcap_plausible(const uint8_t *buf, int64_t len, int64_t off, int swapped,
                          uint32_t max_caplen, uint32_t ts0, int32_t rules)
{
    int hl = rec_hl(rules);
    for (int i = 0; i < 4; i++) {
        if (len - off < hl)
            return i > 0;
        const uint8_t *h = buf + off;
        uint32_t ts = rd32(h, swapped), incl, orig;
        rec_lens(h, swapped, rules, &incl, &orig);
        if (incl > max_caplen || incl > orig || orig > 262144 || incl < 14)
            return 0;
        if ((ts > ts0 ? ts - ts0 : ts0 - ts) > 86400u * 366u)
            return 0;
        off += hl + (int64_t)incl;
    }
    return 1;
}

#define CHAINS 16
#define CHAIN_MIN_ROWS 4096
#define RESYNC_SPAN (256 << 10)
#define FILL_AHEAD 16
/* At most this much is read in order ahead of a window: its span is a guess from its first
 * records, and what is touched stays mapped until the walk has passed it. */
#define IN_ORDER_MAX ((int64_t)256 << 20)

/* Whether the page holding p is in the page cache; an error (not a mapping) counts as yes. */
static int resident(const uint8_t *p, uintptr_t page)
{
    unsigned char vec = 1;
    return mincore((void *)((uintptr_t)p & ~(page - 1)), (size_t)page, &vec) != 0 || (vec & 1);
}

int32_t fc_read_in_order(const uint8_t *buf, int64_t lo, int64_t hi)
{
    long size = sysconf(_SC_PAGESIZE);
    if (size <= 0 || (size & (size - 1)) || hi - lo < 2 * (int64_t)size)
        return 0;
    uintptr_t page = (uintptr_t)size;
    if (resident(buf + lo, page) && resident(buf + lo + (hi - lo) / 2, page)
        && resident(buf + hi - 1, page))
        return 0;
    uint8_t sink = 0;
    for (int64_t p = lo; p < hi; p += size)
        sink ^= *(volatile const uint8_t *)(buf + p);
    sink ^= *(volatile const uint8_t *)(buf + hi - 1);
    (void)sink;
    return 1;
}

/* The offsets of up to `cap` consecutive records from `start` (each one the serial walk
 * would accept), walked as CHAINS interleaved chains so that several header cache misses
 * are in flight at once: a record's header says where the next one is, so one chain alone
 * waits out every miss in turn.  Chain k starts at a guessed record boundary and is kept
 * only if chain k-1, walked from a kept start, lands exactly on it; so the offsets are the
 * serial walk's by construction, and a wrong guess (or a corrupt record) only ends the
 * list early, where the serial loop takes over.  Returns how many offsets it wrote. */
static int64_t pcap_skeleton(const uint8_t *buf, int64_t len, int64_t start, int swapped,
                             uint32_t max_caplen, int32_t rules, int64_t cap, int64_t *out,
                             int64_t *scratch, int32_t *in_order)
{
    int hl = rec_hl(rules);
    int64_t n = 0, off = start;
    /* a serial lead-in: the average record length sizes the chains' spans */
    int64_t lead = cap < 64 ? cap : 64;
    while (n < lead) {
        int64_t step = pcap_step(buf, len, off, swapped, max_caplen, rules);
        if (step < 0)
            return n;
        out[n++] = off;
        off += step;
    }
    if (cap - n < CHAIN_MIN_ROWS || n == 0)
        return n;
    int64_t avg = (off - start) / n, want = cap - n;
    if (avg < hl)
        avg = hl;
    int64_t region = want * avg; /* bytes the remaining rows are expected to span */
    if (region > len - off)
        region = len - off;
    /* cold, chains faulting at 16 places would each read ahead only up to the next one's
     * pages: the file would arrive in many small reads instead of the disk's largest */
    int64_t span = region < IN_ORDER_MAX ? region : IN_ORDER_MAX;
    *in_order = fc_read_in_order(buf, off, off + span);
    int64_t per = 2 * (want / CHAINS) + 64; /* room each chain may fill in scratch */
    int64_t begin[CHAINS + 1], cur[CHAINS], cnt[CHAINS];
    uint32_t ts0 = rd32(buf + start, swapped);
    int chains = 0;
    begin[chains++] = off;
    for (int k = 1; k < CHAINS; k++) {
        int64_t p = off + region / CHAINS * k, stop_at = p + RESYNC_SPAN;
        if (p <= begin[chains - 1])
            continue;
        for (; p < stop_at && p < len - hl; p++)
            if (pcap_plausible(buf, len, p, swapped, max_caplen, ts0, rules))
                break;
        if (p < stop_at && p < len - hl)
            begin[chains++] = p;
    }
    begin[chains] = off + region;
    for (int k = 0; k < chains; k++) {
        cur[k] = begin[k];
        cnt[k] = 0;
    }
    int live = chains;
    while (live) {
        live = 0;
        for (int k = 0; k < chains; k++) {
            int64_t o = cur[k];
            if (o < 0 || o >= begin[k + 1] || cnt[k] == per)
                continue;
            int64_t step = pcap_step(buf, len, o, swapped, max_caplen, rules);
            if (step < 0) {
                cur[k] = -1 - o; /* stopped: the serial walk decides this record */
                continue;
            }
            scratch[k * per + cnt[k]++] = o;
            cur[k] = o + step;
            __builtin_prefetch(buf + o + step);
            live++;
        }
    }
    for (int k = 0; k < chains; k++) {
        for (int64_t i = 0; i < cnt[k] && n < cap; i++)
            out[n++] = scratch[k * per + i];
        int joined = k + 1 < chains ? cur[k] == begin[k + 1] : cur[k] >= begin[k + 1];
        if (!joined || n == cap)
            break;
    }
    return n;
}

int64_t fc_walk_pcap(const uint8_t *buf, int64_t len, int64_t start, int32_t swapped,
                     int32_t rules, uint32_t snaplen, uint32_t max_caplen,
                     fc_cols *cols, fc_status *st)
{
    int64_t off = start, n = 0, fno = st->next_frame, pf = start;
    st->in_order = 0;
    const int64_t frac_mul = (rules & 1) ? 1 : 1000; /* rules: see rec_hl */
    const int hl = rec_hl(rules);
    /* the record offsets first, with several misses in flight; then the rows, prefetched
     * a few records ahead since their addresses are now known */
    int64_t known = 0;
    if (cols->cap >= CHAIN_MIN_ROWS) {
        int64_t *scratch = malloc(sizeof(int64_t) * (size_t)(2 * (cols->cap / CHAINS) + 64) * CHAINS);
        if (scratch) {
            known = pcap_skeleton(buf, len, start, swapped, max_caplen, rules, cols->cap,
                                  cols->offset, scratch, &st->in_order);
            free(scratch);
        }
    }
    for (; n < known; n++) {
        if (n + FILL_AHEAD < known) {
            const uint8_t *a = buf + cols->offset[n + FILL_AHEAD];
            __builtin_prefetch(a);
            __builtin_prefetch(a + 64);
        }
        const uint8_t *h = buf + cols->offset[n];
        uint32_t incl, orig;
        rec_lens(h, swapped, rules, &incl, &orig);
        uint8_t flags = 0;
        if (incl < orig)
            flags |= FC_F_SNAPPED;
        if (snaplen && incl > snaplen)
            flags |= FC_F_OVER_SNAPLEN;
        int64_t ts = (int64_t)rd32(h, swapped) * 1000000000 + (int64_t)rd32(h + 4, swapped) * frac_mul;
        off = cols->offset[n];
        put_row(cols, n, h + hl, off + hl, incl, orig, ts, 0, fno, flags);
        fno++;
        off += hl + (int64_t)incl;
    }
    pf = off;
    for (;;) {
        if (n == cols->cap)
            return stop(st, FC_FULL, off, fno, 0, n);
        if (off >= len)
            return stop(st, FC_END, off, fno, 0, n);
        if (len - off < hl)
            return stop(st, FC_TRUNCATED, off, fno, hl, n);
        for (; pf < off + PREFETCH_AHEAD && pf < len; pf += PREFETCH_LINE)
            __builtin_prefetch(buf + pf);
        const uint8_t *h = buf + off;
        uint32_t ts_sec = rd32(h, swapped);
        uint32_t ts_frac = rd32(h + 4, swapped);
        uint32_t incl, orig;
        rec_lens(h, swapped, rules, &incl, &orig);
        if (pcap_magic(ts_sec, h + 4))
            return stop(st, FC_BLOCK, off, fno, ts_sec, n);
        if (incl > max_caplen)
            return stop(st, FC_CORRUPT, off, fno, incl, n);
        if ((int64_t)incl > len - off - hl)
            return stop(st, FC_TRUNCATED, off, fno, hl + (int64_t)incl, n);
        uint8_t flags = 0;
        if (incl < orig)
            flags |= FC_F_SNAPPED;
        if (snaplen && incl > snaplen)
            flags |= FC_F_OVER_SNAPLEN;
        int64_t ts = (int64_t)ts_sec * 1000000000 + (int64_t)ts_frac * frac_mul;
        put_row(cols, n, h + hl, off + hl, incl, orig, ts, 0, fno, flags);
        n++;
        fno++;
        off += hl + (int64_t)incl;
    }
}

#define BT_SHB 0x0A0D0D0Au
#define BT_PB 0x00000002u
#define BT_SPB 0x00000003u
#define BT_EPB 0x00000006u
#define BT_IDB 0x00000001u
#define BT_DSB 0x0000000Au

/* Whether the caller needs the block itself (see fc_status.quiet_max): read/capture.py
 * parses interface and secrets blocks and numbers custom and systemd journal blocks as
 * frames, as Wireshark does. */
static inline int quiet_block(uint32_t type, int64_t blen)
{
    /* A name resolution or statistics block shorter than its fixed fields is damage the
     * caller reports (read/pcapng.py MIN_BLOCK). */
    if ((type == 0x00000004u && blen < 16) || (type == 0x00000005u && blen < 24))
        return 0;
    return type != BT_IDB && type != BT_DSB && type != 0x00000009u && type != 0x00000BADu
        && type != 0x40000BADu;
}

/* Count a quiet block of `type`; 0 when it is a new type and quiet_max are held already. */
static inline int count_quiet(fc_status *st, uint32_t type)
{
    for (int32_t i = 0; i < st->n_quiet; i++)
        if (st->quiet_type[i] == type) {
            st->quiet_count[i]++;
            return 1;
        }
    int32_t cap = st->quiet_max < 8 ? st->quiet_max : 8;
    if (st->n_quiet >= cap)
        return 0;
    st->quiet_type[st->n_quiet] = type;
    st->quiet_count[st->n_quiet++] = 1;
    return 1;
}

/* Whether the block at b, framed with length blen (padded, its trailer matching), is in
 * truth a damaged length that reached another block's leading length: the trailer word is
 * then preceded by that block's type (any: a reader skips one it does not know by its length,
 * as tshark does) and, before it, by the trailer of a block ending there whose leading length
 * agrees (the one at b, damaged, or a block it swallowed, at least 12 bytes on).  An EPB of 72 bytes whose length reads 77 to 80 pads to 80, where
 * the next EPB's own length 80 stands: taken whole, that block is lost too.  Only the
 * block's own bytes are read, so a range or stream piece decides as the whole file does.
 * read/pcapng.py:trailer_is_a_header is its twin.  Called only where the word before the
 * type could be such a length, so a sound block pays one comparison. */
static __attribute__((noinline, cold)) int trailer_is_a_header(const uint8_t *b, uint32_t blen,
                                                               int swapped)
{
    uint32_t w = rd32(b + blen - 12, swapped);
    uint64_t p = ((uint64_t)w + 3) & ~(uint64_t)3;
    if (p < 12 || p > (uint64_t)blen - 8)
        return 0;
    uint64_t at = (uint64_t)blen - 8 - p; /* where the block ending before the type begins */
    return at == 0
        || (at >= 12 && (((uint64_t)rd32(b + at + 4, swapped) + 3) & ~(uint64_t)3) == p);
}

/* Whether the bytes up to buf + upto are past the data in hand (len): the check reading them
 * then stands as at the end of the data, or, where more may follow (`more`), asks for them:
 * *need becomes upto.  So a range's or a stream piece's end never changes a verdict. */
static inline int beyond(int64_t len, int64_t upto, int more, int64_t *need)
{
    if (upto <= len)
        return 0;
    if (more)
        *need = upto;
    return 1;
}

/* Whether a length left unpadded (a field not a multiple of 4, rounded up to blen) is
 * damage: 0 it stands, 1 damage, or the bytes from off the verdict needs (see beyond).
 * Damage to a length can round it up to a field of a later block that passes for its
 * trailer: an EPB of 36 bytes reading 57 pads to 60, where the next EPB's captured length
 * 57 stands.  Such a block is refused where what follows it is no block header (not the
 * end of the data, a section header, or a length of 12 to max_block) and, it being a
 * packet block, a block is framed where its packet data ends, inside it: the block that
 * the damaged length swallowed.  A sound unpadded block followed by damage is kept, as
 * Wireshark keeps it.  Only unpadded lengths pay for it.  read/pcapng.py:unpadded_damage
 * is its twin. */
static __attribute__((noinline, cold)) int64_t unpadded_damage(const uint8_t *buf, int64_t len,
                                                               int64_t off, uint32_t blen,
                                                               int swapped, uint32_t max_block,
                                                               int more)
{
    int64_t next = off + blen, need = 0;
    if (beyond(len, next + 8, more, &need))
        return need ? need - off : 0;
    uint32_t type = rd32(buf + next, swapped), field = rd32(buf + next + 4, swapped);
    if (type == BT_SHB || (field >= 12 && field <= max_block))
        return 0;
    const uint8_t *b = buf + off;
    uint32_t own = rd32(b, swapped);
    if ((own != BT_EPB && own != BT_PB) || blen < 32)
        return 0;
    uint64_t end = 32 + (((uint64_t)rd32(b + 20, swapped) + 3) & ~(uint64_t)3);
    if (end >= blen)
        return 0;
    uint32_t inner = rd32(b + end + 4, swapped); /* end + 8 <= blen + 8: in hand */
    uint64_t q = ((uint64_t)inner + 3) & ~(uint64_t)3;
    if (inner < 12 || inner > max_block)
        return 0;
    if (beyond(len, off + (int64_t)(end + q), more, &need))
        return need ? need - off : 0;
    return (((uint64_t)rd32(b + end + q - 4, swapped) + 3) & ~(uint64_t)3) == q;
}

static inline int known_block(uint32_t type)
{
    switch (type) {
    case BT_SHB: case BT_IDB: case BT_PB: case BT_SPB: case 0x00000004u: case 0x00000005u:
    case BT_EPB: case 0x00000009u: case BT_DSB: case 0x00000BADu: case 0x40000BADu:
        return 1;
    default:
        return 0;
    }
}

/* Whether the block at off, of length blen, swallowed a block that begins inside it: 0 no,
 * 1 yes, or the bytes from off the verdict needs (see beyond).  Swallowed: at some `s`
 * from `first` on (4-aligned, its header inside), the word before is a trailer that frames
 * the block as ending there (rounded up, it is s), and a block follows with a sane length
 * reaching past blen and a trailer matching it (after any number of blocks framed wholly
 * inside, passed), of these blocks at least one of a known type (the others a reader skips
 * by their length, but any type may be packet data).  A length damaged to one a field of
 * a later block passes the trailer check for (an EPB of 36 bytes reading 60, where the
 * next EPB's captured length 57 rounds up to 60; a statistics block of 24 reading 48, where
 * it stands at 20 of the next EPB) is so found.  Packet blocks are searched from where
 * their data ends (their options: a sound one's begin with an option code and length, no
 * block header), other blocks from 12; a block's bytes cost one comparison a word, and
 * the chains passed at most one step a word: no block is passed by two chains (its
 * trailer fixes the block before it, back to a start, whose trailer word is its own
 * offset, never a passed block's length).  read/pcapng.py:swallows_a_block is its twin. */
static __attribute__((noinline, cold)) int64_t swallows_a_block(const uint8_t *buf, int64_t len,
                                                                int64_t off, uint32_t first,
                                                                uint32_t blen, int swapped,
                                                                uint32_t max_block, int more)
{
    const uint8_t *b = buf + off;
    for (uint64_t s = first; s + 8 <= blen; s += 4) {
        if (((uint64_t)rd32(b + s - 4, swapped) + 3) / 4 * 4 != s)
            continue;
        uint32_t field = rd32(b + s + 4, swapped);
        uint64_t t = s, q = ((uint64_t)field + 3) & ~(uint64_t)3;
        if (field < 12 || field > max_block)
            continue;
        /* sound blocks wholly inside are passed: the damaged length may reach a field of a
         * block after them; of any type, but one of the chain's of a known type */
        int past = 1, known = known_block(rd32(b + s, swapped));
        while (t + q <= blen) {
            past = 0;
            if ((((uint64_t)rd32(b + t + q - 4, swapped) + 3) & ~(uint64_t)3) != q)
                break;
            t += q;
            if (t + 8 > blen)
                break;
            field = rd32(b + t + 4, swapped);
            if (field < 12 || field > max_block)
                break;
            q = ((uint64_t)field + 3) & ~(uint64_t)3;
            past = 1;
            known |= known_block(rd32(b + t, swapped));
        }
        if (!past || !known)
            continue;
        int64_t need = 0;
        if (beyond(len, off + (int64_t)(t + q), more, &need)) {
            if (need)
                return need - off;
            continue;
        }
        if ((((uint64_t)rd32(b + t + q - 4, swapped) + 3) & ~(uint64_t)3) == q)
            return 1;
    }
    return 0;
}

int64_t fc_walk_pcapng(const uint8_t *buf, int64_t len, int64_t start, int32_t swapped,
                       const fc_iface *ifaces, int32_t n_ifaces, uint32_t max_block,
                       fc_cols *cols, fc_status *st)
{
    int64_t off = start, n = 0, fno = st->next_frame, pf = start;
    st->in_order = 0;
    st->n_quiet = 0;
    for (;;) {
        if (n == cols->cap)
            return stop(st, FC_FULL, off, fno, 0, n);
        if (off >= len)
            return stop(st, FC_END, off, fno, 0, n);
        if (len - off < 12)
            return stop(st, FC_TRUNCATED, off, fno, 12, n);
        for (; pf < off + PREFETCH_AHEAD && pf < len; pf += PREFETCH_LINE)
            __builtin_prefetch(buf + pf);
        const uint8_t *b = buf + off;
        uint32_t type = rd32(b, swapped);
        if (type == BT_SHB) /* its byte order decides how to read its length */
            return stop(st, FC_BLOCK, off, fno, type, n);
        uint32_t field = rd32(b + 4, swapped);
        if (field < 12 || field > max_block)
            return stop(st, FC_CORRUPT, off, fno, field, n);
        /* Some writers leave the padding out of both lengths; Wireshark rounds them up to
         * a multiple of 4, and so do we (a damaged sound length never rounds to itself). */
        uint32_t blen = (field + 3) & ~3u;
        if ((int64_t)blen > len - off)
            return stop(st, FC_TRUNCATED, off, fno, blen, n);
        if (((uint64_t)rd32(b + blen - 4, swapped) + 3) / 4 * 4 != blen)
            return stop(st, FC_CORRUPT, off, fno, field, n);
        uint32_t last = rd32(b + blen - 12, swapped);
        if (__builtin_expect(last >= 9 && (uint64_t)last + 8 <= blen, 0)
            && trailer_is_a_header(b, blen, swapped))
            return stop(st, FC_CORRUPT, off, fno, field, n);
        if (__builtin_expect(field != blen, 0)) {
            int64_t v = unpadded_damage(buf, len, off, blen, swapped, max_block, st->more);
            if (v > 1) /* the verdict needs bytes past len: decided with them */
                return stop(st, FC_TRUNCATED, off, fno, v, n);
            if (v)
                return stop(st, FC_CORRUPT, off, fno, field, n);
        }

        uint32_t iface_id, caplen, orig;
        uint64_t units = 0;
        const uint8_t *data;
        uint8_t flags = 0;
        if (type == BT_EPB || type == BT_PB) {
            if (blen < 32)
                return stop(st, FC_CORRUPT, off, fno, blen, n);
            iface_id = type == BT_EPB ? rd32(b + 8, swapped) : rd16(b + 8, swapped);
            units = ((uint64_t)rd32(b + 12, swapped) << 32) | rd32(b + 16, swapped);
            caplen = rd32(b + 20, swapped);
            orig = rd32(b + 24, swapped);
            if (caplen > blen - 32)
                return stop(st, FC_CORRUPT, off, fno, caplen, n);
            uint32_t end = 32 + ((caplen + 3) & ~3u); /* options follow, if any */
            if (__builtin_expect(end < blen, 0)) {
                int64_t v = swallows_a_block(buf, len, off, end, blen, swapped, max_block,
                                             st->more);
                if (v > 1)
                    return stop(st, FC_TRUNCATED, off, fno, v, n);
                if (v)
                    return stop(st, FC_CORRUPT, off, fno, field, n);
            }
            data = b + 28;
        } else if (type == BT_SPB) {
            if (blen < 16)
                return stop(st, FC_CORRUPT, off, fno, blen, n);
            iface_id = 0;
            orig = rd32(b + 8, swapped);
            caplen = blen - 16;
            if (orig < caplen)
                caplen = orig;
            if (n_ifaces > 0 && ifaces[0].snaplen && caplen > ifaces[0].snaplen)
                caplen = ifaces[0].snaplen;
            data = b + 12;
            flags |= FC_F_NO_TS;
        } else {
            int64_t v = swallows_a_block(buf, len, off, 12, blen, swapped, max_block, st->more);
            if (v > 1)
                return stop(st, FC_TRUNCATED, off, fno, v, n);
            if (v)
                return stop(st, FC_CORRUPT, off, fno, field, n);
            if (quiet_block(type, blen) && count_quiet(st, type)) {
                off += blen;
                continue;
            }
            return stop(st, FC_BLOCK, off, fno, type, n);
        }
        if ((int64_t)iface_id >= (int64_t)n_ifaces)
            return stop(st, FC_BAD_IFACE, off, fno, iface_id, n);
        const fc_iface *ifc = &ifaces[iface_id];
        if (caplen < orig)
            flags |= FC_F_SNAPPED;
        if (ifc->snaplen && caplen > ifc->snaplen)
            flags |= FC_F_OVER_SNAPLEN;
        int64_t ts = (flags & FC_F_NO_TS)
                         ? 0
                         : fc_ts_to_ns(units, ifc->tsres_pow2, ifc->tsres_exp, ifc->tsoffset_s);
        put_row(cols, n, data, (int64_t)(data - buf), caplen, orig, ts, ifc->global_index, fno,
                flags);
        n++;
        fno++;
        off += blen;
    }
}
