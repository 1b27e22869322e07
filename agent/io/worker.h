/*
 * worker.h - the agent's worker threads. Each worker owns one libevent
 * event_base, its SPOP connections, its memcached pool and its counters;
 * nothing on the request path is shared between workers, so nothing there
 * takes a lock. The main thread accepts connections and hands each fd to a
 * worker round-robin (the hand-off queue is the only lock, off the request
 * path).
 *
 * Ownership: agent.c allocates the workers array and the SSL_CTX; a worker
 * owns (creates and frees on its own thread) its event_base, pool and
 * connections. A config is shared read-only; on reload the main thread
 * publishes a new one and each worker picks it up between frames.
 */
#ifndef SC_WORKER_H
#define SC_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "cacheio.h"
#include "config.h"
#include "metrics.h"
#include "pool.h"
#include "spoeconn.h"

struct worker {
	int id;
	pthread_t thread;
	struct event_base *base;
	struct event *wake;		/* queued fds, stop and reload requests */
	pthread_mutex_t lock;		/* guards q, qn, qcap, stop */
	int *q;
	size_t qn, qcap;
	int stop;
	_Atomic(struct sc_config *) next_cf;	/* set by reload, taken by the worker */
	const struct sc_config *cf;	/* what this worker uses now */
	struct pool *pool;
	SSL_CTX *tls;			/* shared, read-only; NULL without TLS */
	struct metrics m;
	/* Copy of the pool's per-shard stats, refreshed every second by the
	 * worker, read by the admin thread; guarded by lock. */
	struct pool_shard_stats *snap;
	int nsnap;
	struct event *snap_ev;
	struct spoe_server spoe;	/* its SPOP connections */
	struct cache_env cache;		/* what their NOTIFY handler works with */
};

/* Start w's thread; 0 or -1 with err filled. */
int worker_start(struct worker *w, int id, const struct sc_config *cf, SSL_CTX *tls,
    char *err, size_t errlen);
/* Give fd to w (takes ownership). Callable from any thread. */
void worker_hand(struct worker *w, int fd);
/* Ask w to take cf (reload). Callable from any thread. */
void worker_reload(struct worker *w, struct sc_config *cf);
/* Stop w's loop, close its connections, join and free its resources. */
void worker_stop(struct worker *w);
/* Add w's latest per-shard stats into sum[n] (admin thread). */
void worker_sum_shards(struct worker *w, struct pool_shard_stats *sum, int n);

#endif
