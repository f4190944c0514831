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
} fc_status;

enum {
    FC_FULL = 0,        /* the window is full; call again from offset */
    FC_END = 1,         /* clean end of data */
    FC_TRUNCATED = 2,   /* the record at offset runs past the end of the file */
    FC_CORRUPT = 3,     /* the record at offset has an impossible length */
    FC_BLOCK = 4,       /* a pcapng block that is not a packet: the caller parses it */
    FC_BAD_IFACE = 5    /* a pcapng packet names an interface the section does not have */
};

enum {
    FC_F_NO_TS = 1,        /* Simple Packet Block: no timestamp */
    FC_F_SNAPPED = 2,      /* caplen < orig_len */
    FC_F_OVER_SNAPLEN = 4  /* caplen > the snaplen the header declares */
};

int64_t fc_walk_pcap(const uint8_t *buf, int64_t len, int64_t start, int32_t swapped,
                     int32_t nanos, uint32_t snaplen, uint32_t max_caplen,
                     fc_cols *cols, fc_status *st);

int64_t fc_walk_pcapng(const uint8_t *buf, int64_t len, int64_t start, int32_t swapped,
                       const fc_iface *ifaces, int32_t n_ifaces, uint32_t max_block,
                       fc_cols *cols, fc_status *st);

int64_t fc_ts_to_ns(uint64_t units, int32_t pow2, int32_t exp, int64_t offset_s);
