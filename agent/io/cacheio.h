/*
 * cacheio.h - the cache's I/O side: it reads the messages of one NOTIFY
 * (cache-lookup, cache-lookup-body, cache-store, cache-invalidate), asks the policy core
 * (policy.h) what they mean, talks to memcached through the pool, and
 * finishes the SPOP request with the variables HAProxy gets.
 *
 * It decides nothing itself: every rule is in policy.c. It gets its
 * environment (config, pool, metrics) from its owner, the worker, through
 * struct cache_env; the worker installs cacheio_notify() as its SPOP
 * connections' NOTIFY handler.
 *
 * Variables set for HAProxy (scope txn, prefix "cache"):
 *   status   Hit | Miss | Refresh | Bypass
 *   key      the cache key (hex SHA-256), when the request is cacheable
 *   ctx      what the store step needs (opaque, made by the agent)
 *   serve    true when the Lua service must answer (a Hit, a 304, a 504)
 *   code, headers, body   that answer (or, with inm/ims, the entry a 304
 *            is answered with)
 *   inm, ims the validators of a stale entry, for a conditional refresh
 *   sie      a stale entry may stand in if the origin fails (the templates
 *            then send the request through their relay: [STALE-IF-ERROR])
 *   replace  true when the store step's answer replaces the origin's
 *            response (a 304 to our validators, stale-if-error)
 *   cstatus  for a policy with cache_status, when the lookup did not serve:
 *            its Cache-Status so far ("spoe-cache; fwd=uri-miss", RFC 9211)
 *   cstatus_store  what the store step appends ("; fwd-status=200; stored")
 *   inval    true when the store step only invalidates (an unsafe method):
 *            HAProxy then sends cache-invalidate, which carries no body, and
 *            does not buffer the response for it
 */
#ifndef SC_CACHEIO_H
#define SC_CACHEIO_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "l1feed.h"
#include "metrics.h"
#include "pool.h"

struct event_base;
struct lookup;
struct spoe_req;

/*
 * The L1's invalidation feed (l1feed.h), one per process, agent.c's: every
 * worker's cacheio appends the copies HAProxy must stop answering, the
 * admin endpoint serves them (GET /l1/feed). epoch tells a poller that the
 * agent restarted (its grants, and the copies they let HAProxy keep, are
 * then unknown).
 */
#define L1_FEED_EVENTS	16384	/* events held for pollers */
#define L1_GRANTS_MAX	65536	/* grants one worker tracks */
#define L1_CHECK_MS	1000	/* how often each live grant is re-read */
#define L1_CHECK_SLICES	20	/* in steps of 1/20 of the table, 50 ms apart */

struct l1feed {
	pthread_mutex_t lock;
	struct l1_ring ring;	/* guarded by lock */
	uint64_t epoch;
};

/* 0, or -1 out of memory. */
int l1feed_init(struct l1feed *f);
void l1feed_free(struct l1feed *f);

/* Owned by the worker, which sets cf again on reload; read here.
 * backlog is cacheio.c's: bytes of this worker's background stores not
 * answered yet (see do_store), at most cf->pool.store_backlog. It lives
 * here, not in the pool, because it outlives a pool swapped on reload. */
struct cache_env {
	struct event_base *base;	/* the worker's: timers of waiting lookups */
	const struct sc_config *cf;
	struct pool *pool;
	struct metrics *m;
	struct lookup *waiting;		/* cacheio.c's: lookups waiting on a timer */
	size_t backlog;
	/* The L1 (cacheio.c's but feed, the process's, set by agent.c before
	 * the worker starts; NULL: HAProxy's L1 may keep nothing): */
	struct l1feed *feed;
	struct l1_grants grants;
	struct event *l1_timer;		/* every L1_CHECK_MS / L1_CHECK_SLICES */
	int drained;			/* cacheio_drain() ran: grants are gone */
};

/* The NOTIFY handler (spoe_notify_fn); arg is a struct cache_env. */
void cacheio_notify(void *arg, struct spoe_req *r, const uint8_t *payload, size_t len);

/* At the worker's end, before its pool is freed: answer the lookups still
 * waiting for another's fetch (collapsed forwarding) as misses. */
void cacheio_drain(struct cache_env *env);

#endif
