/*
 * admin.c - the admin and metrics endpoint; see admin.h. Runs on the main
 * thread's event_base. It reads workers' counters (relaxed atomics) and
 * their per-shard snapshots (under each worker's lock, refreshed every
 * second); it never touches a worker's pool. /metrics also reads
 * /proc/self (procstat.c) and the main thread's proc_metrics.
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
#include <libmemcached/memcached.h>
#include <openssl/crypto.h>

#include "admin.h"
#include "cacheio.h"
#include "entry.h"
#include "inspect.h"
#include "key.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "procstat.h"
#include "version.h"
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
	const struct proc_metrics *pm;	/* start time, reloads (agent.c's) */
	uint64_t slow_closes;		/* requests not whole within agent.admin.timeout */
	uint64_t paused;		/* times max_connections paused the listener */
	const struct generation *gen;	/* what cf and pool belong to */
	const struct generation *newest;	/* the agent's; older ones hang from it */
	const struct sc_config *cf;
	SSL_CTX *tls;
	struct pool *pool;
	struct worker *workers;
	int nworkers;
	struct l1feed *feed;
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
 * The Prometheus text format (0.0.4): each family is one group, its HELP
 * and TYPE lines first, then its samples; `promtool check metrics` runs on
 * a live scrape in tests/wire/test_metrics_prom.py. HELP texts hold no
 * backslash or newline (they would need escaping).
 */
static void
family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
scalar_u(struct evbuffer *b, const char *name, const char *type, const char *help, uint64_t v)
{
	family(b, name, type, help);
	evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void
scalar_i(struct evbuffer *b, const char *name, const char *type, const char *help, int64_t v)
{
	family(b, name, type, help);
	evbuffer_add_printf(b, "%s %lld\n", name, (long long)v);
}

/* s as a label value: backslash, double quote and newline escaped (a
 * memcached host is any string the config gives). */
static void
add_label_value(struct evbuffer *b, const char *s)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;

		if (esc == NULL)
			continue;
		evbuffer_add(b, run, (size_t)(s - run));
		evbuffer_add(b, esc, 2);
		run = s + 1;
	}
	evbuffer_add(b, run, (size_t)(s - run));
}

/* NAME{shard="SHARD" : the caller adds its other labels, "} " and the value. */
static void
shard_series(struct evbuffer *b, const char *name, const char *shard)
{
	evbuffer_add_printf(b, "%s{shard=\"", name);
	add_label_value(b, shard);
	evbuffer_add(b, "\"", 1);
}

/* Microseconds as seconds, exactly (%g would keep 6 digits of a sum that
 * only grows). */
static void
add_seconds_us(struct evbuffer *b, uint64_t us)
{
	evbuffer_add_printf(b, "%llu.%06llu", (unsigned long long)(us / 1000000),
	    (unsigned long long)(us % 1000000));
}

static void
shard_metrics(struct admin *a, struct evbuffer *b, const struct pool_shard_stats *sh, int ns)
{
	family(b, "spoe_cache_memcached_up", "gauge",
	    "1 when every worker thread sees the memcached shard up, else 0.");
	for (int i = 0; i < ns; i++) {
		shard_series(b, "spoe_cache_memcached_up", pool_shard_name(a->pool, i));
		evbuffer_add_printf(b, "} %d\n", sh[i].up == a->nworkers ? 1 : 0);
	}
	family(b, "spoe_cache_memcached_requests_total", "counter",
	    "Requests sent to the memcached shard, whatever became of them.");
	for (int i = 0; i < ns; i++) {
		shard_series(b, "spoe_cache_memcached_requests_total", pool_shard_name(a->pool, i));
		evbuffer_add_printf(b, "} %llu\n", (unsigned long long)sh[i].requests);
	}
	family(b, "spoe_cache_memcached_errors_total", "counter",
	    "Requests to the memcached shard that failed.");
	for (int i = 0; i < ns; i++) {
		shard_series(b, "spoe_cache_memcached_errors_total", pool_shard_name(a->pool, i));
		evbuffer_add_printf(b, "} %llu\n", (unsigned long long)sh[i].errors);
	}
	family(b, "spoe_cache_memcached_timeouts_total", "counter",
	    "Requests to the memcached shard that timed out (memcached.timeout).");
	for (int i = 0; i < ns; i++) {
		shard_series(b, "spoe_cache_memcached_timeouts_total", pool_shard_name(a->pool, i));
		evbuffer_add_printf(b, "} %llu\n", (unsigned long long)sh[i].timeouts);
	}
	family(b, "spoe_cache_memcached_latency_seconds", "histogram",
	    "Time from request to reply of the memcached shard.");
	for (int i = 0; i < ns; i++) {
		const char *n = pool_shard_name(a->pool, i);
		uint64_t cum = 0;

		for (int k = 0; k < POOL_LAT_NBOUNDS; k++) {
			cum += sh[i].lat_hist[k];
			shard_series(b, "spoe_cache_memcached_latency_seconds_bucket", n);
			evbuffer_add_printf(b, ",le=\"%g\"} %llu\n", pool_lat_bounds_us[k] / 1e6,
			    (unsigned long long)cum);
		}
		cum += sh[i].lat_hist[POOL_LAT_NBOUNDS];
		shard_series(b, "spoe_cache_memcached_latency_seconds_bucket", n);
		evbuffer_add_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
		shard_series(b, "spoe_cache_memcached_latency_seconds_sum", n);
		evbuffer_add(b, "} ", 2);
		add_seconds_us(b, sh[i].lat_sum_us);
		evbuffer_add(b, "\n", 1);
		shard_series(b, "spoe_cache_memcached_latency_seconds_count", n);
		evbuffer_add_printf(b, "} %llu\n", (unsigned long long)sh[i].lat_count);
	}
}

/* spoe_cache_build_info, and the standard process collector's metrics
 * (the names and help texts of Prometheus's client libraries). Without
 * /proc, only the start time. */
static void
process_metrics(struct admin *a, struct evbuffer *b)
{
	const char *lib[][2] = {
		{ "version", SC_VERSION },
		{ "libevent", event_get_version() },
#ifdef OPENSSL_VERSION_STRING
		{ "openssl", OpenSSL_version(OPENSSL_VERSION_STRING) },
#else
		{ "openssl", OpenSSL_version(OPENSSL_VERSION) },
#endif
		{ "libmemcached", memcached_lib_version() },
	};
	struct procstat ps;

	family(b, "spoe_cache_build_info", "gauge",
	    "Always 1; the labels are the agent's version and those of the libraries it runs with.");
	evbuffer_add(b, "spoe_cache_build_info{", 22);
	for (size_t i = 0; i < sizeof(lib) / sizeof(lib[0]); i++) {
		evbuffer_add_printf(b, "%s%s=\"", i ? "," : "", lib[i][0]);
		add_label_value(b, lib[i][1] != NULL ? lib[i][1] : "");
		evbuffer_add(b, "\"", 1);
	}
	evbuffer_add(b, "} 1\n", 4);
	family(b, "process_start_time_seconds", "gauge",
	    "Start time of the process since unix epoch in seconds.");
	evbuffer_add_printf(b, "process_start_time_seconds %.3f\n", a->pm->start_time);
	if (procstat_self(&ps) < 0)
		return;
	family(b, "process_cpu_seconds_total", "counter",
	    "Total user and system CPU time spent in seconds.");
	evbuffer_add_printf(b, "process_cpu_seconds_total %.2f\n", ps.cpu_seconds);
	scalar_u(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
	    ps.rss_bytes);
	scalar_u(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
	    ps.vsize_bytes);
	if (ps.open_fds >= 0)
		scalar_i(b, "process_open_fds", "gauge", "Number of open file descriptors.",
		    ps.open_fds);
	if (ps.max_fds >= 0)
		scalar_i(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
		    ps.max_fds);
}

/*
 * Which configuration is in force: a test (or an operator) waits for
 * spoe_cache_config_generation to reach _loaded after a SIGHUP instead of
 * guessing how long the workers take; _held falls back to 1 once the
 * older generations are freed. How reloads went uses Prometheus's own
 * names for it (prometheus_config_last_reload_successful, ...).
 */
static void
config_metrics(struct admin *a, struct evbuffer *b)
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
	scalar_u(b, "spoe_cache_config_generation", "gauge",
	    "Configuration generation every worker and the admin endpoint use (1 at start, +1 per accepted reload).",
	    taken);
	scalar_u(b, "spoe_cache_config_generation_loaded", "gauge",
	    "Newest configuration generation loaded.", a->newest->n);
	scalar_u(b, "spoe_cache_configs_held", "gauge",
	    "Configuration generations still in memory.", held);
	family(b, "spoe_cache_config_reloads_total", "counter",
	    "Reloads asked for with SIGHUP, by result (a failure keeps the running configuration).");
	evbuffer_add_printf(b, "spoe_cache_config_reloads_total{result=\"success\"} %llu\n"
	    "spoe_cache_config_reloads_total{result=\"failure\"} %llu\n",
	    (unsigned long long)a->pm->reloads_ok, (unsigned long long)a->pm->reloads_failed);
	scalar_i(b, "spoe_cache_config_last_reload_successful", "gauge",
	    "Whether the last configuration load (at start or on SIGHUP) was accepted: 1, or 0.",
	    a->pm->last_reload_ok);
	family(b, "spoe_cache_config_last_reload_success_timestamp_seconds", "gauge",
	    "Time of the last accepted configuration load (at start or on SIGHUP), since unix epoch in seconds.");
	evbuffer_add_printf(b, "spoe_cache_config_last_reload_success_timestamp_seconds %.3f\n",
	    a->pm->last_reload_ok_time);
}

/* Collapsed forwarding and stale serving (cacheio.c). */
static void
coordination_metrics(struct admin *a, struct evbuffer *b)
{
	static const char *const outcome[3] = { "hit", "origin", "timeout" };
	uint64_t waits = 0, out[3] = { 0 }, locks[2] = { 0 }, stale[PST_MAX] = { 0 }, pass = 0;
	uint64_t reval = 0, l1[4] = { 0 };
	int64_t tracked = 0;

	for (int i = 0; i < a->nworkers; i++) {
		struct metrics *m = &a->workers[i].m;

		waits += M_GET(m, collapse_waits);
		for (int k = 0; k < 3; k++)
			out[k] += M_GET(m, collapse_outcomes[k]);
		for (int k = 0; k < 2; k++)
			locks[k] += M_GET(m, refresh_locks[k]);
		for (int k = 0; k < PST_MAX; k++)
			stale[k] += M_GET(m, stale_served[k]);
		pass += M_GET(m, pass_marks);
		reval += M_GET(m, revalidations);
		l1[0] += M_GET(m, l1_grants);
		l1[1] += M_GET(m, l1_refused);
		l1[2] += M_GET(m, l1_checks);
		l1[3] += M_GET(m, l1_withdrawn);
		tracked += M_GET(m, l1_tracked);
	}
	scalar_u(b, "spoe_cache_collapsed_waits_total", "counter",
	    "Lookups that waited for another lookup's fetch of their key (collapsed forwarding).",
	    waits);
	family(b, "spoe_cache_collapsed_outcomes_total", "counter",
	    "What waiting lookups ended with: a hit, the origin (nothing stored for them), or "
	    "the origin after collapse_wait.");
	for (int k = 0; k < 3; k++)
		evbuffer_add_printf(b, "spoe_cache_collapsed_outcomes_total{outcome=\"%s\"} %llu\n",
		    outcome[k], (unsigned long long)out[k]);
	family(b, "spoe_cache_refresh_locks_total", "counter",
	    "Refresh locks of stale entries tried: won (this lookup refreshed) or lost (another did).");
	evbuffer_add_printf(b, "spoe_cache_refresh_locks_total{result=\"won\"} %llu\n"
	    "spoe_cache_refresh_locks_total{result=\"lost\"} %llu\n",
	    (unsigned long long)locks[0], (unsigned long long)locks[1]);
	scalar_u(b, "spoe_cache_pass_markers_total", "counter",
	    "Responses not storable that other lookups may have waited for: their key goes to the "
	    "origin for a while.", pass);
	scalar_u(b, "spoe_cache_revalidations_total", "counter",
	    "Stale entries the origin confirmed with 304 Not Modified: updated and served.", reval);
	scalar_u(b, "spoe_cache_l1_grants_total", "counter",
	    "Hits HAProxy's node-local tier (L1) was allowed to keep.", l1[0]);
	scalar_u(b, "spoe_cache_l1_refused_total", "counter",
	    "Hits the L1 was not allowed to keep: no room to track them.", l1[1]);
	scalar_u(b, "spoe_cache_l1_checks_total", "counter",
	    "L1 grants re-read from memcached (their entry's CAS).", l1[2]);
	scalar_u(b, "spoe_cache_l1_withdrawn_total", "counter",
	    "L1 grants whose entry changed or went: fed to HAProxy (GET /l1/feed) to skip.", l1[3]);
	scalar_i(b, "spoe_cache_l1_tracked", "gauge", "L1 grants tracked now.", tracked);
	family(b, "spoe_cache_stale_served_total", "counter", "Stale entries served, by reason.");
	for (int k = PST_NONE + 1; k < PST_MAX; k++)
		evbuffer_add_printf(b, "spoe_cache_stale_served_total{reason=\"%s\"} %llu\n",
		    pol_stale_name[k], (unsigned long long)stale[k]);
}

static void
metrics(struct admin *a, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	uint64_t lk[CS_MAX] = { 0 }, ref[SR_MAX] = { 0 }, rej[ENTRY_NERR] = { 0 };
	uint64_t stores = 0, inval = 0, ctot = 0, fin = 0, fout = 0, disc = 0, bad = 0;
	uint64_t ev = 0, idle = 0, shed = 0, sfail[SF_MAX] = { 0 }, backlog_full = 0;
	int64_t copen = 0, infl = 0, buffered = 0, backlog = 0;
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
		buffered += M_GET(m, buffered);
		ev += M_GET(m, evictions);
		idle += M_GET(m, idle_closes);
		shed += M_GET(m, acks_shed);
		for (int r = 0; r < ENTRY_NERR; r++)
			rej[r] += M_GET(m, entries_rejected[r]);
		worker_sum_shards(&a->workers[i], sh, ns);
	}
	family(b, "spoe_cache_lookups_total", "counter", "Lookups by cache status.");
	for (int s = 0; s < CS_MAX; s++)
		evbuffer_add_printf(b, "spoe_cache_lookups_total{status=\"%s\"} %llu\n",
		    cache_status_name[s], (unsigned long long)lk[s]);
	scalar_u(b, "spoe_cache_stores_total", "counter", "Responses stored.", stores);
	family(b, "spoe_cache_store_refusals_total", "counter", "Responses not stored, by reason.");
	for (int s = 0; s < SR_MAX; s++)
		evbuffer_add_printf(b, "spoe_cache_store_refusals_total{reason=\"%s\"} %llu\n",
		    store_refusal_name[s], (unsigned long long)ref[s]);
	family(b, "spoe_cache_store_failures_total", "counter",
	    "Background stores memcached did not take (the client had its label already), by reason.");
	{
		static const char *const fail_name[SF_MAX] = { "error", "not_stored", "too_big" };

		for (int f = 0; f < SF_MAX; f++)
			evbuffer_add_printf(b, "spoe_cache_store_failures_total{reason=\"%s\"} %llu\n",
			    fail_name[f], (unsigned long long)sfail[f]);
	}
	scalar_u(b, "spoe_cache_store_backlog_refusals_total", "counter",
	    "Stores refused (Bypass): the worker's background stores held memcached.store_backlog.",
	    backlog_full);
	scalar_i(b, "spoe_cache_store_backlog_bytes", "gauge",
	    "Bytes of background stores sent to memcached and not answered yet.", backlog);
	scalar_u(b, "spoe_cache_invalidations_total", "counter",
	    "Entries invalidated by requests with unsafe methods.", inval);
	scalar_u(b, "spoe_cache_spop_connections_total", "counter",
	    "SPOP connections accepted (HAProxy's health checks included).", ctot);
	scalar_i(b, "spoe_cache_spop_connections", "gauge", "SPOP connections open.", copen);
	family(b, "spoe_cache_spop_frames_total", "counter",
	    "SPOP frames received (every frame) and ACK frames sent.");
	evbuffer_add_printf(b, "spoe_cache_spop_frames_total{direction=\"in\"} %llu\n"
	    "spoe_cache_spop_frames_total{direction=\"out\"} %llu\n",
	    (unsigned long long)fin, (unsigned long long)fout);
	scalar_u(b, "spoe_cache_spop_disconnects_total", "counter",
	    "DISCONNECT frames sent for an error.", disc);
	scalar_i(b, "spoe_cache_inflight", "gauge", "Requests being processed.", infl);
	scalar_u(b, "spoe_cache_bad_messages_total", "counter",
	    "NOTIFY messages the agent could not use.", bad);
	family(b, "spoe_cache_entries_rejected_total", "counter",
	    "Stored entries refused before replay (each a Miss), by reason.");
	for (int r = 0; r < ENTRY_NERR; r++)
		evbuffer_add_printf(b, "spoe_cache_entries_rejected_total{reason=\"%s\"} %llu\n",
		    entry_err_name(-(r + 1)), (unsigned long long)rej[r]);
	coordination_metrics(a, b);
	shard_metrics(a, b, sh, ns);
	free(sh);
	scalar_i(b, "spoe_cache_spop_buffered_bytes", "gauge",
	    "Bytes SPOP connections hold (input, fragments, queued ACKs).", buffered);
	scalar_u(b, "spoe_cache_spop_evictions_total", "counter",
	    "Connections closed because all of them held more than agent.max_buffered.", ev);
	scalar_u(b, "spoe_cache_spop_idle_closes_total", "counter",
	    "Connections closed after agent.idle_timeout.", idle);
	scalar_u(b, "spoe_cache_spop_acks_shed_total", "counter",
	    "Large ACKs answered Bypass because the peer was not reading.", shed);
	scalar_u(b, "spoe_cache_spop_refused_connections_total", "counter",
	    "Connections refused at agent.max_connections.",
	    a->accept_m != NULL ? M_GET(a->accept_m, conns_refused) : 0);
	scalar_u(b, "spoe_cache_spop_accept_pauses_total", "counter",
	    "Times accepting paused because accept() failed (out of file descriptors).",
	    a->accept_m != NULL ? M_GET(a->accept_m, accept_pauses) : 0);
	scalar_i(b, "spoe_cache_admin_connections", "gauge", "Admin connections open.", a->nconns);
	scalar_u(b, "spoe_cache_admin_slow_closes_total", "counter",
	    "Admin connections closed for not sending a whole request within agent.admin.timeout.",
	    a->slow_closes);
	scalar_u(b, "spoe_cache_admin_pauses_total", "counter",
	    "Times the admin listener paused at agent.admin.max_connections.", a->paused);
	config_metrics(a, b);
	process_metrics(a, b);
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

/* DELETE /cache/KEY?soft=1: mark stale instead of deleting. */
static int
soft_purge(struct evhttp_request *req)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));

	return q != NULL && strcmp(q, "soft=1") == 0;
}

/*
 * GET /l1/feed?since=N: "epoch E seq S", then the events after N (at most
 * FEED_MAX, oldest first) as "SEQ TTL_MS BASE" lines, TTL_MS what is left
 * of the longest life a copy of BASE may have; or the line "all" when the
 * events after N are not held any more (or N is not ours: above S).
 */
#define FEED_MAX	1000

static void
l1_feed(struct admin *a, struct evhttp_request *req)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *b = evbuffer_new();
	struct l1_ring *r = &a->feed->ring;
	unsigned long long since = 0;
	struct timespec ts;
	int64_t now;

	if (q != NULL) {
		char *end;

		if (strncmp(q, "since=", 6) != 0 || q[6] < '0' || q[6] > '9' ||
		    (since = strtoull(q + 6, &end, 10), *end != '\0') || since == ULLONG_MAX) {
			evbuffer_free(b);
			reply_text(req, 400, "Bad Request", "since=N, N a decimal number");
			return;
		}
	}
	if (b == NULL) {
		reply_text(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	pthread_mutex_lock(&a->feed->lock);
	evbuffer_add_printf(b, "epoch %llu seq %llu\n", (unsigned long long)a->feed->epoch,
	    (unsigned long long)r->seq);
	if (since > r->seq || (since < r->seq && since + 1 < l1r_oldest(r))) {
		evbuffer_add(b, "all\n", 4);
	} else {
		for (uint64_t n = since + 1; n <= r->seq && n <= since + FEED_MAX; n++) {
			const struct l1_event *ev = l1r_get(r, n);

			evbuffer_add_printf(b, "%llu %lld ", (unsigned long long)n,
			    (long long)(ev->until_ms > now ? ev->until_ms - now : 0));
			evbuffer_add(b, ev->base, ev->blen);
			evbuffer_add(b, "\n", 1);
		}
	}
	pthread_mutex_unlock(&a->feed->lock);
	reply(req, 200, "OK", "text/plain; charset=utf-8", b);
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
	if (strcmp(path, "/l1/feed") == 0 && cmd == EVHTTP_REQ_GET) {
		l1_feed(a, req);
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
		    soft_purge(req) ? pool_invalidate(a->pool, p->key, KEY_HEX_LEN, POL_SOFT_PURGE_TTL,
		    on_delete, p) : pool_delete(a->pool, p->key, KEY_HEX_LEN, on_delete, p);
		if (rc < 0) {
			free(p);
			reply_text(req, 500, "Internal Server Error", "cannot send to memcached");
		}
		return;
	}
	reply_text(req, 404, "Not Found",
	    "GET /healthz, GET /metrics, GET|DELETE /cache/KEY, DELETE /cache, GET /l1/feed");
}

struct admin *
admin_new(struct event_base *base, const struct generation *g, SSL_CTX *tls,
    struct worker *workers, int nworkers, const struct metrics *accept_m,
    const struct proc_metrics *pm, struct l1feed *feed, char *err, size_t errlen)
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
	a->pm = pm;
	a->feed = feed;
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
