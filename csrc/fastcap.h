/* fastcap native API.  This file is both the C header and the cffi cdef: keep it free of
 * preprocessor lines other than comments so build_native.py can feed it to cdef() verbatim. */

/* Per-window output columns: Python allocates them, C fills rows [0, cap). */
typedef struct {
    int64_t  *offset;      /* file offset of the first packet byte */
    uint32_t *caplen;      /* bytes present in the file */
    uint32_t *orig_len;    /* length on the wire */
    int64_t  *ts_ns;       /* nanoseconds since the epoch (0 when the block has none) */
    uint32_t *iface;       /* global interface index */
    int64_t  *frame_no;    /* 1-based, as Wireshark numbers frames */
    uint8_t  *flags;       /* FC_F_* bits */
    uint8_t  *slab;        /* cap rows of slab_width bytes: packet head, zero-filled */
    int64_t   cap;
    int32_t   slab_width;
} fc_cols;

/* One pcapng interface of the current section, as Python parsed it from its IDB. */
typedef struct {
    uint32_t snaplen;
    int32_t  tsres_pow2;   /* 0: units are 10^-exp s, 1: units are 2^-exp s */
    int32_t  tsres_exp;
    int64_t  tsoffset_s;
    uint32_t global_index;
} fc_iface;

/* Why a walk stopped, and where. offset is the next byte to read (FULL, END) or the start
 * of the record that could not be used (the other codes). */
typedef struct {
    int32_t code;
    int64_t offset;
    int64_t next_frame;    /* in: first frame number to assign; out: the next one */
    int64_t detail;        /* TRUNCATED: bytes the record needs; CORRUPT: the bad length;
                              BLOCK: the block type; BAD_IFACE: the interface id */
    int32_t in_order;      /* out: 1 when fc_read_in_order read the window's pages first */
    /* pcapng blocks the caller only counts by type (not a section header, interface,
     * secrets, packet or frame-like block) are stepped over here, up to quiet_max types a
     * walk (in; 0: every such block stops the walk with FC_BLOCK, at most 8): their types
     * and counts, in the order first met (out) */
    int32_t  quiet_max;
    /* in: 1 when bytes may follow len (a range's or a stream piece's end, not the data's):
     * a block whose verdict needs bytes past len then stops the walk with FC_TRUNCATED,
     * detail the bytes it needs, to be decided with them; 0: len is the end of the data */
    int32_t  more;
    int32_t  n_quiet;
    uint32_t quiet_type[8];
    int64_t  quiet_count[8];
} fc_status;

enum fc_walk_code {
    FC_FULL = 0,        /* the window is full; call again from offset */
    FC_END = 1,         /* clean end of data */
    FC_TRUNCATED = 2,   /* the record at offset runs past the end of the file */
    FC_CORRUPT = 3,     /* the record at offset has an impossible length */
    FC_BLOCK = 4,       /* a pcapng block that is not a packet, or in a pcap another
                           capture's file header (files concatenated): the caller parses it */
    FC_BAD_IFACE = 5    /* a pcapng packet names an interface the section does not have */
};

enum fc_frame_flag {
    FC_F_NO_TS = 1,        /* Simple Packet Block: no timestamp */
    FC_F_SNAPPED = 2,      /* caplen < orig_len */
    FC_F_OVER_SNAPLEN = 4  /* caplen > the snaplen the header declares */
};

/* What the reassembler charges against its memory budget; reassembly.py reads the same
 * values through cffi, so both cores evict at the same frame. */
enum fc_reasm_acct {
    FC_CONN_OVERHEAD = 512,  /* per open connection */
    FC_SEG_BYTES = 20,       /* per segment-map entry */
    FC_DATA_INIT = 2048,     /* first stream buffer of a direction */
    FC_SEG_INIT = 16,        /* first segment-map capacity of a direction */
    FC_HOLD_BYTES = 32,      /* per record of a segment held out of order */
    FC_HOLD_INIT = 8,        /* first capacity of a direction's held-segment records */
    FC_HOLD_MAX = 1024       /* held segments recorded at once per direction, at most */
};

int64_t fc_walk_pcap(const uint8_t *buf, int64_t len, int64_t start, int32_t swapped,
                     int32_t rules, uint32_t snaplen, uint32_t max_caplen,
                     fc_cols *cols, fc_status *st);

int64_t fc_walk_pcapng(const uint8_t *buf, int64_t len, int64_t start, int32_t swapped,
                       const fc_iface *ifaces, int32_t n_ifaces, uint32_t max_block,
                       fc_cols *cols, fc_status *st);

int64_t fc_ts_to_ns(uint64_t units, int32_t pow2, int32_t exp, int64_t offset_s);

/* Touch the pages of buf[lo, hi) in file order, when the first, middle or last of them is
 * not in the page cache: a cold mapping is then read as one sequential reader reads it, in
 * the disk's largest requests with readahead running ahead, where interleaved chains would
 * each fault in small reads.  Returns 1 when it touched them, 0 when they were resident
 * (or buf is no mapping).  Reads only; any buffer of at least hi bytes is safe. */
int32_t fc_read_in_order(const uint8_t *buf, int64_t lo, int64_t hi);

/* Drop the page-table entries of the mapped file between the pages holding buf + lo and
 * buf + hi (both rounded down to a page; buf is page-aligned): bytes the walk has left
 * behind.  The page cache keeps them, so a later read faults them back in unchanged.
 * Returns madvise's result. */
int32_t fc_release(const uint8_t *buf, int64_t lo, int64_t hi);

/* ==== A mapped file cut short while read (guard.c) =========================================
 * fc_guard_add registers buf[0, len), a file mapping, and returns its slot (-1: none free, or
 * no handler could be installed).  From then on a SIGBUS in it (a page past the file's new
 * end) is answered with a page of zeros, and fc_guard_gone gives the offset of the first page
 * found gone (-1: none).  fc_guard_remove before the mapping is unmapped. */
int32_t fc_guard_add(const uint8_t *buf, int64_t len);
int64_t fc_guard_gone(int32_t slot);
void fc_guard_remove(int32_t slot);

/* ==== Payloads carried with their frames (carry.c) ===========================================
 * fc_gather copies buf[off[i], off[i] + len[i]) for each row i with len[i] != 0, in row order,
 * into out back to back.  Returns the bytes written, or -(i + 1) for the first row i that lies
 * outside buf (or would overflow out_len), having written the rows before it. */
int64_t fc_gather(const uint8_t *buf, int64_t buf_len, const int64_t *off, const int64_t *len,
                  int64_t n, uint8_t *out, int64_t out_len);

/* ==== TCP reassembly (reassembly.c) ========================================================
 * An opaque reassembler fed window by window; finished connections collect in a "done" list
 * that Python reads with fc_reasm_done_info/copy and then releases with fc_reasm_done_clear. */
typedef struct fc_reasm fc_reasm;

/* ts_ns of a selected frame that carries no time (a pcapng Simple Packet Block): it moves
 * no clock, and a connection's first and last times are those of its frames that have one
 * (they stay FC_NO_TS when none has).  Python: fastcap.read.frames.NO_TS. */
#define FC_NO_TS INT64_MIN

/* One window of selected TCP frames (numpy columns; from_a is numpy bool). */
typedef struct {
    const int64_t  *frame_no;
    const int64_t  *ts_ns;      /* FC_NO_TS: the frame has no time */
    const int64_t  *flow;
    const uint8_t  *from_a;
    const int64_t  *payload_file_off;
    const uint32_t *seq;
    const uint32_t *ack;
    const uint16_t *flags;
    const uint16_t *window;
    const int32_t  *payload_len;
    const int32_t  *payload_caplen;
} fc_tcp_rows;

typedef struct {
    int64_t data_len;      /* stored stream bytes: min(seen_bytes, cap) */
    int64_t seen_bytes;    /* highest stream offset reached */
    int64_t n_segs;        /* segment-map entries */
    int64_t before_start;  /* payload bytes below stream offset 0 (dropped) */
    int64_t untraced;      /* stored bytes without a segment-map entry (map full) */
    int64_t isn;           /* -1: no SYN seen */
    int64_t syn_frame;     /* -1: none */
    int64_t fin_frame;
    int64_t rst_frame;
    int64_t complete;      /* 1: every byte of [0, data_len) is stored (no gaps) */
    int64_t seg_sorted;    /* 1: the segment map is already in stream-offset order */
    int64_t first_syn;     /* the direction's first segment: 1 a SYN, 0 none, -1 no segment */
} fc_dir_info;

typedef struct {
    int64_t index;
    int64_t flow;
    int64_t first_frame;
    int64_t last_frame;
    int64_t first_ts_ns;
    int64_t last_ts_ns;
    int64_t frames;
    int64_t retransmissions;
    int64_t conflicting_overlaps;
    int64_t keepalives;
    int64_t zero_window_probes;
    int64_t out_of_order;
    int32_t evicted;
    int32_t first_dir;     /* 0: endpoint a sent the first frame, 1: endpoint b */
    int32_t syn_dir;       /* sender of the first SYN without ACK, -1: none */
    int32_t synack_dir;    /* sender of the first SYN-ACK, -1: none */
    int64_t after_first;   /* resumes a connection closed on an RST: its first frame, -1: no */
    int64_t after_rst;     /* and that RST's frame, -1: no */
    int64_t zeek_cut;      /* the first frame Zeek reads as another connection's, -1: none */
    fc_dir_info dir[2];    /* 0: a -> b, 1: b -> a */
} fc_conn_info;

fc_reasm *fc_reasm_new(int64_t cap, int64_t budget, int64_t max_open, int64_t max_segs,
                       int64_t linger_ns);
void fc_reasm_free(fc_reasm *r);
int64_t fc_reasm_feed(fc_reasm *r, const uint8_t *buf, int64_t buf_len,
                      const fc_tcp_rows *rows, int64_t n);
int64_t fc_reasm_finish(fc_reasm *r);
int64_t fc_reasm_evict_before(fc_reasm *r, int64_t index);
int64_t fc_reasm_mem(const fc_reasm *r);
int64_t fc_reasm_open(const fc_reasm *r);
int64_t fc_reasm_late(const fc_reasm *r);
int64_t fc_reasm_beyond(const fc_reasm *r);
int32_t fc_reasm_done_info(const fc_reasm *r, int64_t i, fc_conn_info *out);
const uint8_t *fc_reasm_done_data(const fc_reasm *r, int64_t i, int32_t dir,
                                  int64_t *avail);
int32_t fc_reasm_done_copy(const fc_reasm *r, int64_t i, int32_t dir, uint8_t *filled,
                           int64_t *seg_off, int32_t *seg_len, int64_t *seg_frame);
/* Free done connection i's buffers now, once Python has copied it: handing thousands of
 * connections over at the end of a capture then never holds two copies of them. */
void fc_reasm_done_release(fc_reasm *r, int64_t i);
void fc_reasm_done_clear(fc_reasm *r);
/* ==== end TCP reassembly ================================================================ */
