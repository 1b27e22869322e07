/*
 * l1feed.h - what the node-local tier (L1, HAProxy's own cache) was
 * allowed to keep, and the feed that tells HAProxy when to stop.
 *
 * An L1 copy lives SPOE_CACHE_L1_TTL seconds in HAProxy, out of the
 * agent's reach: nothing deletes it. So the agent remembers every grant it
 * gave (struct l1_grants: the entry's key, its CAS when it was read, and
 * the request's "base", Host + path, which is what HAProxy's skip map is
 * keyed on), re-reads each live grant's CAS from memcached every second,
 * and when the entry changed or went (a purge, a flush, a newer store, by
 * any agent or the CLI: memcached is the only shared state) it emits an
 * event for that base. The events wait in struct l1_ring, numbered, for
 * the poller in each HAProxy (GET /l1/feed on the admin endpoint), which
 * skips its L1 for that base until every copy has expired.
 *
 * Pure: no I/O, no locks (the caller's), time is an argument (monotonic
 * milliseconds). A grant the table has no room for is refused: the hit is
 * then not kept in the L1 (an untracked copy could never be withdrawn).
 */
#ifndef SC_L1FEED_H
#define SC_L1FEED_H

#include <stddef.h>
#include <stdint.h>

#include "key.h"

#define L1_BASE_MAX	2048	/* longer Host + path: no L1 copy */

/* Called with the base of every copy that must no longer be answered, and
 * until when (monotonic ms) such a copy may live. */
typedef void (*l1_emit_fn)(void *arg, const char *base, size_t blen, int64_t until_ms);

struct l1_grant {
	char key[KEY_HEX_LEN];
	uint64_t cas;
	int64_t until_ms;	/* the longest any copy granted may live */
	char *base;		/* malloc'd, blen bytes */
	uint16_t blen;
	uint8_t used;
	uint8_t checking;	/* a check of it is in flight */
};

struct l1_grants {
	struct l1_grant *tab;	/* open addressing, linear probing */
	size_t cap;		/* a power of two, or 0 before the first grant */
	size_t n;
	size_t max;		/* at most this many grants */
	size_t cursor;		/* where the next l1g_round() starts */
};

void l1g_init(struct l1_grants *g, size_t max);
void l1g_free(struct l1_grants *g);

/*
 * Record that the entry key (read with cas) may be kept for base until
 * until_ms. A grant of the same key with another CAS replaces the older one
 * and emits it first (its copies, elsewhere, are of the older entry).
 * Returns 0, or -1 when refused (table full, out of memory, base empty,
 * longer than L1_BASE_MAX or with a control byte): do not let the L1 keep
 * it.
 */
int l1g_grant(struct l1_grants *g, const char *key, uint64_t cas, const char *base,
    size_t blen, int64_t until_ms, l1_emit_fn emit, void *arg);

/*
 * Part of a round of checks: walks the next `slots` slots of the table
 * (at most all of them), from where the last call stopped, so that a round
 * can be spread over many calls (the whole table each time: slots >= cap).
 * Forgets the grants whose copies have all expired (until_ms <= now_ms),
 * and calls check(arg, grant) for every other one not already being
 * checked, which is then marked so. check() must not change the table;
 * when it returns -1 (the check cannot be sent) the grant is emitted and
 * dropped: what cannot be verified is withdrawn. A grant made meanwhile is
 * reached within one more walk of the table (the table growing restarts
 * the walk). Returns how many checks were sent.
 */
size_t l1g_round(struct l1_grants *g, int64_t now_ms, size_t slots,
    int (*check)(void *arg, const struct l1_grant *gr), l1_emit_fn emit, void *arg);

/*
 * The answer to the check of key, sent while its grant had CAS cas: found
 * with cas_now (found = 0: the key is gone, or the check failed). The
 * grant is dropped and emitted when the entry is not the one granted; it
 * is left alone when it was replaced meanwhile (another CAS, already
 * emitted) or has gone.
 */
void l1g_checked(struct l1_grants *g, const char *key, uint64_t cas, int found,
    uint64_t cas_now, l1_emit_fn emit, void *arg);

/* ---- the feed ---- */

struct l1_event {
	uint64_t seq;		/* 0: slot empty */
	int64_t until_ms;
	char *base;
	size_t blen;
};

struct l1_ring {
	struct l1_event *ev;	/* ev[seq % cap] */
	size_t cap;
	uint64_t seq;		/* the newest event's, 0: none yet */
};

/* 0, or -1 out of memory. */
int l1r_init(struct l1_ring *r, size_t cap);
void l1r_free(struct l1_ring *r);
/* Append an event (the oldest goes when the ring is full); its seq, or 0
 * when out of memory (the event is then lost: the caller must make the
 * feed say "all", see l1r_lose()). */
uint64_t l1r_push(struct l1_ring *r, const char *base, size_t blen, int64_t until_ms);
/* Make every reader's next poll say "all": as if the events up to now had
 * been overwritten. */
void l1r_lose(struct l1_ring *r);
/* The oldest seq still held (seq + 1 when none is). */
uint64_t l1r_oldest(const struct l1_ring *r);
/* The event numbered seq, or NULL when it is not held. */
const struct l1_event *l1r_get(const struct l1_ring *r, uint64_t seq);

#endif
