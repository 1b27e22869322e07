/*
 * metrics.h - the agent's counters. Each worker thread owns one struct
 * metrics and is its only writer (relaxed atomics, no lock on the request
 * path); the admin thread sums them when /metrics is read.
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
};

#define M_INC(m, f)	atomic_fetch_add_explicit(&(m)->f, 1, memory_order_relaxed)
#define M_ADD(m, f, n)	atomic_fetch_add_explicit(&(m)->f, (n), memory_order_relaxed)
#define M_GET(m, f)	atomic_load_explicit(&(m)->f, memory_order_relaxed)


#endif
