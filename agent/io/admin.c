/*
 * admin.c - the admin and metrics endpoint; see admin.h. Runs on the main
 * thread's event_base. It reads workers' counters (relaxed atomics) and
 * their per-shard snapshots (under each worker's lock, refreshed every
 * second); it never touches a worker's pool.
 *
 * Bounded like every listener: requests of at most ADMIN_MAX_HEADERS of
 * headers and ADMIN_MAX_BODY of body (evhttp answers 413 and closes), a
 * request must arrive whole within agent.admin.timeout (evhttp's own
 * timeout is per read, which a byte every few seconds defeats), and at most
 * agent.admin.max_connections are open (beyond, the listener pauses and
 * new ones wait in the kernel's backlog).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "admin.h"
#include "entry.h"
#include "inspect.h"
#include "key.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "worker.h"

#define ADMIN_MAX_HEADERS	16384	/* request line and headers */
#define ADMIN_MAX_BODY		4096	/* no route reads one */

/*
 * One admin connection. libevent 2.1's evhttp says nothing when it opens or
 * closes one, but it asks us for each one's bufferevent (evhttp_set_bevcb):
 * we keep a reference on it, so it stays valid after evhttp has freed the
 * connection, which bufferevent_free() shows by clearing its callbacks;
 * sweep() then drops our reference.
 */
struct aconn {
	struct bufferevent *bev;
	time_t since;			/* opened, or its last request answered (monotonic) */
	int busy;			/* requests it is waiting for our answer to */
	int dropped;			/* shut down for being too slow */
};

struct admin {
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *lst;	/* evhttp's, paused at max_connections */
	struct aconn *conns;
	int nconns, cap;
	struct event *sweep_ev;		/* every second: closed and too slow connections */
	const struct metrics *accept_m;	/* the SPOP acceptor's counters */
	uint64_t slow_closes;		/* requests not whole within agent.admin.timeout */
	uint64_t paused;		/* times max_connections paused the listener */
	const struct generation *gen;	/* what cf and pool belong to */
	const struct generation *newest;	/* the agent's; older ones hang from it */
	const struct sc_config *cf;
	SSL_CTX *tls;
	struct pool *pool;
	struct worker *workers;
	int nworkers;
};

/*
 * One pending admin request waiting on memcached. Allocated by the route,
 * freed by its pool callback after the reply, which always comes (pool.h).
 * req stays valid until we reply, even if the client hangs up: libevent 2.1
 * stops reading a connection once its request is parsed, so a hang-up is
 * only seen when the reply is written, and an EOF or timeout before we
 * replied detaches the request from its connection instead of freeing it
 * (evhttp_connection_incoming_fail); replying then frees it. The one thing
 * that frees an unanswered request is evhttp_free(), hence admin_free()'s
 * order.
 */
struct pending {
	struct admin *a;
	struct evhttp_request *req;
	char key[KEY_HEX_LEN + 1];
	int left;			/* flush: shards still to answer */
	int failed;
	struct evbuffer *body;
	struct flush_op *ops;		/* flush: one per shard */
};

/* One shard's part of DELETE /cache, so its line can name the shard. */
struct flush_op {
	struct pending *p;
	int shard;
};

static time_t
mono_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static struct aconn *
aconn_of(struct admin *a, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;

	for (int i = 0; bev != NULL && i < a->nconns; i++)
		if (a->conns[i].bev == bev)
			return &a->conns[i];
	return NULL;
}

/* Forget the connections evhttp has freed; shut down those whose request
 * has not arrived whole in time (evhttp then sees EOF and frees them);
 * listen again below max_connections. */
static void
sweep(struct admin *a)
{
	time_t now = mono_sec();

	for (int i = 0; i < a->nconns;) {
		struct aconn *k = &a->conns[i];
		bufferevent_data_cb rd = NULL;

		bufferevent_getcb(k->bev, &rd, NULL, NULL, NULL);
		if (rd == NULL) {
			bufferevent_decref(k->bev);
			a->conns[i] = a->conns[--a->nconns];
			continue;
		}
		if (k->busy == 0 && !k->dropped && now - k->since >= a->cf->agent.admin_timeout) {
			evutil_socket_t fd = bufferevent_getfd(k->bev);

			if (fd >= 0)
				shutdown(fd, SHUT_RDWR);
			k->dropped = 1;
			a->slow_closes++;
			log_every(10, LOG_NOTICE, "admin: a connection sent no whole request within "
			    "agent.admin.timeout (%d s): closed", a->cf->agent.admin_timeout);
		}
		i++;
	}
	if (a->lst != NULL && a->nconns < a->cf->agent.admin_max_connections)
		evconnlistener_enable(a->lst);
}

/* accept() failed (EMFILE...): the socket stays readable, and without this
 * libevent would retry at once, forever. Pause until the next sweep (arg
 * is evhttp's, not ours). */
static void
on_accept_error(struct evconnlistener *l, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();

	(void)arg;
	evconnlistener_disable(l);
	log_every(10, LOG_WARNING, "admin: accept: %s: paused for a second",
	    evutil_socket_error_to_string(e));
}

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sweep(arg);
}

/* evhttp accepted a connection and wants its bufferevent. */
static struct bufferevent *
on_new_conn(struct event_base *base, void *arg)
{
	struct admin *a = arg;
	struct bufferevent *bev;

	sweep(a);
	bev = bufferevent_socket_new(base, -1, 0);	/* as evhttp makes its own */
	if (bev == NULL)
		return NULL;	/* evhttp tries its own; untracked, but bounded in time */
	if (a->nconns == a->cap) {
		int ncap = a->cap ? a->cap * 2 : 16;
		struct aconn *n = realloc(a->conns, (size_t)ncap * sizeof(*n));

		if (n == NULL)
			return bev;
		a->conns = n;
		a->cap = ncap;
	}
	bufferevent_incref(bev);
	a->conns[a->nconns].bev = bev;
	a->conns[a->nconns].since = mono_sec();
	a->conns[a->nconns].busy = 0;
	a->conns[a->nconns].dropped = 0;
	a->nconns++;
	if (a->lst != NULL && a->nconns >= a->cf->agent.admin_max_connections) {
		/* libevent's accept loop stops once its listener is disabled */
		evconnlistener_disable(a->lst);
		a->paused++;
		log_every(10, LOG_WARNING, "admin: %d connections open "
		    "(agent.admin.max_connections): new ones wait", a->nconns);
	}
	return bev;
}

/* Our answer to req is written: its connection's next request starts now. */
static void
on_sent(struct evhttp_request *req, void *arg)
{
	struct aconn *k = aconn_of(arg, req);

	if (k != NULL && k->busy > 0) {
		k->busy--;
		k->since = mono_sec();
	}
}

static void
reply(struct evhttp_request *req, int code, const char *reason, const char *ctype, struct evbuffer *body)
{
	if (ctype != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evhttp_send_reply(req, code, reason, body);
}

static void
reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	struct evbuffer *b = evbuffer_new();

	if (b != NULL)
		evbuffer_add_printf(b, "%s\n", text);
	reply(req, code, reason, "text/plain", b);
	if (b != NULL)
		evbuffer_free(b);
}

static int
authorized(struct admin *a, struct evhttp_request *req)
{
	const char *tok = a->cf->agent.admin_token, *h;
	size_t tl;

	if (tok == NULL || tok[0] == '\0')
		return 1;
	h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	tl = strlen(tok);
	return h != NULL && strncmp(h, "Bearer ", 7) == 0 && strlen(h + 7) == tl &&
	    CRYPTO_memcmp(h + 7, tok, tl) == 0;
}

/*
 * Which configuration is in force: a test (or an operator) waits for
 * spoe_cache_config_generation to reach _loaded after a SIGHUP instead of
 * guessing how long the workers take; _held falls back to 1 once the
 * older generations are freed.
 */
static void
config_generations(struct admin *a, struct evbuffer *b)
{
	unsigned long taken = a->gen->n;
	size_t held = 0;

	for (int i = 0; i < a->nworkers; i++) {
		unsigned long t = worker_taken(&a->workers[i]);

		if (t < taken)
			taken = t;
	}
	for (const struct generation *g = a->newest; g != NULL; g = g->older)
		held++;
	evbuffer_add_printf(b,
	    "# HELP spoe_cache_config_generation Configuration generation every worker and the admin endpoint use (1 at start, +1 per accepted reload).\n"
	    "# TYPE spoe_cache_config_generation gauge\nspoe_cache_config_generation %lu\n"
	    "# HELP spoe_cache_config_generation_loaded Newest configuration generation loaded.\n"
	    "# TYPE spoe_cache_config_generation_loaded gauge\nspoe_cache_config_generation_loaded %lu\n"
	    "# HELP spoe_cache_configs_held Configuration generations still in memory.\n"
	    "# TYPE spoe_cache_configs_held gauge\nspoe_cache_configs_held %zu\n",
	    taken, a->newest->n, held);
}

static void
metrics(struct admin *a, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	uint64_t lk[CS_MAX] = { 0 }, ref[SR_MAX] = { 0 }, rej[ENTRY_NERR] = { 0 };
	uint64_t stores = 0, inval = 0, ctot = 0, fin = 0, fout = 0, disc = 0, bad = 0;
	uint64_t sfail[SF_MAX] = { 0 }, backlog_full = 0;
	int64_t copen = 0, infl = 0, backlog = 0;
	int ns = pool_nshards(a->pool);
	struct pool_shard_stats *sh = calloc((size_t)ns, sizeof(*sh));

	if (b == NULL || sh == NULL) {
		free(sh);
		if (b != NULL)
			evbuffer_free(b);
		reply_text(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	for (int i = 0; i < a->nworkers; i++) {
		struct metrics *m = &a->workers[i].m;

		for (int s = 0; s < CS_MAX; s++)
			lk[s] += M_GET(m, lookups[s]);
		for (int s = 0; s < SR_MAX; s++)
			ref[s] += M_GET(m, refused[s]);
		stores += M_GET(m, stores);
		inval += M_GET(m, invalidations);
		for (int f = 0; f < SF_MAX; f++)
			sfail[f] += M_GET(m, store_failures[f]);
		backlog_full += M_GET(m, stores_shed);
		backlog += M_GET(m, store_backlog);
		ctot += M_GET(m, conns_total);
		copen += M_GET(m, conns_open);
		fin += M_GET(m, frames_in);
		fout += M_GET(m, frames_out);
		disc += M_GET(m, disconnects);
		infl += M_GET(m, inflight);
		bad += M_GET(m, bad_messages);
		for (int r = 0; r < ENTRY_NERR; r++)
			rej[r] += M_GET(m, entries_rejected[r]);
		worker_sum_shards(&a->workers[i], sh, ns);
	}
	evbuffer_add_printf(b, "# HELP spoe_cache_lookups_total Lookups by cache status.\n"
	    "# TYPE spoe_cache_lookups_total counter\n");
	for (int s = 0; s < CS_MAX; s++)
		evbuffer_add_printf(b, "spoe_cache_lookups_total{status=\"%s\"} %llu\n",
		    cache_status_name[s], (unsigned long long)lk[s]);
	evbuffer_add_printf(b, "# HELP spoe_cache_stores_total Responses stored.\n"
	    "# TYPE spoe_cache_stores_total counter\nspoe_cache_stores_total %llu\n",
	    (unsigned long long)stores);
	evbuffer_add_printf(b, "# HELP spoe_cache_store_refusals_total Responses not stored, by reason.\n"
	    "# TYPE spoe_cache_store_refusals_total counter\n");
	for (int s = 0; s < SR_MAX; s++)
		evbuffer_add_printf(b, "spoe_cache_store_refusals_total{reason=\"%s\"} %llu\n",
		    store_refusal_name[s], (unsigned long long)ref[s]);
	{
		static const char *const fail_name[SF_MAX] = { "error", "not_stored", "too_big" };

		evbuffer_add_printf(b, "# HELP spoe_cache_store_failures_total Background stores "
		    "memcached did not take (the client had its label already), by reason.\n"
		    "# TYPE spoe_cache_store_failures_total counter\n");
		for (int f = 0; f < SF_MAX; f++)
			evbuffer_add_printf(b, "spoe_cache_store_failures_total{reason=\"%s\"} %llu\n",
			    fail_name[f], (unsigned long long)sfail[f]);
	}
	evbuffer_add_printf(b,
	    "# HELP spoe_cache_store_backlog_refusals_total Stores refused (Bypass): the "
	    "worker's background stores held memcached.store_backlog.\n"
	    "# TYPE spoe_cache_store_backlog_refusals_total counter\n"
	    "spoe_cache_store_backlog_refusals_total %llu\n"
	    "# HELP spoe_cache_store_backlog_bytes Bytes of background stores sent to memcached "
	    "and not answered yet.\n"
	    "# TYPE spoe_cache_store_backlog_bytes gauge\nspoe_cache_store_backlog_bytes %lld\n",
	    (unsigned long long)backlog_full, (long long)backlog);
	evbuffer_add_printf(b,
	    "# TYPE spoe_cache_invalidations_total counter\nspoe_cache_invalidations_total %llu\n"
	    "# TYPE spoe_cache_spop_connections_total counter\nspoe_cache_spop_connections_total %llu\n"
	    "# TYPE spoe_cache_spop_connections gauge\nspoe_cache_spop_connections %lld\n"
	    "# TYPE spoe_cache_spop_frames_total counter\n"
	    "spoe_cache_spop_frames_total{direction=\"in\"} %llu\n"
	    "spoe_cache_spop_frames_total{direction=\"out\"} %llu\n"
	    "# TYPE spoe_cache_spop_disconnects_total counter\nspoe_cache_spop_disconnects_total %llu\n"
	    "# TYPE spoe_cache_inflight gauge\nspoe_cache_inflight %lld\n"
	    "# TYPE spoe_cache_bad_messages_total counter\nspoe_cache_bad_messages_total %llu\n",
	    (unsigned long long)inval, (unsigned long long)ctot, (long long)copen,
	    (unsigned long long)fin, (unsigned long long)fout, (unsigned long long)disc,
	    (long long)infl, (unsigned long long)bad);
	evbuffer_add_printf(b, "# HELP spoe_cache_entries_rejected_total Stored entries refused "
	    "before replay (each a Miss), by reason.\n# TYPE spoe_cache_entries_rejected_total counter\n");
	for (int r = 0; r < ENTRY_NERR; r++)
		evbuffer_add_printf(b, "spoe_cache_entries_rejected_total{reason=\"%s\"} %llu\n",
		    entry_err_name(-(r + 1)), (unsigned long long)rej[r]);
	evbuffer_add_printf(b, "# TYPE spoe_cache_memcached_up gauge\n"
	    "# TYPE spoe_cache_memcached_requests_total counter\n"
	    "# TYPE spoe_cache_memcached_errors_total counter\n"
	    "# TYPE spoe_cache_memcached_timeouts_total counter\n"
	    "# TYPE spoe_cache_memcached_latency_seconds histogram\n");
	for (int i = 0; i < ns; i++) {
		const char *n = pool_shard_name(a->pool, i);
		uint64_t cum = 0;

		evbuffer_add_printf(b, "spoe_cache_memcached_up{shard=\"%s\"} %d\n", n,
		    sh[i].up == a->nworkers ? 1 : 0);
		evbuffer_add_printf(b, "spoe_cache_memcached_requests_total{shard=\"%s\"} %llu\n", n,
		    (unsigned long long)sh[i].requests);
		evbuffer_add_printf(b, "spoe_cache_memcached_errors_total{shard=\"%s\"} %llu\n", n,
		    (unsigned long long)sh[i].errors);
		evbuffer_add_printf(b, "spoe_cache_memcached_timeouts_total{shard=\"%s\"} %llu\n", n,
		    (unsigned long long)sh[i].timeouts);
		for (int k = 0; k < POOL_LAT_NBOUNDS; k++) {
			cum += sh[i].lat_hist[k];
			evbuffer_add_printf(b, "spoe_cache_memcached_latency_seconds_bucket{shard=\"%s\",le=\"%g\"} %llu\n",
			    n, pool_lat_bounds_us[k] / 1e6, (unsigned long long)cum);
		}
		cum += sh[i].lat_hist[POOL_LAT_NBOUNDS];
		evbuffer_add_printf(b, "spoe_cache_memcached_latency_seconds_bucket{shard=\"%s\",le=\"+Inf\"} %llu\n"
		    "spoe_cache_memcached_latency_seconds_sum{shard=\"%s\"} %g\n"
		    "spoe_cache_memcached_latency_seconds_count{shard=\"%s\"} %llu\n",
		    n, (unsigned long long)cum, n, sh[i].lat_sum_us / 1e6, n,
		    (unsigned long long)sh[i].lat_count);
	}
	free(sh);
	{
		int64_t buffered = 0;
		uint64_t ev = 0, idle = 0, shed = 0;

		for (int i = 0; i < a->nworkers; i++) {
			buffered += M_GET(&a->workers[i].m, buffered);
			ev += M_GET(&a->workers[i].m, evictions);
			idle += M_GET(&a->workers[i].m, idle_closes);
			shed += M_GET(&a->workers[i].m, acks_shed);
		}
		evbuffer_add_printf(b,
		    "# HELP spoe_cache_spop_buffered_bytes Bytes SPOP connections hold (input, fragments, queued ACKs).\n"
		    "# TYPE spoe_cache_spop_buffered_bytes gauge\nspoe_cache_spop_buffered_bytes %lld\n"
		    "# HELP spoe_cache_spop_evictions_total Connections closed because all of them held more than agent.max_buffered.\n"
		    "# TYPE spoe_cache_spop_evictions_total counter\nspoe_cache_spop_evictions_total %llu\n"
		    "# HELP spoe_cache_spop_idle_closes_total Connections closed after agent.idle_timeout.\n"
		    "# TYPE spoe_cache_spop_idle_closes_total counter\nspoe_cache_spop_idle_closes_total %llu\n"
		    "# HELP spoe_cache_spop_acks_shed_total Large ACKs answered Bypass because the peer was not reading.\n"
		    "# TYPE spoe_cache_spop_acks_shed_total counter\nspoe_cache_spop_acks_shed_total %llu\n"
		    "# HELP spoe_cache_spop_refused_connections_total Connections refused at agent.max_connections.\n"
		    "# TYPE spoe_cache_spop_refused_connections_total counter\nspoe_cache_spop_refused_connections_total %llu\n"
		    "# HELP spoe_cache_spop_accept_pauses_total Times accepting paused because accept() failed (out of file descriptors).\n"
		    "# TYPE spoe_cache_spop_accept_pauses_total counter\nspoe_cache_spop_accept_pauses_total %llu\n"
		    "# HELP spoe_cache_admin_connections Admin connections open.\n"
		    "# TYPE spoe_cache_admin_connections gauge\nspoe_cache_admin_connections %d\n"
		    "# HELP spoe_cache_admin_slow_closes_total Admin connections closed for not sending a whole request within agent.admin.timeout.\n"
		    "# TYPE spoe_cache_admin_slow_closes_total counter\nspoe_cache_admin_slow_closes_total %llu\n"
		    "# HELP spoe_cache_admin_pauses_total Times the admin listener paused at agent.admin.max_connections.\n"
		    "# TYPE spoe_cache_admin_pauses_total counter\nspoe_cache_admin_pauses_total %llu\n",
		    (long long)buffered, (unsigned long long)ev, (unsigned long long)idle,
		    (unsigned long long)shed,
		    (unsigned long long)(a->accept_m != NULL ? M_GET(a->accept_m, conns_refused) : 0),
		    (unsigned long long)(a->accept_m != NULL ? M_GET(a->accept_m, accept_pauses) : 0),
		    a->nconns, (unsigned long long)a->slow_closes, (unsigned long long)a->paused);
	}
	config_generations(a, b);
	reply(req, 200, "OK", "text/plain; version=0.0.4", b);
	evbuffer_free(b);
}

static struct pending *
pending_new(struct admin *a, struct evhttp_request *req, const char *key)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->a = a;
	p->req = req;
	if (key != NULL)
		snprintf(p->key, sizeof(p->key), "%s", key);
	return p;
}

static void
on_get(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct pending *p = arg;
	struct entry e;
	struct evbuffer *b;
	int rc;

	if (st == MC_NOTFOUND) {
		reply_text(p->req, 404, "Not Found", "not in the cache");
	} else if (st != MC_OK) {
		reply_text(p->req, 502, "Bad Gateway", mc_status_name(st));
	} else if ((rc = inspect_decode(p->a->cf, p->key, val, vlen, &e)) < 0) {
		char msg[160];

		snprintf(msg, sizeof(msg), "entry refused (%s): %s", entry_err_name(rc), entry_err_str(rc));
		reply_text(p->req, 422, "Unprocessable Entity", msg);
	} else if ((b = evbuffer_new()) != NULL) {
		inspect_entry_json(b, p->key, &e, (int64_t)time(NULL));
		reply(p->req, 200, "OK", "application/json", b);
		evbuffer_free(b);
	} else {
		reply_text(p->req, 500, "Internal Server Error", "out of memory");
	}
	free(p);
}

static void
on_delete(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct pending *p = arg;

	(void)val;
	(void)vlen;
	if (st == MC_OK)
		reply_text(p->req, 200, "OK", "purged");
	else if (st == MC_NOTFOUND)
		reply_text(p->req, 404, "Not Found", "not in the cache");
	else
		reply_text(p->req, 502, "Bad Gateway", mc_status_name(st));
	free(p);
}

/* The body has one line per shard, "host:port: flushed" or its error, in
 * reply order, then the total; 502 when any shard failed. */
static void
on_flush(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct flush_op *op = arg;
	struct pending *p = op->p;
	int n = pool_nshards(p->a->pool);

	(void)val;
	(void)vlen;
	evbuffer_add_printf(p->body, "%s: %s\n", pool_shard_name(p->a->pool, op->shard),
	    st == MC_OK ? "flushed" : mc_status_name(st));
	if (st != MC_OK)
		p->failed++;
	if (--p->left > 0)
		return;
	evbuffer_add_printf(p->body, "%d of %d shards flushed\n", n - p->failed, n);
	reply(p->req, p->failed ? 502 : 200, p->failed ? "Bad Gateway" : "OK", "text/plain", p->body);
	evbuffer_free(p->body);
	free(p->ops);
	free(p);
}

static void
flush_all(struct admin *a, struct evhttp_request *req)
{
	struct pending *p = pending_new(a, req, NULL);
	int n = pool_nshards(a->pool);

	if (p == NULL || (p->body = evbuffer_new()) == NULL ||
	    (p->ops = calloc((size_t)n, sizeof(*p->ops))) == NULL) {
		if (p != NULL && p->body != NULL)
			evbuffer_free(p->body);
		free(p);
		reply_text(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	p->left = n;
	/* No callback runs inside pool_flush_shard(), so p outlives the loop
	 * unless the last shard is the one that completes it here. */
	for (int i = 0; i < n; i++) {
		p->ops[i].p = p;
		p->ops[i].shard = i;
		if (pool_flush_shard(a->pool, i, on_flush, &p->ops[i]) < 0)
			on_flush(&p->ops[i], MC_ERROR, NULL, 0);
	}
}

static int
valid_key(const char *k)
{
	size_t n = strlen(k);

	if (n != KEY_HEX_LEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= '0' && k[i] <= '9') || (k[i] >= 'a' && k[i] <= 'f')))
			return 0;
	return 1;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct pending *p;
	struct aconn *k = aconn_of(a, req);
	int rc;

	if (k != NULL) {
		/* whole and ours to answer: no deadline until we have */
		k->busy++;
		evhttp_request_set_on_complete_cb(req, on_sent, a);
	}
	if (path == NULL)
		path = "/";
	if (strcmp(path, "/healthz") == 0) {
		reply_text(req, 200, "OK", "ok");
		return;
	}
	if (!authorized(a, req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
		reply_text(req, 401, "Unauthorized", "bearer token required");
		return;
	}
	if (strcmp(path, "/metrics") == 0 && cmd == EVHTTP_REQ_GET) {
		metrics(a, req);
		return;
	}
	if (strcmp(path, "/cache") == 0 && cmd == EVHTTP_REQ_DELETE) {
		flush_all(a, req);
		return;
	}
	if (strncmp(path, "/cache/", 7) == 0 && (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_DELETE)) {
		if (!valid_key(path + 7)) {
			reply_text(req, 400, "Bad Request", "a key is 64 lowercase hex digits");
			return;
		}
		p = pending_new(a, req, path + 7);
		if (p == NULL) {
			reply_text(req, 500, "Internal Server Error", "out of memory");
			return;
		}
		rc = cmd == EVHTTP_REQ_GET ? pool_get(a->pool, p->key, KEY_HEX_LEN, on_get, p) :
		    pool_delete(a->pool, p->key, KEY_HEX_LEN, on_delete, p);
		if (rc < 0) {
			free(p);
			reply_text(req, 500, "Internal Server Error", "cannot send to memcached");
		}
		return;
	}
	reply_text(req, 404, "Not Found", "GET /healthz, GET /metrics, GET|DELETE /cache/KEY, DELETE /cache");
}

struct admin *
admin_new(struct event_base *base, const struct generation *g, SSL_CTX *tls,
    struct worker *workers, int nworkers, const struct metrics *accept_m, char *err,
    size_t errlen)
{
	const struct sc_config *cf = g->cf;
	struct admin *a;

	err[0] = '\0';
	if (cf->agent.admin_listen[0] == '\0')
		return NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->base = base;
	a->gen = a->newest = g;
	a->cf = cf;
	a->tls = tls;
	a->workers = workers;
	a->nworkers = nworkers;
	a->accept_m = accept_m;
	a->pool = pool_new_at(base, &cf->pool, g->addrs, tls, err, errlen);
	if (a->pool == NULL)
		goto fail;
	a->http = evhttp_new(base);
	if (a->http == NULL) {
		snprintf(err, errlen, "evhttp_new failed");
		goto fail_pool;
	}
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(a->http, on_request, a);
	evhttp_set_max_headers_size(a->http, ADMIN_MAX_HEADERS);
	evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
	evhttp_set_timeout(a->http, cf->agent.admin_timeout);
	evhttp_set_bevcb(a->http, on_new_conn, a);
	a->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, a);
	{
		struct timeval sec = { 1, 0 };

		if (a->sweep_ev == NULL || event_add(a->sweep_ev, &sec) < 0) {
			snprintf(err, errlen, "cannot create the admin timer");
			goto fail_http;
		}
	}
	{
		struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(a->http,
		    cf->agent.admin_listen, cf->agent.admin_port);

		if (bs == NULL) {
			snprintf(err, errlen, "cannot listen on %s:%u", cf->agent.admin_listen,
			    cf->agent.admin_port);
			goto fail_http;
		}
		a->lst = evhttp_bound_socket_get_listener(bs);
		evconnlistener_set_error_cb(a->lst, on_accept_error);
	}
	return a;
fail_http:
	if (a->sweep_ev != NULL)
		event_free(a->sweep_ev);
	evhttp_free(a->http);
fail_pool:
	pool_free(a->pool);
fail:
	free(a);
	return NULL;
}

int
admin_reload(struct admin *a, const struct generation *g)
{
	char err[256];
	struct pool *p;

	if (a == NULL)
		return 0;
	a->newest = g;
	p = pool_new_at(a->base, &g->cf->pool, g->addrs, a->tls, err, sizeof(err));
	if (p == NULL) {
		log_err("admin: reload: %s; keeping the old configuration", err);
		return -1;
	}
	/* Admin requests waiting on the old pool are answered (502) inside
	 * pool_free(); struct pending keeps nothing of the config. */
	pool_free(a->pool);
	a->pool = p;
	a->gen = g;
	a->cf = g->cf;
	evhttp_set_timeout(a->http, a->cf->agent.admin_timeout);	/* for new connections */
	return 0;
}

unsigned long
admin_taken(const struct admin *a)
{
	return a != NULL ? a->gen->n : ULONG_MAX;
}

void
admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	/* The pool first: freeing it answers every admin request still
	 * waiting on memcached (502) while its evhttp_request is alive.
	 * evhttp_free() frees the connections and the requests on them,
	 * including those we have not answered yet. */
	pool_free(a->pool);
	a->pool = NULL;
	evhttp_free(a->http);
	a->http = NULL;
	/* evhttp has freed every connection: drop our references */
	for (int i = 0; i < a->nconns; i++)
		bufferevent_decref(a->conns[i].bev);
	free(a->conns);
	event_free(a->sweep_ev);
	free(a);
}
