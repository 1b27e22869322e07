/*
 * metrics.h - the agent's counters. Each worker thread owns one struct
 * metrics and is its only writer (relaxed atomics, no lock on the request
 * path); the admin thread sums them when /metrics is read. struct
 * proc_metrics is the main thread's.
 */
#ifndef SC_METRICS_H
#define SC_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "policy.h"

/* Why a background store (cacheio.c) came to nothing: memcached's answer,
 * which came after the client had its label. */
enum store_fail {
	SF_ERROR,		/* I/O error, timeout, shard down, SERVER_ERROR */
	SF_NOT_STORED,		/* memcached declined (NS) */
	SF_TOO_BIG,		/* above max_item_size: nothing was sent */
	SF_MAX
};

struct metrics {
	atomic_uint_fast64_t lookups[CS_MAX];
	atomic_uint_fast64_t stores;
	atomic_uint_fast64_t refused[SR_MAX];
	atomic_uint_fast64_t invalidations;
	/* Background stores (the client's label did not wait for them): */
	atomic_uint_fast64_t store_failures[SF_MAX];
	atomic_uint_fast64_t stores_shed;	/* refused: memcached.store_backlog held */
	atomic_int_fast64_t store_backlog;	/* bytes of stores sent, not yet answered */
	atomic_uint_fast64_t conns_total;
	atomic_int_fast64_t conns_open;
	atomic_uint_fast64_t frames_in;
	atomic_uint_fast64_t frames_out;
	atomic_uint_fast64_t disconnects;	/* DISCONNECT frames we sent for an error */
	atomic_int_fast64_t inflight;
	atomic_uint_fast64_t bad_messages;	/* NOTIFY messages we could not use */
	/* SPOP limits (spoeconn.c; the two accept counters are the main
	 * thread's, in its own struct metrics) */
	atomic_int_fast64_t buffered;		/* bytes held: input, fragments, output */
	atomic_uint_fast64_t evictions;		/* connections closed over agent.max_buffered */
	atomic_uint_fast64_t idle_closes;	/* connections closed after agent.idle_timeout */
	atomic_uint_fast64_t acks_shed;		/* large ACKs answered Bypass: peer not reading */
	atomic_uint_fast64_t conns_refused;	/* closed at accept: agent.max_connections open */
	atomic_uint_fast64_t accept_pauses;	/* accepting paused: out of file descriptors */
	atomic_uint_fast64_t entries_rejected[ENTRY_NERR];	/* by ENTRY_ERR_INDEX() */
	/* Collapsed forwarding and stale serving (cacheio.c) */
	atomic_uint_fast64_t collapse_waits;	/* lookups that waited for another's fetch */
	atomic_uint_fast64_t collapse_outcomes[3];	/* ... and then: hit, origin, timeout */
	atomic_uint_fast64_t refresh_locks[2];	/* refresh locks taken: won, lost */
	atomic_uint_fast64_t stale_served[PST_MAX];	/* stale entries served, by pol_stale */
	atomic_uint_fast64_t pass_marks;	/* pass markers stored: not storable, don't wait */
	atomic_uint_fast64_t revalidations;	/* stale entries a 304 renewed */
	/* The L1's grants and feed (cacheio.c) */
	atomic_uint_fast64_t l1_grants;		/* hits HAProxy's L1 was allowed to keep */
	atomic_uint_fast64_t l1_refused;	/* ... not allowed: no room to track them */
	atomic_uint_fast64_t l1_checks;		/* grants re-read from memcached */
	atomic_uint_fast64_t l1_withdrawn;	/* grants whose entry changed: fed to HAProxy */
	atomic_int_fast64_t l1_tracked;		/* grants tracked now */
};

/*
 * The process's own, for /metrics: agent.c sets start_time at start and
 * the rest at each SIGHUP; admin.c reads them. Both run on the main
 * thread, so these are plain fields.
 */
struct proc_metrics {
	double start_time;		/* Unix time (s) at start */
	uint64_t reloads_ok;		/* SIGHUPs that gave a new generation */
	uint64_t reloads_failed;	/* SIGHUPs refused (the running config stays) */
	int last_reload_ok;		/* 1 at start: loading the config is the first */
	double last_reload_ok_time;	/* Unix time (s): start, then each accepted reload */
};

#define M_INC(m, f)	atomic_fetch_add_explicit(&(m)->f, 1, memory_order_relaxed)
#define M_ADD(m, f, n)	atomic_fetch_add_explicit(&(m)->f, (n), memory_order_relaxed)
#define M_GET(m, f)	atomic_load_explicit(&(m)->f, memory_order_relaxed)


#endif
