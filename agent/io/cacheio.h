/*
 * cacheio.h - the cache's I/O side: it reads the messages of one NOTIFY
 * (cache-lookup, cache-lookup-body, cache-store), asks the policy core
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
 *   inval    true when the store step only invalidates (an unsafe method):
 *            HAProxy then sends cache-invalidate, which carries no body, and
 *            does not buffer the response for it
 *   code, headers, body   that answer
 */
#ifndef SC_CACHEIO_H
#define SC_CACHEIO_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"
#include "pool.h"

struct spoe_req;

/* Owned by the worker, which sets cf again on reload; read here.
 * backlog is cacheio.c's: bytes of this worker's background stores not
 * answered yet (see do_store), at most cf->pool.store_backlog. It lives
 * here, not in the pool, because it outlives a pool swapped on reload. */
struct cache_env {
	const struct sc_config *cf;
	struct pool *pool;
	struct metrics *m;
	size_t backlog;
};

/* The NOTIFY handler (spoe_notify_fn); arg is a struct cache_env. */
void cacheio_notify(void *arg, struct spoe_req *r, const uint8_t *payload, size_t len);

#endif
