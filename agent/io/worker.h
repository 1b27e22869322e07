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
 * connections. A configuration generation is shared read-only; on reload the
 * main thread publishes a new one and each worker picks it up between
 * frames, builds its pool from the addresses in it (no name lookup on a
 * worker), and says which generation it has taken (worker_taken()).
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

/*
 * One generation of the configuration: a loaded config and the addresses
 * of its memcached hosts, resolved once, on the main thread. agent.c makes
 * one at start (n = 1) and one per accepted reload (the newest n + 1), owns
 * it and frees it (config and addresses) once every worker and the admin
 * endpoint have taken a newer one; until then it is read-only, shared by
 * all of them.
 */
struct generation {
	unsigned long n;
	struct sc_config *cf;
	struct pool_addrs *addrs;	/* cf->pool.hosts, in their order */
	struct generation *older;	/* agent.c's list of those still held */
};

struct worker {
	int id;
	pthread_t thread;
	struct event_base *base;
	struct event *wake;		/* queued fds, stop and reload requests */
	pthread_mutex_t lock;		/* guards q, qn, qcap, stop */
	int *q;
	size_t qn, qcap;
	int stop;
	_Atomic(const struct generation *) next;	/* set by reload, taken by the worker */
	const struct generation *gen;	/* what this worker uses now */
	/* gen->n, stored (release) once nothing of the worker reads an older
	 * generation any more: its old pool is freed, the callbacks of the
	 * requests that were in flight on it have run. */
	atomic_ulong taken;
	struct event *taken_ev;		/* the main thread's, activated after taken moves */
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

/* Start w's thread on generation g; 0 or -1 with err filled. taken_ev (an
 * event of the main thread's base, or NULL) is activated from w's thread
 * each time it has taken a newer generation. nconns (or NULL) counts the
 * SPOP sockets handed to every worker and not closed yet: the caller adds
 * one before worker_hand(), w takes it back when it closes that socket. */
int worker_start(struct worker *w, int id, const struct generation *g, SSL_CTX *tls,
    struct event *taken_ev, atomic_int *nconns, char *err, size_t errlen);
/* Give fd to w (takes ownership). Callable from any thread. */
void worker_hand(struct worker *w, int fd);
/* Ask w to take g (reload). w may be building its pool from g (or from an
 * older one it was given) until worker_taken(w) says otherwise: g must stay
 * allocated while g->n >= worker_taken(w). Callable from any thread. */
void worker_reload(struct worker *w, const struct generation *g);
/* The generation w has taken (see taken). Callable from any thread. */
unsigned long worker_taken(struct worker *w);
/* Stop w's loop, close its connections, join and free its resources. */
void worker_stop(struct worker *w);
/* Add w's latest per-shard stats into sum[n] (admin thread). */
void worker_sum_shards(struct worker *w, struct pool_shard_stats *sum, int n);

#endif
