/*
 * worker.c - worker threads; see worker.h. A worker's loop runs until
 * worker_stop(); everything it owns is created and freed on its own thread.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cacheio.h"
#include "log.h"
#include "pool.h"
#include "spoeconn.h"
#include "worker.h"

static void snapshot(struct worker *w);

static void
take_config(struct worker *w)
{
	const struct generation *g = atomic_exchange(&w->next, NULL);
	char err[256];
	struct pool *p;

	if (g == NULL)
		return;
	/* A new pool for the new host list, at the addresses the main thread
	 * resolved: nothing here blocks this loop. */
	p = pool_new_at(w->base, &g->cf->pool, g->addrs, w->tls, err, sizeof(err));
	if (p == NULL) {
		log_err("worker %d: reload: %s; keeping the old configuration", w->id, err);
		return;
	}
	/* Requests in flight on the old pool finish now, with an error (a
	 * Miss, or a store not done). What they keep (struct lookup, struct
	 * store in cacheio.c) is copied out of the config, and SPOP
	 * connections read the config through w->spoe.conf: once the old pool
	 * is freed nothing of this worker points into the old generation. */
	pool_free(w->pool);
	w->pool = p;
	w->gen = g;
	w->spoe.conf = &g->cf->agent;
	w->cache.cf = g->cf;
	w->cache.pool = p;
	snapshot(w);
	atomic_store_explicit(&w->taken, g->n, memory_order_release);
	if (w->taken_ev != NULL)
		event_active(w->taken_ev, EV_READ, 0);
}

static void
snapshot(struct worker *w)
{
	int n = pool_nshards(w->pool);

	pthread_mutex_lock(&w->lock);
	if (w->nsnap != n) {
		struct pool_shard_stats *s = realloc(w->snap, (size_t)n * sizeof(*s));

		if (s == NULL) {
			pthread_mutex_unlock(&w->lock);
			return;
		}
		w->snap = s;
		w->nsnap = n;
	}
	for (int i = 0; i < n; i++)
		w->snap[i] = *pool_shard_stats(w->pool, i);
	pthread_mutex_unlock(&w->lock);
}

static void
on_snapshot(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	snapshot(arg);
}

void
worker_sum_shards(struct worker *w, struct pool_shard_stats *sum, int n)
{
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < n && i < w->nsnap; i++) {
		const struct pool_shard_stats *s = &w->snap[i];

		sum[i].requests += s->requests;
		sum[i].hits += s->hits;
		sum[i].misses += s->misses;
		sum[i].stored += s->stored;
		sum[i].not_stored += s->not_stored;
		sum[i].errors += s->errors;
		sum[i].timeouts += s->timeouts;
		sum[i].fast_fails += s->fast_fails;
		sum[i].server_errors += s->server_errors;
		sum[i].too_big += s->too_big;
		sum[i].conn_opened += s->conn_opened;
		sum[i].conn_failures += s->conn_failures;
		sum[i].went_down += s->went_down;
		sum[i].up += s->up;
		sum[i].lat_count += s->lat_count;
		sum[i].lat_sum_us += s->lat_sum_us;
		for (int b = 0; b <= POOL_LAT_NBOUNDS; b++)
			sum[i].lat_hist[b] += s->lat_hist[b];
	}
	pthread_mutex_unlock(&w->lock);
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	int *q;
	size_t n;
	int stop;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->lock);
	q = w->q;
	n = w->qn;
	w->q = NULL;
	w->qn = w->qcap = 0;
	stop = w->stop;
	pthread_mutex_unlock(&w->lock);
	take_config(w);
	for (size_t i = 0; i < n; i++) {
		if (stop) {
			close(q[i]);
			if (w->spoe.nconns != NULL)
				atomic_fetch_sub(w->spoe.nconns, 1);
		} else {
			spoe_conn_new(&w->spoe, q[i]);
		}
	}
	free(q);
	if (stop)
		event_base_loopexit(w->base, NULL);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];

	/* for top -H, perf and /proc/PID/task/N/comm */
	snprintf(name, sizeof name, "worker-%d", w->id);
	(void)pthread_setname_np(pthread_self(), name);
	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	event_free(w->snap_ev);
	w->snap_ev = NULL;
	spoe_server_free(&w->spoe);
	cacheio_drain(&w->cache);
	pool_free(w->pool);	/* runs the callbacks of requests still in flight */
	w->pool = NULL;
	return NULL;
}

int
worker_start(struct worker *w, int id, const struct generation *g, SSL_CTX *tls,
    struct event *taken_ev, atomic_int *nconns, char *err, size_t errlen)
{
	const struct sc_config *cf = g->cf;

	w->id = id;
	w->gen = g;
	w->tls = tls;
	w->taken_ev = taken_ev;
	atomic_init(&w->next, NULL);
	atomic_init(&w->taken, g->n);
	if (pthread_mutex_init(&w->lock, NULL) != 0) {
		snprintf(err, errlen, "worker %d: pthread_mutex_init failed", id);
		return -1;
	}
	{
		/* bufferevents add and delete their write event around every
		 * write: the changelist folds those into one epoll_ctl per fd
		 * and loop iteration (we never dup() a socket, its one caveat). */
		struct event_config *ec = event_config_new();

		if (ec != NULL) {
			event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
			w->base = event_base_new_with_config(ec);
			event_config_free(ec);
		}
	}
	if (w->base == NULL) {
		snprintf(err, errlen, "worker %d: event_base_new failed", id);
		goto fail_lock;
	}
	w->wake = event_new(w->base, -1, EV_PERSIST, on_wake, w);
	if (w->wake == NULL || event_add(w->wake, NULL) < 0) {
		snprintf(err, errlen, "worker %d: cannot create its wake-up event", id);
		goto fail_base;
	}
	w->pool = pool_new_at(w->base, &cf->pool, g->addrs, tls, err, errlen);
	if (w->pool == NULL)
		goto fail_wake;
	w->cache.cf = cf;
	w->cache.pool = w->pool;
	w->cache.m = &w->m;
	w->cache.base = w->base;
	w->spoe.base = w->base;
	w->spoe.conf = &cf->agent;
	w->spoe.m = &w->m;
	w->spoe.id = id;
	w->spoe.notify = cacheio_notify;
	w->spoe.arg = &w->cache;
	w->spoe.nconns = nconns;
	if (spoe_server_init(&w->spoe) < 0) {
		snprintf(err, errlen, "worker %d: out of memory", id);
		goto fail_pool;
	}
	snapshot(w);
	w->snap_ev = event_new(w->base, -1, EV_PERSIST, on_snapshot, w);
	{
		struct timeval sec = { 1, 0 };

		if (w->snap_ev == NULL || event_add(w->snap_ev, &sec) < 0) {
			snprintf(err, errlen, "worker %d: cannot create its stats timer", id);
			goto fail_spoe;
		}
	}
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		snprintf(err, errlen, "worker %d: pthread_create failed", id);
		goto fail_spoe;
	}
	return 0;
fail_spoe:
	if (w->snap_ev != NULL)
		event_free(w->snap_ev);
	w->snap_ev = NULL;
	spoe_server_free(&w->spoe);
fail_pool:
	pool_free(w->pool);
	w->pool = NULL;
fail_wake:
	if (w->wake != NULL)
		event_free(w->wake);
	w->wake = NULL;
fail_base:
	event_base_free(w->base);
	w->base = NULL;
fail_lock:
	pthread_mutex_destroy(&w->lock);
	return -1;
}

void
worker_hand(struct worker *w, int fd)
{
	pthread_mutex_lock(&w->lock);
	if (w->qn == w->qcap) {
		size_t cap = w->qcap ? w->qcap * 2 : 16;
		int *q = realloc(w->q, cap * sizeof(int));

		if (q == NULL) {
			pthread_mutex_unlock(&w->lock);
			close(fd);
			if (w->spoe.nconns != NULL)
				atomic_fetch_sub(w->spoe.nconns, 1);
			log_err("worker %d: out of memory, connection dropped", w->id);
			return;
		}
		w->q = q;
		w->qcap = cap;
	}
	w->q[w->qn++] = fd;
	pthread_mutex_unlock(&w->lock);
	event_active(w->wake, EV_READ, 0);
}

void
worker_reload(struct worker *w, const struct generation *g)
{
	/* A generation given before w took the last one replaces it there:
	 * w goes straight to the newest. */
	atomic_store(&w->next, g);
	event_active(w->wake, EV_READ, 0);
}

unsigned long
worker_taken(struct worker *w)
{
	return atomic_load_explicit(&w->taken, memory_order_acquire);
}

void
worker_stop(struct worker *w)
{
	if (w->base == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_mutex_unlock(&w->lock);
	event_active(w->wake, EV_READ, 0);
	pthread_join(w->thread, NULL);
	free(w->q);
	w->q = NULL;
	free(w->snap);
	w->snap = NULL;
	event_free(w->wake);
	w->wake = NULL;
	event_base_free(w->base);
	w->base = NULL;
	pthread_mutex_destroy(&w->lock);
}
