/* TCP reassembler: rebuilds both byte streams of every selected connection, window by window.
 *
 * State layout (all indices, never pointers, because the connection pool grows by realloc):
 *   - conns[]: a pool of fc connection slots, recycled through a free list;
 *   - an open-addressing hash map flow id -> slot (linear probing, backward-shift deletion),
 *     so memory follows the connections held, not every flow the file ever had;
 *   - two intrusive doubly-linked lists over the slots: LRU order (eviction victims come from
 *     the tail) and the closed-connection "linger" queue (oldest close first);
 *   - per direction: a data buffer grown by doubling up to `cap`, a bitmap of filled bytes
 *     (one bit per stored byte), and a segment map (offset, length, frame) of the pieces that
 *     contributed new bytes, in arrival order (Python sorts it on output).
 *
 * Each segment costs O(its length / 64 + runs it crosses): the bitmap finds unfilled runs
 * with word scans, so 10^6 tiny out-of-order segments stay linear.  Every length taken from
 * the file (payload offset and captured length) is clamped to the mapped buffer before use.
 *
 * reassembly.py holds a pure-Python twin of this file; both follow the same rules step for
 * step (including the memory accounting), and tests compare their output field by field. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fastcap.h"

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

/* A segment held out of order: its stored bytes [start, end), its frame, and a copy of
 * them when they differ from the bytes stored there (the first copy), else NULL. */
typedef struct {
    int64_t start, end, frame;
    uint8_t *copy;
} rhold;

typedef struct {
    uint8_t *data;
    uint64_t *bits;
    rhold *hold;    /* segments held out of order, in arrival order (see advance) */
    int64_t nhold, holdcap;
    int64_t hold_copied; /* bytes in the copies of held segments */
    int64_t *seg_off;
    int64_t *seg_frame;
    int32_t *seg_len;
    int64_t dcap;   /* bytes allocated in data; bits holds (dcap + 63) / 64 words */
    int64_t nseg, segcap;
    int64_t nxt;    /* stream offset one past the highest data byte or FIN sent */
    int64_t rcv;    /* where the bytes taken in order end (a receiver's RCV.NXT), see store */
    int64_t before_start, untraced;
    int64_t syn_frame, fin_frame, rst_frame;
    int64_t first_syn; /* its first segment: 1 a SYN, 0 none, -1 none seen yet */
    int64_t zwp_off, zwp_frame; /* the last zero-window probe's byte, held until settled */
    int64_t fin_off; /* stream offset of the first FIN (when fin_seen) */
    int64_t acked;  /* highest stream offset the peer acknowledged (when has_acked) */
    int64_t rst_acked; /* highest one acknowledged by an RST of the peer's it took, or -1 */
    uint32_t base;  /* sequence number of stream offset 0 */
    uint32_t isn, fin_seq, synack_ack;
    uint16_t win;
    uint8_t has_base, has_isn, fin_seen, fin_acked, win_known, syn_ack_seen;
    uint8_t has_zwp, zwp_byte, has_acked;
    uint8_t hold_mixed; /* some held segment differs from the bytes stored under it */
} rdir;

typedef struct {
    rdir d[2]; /* 0: sent by the flow's endpoint a, 1: by b */
    int64_t index, flow, first_frame, last_frame, first_ts, last_ts, frames;
    int64_t retrans, conflicts, keepalives, zwp, ooo;
    int64_t close_ts, mem;
    int64_t rst_at;       /* stream offset of the reset recorded, in rst_dir */
    int64_t after_first, after_rst; /* resumes a reset connection (see tomb_resumed), or -1 */
    int64_t zdl;          /* when Zeek removes the connection (zeek_end), FC_NO_TS: not due */
    int64_t zcut;         /* the first frame at or past zdl, -1: none */
    uint8_t zst[2];       /* each end's state to Zeek: ZEEK_FIN | ZEEK_RST | ZEEK_DONE */
    int32_t prev, next;   /* LRU list (head = most recent); next doubles as free-list link */
    int32_t lprev, lnext; /* linger list of closed connections (head = oldest close) */
    int32_t first_dir, syn_dir, synack_dir;
    int32_t rst_dir;      /* the direction whose reset is recorded (-1: none; -2: two, or
                           * one sent before anything else: it stays) */
    uint8_t rst, closed, evicted;
} rconn;

/* What a closed connection handed on leaves behind on its flow, so that its late segments
 * (a FIN or ACK resent after the linger, a SYN retried after an RST) start no connection.
 * The records are kept in FC_TOMB_GROUPS groups, a flow's group its id modulo
 * FC_TOMB_GROUPS, of at most FC_TOMB_WAYS records each (FC_TOMB_SLOTS in all, so memory
 * stays bounded whatever the file): a flow's close replaces its own record, and a group
 * full gives its oldest record up.  So a record gives way only to FC_TOMB_WAYS later closes
 * of its group's flows, not to the one flow that shares a slot with it (flow ids are dense:
 * keyed by id alone, a connection closed late lost its record to a flow first seen
 * FC_TOMB_SLOTS flows after it, however few connections had closed since).  A group's
 * records are allocated as its flows close, so a capture of few flows keeps kilobytes. */
#define FC_TOMB_GROUPS 1024
#define FC_TOMB_WAYS 64
#define FC_TOMB_SLOTS (FC_TOMB_GROUPS * FC_TOMB_WAYS)
typedef struct {
    int64_t flow;      /* the flow whose record this is (when used); any int64 id the
                        * caller gives, so no arithmetic on it */
    uint32_t base[2];  /* sequence number of stream offset 0, per direction */
    uint32_t span[2];  /* sequence numbers used past base (data and FIN), capped at 2^32-1 */
    uint32_t isn[2];
    uint32_t acked[2]; /* stream offset the peer acknowledged (an RST's ack too), 0 if none,
                        * capped as span is */
    uint8_t has_base[2], has_isn[2];
    uint8_t fin[2];    /* a FIN was seen (span counts it: the data ends one below) */
    uint8_t used;      /* TOMB_FREE, TOMB_SPENT (a new connection on the flow began: kept
                        * only for what it goes on from) or TOMB_LIVE */
    int64_t rst_first; /* closed by a reset before both FINs were acknowledged: the
                        * connection's first frame (else -1) */
    int64_t rst_frame; /* and the first reset's frame */
} rtomb;
enum { TOMB_FREE, TOMB_SPENT, TOMB_LIVE };

/* One group of records: n of them in use, in order of writing until FC_TOMB_WAYS are, then
 * a ring whose oldest record is at head. */
typedef struct {
    rtomb *rec;
    int32_t cap, n, head;
} rtgroup;

struct fc_reasm {
    int64_t cap, budget, max_open, max_segs, linger_ns;
    rconn *conns;
    rtgroup *tgroups; /* FC_TOMB_GROUPS groups of closed connections' records */
    int64_t late; /* segments of closed connections that started none */
    int64_t beyond; /* segments over FC_WINDOW_MAX past their direction's highest offset */
    int32_t nslots, free_head;
    int32_t lru_head, lru_tail, lin_head, lin_tail;
    int64_t n_open, mem, next_index, now;
    int32_t has_now, failed;
    int64_t *hkeys;
    int32_t *hvals; /* -1: empty */
    int64_t hcap, hcount;
    int32_t *done;
    int64_t ndone, done_cap;
};

/* How far past the highest offset a direction has reached a segment may start and still be
 * taken: 256 MiB, over ten times the largest receive window common stacks grow to (Linux's
 * tcp_rmem maximum is 6 MiB by default, Windows' autotuning 16 MiB).  A sequence number
 * further ahead is damage or another connection's; a receiver drops it, and stored it would
 * make the rest of the stream a gap (and its byte count a billion). */
#define FC_WINDOW_MAX ((int64_t)1 << 28)

/* ---- bitmap ---------------------------------------------------------------------------- */

/* First index in [pos, hi) whose bit equals `want`, or hi.  Requires pos < hi. */
static int64_t next_bit(const uint64_t *b, int64_t pos, int64_t hi, int want)
{
    const uint64_t flip = want ? 0 : ~(uint64_t)0;
    int64_t w = pos >> 6, lastw = (hi - 1) >> 6;
    uint64_t x = (b[w] ^ flip) & (~(uint64_t)0 << (pos & 63));
    for (;;) {
        if (x) {
            int64_t r = (w << 6) + __builtin_ctzll(x);
            return r < hi ? r : hi;
        }
        if (++w > lastw)
            return hi;
        x = b[w] ^ flip;
    }
}

static void set_bits(uint64_t *b, int64_t lo, int64_t hi)
{
    int64_t wl = lo >> 6, wh = (hi - 1) >> 6;
    uint64_t ml = ~(uint64_t)0 << (lo & 63);
    uint64_t mh = ~(uint64_t)0 >> (63 - ((hi - 1) & 63));
    if (wl == wh) {
        b[wl] |= ml & mh;
        return;
    }
    b[wl] |= ml;
    for (int64_t w = wl + 1; w < wh; w++)
        b[w] = ~(uint64_t)0;
    b[wh] |= mh;
}

/* ---- memory ---------------------------------------------------------------------------- */

static int64_t dir_mem(const rdir *d)
{
    return d->dcap + ((d->dcap + 63) / 64) * 8 + d->segcap * FC_SEG_BYTES;
}

static void dir_free(rdir *d)
{
    for (int64_t k = 0; k < d->nhold; k++)
        free(d->hold[k].copy);
    free(d->hold);
    d->hold = NULL;
    d->nhold = 0;
    free(d->data);
    free(d->bits);
    free(d->seg_off);
    free(d->seg_frame);
    free(d->seg_len);
    d->data = NULL;
    d->bits = NULL;
    d->seg_off = d->seg_frame = NULL;
    d->seg_len = NULL;
}

/* Grow the data buffer and bitmap so bytes [0, need) fit; need <= cap. */
static int dir_reserve(fc_reasm *r, rconn *c, rdir *d, int64_t need)
{
    if (need <= d->dcap)
        return 0;
    int64_t ncap = d->dcap ? d->dcap : FC_DATA_INIT;
    while (ncap < need)
        ncap *= 2;
    if (ncap > r->cap)
        ncap = r->cap;
    int64_t ow = (d->dcap + 63) / 64, nw = (ncap + 63) / 64;
    uint8_t *nd = realloc(d->data, (size_t)ncap);
    if (!nd)
        return -1;
    d->data = nd;
    uint64_t *nb = realloc(d->bits, (size_t)nw * 8);
    if (!nb)
        return -1;
    d->bits = nb;
    memset(nd + d->dcap, 0, (size_t)(ncap - d->dcap));
    memset(nb + ow, 0, (size_t)(nw - ow) * 8);
    int64_t before = dir_mem(d);
    d->dcap = ncap;
    c->mem += dir_mem(d) - before;
    r->mem += dir_mem(d) - before;
    return 0;
}

/* Record that frame `fno` supplied bytes [off, off + len). */
static int seg_add(fc_reasm *r, rconn *c, rdir *d, int64_t off, int64_t len, int64_t fno)
{
    int64_t k = d->nseg;
    if (k > 0 && d->seg_frame[k - 1] == fno && d->seg_off[k - 1] + d->seg_len[k - 1] == off) {
        d->seg_len[k - 1] += (int32_t)len;
        return 0;
    }
    if (k == d->segcap) {
        if (d->segcap >= r->max_segs) {
            d->untraced += len;
            return 0;
        }
        int64_t ncap = d->segcap ? d->segcap * 2 : FC_SEG_INIT;
        if (ncap > r->max_segs)
            ncap = r->max_segs;
        int64_t *no = realloc(d->seg_off, (size_t)ncap * 8);
        if (!no)
            return -1;
        d->seg_off = no;
        int64_t *nf = realloc(d->seg_frame, (size_t)ncap * 8);
        if (!nf)
            return -1;
        d->seg_frame = nf;
        int32_t *nl = realloc(d->seg_len, (size_t)ncap * 4);
        if (!nl)
            return -1;
        d->seg_len = nl;
        int64_t grow = (ncap - d->segcap) * FC_SEG_BYTES;
        d->segcap = ncap;
        c->mem += grow;
        r->mem += grow;
    }
    d->seg_off[k] = off;
    d->seg_frame[k] = fno;
    d->seg_len[k] = (int32_t)len;
    d->nseg = k + 1;
    return 0;
}

/* ---- flow map -------------------------------------------------------------------------- */

static inline uint64_t hslot(int64_t key, int64_t hcap)
{
    return ((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 17 & (uint64_t)(hcap - 1);
}

static int32_t hget(const fc_reasm *r, int64_t key)
{
    uint64_t m = (uint64_t)(r->hcap - 1);
    for (uint64_t i = hslot(key, r->hcap);; i = (i + 1) & m) {
        if (r->hvals[i] < 0)
            return -1;
        if (r->hkeys[i] == key)
            return r->hvals[i];
    }
}

static int hput(fc_reasm *r, int64_t key, int32_t val)
{
    if ((r->hcount + 1) * 2 > r->hcap) {
        int64_t ncap = r->hcap * 2;
        int64_t *nk = malloc((size_t)ncap * 8);
        int32_t *nv = malloc((size_t)ncap * 4);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return -1;
        }
        for (int64_t i = 0; i < ncap; i++)
            nv[i] = -1;
        for (int64_t j = 0; j < r->hcap; j++) {
            if (r->hvals[j] < 0)
                continue;
            uint64_t i = hslot(r->hkeys[j], ncap);
            while (nv[i] >= 0)
                i = (i + 1) & (uint64_t)(ncap - 1);
            nk[i] = r->hkeys[j];
            nv[i] = r->hvals[j];
        }
        free(r->hkeys);
        free(r->hvals);
        r->hkeys = nk;
        r->hvals = nv;
        r->hcap = ncap;
    }
    uint64_t m = (uint64_t)(r->hcap - 1);
    uint64_t i = hslot(key, r->hcap);
    while (r->hvals[i] >= 0)
        i = (i + 1) & m;
    r->hkeys[i] = key;
    r->hvals[i] = val;
    r->hcount++;
    return 0;
}

static void hdel(fc_reasm *r, int64_t key)
{
    uint64_t m = (uint64_t)(r->hcap - 1);
    uint64_t i = hslot(key, r->hcap);
    while (r->hvals[i] >= 0 && r->hkeys[i] != key)
        i = (i + 1) & m;
    if (r->hvals[i] < 0)
        return;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & m;
        if (r->hvals[j] < 0)
            break;
        uint64_t home = hslot(r->hkeys[j], r->hcap);
        if (((j - home) & m) >= ((j - i) & m)) {
            r->hkeys[i] = r->hkeys[j];
            r->hvals[i] = r->hvals[j];
            i = j;
        }
    }
    r->hvals[i] = -1;
    r->hcount--;
}

/* ---- lists ----------------------------------------------------------------------------- */

static void lru_unlink(fc_reasm *r, int32_t s)
{
    rconn *c = &r->conns[s];
    if (c->prev >= 0)
        r->conns[c->prev].next = c->next;
    else
        r->lru_head = c->next;
    if (c->next >= 0)
        r->conns[c->next].prev = c->prev;
    else
        r->lru_tail = c->prev;
    c->prev = c->next = -1;
}

static void lru_push_head(fc_reasm *r, int32_t s)
{
    rconn *c = &r->conns[s];
    c->prev = -1;
    c->next = r->lru_head;
    if (r->lru_head >= 0)
        r->conns[r->lru_head].prev = s;
    else
        r->lru_tail = s;
    r->lru_head = s;
}

static void lin_unlink(fc_reasm *r, int32_t s)
{
    rconn *c = &r->conns[s];
    if (c->lprev >= 0)
        r->conns[c->lprev].lnext = c->lnext;
    else
        r->lin_head = c->lnext;
    if (c->lnext >= 0)
        r->conns[c->lnext].lprev = c->lprev;
    else
        r->lin_tail = c->lprev;
    c->lprev = c->lnext = -1;
}

static void lin_push_tail(fc_reasm *r, int32_t s)
{
    rconn *c = &r->conns[s];
    c->lnext = -1;
    c->lprev = r->lin_tail;
    if (r->lin_tail >= 0)
        r->conns[r->lin_tail].lnext = s;
    else
        r->lin_head = s;
    r->lin_tail = s;
}

/* ---- connections ----------------------------------------------------------------------- */

/* The record of `flow` (live or spent), or NULL. */
static rtomb *tomb_find(const fc_reasm *r, int64_t flow)
{
    const rtgroup *g = &r->tgroups[(uint64_t)flow & (FC_TOMB_GROUPS - 1)];
    for (int32_t i = 0; i < g->n; i++)
        if (g->rec[i].used != TOMB_FREE && g->rec[i].flow == flow)
            return &g->rec[i];
    return NULL;
}

/* A place for a new record of `flow`'s group: one never used, else the oldest record's
 * (NULL: out of memory). */
static rtomb *tomb_place(fc_reasm *r, int64_t flow)
{
    rtgroup *g = &r->tgroups[(uint64_t)flow & (FC_TOMB_GROUPS - 1)];
    if (g->n < FC_TOMB_WAYS) {
        if (g->n == g->cap) {
            int32_t ncap = g->cap ? g->cap * 2 : 1;
            rtomb *nr = realloc(g->rec, (size_t)ncap * sizeof(rtomb));
            if (!nr)
                return NULL;
            g->rec = nr;
            g->cap = ncap;
        }
        return &g->rec[g->n++];
    }
    rtomb *t = &g->rec[g->head];
    g->head = (g->head + 1) % FC_TOMB_WAYS;
    return t;
}

/* Hand a connection over to the done list; its buffers live until fc_reasm_done_clear. */
/* Did both ends send their FIN, each before any RST of its own?  Then the connection closed
 * in order, whatever reset came after (closed_by "fin" in session.py). */
static int fins_first(const rconn *c)
{
    for (int k = 0; k < 2; k++) {
        const rdir *d = &c->d[k];
        if (d->fin_frame < 0 || (d->rst_frame >= 0 && d->rst_frame < d->fin_frame))
            return 0;
    }
    return 1;
}

static int conn_finish(fc_reasm *r, int32_t s, int evicted)
{
    if (r->ndone == r->done_cap) {
        int64_t ncap = r->done_cap ? r->done_cap * 2 : 64;
        int32_t *nd = realloc(r->done, (size_t)ncap * 4);
        if (!nd)
            return -1;
        r->done = nd;
        r->done_cap = ncap;
    }
    rconn *c = &r->conns[s];
    lru_unlink(r, s);
    if (c->closed)
        lin_unlink(r, s);
    hdel(r, c->flow);
    r->n_open--;
    r->mem -= c->mem;
    c->evicted = (uint8_t)(evicted && !c->closed);
    r->done[r->ndone++] = s;
    if (c->closed) {
        /* A connection going on past an RST keeps, for an end it never saw bytes from, what
         * that end sent before the RST: the record it went on from (this flow's, unless
         * later closes of its group took its place), so that a dialogue going on past its
         * own RST names it too. */
        rtomb *old = tomb_find(r, c->flow), from;
        int carried = old && c->after_first >= 0;
        if (old) {
            from = *old;
            old->used = TOMB_FREE; /* replaced by the record written now, the newest */
        }
        rtomb *t = tomb_place(r, c->flow);
        if (!t)
            return -1;
        t->flow = c->flow;
        t->used = TOMB_LIVE;
        for (int k = 0; k < 2; k++) {
            const rdir *d = &c->d[k];
            if (carried && !d->has_base) {
                t->base[k] = from.base[k];
                t->span[k] = from.span[k];
                t->isn[k] = from.isn[k];
                t->has_base[k] = from.has_base[k];
                t->has_isn[k] = from.has_isn[k];
                t->fin[k] = from.fin[k];
                t->acked[k] = from.acked[k];
                continue;
            }
            int64_t span = d->nxt + d->fin_seen;
            t->base[k] = d->base;
            t->span[k] = span > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)span;
            t->isn[k] = d->isn;
            t->has_base[k] = d->has_base;
            t->has_isn[k] = d->has_isn;
            t->fin[k] = d->fin_seen;
            int64_t acked = d->has_acked && d->acked > d->rst_acked ? d->acked : d->rst_acked;
            t->acked[k] = acked < 0 ? 0 : acked > (int64_t)UINT32_MAX ? UINT32_MAX
                                                                        : (uint32_t)acked;
        }
        t->rst_first = t->rst_frame = -1;
        /* closed by the RST: after both FINs were acknowledged, or sent before any RST of
         * their ends, the dialogue was over, and an RST then (a stack resetting after its
         * close) leaves none to go on past it */
        if (c->rst && !(c->d[0].fin_acked && c->d[1].fin_acked) && !fins_first(c)) {
            int64_t f0 = c->d[0].rst_frame, f1 = c->d[1].rst_frame;
            t->rst_first = c->first_frame;
            t->rst_frame = f0 >= 0 && (f1 < 0 || f0 < f1) ? f0 : f1;
        }
    }
    return 0;
}

/* Is this segment, on a flow holding no connection, a late one of the closed connection the
 * flow last held: no payload, and either a SYN repeating that direction's ISN or (no SYN) a
 * sequence number within the sequence space that direction used; or a retransmission of its
 * data, whether it closed on FINs or an RST (no SYN or RST, its bytes all below its FIN if it
 * sent one and all acknowledged by the peer, its acknowledgement, if any, within what the peer
 * sent)?  It holds nothing new for either end, a receiver takes none of them as a new
 * connection, and tshark keeps them in the closed connection's stream (it starts a new one
 * only at a SYN).  Bytes never acknowledged may be the dialogue going on past an RST the
 * receiver did not take (see tomb_resumed). */
static int tomb_late(const fc_reasm *r, int64_t flow, int dir, uint32_t seq, uint32_t ack,
                     uint16_t flags, int64_t plen)
{
    const rtomb *t = tomb_find(r, flow);
    if (!t || t->used != TOMB_LIVE)
        return 0;
    if (plen > 0) {
        int64_t end = (int64_t)(uint32_t)(seq - t->base[dir]) + plen;
        if ((flags & (TH_SYN | TH_RST)) || !t->has_base[dir] || end > (int64_t)t->acked[dir] ||
            end > (int64_t)t->span[dir] - t->fin[dir])
            return 0; /* span counts the FIN: the data ends one below it */
        return !(flags & TH_ACK) || !t->has_base[1 - dir] ||
               (uint32_t)(ack - t->base[1 - dir]) <= t->span[1 - dir];
    }
    if (flags & TH_SYN)
        return t->has_isn[dir] && seq == t->isn[dir];
    return t->has_base[dir] && (uint32_t)(seq - t->base[dir]) <= t->span[dir];
}

/* Does this segment, starting a connection on a flow whose last connection closed on an
 * RST, go on with that connection: payload, no SYN, its sequence number within or at the end
 * of what its direction sent, and its acknowledgement (if any) within what the peer sent or
 * up to FC_WINDOW_MAX past it (bytes the capture missed: a receiver acknowledges what
 * reached it, and no window is wider)?  Then the RST was lost, or not taken, past the
 * capture point, and the session that starts here names the closed one (its first frame)
 * and the RST (tshark keeps one stream). */
static const rtomb *tomb_resumed(const fc_reasm *r, int64_t flow, int dir, uint32_t seq,
                                 uint32_t ack, uint16_t flags, int64_t plen)
{
    const rtomb *t = tomb_find(r, flow);
    if (!t || t->used != TOMB_LIVE || t->rst_first < 0 || plen <= 0 ||
        (flags & (TH_SYN | TH_RST)))
        return NULL;
    if (!t->has_base[dir] || (uint32_t)(seq - t->base[dir]) > t->span[dir])
        return NULL;
    if ((flags & TH_ACK) && t->has_base[1 - dir] &&
        (int64_t)(uint32_t)(ack - t->base[1 - dir]) >
            (int64_t)t->span[1 - dir] + FC_WINDOW_MAX)
        return NULL;
    return t;
}

static int32_t conn_new(fc_reasm *r, int64_t flow, int64_t fno, int64_t ts, int32_t dir)
{
    if (r->free_head < 0) {
        int32_t n = r->nslots ? r->nslots * 2 : 64;
        if ((int64_t)n > (int64_t)INT32_MAX / 2)
            return -1;
        rconn *nc = realloc(r->conns, (size_t)n * sizeof(rconn));
        if (!nc)
            return -1;
        r->conns = nc;
        for (int32_t i = n - 1; i >= r->nslots; i--) {
            nc[i].next = r->free_head;
            r->free_head = i;
        }
        r->nslots = n;
    }
    int32_t s = r->free_head;
    rconn *c = &r->conns[s];
    int32_t next_free = c->next;
    if (hput(r, flow, s) < 0)
        return -1;
    rtomb *t = tomb_find(r, flow);
    if (t)
        t->used = TOMB_SPENT; /* a new connection on the flow: the old one's record is spent */
    r->free_head = next_free;
    memset(c, 0, sizeof(*c));
    for (int k = 0; k < 2; k++) {
        c->d[k].syn_frame = c->d[k].fin_frame = c->d[k].rst_frame = c->d[k].rst_acked = -1;
        c->d[k].first_syn = -1;
    }
    c->index = r->next_index++;
    c->flow = flow;
    c->first_frame = fno;
    c->first_ts = c->last_ts = ts; /* FC_NO_TS until a frame with a time comes */
    c->first_dir = dir;
    c->syn_dir = c->synack_dir = c->rst_dir = -1;
    c->after_first = c->after_rst = -1;
    c->zdl = FC_NO_TS;
    c->zcut = -1;
    c->prev = c->next = c->lprev = c->lnext = -1;
    c->mem = FC_CONN_OVERHEAD;
    r->mem += FC_CONN_OVERHEAD;
    r->n_open++;
    lru_push_head(r, s);
    return s;
}

/* Is this SYN-ACK the opening of a direction that so far sent only bare ACKs (no SYN, data,
 * FIN or RST)?  Some stacks acknowledge a SYN before they answer it with their SYN-ACK; the
 * ACK's sequence number then set the direction's base, which the SYN-ACK replaces
 * (_acked_first in Python).  tshark keeps the one stream. */
static int ack_before_synack(const rdir *d, uint16_t flags)
{
    return (flags & TH_ACK) && d->nxt == 0 && !d->fin_seen && d->rst_frame < 0 &&
           d->nhold == 0;
}

/* Is this SYN part of the connection already held for the flow (retransmitted or reordered),
 * rather than the start of a new connection on a reused 4-tuple? */
static int syn_same(const rconn *c, int dir, uint32_t seq, uint32_t ack, uint16_t flags,
                    int64_t plen)
{
    const rdir *d = &c->d[dir], *p = &c->d[1 - dir];
    if (d->has_base && (d->has_isn || !ack_before_synack(d, flags)))
        return d->base == seq + 1;
    /* SYN-ACK: it must acknowledge the peer's first byte, if known, or with TCP Fast Open
     * the data the peer's SYN carried. */
    if (flags & TH_ACK)
        return !p->has_base || ack == p->base ||
               (p->has_isn && (int64_t)(uint32_t)(ack - p->base) <= p->nxt);
    /* Simultaneous open: the peer's own SYN carried no ACK either, and nothing reset the
     * connection since (tshark keeps one stream). */
    if (p->has_isn && !p->syn_ack_seen)
        return !c->rst;
    /* SYN after the SYN-ACK in capture order: the SYN-ACK must acknowledge it (and its data). */
    return p->has_isn && p->syn_ack_seen &&
           (int64_t)(uint32_t)(p->synack_ack - (seq + 1)) <= plen;
}

/* Can the segment map take one more entry (it never shrinks: once full, it stays full)? */
static int seg_room(const fc_reasm *r, const rdir *d)
{
    return d->nseg < d->segcap || d->segcap < r->max_segs;
}

/* Move the in-order point past the held bytes that join it, up to `lim`. */
static int64_t held_end(const rdir *d, int64_t at, int64_t lim)
{
    if (lim > d->dcap)
        lim = d->dcap;
    return at < lim ? next_bit(d->bits, at, lim, 0) : at;
}

/* Held bytes [pos, q) under the segment taken in order, whose bytes are at `src`: replaced
 * when they differ and the segment map has room to name the frame.  Rare, so out of line. */
static __attribute__((noinline)) int replace(fc_reasm *r, rconn *c, rdir *d, int64_t pos,
                                             int64_t q, const uint8_t *src, int64_t fno,
                                             int *conflict)
{
    if (!memcmp(d->data + pos, src, (size_t)(q - pos)))
        return 0;
    *conflict = 1;
    if (!seg_room(r, d))
        return 0;
    memcpy(d->data + pos, src, (size_t)(q - pos));
    return seg_add(r, c, d, pos, q - pos, fno);
}

/* Record a segment held out of order over stored bytes [lo, hi), with a copy of its bytes
 * (at `src`) when they differ from those stored.  No record past FC_HOLD_MAX of them, nor
 * past the segment map's limit (a copy only ever takes effect through the map), nor when
 * its copy would take the direction's copies past its byte cap: a connection's memory stays
 * within twice its data cap, its maps and these records. */
static int hold_add(fc_reasm *r, rconn *c, rdir *d, int64_t lo, int64_t hi, int64_t fno,
                    const uint8_t *src)
{
    int64_t limit = r->max_segs < FC_HOLD_MAX ? r->max_segs : FC_HOLD_MAX;
    if (src && d->hold_copied + (hi - lo) > r->cap)
        return 0;
    if (d->nhold == d->holdcap) {
        if (d->holdcap >= limit)
            return 0;
        int64_t ncap = d->holdcap ? d->holdcap * 2 : FC_HOLD_INIT;
        if (ncap > limit)
            ncap = limit;
        rhold *nh = realloc(d->hold, (size_t)ncap * sizeof(rhold));
        if (!nh)
            return -1;
        d->hold = nh;
        c->mem += (ncap - d->holdcap) * FC_HOLD_BYTES;
        r->mem += (ncap - d->holdcap) * FC_HOLD_BYTES;
        d->holdcap = ncap;
    }
    rhold *h = &d->hold[d->nhold];
    h->start = lo;
    h->end = hi;
    h->frame = fno;
    h->copy = NULL;
    if (src) {
        h->copy = malloc((size_t)(hi - lo));
        if (!h->copy)
            return -1;
        memcpy(h->copy, src, (size_t)(hi - lo));
        d->hold_copied += hi - lo;
        c->mem += hi - lo;
        r->mem += hi - lo;
    }
    d->nhold++;
    return 0;
}

/* The bytes taken in order reach `p`: move the in-order point past the held bytes joining
 * it, up to `lim`.  Where held segments differ, the bytes are chosen as tshark's follow
 * chooses them: at each point reached, the segment held first among those covering it
 * gives its bytes up to its end (unless the segment map is full).  Records the in-order
 * point has passed are dropped. */
static int advance(fc_reasm *r, rconn *c, rdir *d, int64_t p, int64_t lim)
{
    if (d->hold_mixed) {
        if (lim > d->dcap)
            lim = d->dcap;
        int conflict = 0;
        for (;;) {
            int64_t k = 0, next = lim;
            while (k < d->nhold && !(d->hold[k].start <= p && p < d->hold[k].end)) {
                if (d->hold[k].start > p && d->hold[k].start < next)
                    next = d->hold[k].start;
                k++;
            }
            if (k < d->nhold) {
                const rhold *h = &d->hold[k];
                if (h->copy &&
                    replace(r, c, d, p, h->end, h->copy + (p - h->start), h->frame,
                            &conflict) < 0)
                    return -1;
                p = h->end;
                continue;
            }
            /* bytes no record covers (records past FC_HOLD_MAX): their first copy */
            int64_t q = held_end(d, p, next);
            if (q == p)
                break;
            p = q;
        }
    } else {
        p = held_end(d, p, lim);
    }
    d->rcv = p;
    int64_t kept = 0;
    for (int64_t k = 0; k < d->nhold; k++) {
        rhold *h = &d->hold[k];
        if (h->end > p) {
            d->hold[kept++] = *h;
        } else if (h->copy) {
            free(h->copy);
            d->hold_copied -= h->end - h->start;
            c->mem -= h->end - h->start;
            r->mem -= h->end - h->start;
        }
    }
    d->nhold = kept;
    if (!kept)
        d->hold_mixed = 0;
    return 0;
}

/* Store a data segment at stream offset o: `len` bytes by sequence space, `caplen` of them
 * present at `p`.  Bytes below `rcv` (taken in order) keep their first copy.  A segment
 * reaching past `rcv` with captured bytes is the one taken in order, as a receiver (Linux)
 * and tshark's follow take it: its bytes from `rcv` on replace differing bytes held from
 * out-of-order segments (unless the segment map is full, so that it names every byte's
 * frame), and `rcv` moves to its end and past the held bytes joining it; out-of-order
 * segments store their first copy, and where they differ, `advance` picks the copy tshark's
 * follow shows as `rcv` passes them.  Conflicting overlaps, retransmissions and
 * out-of-order fills are counted against the direction's highest offset before this
 * segment. */
static int store(fc_reasm *r, rconn *c, rdir *d, int64_t o, int64_t len, int64_t caplen,
                 const uint8_t *p, int64_t fno)
{
    int64_t e = d->nxt, end = o + len;
    if (o < 0)
        d->before_start += (end < 0 ? end : 0) - o;
    int64_t lo = o > 0 ? o : 0, hi = o + caplen;
    if (hi > r->cap)
        hi = r->cap;
    /* taken in order: starts at or before rcv, and its captured bytes reach past it
     * (caplen <= len, so it ends past rcv too) */
    int in_order = (uint64_t)(d->rcv - o) < (uint64_t)caplen;
    int64_t w = in_order ? d->rcv : hi; /* bytes from w on replace differing held ones */
    int64_t new_below = 0;
    int conflict = 0;
    if (lo < hi) {
        if (dir_reserve(r, c, d, hi) < 0)
            return -1;
        int64_t pos = lo;
        while (pos < hi) {
            int filled = (int)((d->bits[pos >> 6] >> (pos & 63)) & 1);
            int64_t q = next_bit(d->bits, pos, hi, !filled);
            if (filled) {
                if (pos < w && q > w)
                    q = w;
                if (pos >= w) {
                    if (replace(r, c, d, pos, q, p + (pos - o), fno, &conflict) < 0)
                        return -1;
                } else if (!conflict &&
                           memcmp(d->data + pos, p + (pos - o), (size_t)(q - pos))) {
                    conflict = 1;
                }
            } else {
                memcpy(d->data + pos, p + (pos - o), (size_t)(q - pos));
                set_bits(d->bits, pos, q);
                if (seg_add(r, c, d, pos, q - pos, fno) < 0)
                    return -1;
                if (pos < e)
                    new_below += (q < e ? q : e) - pos;
            }
            pos = q;
        }
    }
    c->conflicts += conflict;
    if (o > d->rcv && lo < hi) { /* held out of order */
        if (hold_add(r, c, d, lo, hi, fno, conflict ? p + (lo - o) : NULL) < 0)
            return -1;
        d->hold_mixed |= (uint8_t)conflict;
    }
    if (o < e) {
        if (new_below > 0)
            c->ooo++;
        else
            c->retrans++;
    }
    if (end > d->nxt)
        d->nxt = end;
    if (in_order)
        return advance(r, c, d, end, e);
    return 0;
}

/* The peer acknowledged up to offset `a` of this direction: the held bytes below it were
 * taken in order by the receiver (the capture missed what came before them), so its
 * in-order point moves past them, as tshark's follow moves it past its held segments. */
static __attribute__((noinline)) int settle(fc_reasm *r, rconn *c, rdir *d, int64_t a)
{
    int64_t lim = d->nxt < d->dcap ? d->nxt : d->dcap;
    while (d->rcv < lim) {
        int64_t f = next_bit(d->bits, d->rcv, lim, 1);
        if (f >= a || f >= lim)
            return 0;
        if (advance(r, c, d, f, lim) < 0)
            return -1;
    }
    return 0;
}

/* Did the receiver take this reset, as far as the capture tells?  0: no, 1: the capture
 * cannot tell, 2: yes.  A receiver resets only on an RST at exactly its RCV.NXT (RFC 5961
 * 3.2, RFC 9293 3.10.7.4): below it the RST is out of its window, past it a challenge ACK
 * answers it, and the connection goes on.  RCV.NXT lies between what the receiver last
 * acknowledged and the end of what this direction sent (data and FIN): an RST outside that
 * span is not taken, and where the two meet (everything sent was acknowledged) RCV.NXT is
 * known and an RST there is taken.  At the end of data not yet acknowledged it is not
 * known whether the data arrived; it is taken all the same, as the end it nearly always is
 * (a reply or a TLS alert and an RST right behind it, before the peer's delayed ACK):
 * held open, every such connection would hold the sessions after it until the capture
 * ends.  If the frames after it show it was not the end, rst_undone forgets it while the
 * connection lingers.  From an end that sent nothing but resets, the peer's opening tells: its SYN
 * is taken back by an RST whose ACK acknowledges it (SYN-SENT), its SYN-ACK by one at the
 * sequence number that SYN-ACK acknowledged (SYN-RECEIVED); with neither, nothing does. */
static int rst_taken(const rconn *c, int dir, uint32_t seq, uint32_t ack, uint16_t flags)
{
    const rdir *d = &c->d[dir], *peer = &c->d[1 - dir];
    if (!d->has_base) {
        if (!peer->has_isn)
            return 1;
        if (peer->syn_ack_seen)
            return seq == peer->synack_ack ? 2 : 0;
        return (flags & TH_ACK) && (int64_t)(uint32_t)(ack - (peer->isn + 1)) <= peer->nxt
                   ? 2 : 0;
    }
    int64_t sent = d->fin_seen && d->fin_off + 1 > d->nxt ? d->fin_off + 1 : d->nxt;
    if (d->has_acked && d->acked > sent)
        sent = d->acked; /* the receiver had bytes the capture missed */
    int64_t at = d->nxt + (int32_t)((uint32_t)(seq - d->base) - (uint32_t)d->nxt);
    /* before the ISN: no RCV.NXT of this connection lies there (an RST for the connection
     * the 4-tuple held before, at the sequence number its peer last acknowledged) */
    if ((d->has_acked && at < d->acked) || at > sent || (d->has_isn && at < 0))
        return 0;
    return d->has_acked && d->acked == sent ? 2 : 1;
}

/* Zeek's endpoint states, as far as its end of a connection goes: closed by a FIN, reset, and
 * its close reported (TCP_Endpoint::did_close); init-bare.zeek's tcp_close_delay. */
enum { ZEEK_FIN = 1, ZEEK_RST = 2, ZEEK_DONE = 4 };
#define ZEEK_CLOSE_DELAY_NS INT64_C(5000000000)
/* its tcp_inactivity_timeout: a connection quiet that long is removed (on the mail ports
 * conn/inactivity.zeek leaves it as it is) */
#define ZEEK_INACTIVITY_NS INT64_C(300000000000)

/* Where Zeek ends the connection (_zeek_end in Python): tcp_close_delay after an end closes
 * it, whatever this core makes of that RST or FIN (TCPSessionAdapter's UpdateStateMachine and
 * ConnectionClosed: an RST from an end not reset, or not closed with its peer, closes that
 * end and completes the close; a FIN closes its end, and completes the close once the peer
 * closed or sent nothing).  Each close that completes it sets Zeek's ConnDeleteTimer anew; a
 * frame at or past that time comes after Zeek removed the connection (its timers expire
 * before the packet is read) and begins another Zeek connection there (zcut). */
static void zeek_end(rconn *c, int dir, int64_t fno, int64_t ts, uint16_t flags)
{
    if (c->zdl != FC_NO_TS && ts != FC_NO_TS && ts >= c->zdl) {
        c->zcut = fno;
        return;
    }
    uint8_t me = c->zst[dir], peer = c->zst[1 - dir];
    if (flags & TH_RST) {
        if ((me & ZEEK_RST) || ((me & ZEEK_FIN) && (peer & (ZEEK_FIN | ZEEK_RST)) == ZEEK_FIN))
            return; /* reset already, or both ends closed by FINs (UpdateClosedState) */
        me |= ZEEK_RST;
    } else if (flags & TH_FIN) {
        if (me & (ZEEK_RST | ZEEK_FIN))
            return;
        me |= ZEEK_FIN;
        if (peer & ZEEK_FIN) /* the peer's FIN then RST: a normal close after all */
            peer &= (uint8_t)~ZEEK_RST;
    } else {
        return;
    }
    c->zst[1 - dir] = peer;
    if (me & ZEEK_DONE) {
        c->zst[dir] = me;
        return;
    }
    c->zst[dir] = me | ZEEK_DONE;
    if ((me & ZEEK_RST) || (peer & ZEEK_DONE) || c->d[1 - dir].first_syn < 0)
        c->zdl = ts == FC_NO_TS ? FC_NO_TS
                 : ts > INT64_MAX - ZEEK_CLOSE_DELAY_NS ? INT64_MAX : ts + ZEEK_CLOSE_DELAY_NS;
}

/* A reset recorded (see rst_taken) that the frames after it show was not the end: data
 * past it from its sender, or an acknowledgement past it from the receiver.  It is
 * forgotten and the connection is open again (the feed loop takes it off the linger
 * queue), so that it is not handed on 1 s after the RST while the dialogue goes on, and
 * tshark's one stream stays one session. */
static void rst_undone(rconn *c)
{
    c->d[c->rst_dir].rst_frame = -1;
    c->rst = 0;
    c->rst_dir = -1;
}

static int process(fc_reasm *r, rconn *c, int dir, int64_t fno, uint32_t seq, uint32_t ack,
                   uint16_t flags, uint16_t win, int64_t plen, int64_t caplen,
                   const uint8_t *p)
{
    rdir *d = &c->d[dir], *peer = &c->d[1 - dir];
    if (d->first_syn < 0)
        d->first_syn = (flags & TH_SYN) != 0;
    if (flags & TH_RST) {
        int taken = rst_taken(c, dir, seq, ack, flags);
        if (!taken)
            return 0; /* the connection goes on (see rst_taken) */
        if (c->rst_dir == -1 && c->d[0].rst_frame < 0 && c->d[1].rst_frame < 0) {
            c->rst_dir = d->has_base ? dir : -2;
            c->rst_at = d->has_base ? d->nxt + (int32_t)((uint32_t)(seq - d->base) -
                                                         (uint32_t)d->nxt) : 0;
        } else if (c->rst_dir != dir) {
            c->rst_dir = -2; /* both ends reset, or the first unplaced: none is undone */
        }
        if (d->rst_frame < 0)
            d->rst_frame = fno;
        if ((flags & TH_ACK) && peer->has_base) { /* what the RST's sender had received */
            int64_t a = peer->nxt + (int32_t)((uint32_t)(ack - peer->base) - (uint32_t)peer->nxt);
            if (a > peer->rst_acked)
                peer->rst_acked = a;
        }
        c->rst = 1;
        return 0;
    }
    if (!(flags & TH_SYN) && d->has_base &&
        (int32_t)((uint32_t)(seq - d->base) - (uint32_t)d->nxt) > FC_WINDOW_MAX) {
        r->beyond++; /* out of any receive window: dropped whole, its ACK too */
        return 0;
    }
    /* From an end not yet begun, once the peer's SYN was seen: a segment whose ACK lies
     * before that SYN's end, or past all the peer sent and any window beyond it (bytes the
     * capture missed), is not acceptable to the peer, which drops it (SYN-SENT, RFC 9293
     * 3.10.7.3): the connection the 4-tuple held before, its FIN sent again before the new
     * SYN-ACK, say.  Taken, it would begin this end's stream at the old sequence number,
     * and the SYN-ACK would then start another connection. */
    if (!(flags & TH_SYN) && !d->has_base && peer->has_isn && (flags & TH_ACK) &&
        (int64_t)(uint32_t)(ack - peer->base) > peer->nxt + FC_WINDOW_MAX)
        return 0;
    if ((flags & TH_ACK) && peer->has_base) {
        int64_t a = peer->nxt + (int32_t)((uint32_t)(ack - peer->base) - (uint32_t)peer->nxt);
        if (!peer->has_acked || a > peer->acked) {
            peer->acked = a;
            peer->has_acked = 1;
        }
        if (c->rst_dir == 1 - dir && a > c->rst_at)
            rst_undone(c); /* the receiver has bytes past the reset: it did not take it */
    }
    if ((flags & TH_ACK) && peer->fin_seen && (int32_t)(ack - (peer->fin_seq + 1)) >= 0)
        peer->fin_acked = 1;
    if (peer->rcv < peer->nxt && (flags & TH_ACK)) /* bytes held: peer->base is known */
        if (settle(r, c, peer,
                   peer->nxt + (int32_t)((uint32_t)(ack - peer->base) - (uint32_t)peer->nxt)) < 0)
            return -1;
    d->win = win;
    d->win_known = 1;
    uint32_t sdata = seq;
    if (flags & TH_SYN) {
        if (flags & TH_ACK) {
            if (c->synack_dir < 0)
                c->synack_dir = dir;
        } else if (c->syn_dir < 0) {
            c->syn_dir = dir;
        }
        if (d->has_isn) {
            c->retrans++; /* a repeated SYN (syn_same vouched for its ISN) */
        } else {
            if (d->has_base)
                d->has_acked = 0; /* after bare ACKs (ack_before_synack) */
            d->base = seq + 1;
            d->has_base = 1;
            d->isn = seq;
            d->has_isn = 1;
            d->syn_frame = fno;
            if (flags & TH_ACK) {
                d->syn_ack_seen = 1;
                d->synack_ack = ack;
            }
        }
        sdata = seq + 1;
    } else if (!d->has_base) {
        d->base = seq;
        d->has_base = 1;
    }
    int64_t e = d->nxt;
    int64_t o = e + (int64_t)(int32_t)((uint32_t)(sdata - d->base) - (uint32_t)e);
    if (c->rst_dir == dir && plen > 0 && o + plen > c->rst_at)
        rst_undone(c); /* its sender went on past the reset: it was not the end */
    int plain = !(flags & (TH_SYN | TH_FIN));
    if (plain && plen <= 1 && o == e - 1) {
        c->keepalives++;
        return 0;
    }
    if (d->fin_seen) { /* nothing is sent after a FIN: bytes past it are not the stream's */
        int64_t room = d->fin_off > o ? d->fin_off - o : 0;
        if (plen > room)
            plen = room;
        if (caplen > room)
            caplen = room;
    }
    if (plain && plen == 1 && o == e && peer->win_known && peer->win == 0) {
        /* A zero-window probe is counted and its byte held: it is resent as data once the
         * window opens, unless the receiver had room and kept it; then the sender goes on
         * after it and the byte is the probe's. */
        c->zwp++;
        d->has_zwp = caplen > 0;
        d->zwp_off = o;
        d->zwp_frame = fno;
        d->zwp_byte = caplen > 0 ? p[0] : 0;
        return 0;
    }
    if (d->has_zwp && o > d->zwp_off) { /* the sender went on after the probe's byte */
        d->has_zwp = 0;
        if (store(r, c, d, d->zwp_off, 1, 1, &d->zwp_byte, d->zwp_frame) < 0)
            return -1;
    } else if (d->has_zwp && o + plen > d->zwp_off) { /* the byte comes again as data */
        d->has_zwp = 0;
    }
    if (plen > 0 && store(r, c, d, o, plen, caplen, p, fno) < 0)
        return -1;
    if (flags & TH_FIN) {
        /* a FIN ending before the direction's first byte (before its ISN, say: the FIN of a
         * connection the 4-tuple held before, sent again) is not this connection's end */
        if (!d->fin_seen && o + plen >= 0) {
            d->fin_seen = 1;
            d->fin_seq = sdata + (uint32_t)plen;
            d->fin_frame = fno;
            d->fin_off = o + plen;
        }
        if (o + plen > d->nxt && o + plen <= d->fin_off)
            d->nxt = o + plen;
    }
    return 0;
}

/* ---- public API ------------------------------------------------------------------------ */

fc_reasm *fc_reasm_new(int64_t cap, int64_t budget, int64_t max_open, int64_t max_segs,
                       int64_t linger_ns)
{
    if (cap < 0 || cap > ((int64_t)1 << 30) || max_open < 1 || max_open > ((int64_t)1 << 28) ||
        max_segs < 0 || linger_ns < 0)
        return NULL;
    fc_reasm *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cap = cap;
    r->budget = budget;
    r->max_open = max_open;
    r->max_segs = max_segs;
    r->linger_ns = linger_ns;
    r->free_head = r->lru_head = r->lru_tail = r->lin_head = r->lin_tail = -1;
    r->hcap = 64;
    r->hkeys = malloc((size_t)r->hcap * 8);
    r->hvals = malloc((size_t)r->hcap * 4);
    r->tgroups = calloc(FC_TOMB_GROUPS, sizeof(rtgroup));
    if (!r->hkeys || !r->hvals || !r->tgroups) {
        free(r->hkeys);
        free(r->hvals);
        free(r->tgroups);
        free(r);
        return NULL;
    }
    for (int64_t i = 0; i < r->hcap; i++)
        r->hvals[i] = -1;
    return r;
}

void fc_reasm_free(fc_reasm *r)
{
    if (!r)
        return;
    for (int32_t s = r->lru_head; s >= 0; s = r->conns[s].next)
        for (int k = 0; k < 2; k++)
            dir_free(&r->conns[s].d[k]);
    for (int64_t i = 0; i < r->ndone; i++)
        for (int k = 0; k < 2; k++)
            dir_free(&r->conns[r->done[i]].d[k]);
    free(r->conns);
    free(r->hkeys);
    free(r->hvals);
    for (int i = 0; i < FC_TOMB_GROUPS; i++)
        free(r->tgroups[i].rec);
    free(r->tgroups);
    free(r->done);
    free(r);
}

int64_t fc_reasm_feed(fc_reasm *r, const uint8_t *buf, int64_t buf_len, const fc_tcp_rows *rows,
                      int64_t n)
{
    if (r->failed)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t fno = rows->frame_no[i], ts = rows->ts_ns[i], flow = rows->flow[i];
        int dir = rows->from_a[i] ? 0 : 1;
        uint32_t seq = rows->seq[i], ack = rows->ack[i];
        uint16_t flags = rows->flags[i];
        int64_t plen = rows->payload_len[i] > 0 ? rows->payload_len[i] : 0;
        int64_t caplen = rows->payload_caplen[i] > 0 ? rows->payload_caplen[i] : 0;
        int64_t foff = rows->payload_file_off[i];
        if (caplen > plen)
            caplen = plen;
        if (foff < 0 || foff > buf_len)
            caplen = 0;
        else if (caplen > buf_len - foff)
            caplen = buf_len - foff;
        const uint8_t *p = caplen ? buf + foff : buf;

        int dated = ts != FC_NO_TS; /* a frame without a time moves no clock */
        if (dated && (!r->has_now || ts > r->now)) {
            r->now = ts;
            r->has_now = 1;
        }
        while (r->lin_head >= 0 &&
               /* unsigned: the gap between clamped timestamps can exceed INT64_MAX */
               (uint64_t)r->now - (uint64_t)r->conns[r->lin_head].close_ts >
                   (uint64_t)r->linger_ns)
            if (conn_finish(r, r->lin_head, 0) < 0)
                goto fail;

        int32_t s = hget(r, flow);
        if (s >= 0 && (flags & TH_SYN) && !(flags & TH_RST) &&
            !syn_same(&r->conns[s], dir, seq, rows->ack[i], flags, plen)) {
            if (conn_finish(r, s, 0) < 0)
                goto fail;
            s = -1;
        }
        if (s < 0) {
            /* A reset with no connection held for its flow (one that closed and lingered out,
             * or began before the capture) starts none: it carries nothing to read. */
            if (flags & TH_RST)
                continue;
            /* Nor does a bare segment (FIN, ACK, a SYN retried with the same ISN) or a data
             * retransmission of the closed connection this flow last held, arriving after
             * its linger: counted. */
            if (tomb_late(r, flow, dir, seq, rows->ack[i], flags, plen)) {
                r->late++;
                continue;
            }
            const rtomb *t = tomb_resumed(r, flow, dir, seq, rows->ack[i], flags, plen);
            int64_t after_first = t ? t->rst_first : -1, after_rst = t ? t->rst_frame : -1;
            if (r->n_open >= r->max_open && conn_finish(r, r->lru_tail, 1) < 0)
                goto fail;
            s = conn_new(r, flow, fno, ts, dir);
            if (s < 0)
                goto fail;
            r->conns[s].after_first = after_first;
            r->conns[s].after_rst = after_rst;
        } else {
            lru_unlink(r, s);
            lru_push_head(r, s);
        }
        rconn *c = &r->conns[s];
        c->frames++;
        c->last_frame = fno;
        if (c->zcut < 0 && dated && c->last_ts != FC_NO_TS && ts >= c->last_ts &&
            (uint64_t)ts - (uint64_t)c->last_ts >= (uint64_t)ZEEK_INACTIVITY_NS)
            c->zcut = fno; /* Zeek's inactivity timer removed it (Session::InactivityTimer) */
        if (dated) {
            if (c->first_ts == FC_NO_TS)
                c->first_ts = ts;
            c->last_ts = ts;
        }
        if (c->zcut < 0 && ((flags & (TH_RST | TH_FIN)) || c->zdl != FC_NO_TS))
            zeek_end(c, dir, fno, dated ? ts : c->last_ts, flags); /* else a no-op */
        if (process(r, c, dir, fno, seq, ack, flags, rows->window[i], plen, caplen, p) < 0)
            goto fail;
        int ended = c->rst || (c->d[0].fin_acked && c->d[1].fin_acked);
        if (!c->closed && ended) {
            c->closed = 1;
            c->close_ts = r->now;
            lin_push_tail(r, s);
        } else if (c->closed && !ended) { /* a reset undone (rst_undone) */
            c->closed = 0;
            lin_unlink(r, s);
        }
        while (r->mem > r->budget && r->lru_tail >= 0 && r->lru_tail != s)
            if (conn_finish(r, r->lru_tail, 1) < 0)
                goto fail;
    }
    return r->ndone;
fail:
    r->failed = 1;
    return -1;
}

int64_t fc_reasm_finish(fc_reasm *r)
{
    if (r->failed)
        return -1;
    while (r->lru_head >= 0)
        if (conn_finish(r, r->lru_head, 0) < 0) {
            r->failed = 1;
            return -1;
        }
    return r->ndone;
}

/* Hand over every held connection numbered below `index`, as evicted unless closed: the
 * caller has moved on past where they began (an earlier file of a ring buffer) and will not
 * wait for them.  Returns the length of the done list, or -1. */
int64_t fc_reasm_evict_before(fc_reasm *r, int64_t index)
{
    if (r->failed)
        return -1;
    int32_t s = r->lru_head;
    while (s >= 0) {
        int32_t next = r->conns[s].next; /* conn_finish unlinks s but keeps its slot */
        if (r->conns[s].index < index && conn_finish(r, s, 1) < 0) {
            r->failed = 1;
            return -1;
        }
        s = next;
    }
    return r->ndone;
}

int64_t fc_reasm_mem(const fc_reasm *r)
{
    return r->mem;
}

int64_t fc_reasm_open(const fc_reasm *r)
{
    return r->n_open;
}

int64_t fc_reasm_late(const fc_reasm *r)
{
    return r->late;
}

int64_t fc_reasm_beyond(const fc_reasm *r)
{
    return r->beyond;
}

/* Whether bytes [0, len) are all stored, word by word: lets the caller skip the fill map. */
static int64_t dir_complete(const rdir *d, int64_t len)
{
    if (len == 0)
        return 1;
    if (len > d->dcap || d->bits == NULL)
        return 0;
    int64_t words = len >> 6;
    for (int64_t w = 0; w < words; w++)
        if (d->bits[w] != ~(uint64_t)0)
            return 0;
    int64_t rest = len & 63;
    if (rest) {
        uint64_t mask = ((uint64_t)1 << rest) - 1;
        if ((d->bits[words] & mask) != mask)
            return 0;
    }
    return 1;
}

int32_t fc_reasm_done_info(const fc_reasm *r, int64_t i, fc_conn_info *out)
{
    if (i < 0 || i >= r->ndone)
        return -1;
    const rconn *c = &r->conns[r->done[i]];
    out->index = c->index;
    out->flow = c->flow;
    out->first_frame = c->first_frame;
    out->last_frame = c->last_frame;
    out->first_ts_ns = c->first_ts;
    out->last_ts_ns = c->last_ts;
    out->frames = c->frames;
    out->retransmissions = c->retrans;
    out->conflicting_overlaps = c->conflicts;
    out->keepalives = c->keepalives;
    out->zero_window_probes = c->zwp;
    out->out_of_order = c->ooo;
    out->evicted = c->evicted;
    out->first_dir = c->first_dir;
    out->syn_dir = c->syn_dir;
    out->synack_dir = c->synack_dir;
    out->after_first = c->after_first;
    out->after_rst = c->after_rst;
    out->zeek_cut = c->zcut;
    for (int k = 0; k < 2; k++) {
        const rdir *d = &c->d[k];
        fc_dir_info *o = &out->dir[k];
        o->seen_bytes = d->nxt > 0 ? d->nxt : 0;
        o->data_len = o->seen_bytes < r->cap ? o->seen_bytes : r->cap;
        o->n_segs = d->nseg;
        o->before_start = d->before_start;
        o->untraced = d->untraced;
        o->isn = d->has_isn ? (int64_t)d->isn : -1;
        o->syn_frame = d->syn_frame;
        o->fin_frame = d->fin_frame;
        o->rst_frame = d->rst_frame;
        o->first_syn = d->first_syn;
        o->complete = dir_complete(d, o->data_len);
        o->seg_sorted = 1;
        for (int64_t j = 1; j < d->nseg; j++) {
            if (d->seg_off[j] < d->seg_off[j - 1]) {
                o->seg_sorted = 0;
                break;
            }
        }
    }
    return 0;
}

/* Stored bytes of one direction, valid until fc_reasm_done_clear: *avail bytes are readable
 * (fewer than data_len when nothing was stored near the end; the rest reads as zero). */
const uint8_t *fc_reasm_done_data(const fc_reasm *r, int64_t i, int32_t dir, int64_t *avail)
{
    *avail = 0;
    if (i < 0 || i >= r->ndone || dir < 0 || dir > 1)
        return NULL;
    const rdir *d = &r->conns[r->done[i]].d[dir];
    int64_t len = d->nxt > 0 ? d->nxt : 0;
    if (len > r->cap)
        len = r->cap;
    *avail = len < d->dcap ? len : d->dcap;
    return d->data;
}

/* Copy one direction's fill map, filled[(data_len + 7) / 8] (bit i of byte j is stream byte
 * 8j+i), and its n_segs segment-map entries in arrival order. */
int32_t fc_reasm_done_copy(const fc_reasm *r, int64_t i, int32_t dir, uint8_t *filled,
                           int64_t *seg_off, int32_t *seg_len, int64_t *seg_frame)
{
    if (i < 0 || i >= r->ndone || dir < 0 || dir > 1)
        return -1;
    const rdir *d = &r->conns[r->done[i]].d[dir];
    int64_t len = d->nxt > 0 ? d->nxt : 0;
    if (len > r->cap)
        len = r->cap;
    int64_t nbytes = filled ? (len + 7) / 8 : 0; /* NULL: the caller knows it is complete */
    for (int64_t j = 0; j < nbytes; j++) {
        int64_t bit = j * 8;
        filled[j] = bit < d->dcap ? (uint8_t)(d->bits[bit >> 6] >> (bit & 63)) : 0;
    }
    if (filled && (len & 7))
        filled[nbytes - 1] &= (uint8_t)((1u << (len & 7)) - 1);
    if (d->nseg > 0) {
        memcpy(seg_off, d->seg_off, (size_t)d->nseg * 8);
        memcpy(seg_len, d->seg_len, (size_t)d->nseg * 4);
        memcpy(seg_frame, d->seg_frame, (size_t)d->nseg * 8);
    }
    return 0;
}

void fc_reasm_done_release(fc_reasm *r, int64_t i)
{
    if (i < 0 || i >= r->ndone)
        return;
    for (int k = 0; k < 2; k++) {
        rdir *d = &r->conns[r->done[i]].d[k];
        dir_free(d);
        d->dcap = d->segcap = d->nseg = 0; /* later reads see an empty direction */
    }
}

void fc_reasm_done_clear(fc_reasm *r)
{
    for (int64_t i = 0; i < r->ndone; i++) {
        int32_t s = r->done[i];
        for (int k = 0; k < 2; k++)
            dir_free(&r->conns[s].d[k]);
        r->conns[s].next = r->free_head;
        r->free_head = s;
    }
    r->ndone = 0;
}
