/* A file cut short while it is mapped: the pages past its new end raise SIGBUS when touched,
 * which would end the process wherever the touch happens (the C walk, numpy, Python's own
 * reads).  fc_guard_add registers a mapping; a SIGBUS whose address lies in one replaces the
 * missing page by a page of zeros and records the lowest offset found gone, then returns, so
 * the faulting read goes on and the reader learns at its next look (fc_guard_gone) where the
 * file stopped.  Any other SIGBUS gets the handler that was there before.  Linux semantics
 * (si_code BUS_ADRERR, MAP_FIXED over part of a file mapping). */

#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fastcap.h"

#define GUARD_SLOTS 256

typedef struct {
    volatile uintptr_t lo, hi;  /* [lo, hi) mapped; lo == 0: free */
    volatile int64_t gone;      /* lowest page offset found gone, or -1 */
} guard_slot;

static guard_slot slots[GUARD_SLOTS];
static struct sigaction before;
static int installed;
static uintptr_t page_size;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void on_sigbus(int sig, siginfo_t *info, void *context) {
    uintptr_t at = (uintptr_t)info->si_addr;
    if (info->si_code == BUS_ADRERR) {
        for (int i = 0; i < GUARD_SLOTS; i++) {
            uintptr_t lo = slots[i].lo, hi = slots[i].hi;
            if (lo == 0 || at < lo || at >= hi)
                continue;
            uintptr_t page = at & ~(page_size - 1);
            if (mmap((void *)page, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                     -1, 0) == MAP_FAILED)
                break;
            int64_t off = page > lo ? (int64_t)(page - lo) : 0, seen = slots[i].gone;
            while ((seen < 0 || off < seen) &&
                   !__atomic_compare_exchange_n(&slots[i].gone, &seen, off, 0, __ATOMIC_SEQ_CST,
                                                __ATOMIC_SEQ_CST)) {
            }
            return;  /* the read is retried and finds zeros */
        }
    }
    /* Not a guarded mapping: as if this handler had never been there. */
    if (before.sa_flags & SA_SIGINFO) {
        before.sa_sigaction(sig, info, context);
        return;
    }
    if (before.sa_handler != SIG_DFL && before.sa_handler != SIG_IGN) {
        before.sa_handler(sig);
        return;
    }
    signal(SIGBUS, SIG_DFL);  /* the fault repeats on return and ends the process */
}

int32_t fc_guard_add(const uint8_t *buf, int64_t len) {
    if (buf == NULL || len <= 0)
        return -1;
    pthread_mutex_lock(&lock);
    int32_t got = -1;
    if (!installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
        installed = sigaction(SIGBUS, &sa, &before) == 0;
    }
    for (int32_t i = 0; installed && i < GUARD_SLOTS; i++) {
        if (slots[i].lo == 0) {
            slots[i].gone = -1;
            slots[i].hi = (uintptr_t)buf + (uintptr_t)len;
            __atomic_store_n(&slots[i].lo, (uintptr_t)buf, __ATOMIC_SEQ_CST);
            got = i;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return got;
}

int64_t fc_guard_gone(int32_t slot) {
    if (slot < 0 || slot >= GUARD_SLOTS)
        return -1;
    return __atomic_load_n(&slots[slot].gone, __ATOMIC_SEQ_CST);
}

void fc_guard_remove(int32_t slot) {
    if (slot < 0 || slot >= GUARD_SLOTS)
        return;
    pthread_mutex_lock(&lock);
    __atomic_store_n(&slots[slot].lo, (uintptr_t)0, __ATOMIC_SEQ_CST);
    slots[slot].hi = 0;
    pthread_mutex_unlock(&lock);
}
