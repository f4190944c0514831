/* libFuzzer target for the C side of fastcap: csrc/walk.c and csrc/reassembly.c.
 *
 * Input layout (byte 0 picks the target, so one corpus serves all of them):
 *   sel % 4 == 0  pcap walker     [sel][16 walker config bytes][capture bytes]
 *   sel % 4 == 1  pcapng walker   [sel][16 walker config bytes][capture bytes]
 *   sel % 4 == 2  reassembler     [sel][8 config bytes][rows, 16 bytes each][payload buffer]
 *   sel % 4 == 3  both walkers on the capture, then the reassembler on the same bytes
 * Walker config: [n_ifaces][4 x (snaplen sel, if_tsresol byte, tsoffset sel)][window][slab]
 * [limits].  Reassembler config: [cap][budget][max_open][max_segs][linger][feed size]
 * [ts0 | 0x40 leave done list | 0x80 free without finish][row count]; row layout in
 * fuzz_reasm.  Every buffer handed to C is its own exact-size heap block, so ASan sees any
 * overrun; every property checked is one the Python side (read/capture.py, read/walker.py) relies on. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fastcap.h"

#define CHECK(c)                                                                        \
    do {                                                                                \
        if (!(c)) {                                                                     \
            fprintf(stderr, "fuzz_native: CHECK failed at line %d: %s\n", __LINE__, #c); \
            __builtin_trap();                                                           \
        }                                                                               \
    } while (0)

#define MAX_BLOCK_PY (16u * 1024 * 1024) /* walkstatus.MAX_BLOCK */
#define MAX_CAPLEN_PY 262144u            /* walkstatus.MAX_CAPLEN */
#define BT_SHB 0x0A0D0D0Au
#define BT_IDB 0x00000001u
#define BT_PB 0x00000002u
#define BT_SPB 0x00000003u
#define BT_EPB 0x00000006u

static uint32_t rd32(const uint8_t *p, int swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

static uint16_t rd16(const uint8_t *p, int swapped)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return swapped ? __builtin_bswap16(v) : v;
}

static uint64_t rd_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* ==== walker ============================================================================ */

typedef struct {
    const uint8_t *buf;
    int64_t len;
    fc_cols c;
} walk_ctx;

static void cols_alloc(fc_cols *c, int64_t cap, int32_t width)
{
    c->cap = cap;
    c->slab_width = width;
    c->offset = malloc((size_t)cap * 8);
    c->caplen = malloc((size_t)cap * 4);
    c->orig_len = malloc((size_t)cap * 4);
    c->ts_ns = malloc((size_t)cap * 8);
    c->iface = malloc((size_t)cap * 4);
    c->frame_no = malloc((size_t)cap * 8);
    c->flags = malloc((size_t)cap);
    c->slab = malloc((size_t)(cap * width) + (width == 0)); /* malloc(0) may return NULL */
    CHECK(c->offset && c->caplen && c->orig_len && c->ts_ns && c->iface && c->frame_no &&
          c->flags && c->slab);
}

static void cols_free(fc_cols *c)
{
    free(c->offset);
    free(c->caplen);
    free(c->orig_len);
    free(c->ts_ns);
    free(c->iface);
    free(c->frame_no);
    free(c->flags);
    free(c->slab);
}

/* A block the caller may skip by its length: what capture.py does after BLOCK / BAD_IFACE. */
static int block_ok(const uint8_t *buf, int64_t len, int64_t off, int swapped,
                    uint32_t max_block)
{
    if (off < 0 || len - off < 12)
        return 0;
    uint32_t blen = rd32(buf + off + 4, swapped);
    return blen >= 12 && !(blen & 3) && blen <= max_block && (int64_t)blen <= len - off &&
           rd32(buf + off + blen - 4, swapped) == blen;
}

/* Properties shared by both walkers: rows inside the buffer, in order, numbered from
 * next_in, slab = head of the packet zero-padded; status consistent with the rows. */
static void check_common(const walk_ctx *w, int64_t start, int64_t next_in, int64_t n,
                         const fc_status *st)
{
    const fc_cols *c = &w->c;
    CHECK(n >= 0 && n <= c->cap);
    CHECK(st->code >= FC_FULL && st->code <= FC_BAD_IFACE);
    CHECK((st->code == FC_FULL) == (n == c->cap));
    CHECK(st->next_frame == next_in + n);
    CHECK(st->offset >= start && st->offset <= w->len);
    if (n > 0)
        CHECK(st->offset > start);
    if (st->code == FC_END)
        CHECK(st->offset == w->len);
    if (st->code == FC_TRUNCATED)
        CHECK(st->detail > w->len - st->offset);
    for (int64_t i = 0; i < n; i++) {
        int64_t off = c->offset[i];
        uint32_t cl = c->caplen[i];
        CHECK(off >= start && off <= w->len && (int64_t)cl <= w->len - off);
        CHECK(off + cl <= st->offset);
        CHECK(i == 0 || off > c->offset[i - 1]);
        CHECK(c->frame_no[i] == next_in + i);
        CHECK(!!(c->flags[i] & FC_F_SNAPPED) == (cl < c->orig_len[i]));
        CHECK((c->flags[i] & ~7) == 0);
        const uint8_t *row = c->slab + i * (int64_t)c->slab_width;
        uint32_t k = cl < (uint32_t)c->slab_width ? cl : (uint32_t)c->slab_width;
        CHECK(memcmp(row, w->buf + off, k) == 0);
        for (int32_t j = (int32_t)k; j < c->slab_width; j++)
            CHECK(row[j] == 0);
    }
}

static void walk_pcap_run(walk_ctx *w, int64_t start, int swapped, int nanos, uint32_t snaplen,
                          uint32_t max_caplen)
{
    int64_t off = start, fno = 1, calls = 0;
    for (;;) {
        CHECK(++calls <= w->len + 2);
        fc_status st = {0};
        st.next_frame = fno;
        int64_t n = fc_walk_pcap(w->buf, w->len, off, swapped, nanos, snaplen, max_caplen, &w->c,
                                 &st);
        check_common(w, off, fno, n, &st);
        CHECK(st.code != FC_BAD_IFACE);
        if (st.code == FC_BLOCK) { /* another capture's file header (files concatenated) */
            uint32_t m = rd32(w->buf + st.offset, swapped);
            CHECK(w->len - st.offset >= 16 && st.detail == (int64_t)m);
            CHECK(m == 0xA1B2C3D4u || m == 0xA1B23C4Du || m == 0xA1B2CD34u ||
                  m == 0xD4C3B2A1u || m == 0x4D3CB2A1u || m == 0x34CDB2A1u);
        }
        if (st.code == FC_CORRUPT)
            CHECK(st.detail > (int64_t)max_caplen);
        int64_t expect = off;
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *h = w->buf + w->c.offset[i] - 16;
            CHECK(w->c.offset[i] == expect + 16);
            CHECK(w->c.caplen[i] == rd32(h + 8, swapped) && w->c.caplen[i] <= max_caplen);
            CHECK(w->c.orig_len[i] == rd32(h + 12, swapped));
            CHECK(w->c.iface[i] == 0 && !(w->c.flags[i] & FC_F_NO_TS));
            CHECK(!!(w->c.flags[i] & FC_F_OVER_SNAPLEN) == (snaplen && w->c.caplen[i] > snaplen));
            int64_t ts = (int64_t)rd32(h, swapped) * 1000000000 +
                         (int64_t)rd32(h + 4, swapped) * (nanos ? 1 : 1000);
            CHECK(w->c.ts_ns[i] == ts);
            expect = w->c.offset[i] + w->c.caplen[i];
        }
        CHECK(st.offset == expect);
        fno = st.next_frame;
        if (st.code != FC_FULL)
            return;
        CHECK(st.offset > off); /* FULL with cap >= 1 always consumed a record */
        off = st.offset;
    }
}

/* The pcapng walk as capture.py drives it: FULL -> go on; SHB -> new section (byte order from
 * its magic); other blocks and BAD_IFACE -> skip by the block length; anything else stops. */
static void walk_pcapng_run(walk_ctx *w, int swapped, const fc_iface *tab, int32_t n_tab,
                            int32_t n_start, uint32_t max_block)
{
    int64_t off = 0, fno = 1, last_frame = 0, calls = 0;
    int32_t n_if = n_start;
    for (;;) {
        CHECK(++calls <= w->len + 2);
        fc_status st = {0};
        st.next_frame = fno;
        st.quiet_max = (calls & 1) ? 8 : 0; /* blocks only counted: stepped over, or not */
        int64_t n = fc_walk_pcapng(w->buf, w->len, off, swapped, tab, n_if, max_block, &w->c,
                                   &st);
        check_common(w, off, fno, n, &st);
        CHECK(st.n_quiet >= 0 && st.n_quiet <= st.quiet_max);
        for (int64_t i = 0; i < n; i++) {
            int64_t o = w->c.offset[i];
            uint32_t cl = w->c.caplen[i], id;
            int64_t ts = 0;
            if (w->c.flags[i] & FC_F_NO_TS) {
                CHECK(o >= off + 12 && rd32(w->buf + o - 12, swapped) == BT_SPB);
                CHECK(w->c.ts_ns[i] == 0 && cl <= w->c.orig_len[i] && n_if > 0);
                CHECK((int64_t)cl <= (int64_t)rd32(w->buf + o - 8, swapped) - 16);
                CHECK(!tab[0].snaplen || cl <= tab[0].snaplen);
                id = 0;
            } else {
                CHECK(o >= off + 28);
                const uint8_t *b = w->buf + o - 28;
                uint32_t type = rd32(b, swapped);
                CHECK(type == BT_EPB || type == BT_PB);
                id = type == BT_EPB ? rd32(b + 8, swapped) : rd16(b + 8, swapped);
                CHECK(cl == rd32(b + 20, swapped) && w->c.orig_len[i] == rd32(b + 24, swapped));
                CHECK((int64_t)cl <= (int64_t)rd32(b + 4, swapped) - 32);
                CHECK((int64_t)id < n_if);
                uint64_t units = (uint64_t)rd32(b + 12, swapped) << 32 | rd32(b + 16, swapped);
                ts = fc_ts_to_ns(units, tab[id].tsres_pow2, tab[id].tsres_exp,
                                 tab[id].tsoffset_s);
                CHECK(w->c.ts_ns[i] == ts);
            }
            CHECK((int64_t)id < n_if && w->c.iface[i] == tab[id].global_index);
            CHECK(!!(w->c.flags[i] & FC_F_OVER_SNAPLEN) ==
                  (tab[id].snaplen && cl > tab[id].snaplen));
            CHECK(w->c.frame_no[i] > last_frame);
            last_frame = w->c.frame_no[i];
        }
        fno = st.next_frame;
        int64_t next;
        if (st.code == FC_FULL) {
            next = st.offset;
        } else if (st.code == FC_BLOCK && st.detail == BT_SHB) {
            CHECK(rd32(w->buf + st.offset, swapped) == BT_SHB);
            if (w->len - st.offset < 28)
                return;
            uint32_t magic = rd32(w->buf + st.offset + 8, 0);
            if (magic != 0x1A2B3C4Du && magic != 0x4D3C2B1Au)
                return;
            int sw = magic != 0x1A2B3C4Du;
            if (!block_ok(w->buf, w->len, st.offset, sw, max_block) ||
                rd32(w->buf + st.offset + 4, sw) < 28)
                return;
            swapped = sw;
            n_if = n_start; /* a new section: its interfaces start over */
            next = st.offset + rd32(w->buf + st.offset + 4, sw);
        } else if (st.code == FC_BLOCK || st.code == FC_BAD_IFACE) {
            /* capture.py skips these by their length without re-checking it */
            CHECK(block_ok(w->buf, w->len, st.offset, swapped, max_block));
            uint32_t type = rd32(w->buf + st.offset, swapped);
            if (st.code == FC_BLOCK) {
                CHECK(st.detail == (int64_t)type);
                CHECK(type != BT_EPB && type != BT_PB && type != BT_SPB);
                if (type == BT_IDB && n_if < n_tab)
                    n_if++;
                if (type == 0x00000BADu || type == 0x40000BADu || type == 9u)
                    fno++; /* capture.py numbers these as frames */
            } else {
                CHECK(type == BT_EPB || type == BT_PB || type == BT_SPB);
                CHECK(st.detail >= n_if);
            }
            next = st.offset + rd32(w->buf + st.offset + 4, swapped);
        } else {
            return; /* END, TRUNCATED, CORRUPT */
        }
        CHECK(next > off); /* progress, or the walk would never end */
        off = next;
    }
}

static const uint32_t SNAPLENS[8] = {0, 1, 16, 64, 1500, 65535, 262144, 0xFFFFFFFFu};
static const int64_t TSOFFS[8] = {0, 1, -1, 1000000000, -((int64_t)1 << 40),
                                  (int64_t)1 << 62, INT64_MAX, INT64_MIN};

/* fc_ts_to_ns is monotone in units and in the offset: frame times never run backwards. */
static void check_ts(uint64_t u, const fc_iface *f)
{
    int64_t a = fc_ts_to_ns(u, f->tsres_pow2, f->tsres_exp, f->tsoffset_s);
    if (u < UINT64_MAX)
        CHECK(a <= fc_ts_to_ns(u + 1, f->tsres_pow2, f->tsres_exp, f->tsoffset_s));
    if (f->tsoffset_s < INT64_MAX)
        CHECK(a <= fc_ts_to_ns(u, f->tsres_pow2, f->tsres_exp, f->tsoffset_s + 1));
    CHECK(fc_ts_to_ns(0, f->tsres_pow2, f->tsres_exp, 0) == 0);
}

static void fuzz_walkers(const uint8_t *cfg, const uint8_t *data, size_t size, int which)
{
    /* an exact-size block of its own, so ASan flags any read past the capture's end */
    uint8_t *buf = malloc(size + (size == 0));
    CHECK(buf);
    memcpy(buf, data, size);
    walk_ctx w = {.buf = buf, .len = (int64_t)size};
    const int64_t caps[4] = {1, 7, 64, 1 + cfg[13]};
    const int32_t slabs[6] = {0, 1, 16, 80, 200, cfg[14]};

    /* Interface table as IDBs would give it: tsresol byte = pow2 bit + 7-bit exponent. */
    fc_iface tab[4];
    for (int i = 0; i < 4; i++) {
        const uint8_t *p = cfg + 1 + 3 * i;
        tab[i].snaplen = SNAPLENS[p[0] & 7];
        tab[i].tsres_pow2 = p[1] >> 7;
        tab[i].tsres_exp = p[1] & 0x7F;
        tab[i].tsoffset_s = TSOFFS[p[2] & 7];
        tab[i].global_index = (uint32_t)i * 3 + (p[2] >> 3);
        check_ts(size >= 8 ? rd_le(data, 8) : (uint64_t)size, &tab[i]);
    }
    static const fc_iface extreme[4] = {
        {1, 1, 127, INT64_MAX, 0}, {0, 0, 0, INT64_MIN, 1},
        {0xFFFFFFFFu, 1, 0, -1, 0xFFFFFFFFu}, {64, 0, 29, (int64_t)1 << 62, 7}};
    const uint32_t blocks[3] = {MAX_BLOCK_PY, 64 + (uint32_t)cfg[15] * 4, 0xFFFFFFFFu};
    int j = 0;

    if (which & 1) {
        for (int sw = 0; sw < 2; sw++) {
            uint32_t hdr_snap = size >= 24 ? rd32(buf + 16, sw) : 0;
            const uint32_t limits[3][2] = {{hdr_snap, MAX_CAPLEN_PY},
                                           {0, 0xFFFFFFFFu},
                                           {SNAPLENS[cfg[15] & 7], SNAPLENS[cfg[15] >> 5]}};
            for (int nanos = 0; nanos < 2; nanos++)
                for (int l = 0; l < 3; l++, j++) {
                    cols_alloc(&w.c, caps[j % 4], slabs[j % 6]);
                    int64_t start = (size >= 24 && j % 5) ? 24 : 0;
                    walk_pcap_run(&w, start, sw, nanos, limits[l][0], limits[l][1]);
                    cols_free(&w.c);
                }
        }
    }
    if (which & 2) {
        for (int sw = 0; sw < 2; sw++)
            for (int t = 0; t < 3; t++, j++) {
                const fc_iface *tb = t == 0 ? tab : extreme;
                int32_t n_start = t == 0 ? cfg[0] % 5 : (t == 1 ? 0 : 4);
                cols_alloc(&w.c, caps[j % 4], slabs[j % 6]);
                walk_pcapng_run(&w, sw, tb, 4, n_start, blocks[j % 3]);
                cols_free(&w.c);
            }
    }
    free(buf);
}

/* ==== reassembler ======================================================================= */

#define ROW_BYTES 16
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04

/* Flow ids; index 7 stands for 256 more (16 + a byte) so the flow map and pool must grow. */
static const int64_t FLOWS[7] = {0, 1, 2, INT64_MIN, 0x100000000, -1, INT64_MAX};
static const int64_t R_OPEN[8] = {1, 2, 3, 4, 8, 64, 1 << 20, 1 << 28};
static const uint32_t SEQS[8] = {0, 1, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu, 0xFFFFFFF0u,
                                 0xFFFF0000u, 0x12345678u};
static const int64_t R_CAPS[8] = {0, 1, 7, 64, 100, 2048, 5000, 70000};
static const int64_t R_BUDGETS[8] = {-1, 0, 512, 600, 3000, 10000, 1 << 20, INT64_MAX};
static const int64_t R_SEGS[8] = {0, 1, 2, 3, 16, 17, 40, 1000};
static const int64_t R_LINGER[8] = {0, 1, 1000, 1000000, 1000000000, 60000000000, INT64_MAX,
                                    5};
static const int64_t R_TS0[4] = {0, 1700000000000000000, INT64_MIN, INT64_MAX - 10000000000};
static const int32_t PLEN_X[8] = {-1, INT32_MIN, INT32_MAX, 65535, 65536, 1 << 20, 0x40000000,
                                  -100};

typedef struct {
    int64_t fno;
    const uint8_t *p;   /* clamped payload as the core may read it */
    int64_t caplen;
    int64_t plen;       /* payload length as the core takes it (negative: 0) */
    uint16_t flags;
} fed_row;

/* A connection handed on: what a later one naming it (after_first, after_rst) must match. */
typedef struct {
    int64_t flow, first_frame, last_frame;
    int64_t rst_frame; /* its first RST's frame, -1: none */
} done_conn;

typedef struct {
    fc_reasm *r;
    int64_t cap, max_segs, max_open;
    const uint8_t *pay;
    int64_t pay_len;
    fed_row *fed;       /* every row fed so far */
    int64_t nfed, frames_done, min_frame, max_frame;
    int64_t resets; /* rows fed with RST set */
    uint8_t *index_seen; /* one flag per possible connection index (<= rows fed) */
    int64_t index_cap;
    done_conn *dones;    /* every connection handed on, in hand-over order */
    int64_t ndones;
} reasm_ctx;

/* Did frame `fno` carry `len` bytes equal to d[0..len)?  (The segment map names, per byte, the
 * frame whose copy is stored: its latest entry covering the byte, see store in reassembly.c.) */
static int frame_supplied(const reasm_ctx *x, int64_t fno, const uint8_t *d, int64_t len)
{
    for (int64_t i = 0; i < x->nfed; i++)
        if (x->fed[i].fno == fno && x->fed[i].caplen >= len &&
            memmem(x->fed[i].p, (size_t)x->fed[i].caplen, d, (size_t)len))
            return 1;
    return 0;
}

static void check_dir(reasm_ctx *x, int64_t i, int k, const fc_conn_info *ci)
{
    const fc_dir_info *d = &ci->dir[k];
    CHECK(d->seen_bytes >= 0);
    CHECK(d->data_len == (d->seen_bytes < x->cap ? d->seen_bytes : x->cap));
    CHECK(d->n_segs >= 0 && d->n_segs <= x->max_segs);
    CHECK(d->before_start >= 0 && d->untraced >= 0);
    CHECK(d->isn >= -1 && d->isn <= 0xFFFFFFFFll && (d->isn >= 0) == (d->syn_frame >= 0));
    CHECK(d->complete == 0 || d->complete == 1);
    CHECK(d->seg_sorted == 0 || d->seg_sorted == 1);
    CHECK(d->first_syn >= -1 && d->first_syn <= 1);
    for (int f = 0; f < 3; f++) {
        int64_t fr = f == 0 ? d->syn_frame : (f == 1 ? d->fin_frame : d->rst_frame);
        CHECK(fr == -1 || (fr >= ci->first_frame && fr <= ci->last_frame));
    }
    int64_t avail = -7;
    const uint8_t *p = fc_reasm_done_data(x->r, i, k, &avail);
    CHECK(avail >= 0 && avail <= d->data_len && (avail == 0 || p != NULL));

    int64_t nb = (d->data_len + 7) / 8, ns = d->n_segs;
    uint8_t *filled = d->complete ? NULL : malloc((size_t)nb + 1);
    int64_t *so = malloc((size_t)ns * 8 + 1), *sf = malloc((size_t)ns * 8 + 1);
    int32_t *sl = malloc((size_t)ns * 4 + 1);
    CHECK(so && sf && sl && (d->complete || filled));
    CHECK(fc_reasm_done_copy(x->r, i, k, filled, so, sl, sf) == 0);

#define FILLED(b) (filled == NULL || ((filled[(b) >> 3] >> ((b) & 7)) & 1))
    int64_t stored = 0;
    for (int64_t b = 0; b < d->data_len; b++)
        stored += FILLED(b);
    if (filled && (d->data_len & 7))
        CHECK((filled[nb - 1] >> (d->data_len & 7)) == 0); /* no bits past data_len */
    CHECK(d->complete ? stored == d->data_len : stored < d->data_len);
    if (d->complete)
        CHECK(avail == d->data_len);
    for (int64_t b = 0; b < d->data_len; b++) {
        if (b >= avail)
            CHECK(!FILLED(b)); /* bytes past avail were never stored */
        else if (!FILLED(b))
            CHECK(p[b] == 0);  /* gaps read as zero */
    }

    /* Arrival order: a later entry replaced the bytes of earlier ones it covers (the segment
     * taken in order over differing held bytes), which only a conflicting overlap does. */
    int64_t sorted = 1, overlap = 0, mapped = 0;
    int64_t *owner = malloc((size_t)d->data_len * 8 + 1);
    CHECK(owner);
    for (int64_t b = 0; b < d->data_len; b++)
        owner[b] = -1;
    for (int64_t s = 0; s < ns; s++) {
        CHECK(sl[s] > 0 && so[s] >= 0 && so[s] + sl[s] <= d->data_len && so[s] + sl[s] <= avail);
        CHECK(sf[s] >= ci->first_frame && sf[s] <= ci->last_frame);
        for (int64_t b = so[s]; b < so[s] + sl[s]; b++) {
            CHECK(FILLED(b));
            overlap |= owner[b] >= 0;
            owner[b] = s;
        }
        if (s > 0 && so[s] < so[s - 1])
            sorted = 0;
    }
    CHECK(!overlap || ci->conflicting_overlaps > 0);
    for (int64_t b = 0; b < d->data_len;) { /* each run a byte's latest entry names */
        int64_t e = b + 1;
        while (e < d->data_len && owner[e] == owner[b])
            e++;
        if (owner[b] >= 0) {
            CHECK(frame_supplied(x, sf[owner[b]], p + b, e - b));
            mapped += e - b;
        }
        b = e;
    }
#undef FILLED
    CHECK(d->seg_sorted == sorted);
    CHECK(mapped + d->untraced == stored); /* every stored byte is mapped or untraced */
    free(owner);
    free(filled);
    free(so);
    free(sf);
    free(sl);
}

static const fed_row *fed_at(const reasm_ctx *x, int64_t fno)
{
    for (int64_t i = 0; i < x->nfed; i++)
        if (x->fed[i].fno == fno)
            return &x->fed[i];
    return NULL;
}

/* A connection going on with one closed on an RST names it: an earlier connection of its
 * flow, handed on before this one began, by its first frame and the first RST it closed on;
 * and it begins with a segment carrying payload, neither SYN nor RST.  Then it is recorded
 * for the connections after it. */
static void check_after(reasm_ctx *x, const fc_conn_info *ci)
{
    CHECK((ci->after_first == -1) == (ci->after_rst == -1));
    if (ci->after_first != -1) {
        CHECK(ci->after_first >= x->min_frame && ci->after_first < ci->after_rst &&
              ci->after_rst < ci->first_frame);
        const done_conn *named = NULL;
        for (int64_t k = 0; k < x->ndones && !named; k++)
            if (x->dones[k].flow == ci->flow && x->dones[k].first_frame == ci->after_first)
                named = &x->dones[k];
        CHECK(named && named->rst_frame == ci->after_rst &&
              named->last_frame < ci->first_frame);
        const fed_row *rst = fed_at(x, ci->after_rst), *opening = fed_at(x, ci->first_frame);
        CHECK(rst && (rst->flags & TH_RST));
        CHECK(opening && opening->plen > 0 && !(opening->flags & (TH_SYN | TH_RST)));
    }
    int64_t f0 = ci->dir[0].rst_frame, f1 = ci->dir[1].rst_frame;
    CHECK(x->ndones < x->index_cap);
    x->dones[x->ndones++] = (done_conn){ci->flow, ci->first_frame, ci->last_frame,
                                        f0 >= 0 && (f1 < 0 || f0 < f1) ? f0 : f1};
}

/* Read and release the done list the way tcp/core_c.py does. */
static void drain(reasm_ctx *x, int64_t expect)
{
    fc_conn_info ci;
    int64_t i = 0;
    for (; fc_reasm_done_info(x->r, i, &ci) == 0; i++) {
        CHECK(ci.index >= 0 && ci.index < x->index_cap && !x->index_seen[ci.index]);
        x->index_seen[ci.index] = 1;
        int known = ci.flow >= 16 && ci.flow < 16 + 256;
        for (int f = 0; f < 7; f++)
            known |= ci.flow == FLOWS[f];
        CHECK(known);
        CHECK(ci.frames >= 1 && ci.first_frame <= ci.last_frame);
        CHECK(ci.first_frame >= x->min_frame && ci.last_frame <= x->max_frame);
        CHECK(ci.retransmissions >= 0 && ci.conflicting_overlaps >= 0 && ci.keepalives >= 0 &&
              ci.zero_window_probes >= 0 && ci.out_of_order >= 0);
        CHECK(ci.evicted == 0 || ci.evicted == 1);
        CHECK(ci.first_dir == 0 || ci.first_dir == 1);
        CHECK(ci.syn_dir >= -1 && ci.syn_dir <= 1 && ci.synack_dir >= -1 && ci.synack_dir <= 1);
        /* Zeek's end of the connection: one of its later frames, if any */
        CHECK(ci.zeek_cut == -1 ||
              (ci.zeek_cut > ci.first_frame && ci.zeek_cut <= ci.last_frame));
        check_after(x, &ci);
        x->frames_done += ci.frames;
        for (int k = 0; k < 2; k++)
            check_dir(x, i, k, &ci);
        if (ci.index & 1) { /* release some early, as tcp/core_c.py's _drain_done does */
            fc_reasm_done_release(x->r, i);
            int64_t avail = 7;
            (void)fc_reasm_done_data(x->r, i, 0, &avail);
            CHECK(avail == 0);
            fc_reasm_done_release(x->r, i); /* twice is harmless */
        }
    }
    fc_reasm_done_release(x->r, i); /* out of range: ignored */
    CHECK(i == expect);
    int64_t avail = 5;
    CHECK(fc_reasm_done_info(x->r, -1, &ci) == -1);
    CHECK(fc_reasm_done_data(x->r, i, 0, &avail) == NULL && avail == 0);
    CHECK(fc_reasm_done_data(x->r, 0, 2, &avail) == NULL && avail == 0);
    CHECK(fc_reasm_done_copy(x->r, i, 0, NULL, NULL, NULL, NULL) == -1);
    fc_reasm_done_clear(x->r);
    CHECK(fc_reasm_done_info(x->r, 0, &ci) == -1);
}

/* Rows, 16 bytes: [flow 0-2 | from_b 3 | seq mode 4-5 | ack mode 6-7][tcp flags][plen u16]
 * [payload offset u16][seq u32][ack u32][time step][caplen mode 0-1 | zero window 2 |
 * frame gap 3 | flags 0x300 4-5 | offset special 6-7].  Seq/ack modes: 0 next in sequence,
 * 1 next + int16, 2 a wrap-around value, 3 raw.  Flow 7 means 16 + the seq field's low byte. */
static void fuzz_reasm(const uint8_t *data, size_t size)
{
    uint8_t cfg[8] = {0};
    memcpy(cfg, data, size < 8 ? size : 8);
    data += size < 8 ? size : 8;
    size -= size < 8 ? size : 8;
    int64_t nrows = cfg[7];
    if ((int64_t)size / ROW_BYTES < nrows)
        nrows = (int64_t)size / ROW_BYTES;
    const uint8_t *rows = data;
    reasm_ctx x = {0};
    x.pay_len = (int64_t)size - nrows * ROW_BYTES;
    uint8_t *pay = malloc((size_t)x.pay_len + 1);
    CHECK(pay);
    memcpy(pay, data + nrows * ROW_BYTES, (size_t)x.pay_len);
    x.pay = pay;

    x.cap = R_CAPS[cfg[0] & 7];
    x.max_segs = R_SEGS[cfg[3] & 7];
    x.max_open = R_OPEN[cfg[2] & 7];
    CHECK(fc_reasm_new(-1, 0, 1, 0, 0) == NULL && fc_reasm_new(0, 0, 0, 0, 0) == NULL &&
          fc_reasm_new(0, 0, 1, -1, 0) == NULL && fc_reasm_new(0, 0, 1, 0, -1) == NULL);
    x.r = fc_reasm_new(x.cap, R_BUDGETS[cfg[1] & 7], x.max_open, x.max_segs,
                       R_LINGER[cfg[4] & 7]);
    CHECK(x.r);
    x.fed = calloc((size_t)nrows + 1, sizeof *x.fed);
    x.index_cap = nrows + 1;
    x.index_seen = calloc((size_t)x.index_cap, 1);
    x.dones = calloc((size_t)x.index_cap, sizeof *x.dones);
    CHECK(x.fed && x.index_seen && x.dones);
    x.min_frame = 1;

    uint32_t nxt[8][2];
    for (int f = 0; f < 8; f++)
        nxt[f][0] = SEQS[f], nxt[f][1] = SEQS[7 - f] ^ 0x5a5a;
    int64_t fno = 1, ts = R_TS0[cfg[6] & 3];
    int64_t win = cfg[5] ? 1 + cfg[5] % 9 : (nrows ? nrows : 1);

    for (int64_t r0 = 0; r0 < nrows; r0 += win) {
        int64_t n = nrows - r0 < win ? nrows - r0 : win;
        int64_t *c_fno = malloc((size_t)n * 8), *c_ts = malloc((size_t)n * 8);
        int64_t *c_flow = malloc((size_t)n * 8), *c_foff = malloc((size_t)n * 8);
        uint8_t *c_a = malloc((size_t)n);
        uint32_t *c_seq = malloc((size_t)n * 4), *c_ack = malloc((size_t)n * 4);
        uint16_t *c_fl = malloc((size_t)n * 2), *c_win = malloc((size_t)n * 2);
        int32_t *c_plen = malloc((size_t)n * 4), *c_cap = malloc((size_t)n * 4);
        CHECK(c_fno && c_ts && c_flow && c_foff && c_a && c_seq && c_ack && c_fl && c_win &&
              c_plen && c_cap);
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *b = rows + (r0 + i) * ROW_BYTES;
            int f = b[0] & 7, dir = (b[0] >> 3) & 1;
            uint32_t sraw = (uint32_t)rd_le(b + 6, 4), araw = (uint32_t)rd_le(b + 10, 4);
            uint16_t flags = (uint16_t)(b[1] | ((b[15] >> 4) & 3) << 8);
            uint32_t seq, ack;
            switch ((b[0] >> 4) & 3) {
            case 0: seq = nxt[f][dir]; break;
            case 1: seq = nxt[f][dir] + (uint32_t)(int32_t)(int16_t)sraw; break;
            case 2: seq = SEQS[sraw & 7]; break;
            default: seq = sraw;
            }
            switch (b[0] >> 6) {
            case 0: ack = nxt[f][1 - dir]; break;
            case 1: ack = nxt[f][1 - dir] + (uint32_t)(int32_t)(int16_t)araw; break;
            case 2: ack = SEQS[araw & 7]; break;
            default: ack = araw;
            }
            uint16_t pl16 = (uint16_t)rd_le(b + 2, 2);
            int32_t plen = pl16 < 0xFF00 ? pl16 : PLEN_X[pl16 & 7];
            int32_t caplen;
            switch (b[15] & 3) {
            case 0: caplen = plen; break;
            case 1: caplen = plen / 2; break;
            case 2: caplen = plen == INT32_MAX ? plen : plen + 1; break;
            default: caplen = PLEN_X[(b[15] >> 2) & 7];
            }
            int64_t foff = (int64_t)rd_le(b + 4, 2);
            switch (b[15] >> 6) {
            case 1: foff = -1; break;
            case 2: foff = x.pay_len; break;
            case 3: foff = (b[4] & 1) ? INT64_MAX : INT64_MIN; break;
            default: break;
            }
            uint8_t tsel = b[14];
            if (tsel < 0xFC)
                ts = ts > INT64_MAX - 1000000ll * tsel ? INT64_MAX : ts + 1000000ll * tsel;
            else if (tsel == 0xFC)
                ts = ts < INT64_MIN + 1000000 ? INT64_MIN : ts - 1000000;
            else
                ts = tsel == 0xFD ? INT64_MIN : (tsel == 0xFE ? INT64_MAX : 0);
            fno += 1 + ((b[15] >> 3) & 1) * 1000; /* strictly increasing, as selection gives */
            c_fno[i] = fno;
            c_ts[i] = ts;
            c_flow[i] = f < 7 ? FLOWS[f] : 16 + (sraw & 0xFF);
            c_a[i] = (uint8_t)(dir == 0);
            c_foff[i] = foff;
            c_seq[i] = seq;
            c_ack[i] = ack;
            c_fl[i] = flags;
            c_win[i] = (b[15] & 4) ? 0 : 65535;
            c_plen[i] = plen;
            c_cap[i] = caplen;
            nxt[f][dir] = seq + !!(flags & TH_SYN) + (uint32_t)(plen > 0 ? plen : 0) +
                          !!(flags & TH_FIN);
            /* the bytes the core is allowed to read, clamped as reassembly.c documents */
            int64_t pl = plen > 0 ? plen : 0, cl = caplen > 0 ? caplen : 0;
            if (cl > pl)
                cl = pl;
            if (foff < 0 || foff > x.pay_len)
                cl = 0;
            else if (cl > x.pay_len - foff)
                cl = x.pay_len - foff;
            fed_row *fr = &x.fed[x.nfed++];
            fr->fno = fno;
            fr->p = cl ? x.pay + foff : x.pay;
            fr->caplen = (flags & TH_RST) ? 0 : cl;
            fr->plen = pl;
            fr->flags = flags;
            x.resets += !!(flags & TH_RST);
        }
        x.max_frame = fno;
        fc_tcp_rows tr = {c_fno, c_ts, c_flow, c_a, c_foff, c_seq, c_ack, c_fl, c_win, c_plen,
                          c_cap};
        int64_t k = fc_reasm_feed(x.r, x.pay, x.pay_len, &tr, n);
        CHECK(k >= 0);
        /* none may be open: an RST or a closed connection's late segment starts none */
        CHECK(fc_reasm_open(x.r) >= 0 && fc_reasm_open(x.r) <= x.max_open);
        CHECK(fc_reasm_mem(x.r) >= FC_CONN_OVERHEAD * fc_reasm_open(x.r));
        if (r0 + n < nrows || !(cfg[6] & 0x40)) /* else leave it for finish (or free) */
            drain(&x, k);
        free(c_fno); free(c_ts); free(c_flow); free(c_foff); free(c_a); free(c_seq);
        free(c_ack); free(c_fl); free(c_win); free(c_plen); free(c_cap);
    }
    if (!(cfg[6] & 0x80)) {
        int64_t k = fc_reasm_finish(x.r);
        CHECK(k >= 0);
        drain(&x, k);
        CHECK(fc_reasm_open(x.r) == 0 && fc_reasm_mem(x.r) == 0);
        /* every row landed in exactly one connection, but for the late segments counted
         * and the resets finding no connection (they start none) */
        CHECK(x.frames_done + fc_reasm_late(x.r) <= nrows &&
              x.frames_done + fc_reasm_late(x.r) + x.resets >= nrows);
    } /* else: freed with connections open, as tcp/core_c.py's close() may (LSan checks it) */
    fc_reasm_free(x.r);
    free(x.fed);
    free(x.index_seen);
    free(x.dones);
    free(pay);
}

/* ==== entry point ======================================================================= */

#define WALK_CFG 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0] & 3;
    data++;
    size--;
    if (sel == 2) {
        fuzz_reasm(data, size);
        return 0;
    }
    uint8_t cfg[WALK_CFG] = {0};
    size_t c = size < WALK_CFG ? size : WALK_CFG;
    memcpy(cfg, data, c);
    fuzz_walkers(cfg, data + c, size - c, sel == 0 ? 1 : (sel == 1 ? 2 : 3));
    if (sel == 3)
        fuzz_reasm(data, size);
    return 0;
}
