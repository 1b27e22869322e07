/*
 * pool.c - memcached shards as seen by one worker thread: connections,
 * pipelining, deadlines, failure detection, background probes, TLS.
 *
 * Must not block: connects are non-blocking, names were resolved before
 * pool_new_at() (pool_addrs_resolve()), every request has a deadline. Must not call a user callback
 * from inside a request call (failures go through pool->done and a deferred
 * event). Must not re-route a key: a down shard fails fast until a probe
 * brings it back. Protocol details live in mcproto.c, placement in ketama.c.
 */
#include "log.h"
#include "pool.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "bevio.h"
#include "ketama.h"
#include "mcproto.h"

#define STATS_MAX	(1024 * 1024)	/* a stats reply larger than this is garbage */
#define READ_MORE_MAX	(1024 * 1024)	/* bytes read per read event */

/*
 * memcached 1.6 over TLS stalls on pipelined sets: it reads a value straight
 * from SSL_read(), the commands behind it stay decrypted inside OpenSSL, and
 * it then waits for the socket to become readable, which it never does
 * (pipelining 1000 small "ms" over one TLS connection gets ~500 replies; one
 * more byte from the client releases the rest). So while a set is in flight
 * on a TLS connection and no reply has come for NUDGE_US, send "mn": its
 * bytes wake memcached up, and its MN reply is consumed here.
 */
#define NUDGE_US	5000
#define NUDGE_MAX	8	/* in flight at once on one connection */

const uint32_t pool_lat_bounds_us[POOL_LAT_NBOUNDS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
};

/* ---- logging ---------------------------------------------------------- */


const char *mc_status_name(enum mc_status st)
{
	switch (st) {
	case MC_OK: return "OK";
	case MC_NOTFOUND: return "NOTFOUND";
	case MC_NOTSTORED: return "NOTSTORED";
	case MC_ERROR: return "ERROR";
	case MC_TOOBIG: return "TOOBIG";
	}
	return "?";
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct timeval tv_us(uint64_t us)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(us / 1000000u);
	tv.tv_usec = (suseconds_t)(us % 1000000u);
	return tv;
}

/* ---- types -------------------------------------------------------------- */

enum req_kind { RQ_GET, RQ_CHECK, RQ_SET, RQ_DELETE, RQ_FLUSH, RQ_STATS, RQ_PROBE, RQ_NUDGE };

/* Why a request failed, for the counters. */
enum fail_why { FW_IO, FW_TIMEOUT, FW_DOWN, FW_SERVER, FW_TOOBIG };

/*
 * One request. Allocated by pool_get & co., on exactly one list at a time:
 * its connection's inflight queue (sent, waiting for its reply) or
 * pool->done (failed, callback pending). Freed by req_free() right after its
 * callback returned (or, for a probe or a nudge, which have no callback and
 * never reach pool->done, when their reply comes or their connection closes).
 */
struct req {
	TAILQ_ENTRY(req) link;
	struct shard *shard;
	enum req_kind kind;
	uint32_t opaque;
	pool_cb cb;
	pool_meta_cb mcb;		/* instead of cb: pool_get_meta() */
	struct pool_meta meta;		/* what mcb gets */
	void *arg;
	uint64_t t0_us;
	uint64_t deadline_us;
	enum mc_status st;		/* on pool->done: what cb gets */
	struct evbuffer *stats;		/* RQ_STATS: STAT lines so far */
};
TAILQ_HEAD(req_list, req);

/*
 * One connection to a shard. state changes only in conn_set_state().
 * Owned by its shard (shard->conns, or shard->probe for the probe). Freed by
 * conn_close(), except while conn_read_cb() runs on it (busy): then
 * conn_close() only marks it CLOSED and conn_read_cb() frees it on the way
 * out, since user callbacks called from there may close it.
 */
enum conn_state { CONN_CONNECTING, CONN_READY, CONN_CLOSED };

struct conn {
	TAILQ_ENTRY(conn) link;
	struct shard *shard;
	struct bufferevent *bev;
	struct event *timer;		/* deadline of the oldest request, or idle */
	struct bevio_writer w;		/* plain sockets: writes at the end of each loop pass */
	enum conn_state state;
	int probe;
	int busy;
	struct req_list inflight;	/* in send order = reply order */
	int ninflight;
	uint64_t idle_since_us;
	uint64_t progress_us;		/* last reply, last nudge, or the queue starting */
	int nsets;			/* RQ_SET in flight */
	int nudges;			/* RQ_NUDGE in flight */
	size_t need;			/* bytes the reply being read needs */
	size_t skip;			/* bytes of an oversize value to discard */
};
TAILQ_HEAD(conn_list, conn);

struct shard {
	struct pool *pool;
	int idx;
	char name[300];			/* host:port */
	char *host;			/* as configured (ring and TLS name) */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct conn_list conns;
	int nconns;
	struct conn *probe;
	struct event *probe_timer;
	int up;
	int fails;			/* failures in a row */
	uint64_t toobig_logged_us;
	uint64_t toobig_quiet;
	char probe_why[160];		/* last probe failure logged: say each new cause once */
	struct pool_shard_stats st;
};

struct pool {
	struct event_base *base;
	const struct sc_pool_conf *conf;
	SSL_CTX *tls;
	struct ketama *ring;
	struct shard *shards;
	int nshards;
	struct req_list done;
	struct event *done_ev;
	uint32_t next_opaque;
	int closing;
	int in_cb;
};

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_close(struct conn *c);
static void shard_failure(struct shard *s, const char *why);

/* ---- small helpers ------------------------------------------------------ */

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int is_ip_literal(const char *s)
{
	unsigned char tmp[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

static void ssl_errors(char *buf, size_t len, unsigned long (*next)(void *), void *ctx)
{
	unsigned long e;
	size_t n = 0;

	buf[0] = '\0';
	while ((e = next(ctx)) != 0) {
		char one[256];

		ERR_error_string_n(e, one, sizeof(one));
		if (n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "; " : "", one);
	}
}

static unsigned long next_global_err(void *ctx)
{
	(void)ctx;
	return ERR_get_error();
}

static unsigned long next_bev_err(void *ctx)
{
	return bufferevent_get_openssl_error(ctx);
}

/* ---- requests and their completion ---------------------------------------- */

static void req_free(struct req *r)
{
	if (r->stats)
		evbuffer_free(r->stats);
	r->stats = NULL;
	free(r);
}

static void lat_observe(struct shard *s, uint64_t t0)
{
	uint64_t d = now_us() - t0;
	int i;

	s->st.lat_count++;
	s->st.lat_sum_us += d;
	for (i = 0; i < POOL_LAT_NBOUNDS; i++)
		if (d <= pool_lat_bounds_us[i])
			break;
	s->st.lat_hist[i]++;
}

static void count_fail(struct shard *s, enum fail_why why)
{
	switch (why) {
	case FW_TOOBIG:
		s->st.too_big++;
		return;
	case FW_TIMEOUT:
		s->st.timeouts++;
		break;
	case FW_DOWN:
		s->st.fast_fails++;
		break;
	case FW_SERVER:
		s->st.server_errors++;
		break;
	case FW_IO:
		break;
	}
	s->st.errors++;
}

/* Queue a failed request for its callback on the next loop pass; used for
 * every failure, so that a user callback never runs inside our own code. */
static void req_fail_async(struct req *r, enum fail_why why)
{
	struct pool *p = r->shard->pool;

	if (r->kind != RQ_PROBE)
		count_fail(r->shard, why);
	r->st = why == FW_TOOBIG ? MC_TOOBIG : MC_ERROR;
	TAILQ_INSERT_TAIL(&p->done, r, link);
	event_active(p->done_ev, EV_TIMEOUT, 0);
}

static void call_cb(struct pool *p, struct req *r, enum mc_status st,
		    const uint8_t *val, size_t vlen)
{
	if (r->cb == NULL && r->mcb == NULL)
		return;
	p->in_cb++;
	if (r->mcb != NULL)
		r->mcb(r->arg, st, &r->meta, val, vlen);
	else
		r->cb(r->arg, st, val, vlen);
	p->in_cb--;
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pool *p = arg;
	struct req_list batch = TAILQ_HEAD_INITIALIZER(batch);
	struct req *r;

	(void)fd;
	(void)what;
	/* Only this batch: failures queued by the callbacks themselves wait for
	 * the next pass, so a caller retrying in a loop cannot starve the loop. */
	TAILQ_CONCAT(&batch, &p->done, link);
	while ((r = TAILQ_FIRST(&batch)) != NULL) {
		TAILQ_REMOVE(&batch, r, link);
		call_cb(p, r, r->st, NULL, 0);
		req_free(r);
	}
}

static struct req *req_new(struct pool *p, struct shard *s, enum req_kind kind,
			   pool_cb cb, void *arg)
{
	struct req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->shard = s;
	r->kind = kind;
	r->cb = cb;
	r->arg = arg;
	r->opaque = p->next_opaque++;
	r->t0_us = now_us();
	r->deadline_us = r->t0_us + (uint64_t)p->conf->timeout_ms * 1000u;
	return r;
}

/* ---- connections ------------------------------------------------------------ */

static const char *conn_state_name(enum conn_state st)
{
	switch (st) {
	case CONN_CONNECTING: return "connecting";
	case CONN_READY: return "ready";
	case CONN_CLOSED: return "closed";
	}
	return "?";
}

static void conn_set_state(struct conn *c, enum conn_state st)
{
	log_msg(LOG_DEBUG, "shard %s: connection %p%s %s -> %s", c->shard->name, (void *)c,
	     c->probe ? " (probe)" : "", conn_state_name(c->state), conn_state_name(st));
	c->state = st;
}

static int conn_may_nudge(const struct conn *c)
{
	return c->shard->pool->tls && c->nsets > 0 && c->nudges < NUDGE_MAX;
}

static void conn_arm(struct conn *c)
{
	const struct sc_pool_conf *conf = c->shard->pool->conf;
	uint64_t now = now_us(), at;
	struct timeval tv;

	if (c->state == CONN_CLOSED)
		return;
	if (!TAILQ_EMPTY(&c->inflight)) {
		at = TAILQ_FIRST(&c->inflight)->deadline_us;
		if (conn_may_nudge(c) && c->progress_us + NUDGE_US < at)
			at = c->progress_us + NUDGE_US;
	} else
		at = c->idle_since_us + (uint64_t)conf->keepalive_timeout_ms * 1000u;
	tv = tv_us(at > now ? at - now : 0);
	evtimer_add(c->timer, &tv);
}

static struct conn *conn_new(struct shard *s, int probe)
{
	struct pool *p = s->pool;
	struct conn *c;
	SSL *ssl = NULL;
	int fd, one = 1;
	const int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->shard = s;
	c->probe = probe;
	c->state = CONN_CONNECTING;
	TAILQ_INIT(&c->inflight);
	c->idle_since_us = now_us();
	c->timer = evtimer_new(p->base, conn_timer_cb, c);
	if (c->timer == NULL)
		goto fail;

	if (p->tls) {
		const char *name = p->conf->tls_server_name ? p->conf->tls_server_name : s->host;
		X509_VERIFY_PARAM *vp;

		ssl = SSL_new(p->tls);
		if (ssl == NULL)
			goto fail;
		vp = SSL_get0_param(ssl);
		if (is_ip_literal(name)) {
			/* RFC 6066: no SNI for an address; check the IP SAN */
			if (p->conf->tls_verify && X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1)
				goto fail;
		} else {
			if (SSL_set_tlsext_host_name(ssl, name) != 1)
				goto fail;
			X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (p->conf->tls_verify && X509_VERIFY_PARAM_set1_host(vp, name, 0) != 1)
				goto fail;
		}
		c->bev = bufferevent_openssl_socket_new(p->base, -1, ssl,
							BUFFEREVENT_SSL_CONNECTING, opts);
		if (c->bev == NULL)
			goto fail;
		ssl = NULL;	/* the bufferevent frees it (BEV_OPT_CLOSE_ON_FREE) */
		/* memcached may close without close_notify; that is an EOF,
		 * not an attack on a length-delimited protocol */
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(p->base, -1, opts);
		if (c->bev == NULL)
			goto fail;
		/* started once connected; without it (out of memory) the
		 * bufferevent writes, as it can */
		(void)bevio_writer_init(&c->w, p->base, c->bev, NULL, NULL);
	}
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bevio_tune(c->bev);
	/* Non-blocking; a refusal seen at once is reported through the
	 * (deferred) event callback, never from here. */
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&s->addr, (int)s->addrlen) < 0)
		goto fail;
	fd = bufferevent_getfd(c->bev);
	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (probe) {
		s->probe = c;
	} else {
		TAILQ_INSERT_TAIL(&s->conns, c, link);
		s->nconns++;
	}
	log_msg(LOG_DEBUG, "shard %s: connecting%s", s->name, probe ? " (probe)" : "");
	return c;
fail:
	{
		char e[512];

		ssl_errors(e, sizeof(e), next_global_err, NULL);
		log_msg(LOG_ERR, "shard %s: cannot open a connection: %s", s->name,
		     e[0] ? e : strerror(errno));
	}
	if (ssl)
		SSL_free(ssl);
	if (c->bev) {
		bevio_writer_free(&c->w);
		bufferevent_free(c->bev);
	}
	if (c->timer)
		event_free(c->timer);
	free(c);
	return NULL;
}

/* Hand every request in flight on c to its callback as failed. */
static void conn_fail_inflight(struct conn *c, enum fail_why why)
{
	struct req *r;

	while ((r = TAILQ_FIRST(&c->inflight)) != NULL) {
		TAILQ_REMOVE(&c->inflight, r, link);
		c->ninflight--;
		if (r->kind == RQ_PROBE || r->kind == RQ_NUDGE)
			req_free(r);
		else
			req_fail_async(r, why);
	}
}

/* Close c; whatever is still in flight fails with MC_ERROR. Counts no
 * failure against the shard: the caller decides whether it is to blame. */
static void conn_close(struct conn *c)
{
	struct shard *s = c->shard;

	if (c->state == CONN_CLOSED)
		return;
	conn_set_state(c, CONN_CLOSED);
	conn_fail_inflight(c, FW_IO);
	if (c->timer)
		event_free(c->timer);
	c->timer = NULL;
	if (c->bev) {
		bevio_writer_free(&c->w);
		bufferevent_free(c->bev);
	}
	c->bev = NULL;
	if (c->probe) {
		if (s->probe == c)
			s->probe = NULL;
	} else {
		TAILQ_REMOVE(&s->conns, c, link);
		s->nconns--;
	}
	if (!c->busy)
		free(c);
}

static void conn_close_fail(struct conn *c, enum fail_why why)
{
	conn_fail_inflight(c, why);
	conn_close(c);
}

/* A connection failed in a way that makes the shard suspect. */
static void conn_fail(struct conn *c, enum fail_why why, const char *what)
{
	struct shard *s = c->shard;
	int probe = c->probe;

	conn_close_fail(c, why);
	if (probe) {
		/* A down shard is probed every retry_interval: log its cause
		 * when it changes (a restart behind a bad certificate, say),
		 * not at every probe. */
		if (strncmp(s->probe_why, what, sizeof(s->probe_why) - 1) != 0) {
			log_msg(LOG_WARNING, "shard %s: still down: %s", s->name, what);
			snprintf(s->probe_why, sizeof(s->probe_why), "%s", what);
		} else {
			log_msg(LOG_DEBUG, "shard %s: probe failed: %s", s->name, what);
		}
		return;	/* the probe timer is already scheduled */
	}
	shard_failure(s, what);
}

static void conn_push(struct conn *c, struct req *r)
{
	int was_empty = TAILQ_EMPTY(&c->inflight);

	TAILQ_INSERT_TAIL(&c->inflight, r, link);
	c->ninflight++;
	if (r->kind == RQ_SET)
		c->nsets++;
	if (was_empty) {
		c->progress_us = now_us();
		conn_arm(c);
	} else if (r->kind == RQ_SET && c->nsets == 1 && c->shard->pool->tls) {
		conn_arm(c);	/* the timer now also watches for a stall */
	}
}

static struct req *conn_pop(struct conn *c)
{
	struct req *r = TAILQ_FIRST(&c->inflight);

	TAILQ_REMOVE(&c->inflight, r, link);
	c->ninflight--;
	if (r->kind == RQ_SET)
		c->nsets--;
	c->progress_us = now_us();
	if (TAILQ_EMPTY(&c->inflight)) {
		c->idle_since_us = c->progress_us;
		conn_arm(c);
	}
	return r;
}

/* See NUDGE_US. A failure to queue it is not worth a connection: the
 * deadline still bounds the wait. */
static void conn_nudge(struct conn *c)
{
	struct req *r = req_new(c->shard->pool, c->shard, RQ_NUDGE, NULL, NULL);
	char cmd[8];
	int n = mc_enc_noop(cmd, sizeof(cmd));

	if (r == NULL || n < 0 || bufferevent_write(c->bev, cmd, (size_t)n) < 0) {
		free(r);
		return;
	}
	/* the next one only after another NUDGE_US without a reply: the
	 * stall can come back behind the next set */
	c->nudges++;
	c->progress_us = now_us();
	conn_push(c, r);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	const struct sc_pool_conf *conf = c->shard->pool->conf;
	uint64_t now = now_us();
	struct req *head = TAILQ_FIRST(&c->inflight);
	char why[128];

	(void)fd;
	(void)what;
	if (head) {
		if (head->deadline_us > now) {
			if (conn_may_nudge(c) && now >= c->progress_us + NUDGE_US)
				conn_nudge(c);
			conn_arm(c);	/* the old head was answered in time */
			return;
		}
		/* Replies come in order: once the oldest is late, the ones
		 * behind it cannot be trusted to arrive in time either, and a
		 * late reply would be matched to the wrong request. */
		snprintf(why, sizeof(why), "no reply within %d ms (%d in flight, %s)",
			 conf->timeout_ms, c->ninflight, conn_state_name(c->state));
		conn_fail(c, FW_TIMEOUT, why);
		return;
	}
	if (now - c->idle_since_us >= (uint64_t)conf->keepalive_timeout_ms * 1000u) {
		log_msg(LOG_DEBUG, "shard %s: closing idle connection", c->shard->name);
		conn_close(c);
		return;
	}
	conn_arm(c);
}

/* The bufferevent wrote what the writer could not (see bevio.h). */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	bevio_writer_written(&c->w);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	struct shard *s = c->shard;
	char why[768];

	if (what & BEV_EVENT_CONNECTED) {
		conn_set_state(c, CONN_READY);
		bevio_writer_start(&c->w);
		if (!c->probe)
			s->st.conn_opened++;
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;

	if (s->pool->tls) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
		char e[512];

		ssl_errors(e, sizeof(e), next_bev_err, bev);
		if (c->state == CONN_CONNECTING && s->pool->conf->tls_verify && vr != X509_V_OK)
			snprintf(why, sizeof(why), "TLS handshake failed: certificate not accepted: %s",
				 X509_verify_cert_error_string(vr));
		else if (e[0])
			snprintf(why, sizeof(why), "TLS %s: %s",
				 c->state == CONN_CONNECTING ? "handshake failed" : "error", e);
		else if (what & BEV_EVENT_EOF)
			snprintf(why, sizeof(why), "closed by the server%s",
				 c->state == CONN_CONNECTING ? " during the TLS handshake" : "");
		else
			snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(
					 EVUTIL_SOCKET_ERROR()));
	} else if (what & BEV_EVENT_EOF) {
		snprintf(why, sizeof(why), "closed by the server");
	} else {
		snprintf(why, sizeof(why), "%s%s", c->state == CONN_CONNECTING ? "connect: " : "",
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	}

	if (c->state == CONN_READY && TAILQ_EMPTY(&c->inflight) && !c->probe) {
		/* memcached restarted or dropped an idle client: not a failure */
		log_msg(LOG_INFO, "shard %s: idle connection %s", s->name, why);
		conn_close(c);
		return;
	}
	if (!c->probe)
		log_msg(LOG_ERR, "shard %s: %s", s->name, why);
	conn_fail(c, FW_IO, why);
}

/* ---- reading replies -------------------------------------------------------- */

/* 0: reply consumed (c may be closed now, by a callback); -1: protocol error */
static int conn_reply(struct conn *c, const struct mc_reply *m, const uint8_t *raw, size_t rawlen,
		      const char **why)
{
	struct shard *s = c->shard;
	struct pool *p = s->pool;
	struct req *r = TAILQ_FIRST(&c->inflight);
	enum mc_status st = MC_ERROR;
	const uint8_t *val = NULL;
	size_t vlen = 0;

	if (r == NULL) {
		*why = "reply with no request in flight";
		return -1;
	}
	switch (m->type) {
	case MC_R_HD: case MC_R_VA: case MC_R_EN: case MC_R_NF: case MC_R_NS: case MC_R_EX:
		if (r->kind != RQ_GET && r->kind != RQ_CHECK && r->kind != RQ_SET && r->kind != RQ_DELETE)
			break;
		if (!m->has_opaque || m->opaque != r->opaque) {
			*why = "reply opaque does not match the oldest request";
			return -1;
		}
		break;
	default:
		break;
	}

	if (m->type == MC_R_SERVER_ERROR && r->kind != RQ_PROBE && r->kind != RQ_NUDGE) {
		/* the command failed but memcached kept the stream in sync */
		log_msg(LOG_WARNING, "shard %s: SERVER_ERROR %.*s", s->name, (int)m->textlen, m->text);
		r = conn_pop(c);
		s->fails = 0;
		lat_observe(s, r->t0_us);
		count_fail(s, FW_SERVER);
		call_cb(p, r, MC_ERROR, NULL, 0);
		req_free(r);
		return 0;
	}

	switch (r->kind) {
	case RQ_GET:
		if (m->type == MC_R_VA) {
			st = MC_OK;
			val = m->val;
			vlen = m->vlen;
			s->st.hits++;
			r->meta.flags = m->mflags;
			r->meta.cas = m->cas;
			r->meta.ttl = m->has_ttl ? m->ttl : -1;
		} else if (m->type == MC_R_EN) {
			st = MC_NOTFOUND;
			s->st.misses++;
		} else {
			goto unexpected;
		}
		break;
	case RQ_CHECK:
		if (m->type == MC_R_HD) {
			st = MC_OK;
			r->meta.flags = m->mflags;
			r->meta.cas = m->cas;
			r->meta.ttl = m->has_ttl ? m->ttl : -1;
		} else if (m->type == MC_R_EN) {
			st = MC_NOTFOUND;
		} else {
			goto unexpected;
		}
		break;
	case RQ_SET:
		if (m->type == MC_R_HD) {
			st = MC_OK;
			s->st.stored++;
		} else if (m->type == MC_R_NS) {
			st = MC_NOTSTORED;
			s->st.not_stored++;
		} else {
			goto unexpected;
		}
		break;
	case RQ_DELETE:
		if (m->type == MC_R_HD)
			st = MC_OK;
		else if (m->type == MC_R_NF)
			st = MC_NOTFOUND;
		else
			goto unexpected;
		break;
	case RQ_FLUSH:
		if (m->type != MC_R_OK)
			goto unexpected;
		st = MC_OK;
		break;
	case RQ_STATS:
		if (m->type == MC_R_STAT) {
			if (r->stats == NULL && (r->stats = evbuffer_new()) == NULL) {
				*why = "out of memory";
				return -1;
			}
			if (evbuffer_get_length(r->stats) + rawlen > STATS_MAX ||
			    evbuffer_add(r->stats, raw, rawlen) < 0) {
				*why = "stats reply too large";
				return -1;
			}
			s->fails = 0;
			return 0;	/* the request stays at the head until END */
		}
		if (m->type != MC_R_END)
			goto unexpected;
		st = MC_OK;
		if (r->stats) {
			vlen = evbuffer_get_length(r->stats);
			val = evbuffer_pullup(r->stats, -1);
		}
		break;
	case RQ_NUDGE:
		if (m->type != MC_R_MN)
			goto unexpected;
		req_free(conn_pop(c));
		c->nudges--;
		s->fails = 0;
		conn_arm(c);
		return 0;
	case RQ_PROBE:
		if (m->type != MC_R_MN)
			goto unexpected;
		r = conn_pop(c);
		req_free(r);
		s->fails = 0;
		if (!s->up) {
			s->up = 1;
			s->st.up = 1;
			log_msg(LOG_NOTICE, "shard %s: up again (probe answered)", s->name);
			s->probe_why[0] = '\0';
		}
		conn_close(c);	/* a fresh connection serves the next request */
		return 0;
	}

	r = conn_pop(c);
	s->fails = 0;
	lat_observe(s, r->t0_us);
	call_cb(p, r, st, val, vlen);
	req_free(r);
	return 0;
unexpected:
	*why = "reply does not answer the oldest request";
	return -1;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct shard *s = c->shard;
	size_t maxv = s->pool->conf->max_item_size;

	if (s->pool->tls == NULL)
		bevio_read_more(bev, READ_MORE_MAX);
	c->busy++;
	while (c->state != CONN_CLOSED) {
		struct evbuffer *in = bufferevent_get_input(bev);
		size_t avail = evbuffer_get_length(in), want;
		const uint8_t *buf;
		struct mc_reply m;
		const char *why = NULL;
		char msg[256];
		int n;

		if (c->skip) {
			size_t d = avail < c->skip ? avail : c->skip;

			evbuffer_drain(in, d);
			c->skip -= d;
			if (c->skip)
				break;
			continue;
		}
		if (avail == 0 || avail < c->need)
			break;
		want = c->need > MC_MAX_LINE ? c->need : MC_MAX_LINE;
		if (want > avail)
			want = avail;
		/* parse in place when the first chunk holds enough: a short
		 * reply at the front of a long pipelined batch is not copied */
		if (evbuffer_get_contiguous_space(in) > want)
			want = evbuffer_get_contiguous_space(in);
		buf = evbuffer_pullup(in, (ev_ssize_t)want);
		if (buf == NULL) {
			conn_fail(c, FW_IO, "out of memory reading a reply");
			break;
		}
		n = mc_parse_reply(buf, want, maxv, &m);
		if (n == 0) {
			/* wait for the whole value instead of re-parsing the
			 * header on every read */
			c->need = m.need;
			if (m.need && m.need <= avail)
				continue;
			break;
		}
		c->need = 0;
		if (n < 0 && m.type == MC_R_VA && m.need && !TAILQ_EMPTY(&c->inflight) &&
		    TAILQ_FIRST(&c->inflight)->kind == RQ_GET) {
			/* Stored by a client with a larger limit: not the shard's
			 * fault, and the stream is intact, so drop the value and
			 * keep the connection. */
			struct req *r = conn_pop(c);

			log_msg(LOG_WARNING, "shard %s: value of %zu bytes is above max_item_size %zu; "
			     "answered as an error", s->name, m.vlen, maxv);
			c->skip = m.need;
			s->fails = 0;
			lat_observe(s, r->t0_us);
			req_fail_async(r, FW_IO);
			continue;
		}
		if (n < 0) {
			snprintf(msg, sizeof(msg), "protocol error: %s", m.err ? m.err : "?");
			log_msg(LOG_ERR, "shard %s: %s; closing the connection", s->name, msg);
			conn_fail(c, FW_IO, msg);
			break;
		}
		if (conn_reply(c, &m, buf, (size_t)n, &why) < 0) {
			snprintf(msg, sizeof(msg), "protocol error: %s (%s)", why,
				 mc_rtype_name(m.type));
			log_msg(LOG_ERR, "shard %s: %s; closing the connection", s->name, msg);
			conn_fail(c, FW_IO, msg);
			break;
		}
		if (c->state != CONN_CLOSED)
			evbuffer_drain(in, (size_t)n);
	}
	c->busy--;
	if (c->state == CONN_CLOSED && c->busy == 0)
		free(c);
}

/* ---- shards: up, down, probe ----------------------------------------------- */

static void probe_timer_cb(evutil_socket_t fd, short what, void *arg);

static void schedule_probe(struct shard *s)
{
	struct timeval tv = tv_us((uint64_t)s->pool->conf->retry_interval_ms * 1000u);

	evtimer_add(s->probe_timer, &tv);
}

static void shard_down(struct shard *s, const char *why)
{
	struct conn *c;

	s->up = 0;
	s->st.up = 0;
	s->st.went_down++;
	log_msg(LOG_WARNING, "shard %s: marked down after %d failures in a row (last: %s); "
	     "its requests fail fast, probing every %d ms", s->name, s->fails, why,
	     s->pool->conf->retry_interval_ms);
	while ((c = TAILQ_FIRST(&s->conns)) != NULL)
		conn_close_fail(c, FW_IO);
	schedule_probe(s);
}

static void shard_failure(struct shard *s, const char *why)
{
	s->st.conn_failures++;
	if (!s->up || s->pool->closing)
		return;
	s->fails++;
	if (s->fails >= s->pool->conf->fail_threshold)
		shard_down(s, why);
}

static void probe_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct shard *s = arg;
	struct pool *p = s->pool;
	struct conn *c;
	struct req *r;
	char cmd[8];
	int n;

	(void)fd;
	(void)what;
	if (s->up || p->closing)
		return;
	schedule_probe(s);	/* the next one, whatever becomes of this one */
	if (s->probe)
		return;		/* still waiting for the last one (its deadline) */
	c = conn_new(s, 1);
	if (c == NULL)
		return;
	r = req_new(p, s, RQ_PROBE, NULL, NULL);
	n = mc_enc_noop(cmd, sizeof(cmd));
	if (r == NULL || n < 0 || bufferevent_write(c->bev, cmd, (size_t)n) < 0) {
		free(r);
		conn_close(c);
		return;
	}
	conn_push(c, r);
}

/* The connection a new request for s goes on: an idle one, else a new one
 * while below keepalive_pool_size, else the least loaded (pipelining). */
static struct conn *shard_conn(struct shard *s)
{
	struct conn *c, *best = NULL;

	TAILQ_FOREACH(c, &s->conns, link) {
		if (c->state == CONN_CLOSED)
			continue;
		if (best == NULL || c->ninflight < best->ninflight)
			best = c;
	}
	if (best && (best->ninflight == 0 || s->nconns >= s->pool->conf->keepalive_pool_size))
		return best;
	c = conn_new(s, 0);
	return c ? c : best;
}

/* ---- requests ------------------------------------------------------------------ */

/*
 * Send r to its shard, or fail it asynchronously. hdr is the encoded
 * command; for a set, val and "\r\n" follow it.
 */
static void submit(struct req *r, const char *hdr, size_t hlen,
		   const void *val, size_t vlen)
{
	struct shard *s = r->shard;
	struct conn *c;
	struct evbuffer *out;

	s->st.requests++;
	if (!s->up) {
		req_fail_async(r, FW_DOWN);
		return;
	}
	c = shard_conn(s);
	if (c == NULL) {
		req_fail_async(r, FW_IO);
		shard_failure(s, "cannot open a connection");
		return;
	}
	out = bufferevent_get_output(c->bev);
	if (evbuffer_add(out, hdr, hlen) < 0 ||
	    (val && (evbuffer_add(out, val, vlen) < 0 || evbuffer_add(out, "\r\n", 2) < 0))) {
		/* part of a command may be queued: the stream is unusable */
		req_fail_async(r, FW_IO);
		conn_fail(c, FW_IO, "out of memory queueing a request");
		return;
	}
	conn_push(c, r);
}

static int request_ok(struct pool *p, pool_cb cb)
{
	if (p == NULL || cb == NULL || p->closing)
		return 0;
	return 1;
}

/* The request of a keyed command, its shard checked (NULL: a caller
 * error, nothing allocated); mcb instead of cb for pool_get_meta(). */
static struct req *keyed_req(struct pool *p, const char *key, size_t klen, enum req_kind kind,
			     pool_cb cb, pool_meta_cb mcb, void *arg)
{
	struct req *r;
	int shard;

	if (p == NULL || (cb == NULL && mcb == NULL) || p->closing ||
	    (shard = pool_shard_of(p, key, klen)) < 0)
		return NULL;
	r = req_new(p, &p->shards[shard], kind, cb, arg);
	if (r != NULL)
		r->mcb = mcb;
	return r;
}

/* Send r as encoded (n bytes of hdr, -1: the encoder refused), with its
 * value; 0, or -1 with r freed. */
static int keyed_send(struct req *r, const char *hdr, int n, const void *val, size_t vlen)
{
	if (n < 0) {
		free(r);
		return -1;
	}
	submit(r, hdr, (size_t)n, val, vlen);
	return 0;
}

int pool_get(struct pool *p, const char *key, size_t klen, pool_cb cb, void *arg)
{
	char hdr[MC_MAX_HDR];
	struct req *r = keyed_req(p, key, klen, RQ_GET, cb, NULL, arg);

	if (r == NULL)
		return -1;
	return keyed_send(r, hdr, mc_enc_get(hdr, sizeof(hdr), key, klen, r->opaque), NULL, 0);
}

int pool_set(struct pool *p, const char *key, size_t klen, const void *val, size_t vlen,
	     uint32_t ttl, pool_cb cb, void *arg)
{
	char hdr[MC_MAX_HDR];
	struct req *r;
	struct shard *s;
	int shard, n;

	if (!request_ok(p, cb) || (shard = pool_shard_of(p, key, klen)) < 0)
		return -1;
	if (val == NULL && vlen)
		return -1;
	s = &p->shards[shard];
	r = req_new(p, s, RQ_SET, cb, arg);
	if (r == NULL)
		return -1;
	if (vlen > p->conf->max_item_size) {
		uint64_t now = now_us();

		/* one line per 10 s per shard: a site full of large bodies
		 * must not turn the log into a copy of its traffic */
		if (s->toobig_logged_us == 0 || now - s->toobig_logged_us >= 10000000u) {
			log_msg(LOG_WARNING, "shard %s: not storing %.*s: value of %zu bytes is above "
			     "max_item_size %zu (%llu more refused since the last line)", s->name,
			     (int)klen, key, vlen, p->conf->max_item_size,
			     (unsigned long long)s->toobig_quiet);
			s->toobig_logged_us = now;
			s->toobig_quiet = 0;
		} else {
			s->toobig_quiet++;
		}
		s->st.requests++;
		req_fail_async(r, FW_TOOBIG);
		return 0;
	}
	n = mc_enc_set(hdr, sizeof(hdr), key, klen, vlen, ttl, r->opaque);
	if (n < 0) {
		free(r);
		return -1;
	}
	submit(r, hdr, (size_t)n, val ? val : "", vlen);
	return 0;
}

/* libevent's cleanup for a value handed over by pool_set_take(). */
static void taken_val_free(const void *data, size_t len, void *extra)
{
	(void)len;
	(void)extra;
	free((void *)data);
}

/*
 * What pool_set_take() keeps to call sent before cb exactly once. Shared by
 * the request (its cb is set_take_done) and, once the set is queued, by the
 * output buffer chain of its final CRLF, whose cleanup runs when that chain
 * is written (or freed with the connection): freed when both are done with
 * it. The two can come in either order (a bufferevent may be freed after
 * its failed requests were answered), hence the count.
 */
struct set_take {
	pool_cb cb;
	pool_sent_cb sent;
	void *arg;
	int refs;
	int fired;
};

static void set_take_fire(struct set_take *t)
{
	if (!t->fired) {
		t->fired = 1;
		t->sent(t->arg);
	}
}

static void set_take_put(struct set_take *t)
{
	if (--t->refs == 0)
		free(t);
}

static void set_take_done(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct set_take *t = arg;

	set_take_fire(t);
	t->cb(t->arg, st, val, vlen);
	set_take_put(t);
}

static void set_take_written(const void *data, size_t len, void *extra)
{
	(void)data;
	(void)len;
	set_take_fire(extra);
	set_take_put(extra);
}

/*
 * submit() for a set whose value the pool owns: the value is referenced by
 * the output buffer, not copied into it, and the CRLF after it tells t when
 * it is written. Kept apart from submit() so that the path of every other
 * request stays as it is.
 */
static void submit_take(struct req *r, struct set_take *t, const char *hdr, size_t hlen,
			void *val, size_t vlen)
{
	struct shard *s = r->shard;
	struct conn *c;
	struct evbuffer *out;

	s->st.requests++;
	if (!s->up) {
		free(val);
		req_fail_async(r, FW_DOWN);
		return;
	}
	c = shard_conn(s);
	if (c == NULL) {
		free(val);
		req_fail_async(r, FW_IO);
		shard_failure(s, "cannot open a connection");
		return;
	}
	out = bufferevent_get_output(c->bev);
	if (evbuffer_add(out, hdr, hlen) < 0) {
		free(val);
		goto fail;
	}
	/* On failure libevent does not call the cleanup: the value is ours. */
	if (evbuffer_add_reference(out, val, vlen, taken_val_free, NULL) < 0) {
		free(val);
		goto fail;
	}
	t->refs++;
	if (evbuffer_add_reference(out, "\r\n", 2, set_take_written, t) < 0) {
		t->refs--;
		goto fail;
	}
	conn_push(c, r);
	return;
fail:
	/* part of a command may be queued: the stream is unusable */
	req_fail_async(r, FW_IO);
	conn_fail(c, FW_IO, "out of memory queueing a request");
}

int pool_set_take(struct pool *p, const char *key, size_t klen, void *val, size_t vlen,
		  uint32_t ttl, pool_cb cb, pool_sent_cb sent, void *arg)
{
	char hdr[MC_MAX_HDR];
	struct set_take *t;
	struct req *r;
	int shard, n;

	if (val == NULL || sent == NULL || !request_ok(p, cb) ||
	    (shard = pool_shard_of(p, key, klen)) < 0 || (t = calloc(1, sizeof(*t))) == NULL) {
		free(val);
		return -1;
	}
	t->cb = cb;
	t->sent = sent;
	t->arg = arg;
	t->refs = 1;	/* the request's */
	if (vlen > p->conf->max_item_size) {
		/* pool_set() logs and fails it (MC_TOOBIG) without reading val */
		n = pool_set(p, key, klen, val, vlen, ttl, set_take_done, t);
		free(val);
		if (n < 0)
			free(t);
		return n;
	}
	r = req_new(p, &p->shards[shard], RQ_SET, set_take_done, t);
	if (r == NULL) {
		free(t);
		free(val);
		return -1;
	}
	n = mc_enc_set(hdr, sizeof(hdr), key, klen, vlen, ttl, r->opaque);
	if (n < 0) {
		free(r);
		free(t);
		free(val);
		return -1;
	}
	submit_take(r, t, hdr, (size_t)n, val, vlen);
	return 0;
}

int pool_delete(struct pool *p, const char *key, size_t klen, pool_cb cb, void *arg)
{
	char hdr[MC_MAX_HDR];
	struct req *r = keyed_req(p, key, klen, RQ_DELETE, cb, NULL, arg);

	if (r == NULL)
		return -1;
	return keyed_send(r, hdr, mc_enc_delete(hdr, sizeof(hdr), key, klen, r->opaque), NULL, 0);
}

int pool_get_meta(struct pool *p, const char *key, size_t klen, uint32_t vivify,
		  pool_meta_cb cb, void *arg)
{
	char hdr[MC_MAX_HDR];
	struct req *r = keyed_req(p, key, klen, RQ_GET, NULL, cb, arg);

	if (r == NULL)
		return -1;
	return keyed_send(r, hdr, mc_enc_get_meta(hdr, sizeof(hdr), key, klen, vivify, r->opaque),
	    NULL, 0);
}

int pool_check(struct pool *p, const char *key, size_t klen, pool_meta_cb cb, void *arg)
{
	char hdr[MC_MAX_HDR];
	struct req *r = keyed_req(p, key, klen, RQ_CHECK, NULL, cb, arg);

	if (r == NULL)
		return -1;
	return keyed_send(r, hdr, mc_enc_check(hdr, sizeof(hdr), key, klen, r->opaque), NULL, 0);
}

int pool_add(struct pool *p, const char *key, size_t klen, const void *val, size_t vlen,
	     uint32_t ttl, pool_cb cb, void *arg)
{
	char hdr[MC_MAX_HDR];
	struct req *r;

	if (p == NULL || cb == NULL || (val == NULL && vlen) || vlen > p->conf->max_item_size ||
	    (r = keyed_req(p, key, klen, RQ_SET, cb, NULL, arg)) == NULL)
		return -1;
	return keyed_send(r, hdr, mc_enc_add(hdr, sizeof(hdr), key, klen, vlen, ttl, r->opaque),
	    val ? val : "", vlen);
}

int pool_invalidate(struct pool *p, const char *key, size_t klen, uint32_t ttl,
		    pool_cb cb, void *arg)
{
	char hdr[MC_MAX_HDR];
	struct req *r = keyed_req(p, key, klen, RQ_DELETE, cb, NULL, arg);

	if (r == NULL)
		return -1;
	return keyed_send(r, hdr, mc_enc_invalidate(hdr, sizeof(hdr), key, klen, ttl, r->opaque),
	    NULL, 0);
}

static int shard_cmd(struct pool *p, int shard, enum req_kind kind, pool_cb cb, void *arg)
{
	char hdr[32];
	struct req *r;
	int n;

	if (!request_ok(p, cb) || shard < 0 || shard >= p->nshards)
		return -1;
	r = req_new(p, &p->shards[shard], kind, cb, arg);
	if (r == NULL)
		return -1;
	n = kind == RQ_FLUSH ? mc_enc_flush_all(hdr, sizeof(hdr)) : mc_enc_stats(hdr, sizeof(hdr));
	if (n < 0) {
		free(r);
		return -1;
	}
	submit(r, hdr, (size_t)n, NULL, 0);
	return 0;
}

int pool_flush_shard(struct pool *p, int shard, pool_cb cb, void *arg)
{
	return shard_cmd(p, shard, RQ_FLUSH, cb, arg);
}

int pool_stats_shard(struct pool *p, int shard, pool_cb cb, void *arg)
{
	return shard_cmd(p, shard, RQ_STATS, cb, arg);
}

/* ---- the pool ------------------------------------------------------------------ */

/* One address per configured host, in the order of conf->hosts. */
struct pool_addrs {
	size_t n;
	struct pool_addr {
		struct sockaddr_storage ss;
		socklen_t len;
	} a[];
};

/* "host:port" as configured ("[v6]:port" for an IPv6 literal). */
static void host_name(char *buf, size_t len, const struct sc_host *h)
{
	snprintf(buf, len, strchr(h->host, ':') ? "[%s]:%u" : "%s:%u", h->host, (unsigned)h->port);
}

static int resolve(struct pool_addr *out, const struct sc_host *h, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char port[8];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
	snprintf(port, sizeof(port), "%u", (unsigned)h->port);
	rc = getaddrinfo(h->host, port, &hints, &res);
	if (rc == EAI_NONAME) {
		/* a name: looked up here, where blocking is allowed, never
		 * from an event loop serving requests */
		hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
		rc = getaddrinfo(h->host, port, &hints, &res);
		if (rc == 0) {
			char a[INET6_ADDRSTRLEN] = "?", name[300];

			if (res->ai_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr,
					  a, sizeof(a));
			else if (res->ai_family == AF_INET6)
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr,
					  a, sizeof(a));
			host_name(name, sizeof(name), h);
			log_msg(LOG_INFO, "shard %s: resolved to %s", name, a);
		}
	}
	if (rc != 0) {
		seterr(err, errlen, "pool: host %s: %s", h->host, gai_strerror(rc));
		return -1;
	}
	if (res->ai_addrlen > sizeof(out->ss)) {
		freeaddrinfo(res);
		seterr(err, errlen, "pool: host %s: address too long", h->host);
		return -1;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

struct pool_addrs *pool_addrs_resolve(const struct sc_pool_conf *conf, char *err, size_t errlen)
{
	struct pool_addrs *a;

	if (conf == NULL) {
		seterr(err, errlen, "pool: no config");
		return NULL;
	}
	a = calloc(1, sizeof(*a) + conf->nhosts * sizeof(a->a[0]));
	if (a == NULL) {
		seterr(err, errlen, "pool: out of memory");
		return NULL;
	}
	for (a->n = 0; a->n < conf->nhosts; a->n++) {
		if (resolve(&a->a[a->n], &conf->hosts[a->n], err, errlen) < 0) {
			free(a);
			return NULL;
		}
	}
	return a;
}

void pool_addrs_free(struct pool_addrs *a)
{
	free(a);
}

static int conf_ok(const struct sc_pool_conf *c, SSL_CTX *tls, char *err, size_t errlen)
{
	if (c->timeout_ms < 1 || c->keepalive_timeout_ms < 1 || c->keepalive_pool_size < 1 ||
	    c->fail_threshold < 1 || c->retry_interval_ms < 1 || c->max_item_size < 1) {
		seterr(err, errlen, "pool: timeout, keepalive_timeout, keepalive_pool_size, "
		       "fail_threshold, retry_interval and max_item_size must be positive");
		return 0;
	}
	if (c->max_item_size > (size_t)INT32_MAX - MC_MAX_LINE - 2) {
		seterr(err, errlen, "pool: max_item_size too large");
		return 0;
	}
	if ((c->tls != 0) != (tls != NULL)) {
		seterr(err, errlen, "pool: tls is %s but %s TLS context was given",
		       c->tls ? "on" : "off", tls ? "a" : "no");
		return 0;
	}
	return 1;
}

struct pool *pool_new_at(struct event_base *base, const struct sc_pool_conf *conf,
			 const struct pool_addrs *addrs, SSL_CTX *tls, char *err, size_t errlen)
{
	struct pool *p;
	size_t i;

	if (base == NULL || conf == NULL || addrs == NULL) {
		seterr(err, errlen, "pool: no event base, config or addresses");
		return NULL;
	}
	if (addrs->n != conf->nhosts) {
		seterr(err, errlen, "pool: %zu addresses for %zu hosts", addrs->n, conf->nhosts);
		return NULL;
	}
	if (!conf_ok(conf, tls, err, errlen))
		return NULL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		goto oom;
	p->base = base;
	p->conf = conf;
	p->tls = tls;
	p->next_opaque = 1;
	TAILQ_INIT(&p->done);
	p->ring = ketama_new(conf->hosts, conf->nhosts, err, errlen);
	if (p->ring == NULL)
		goto fail;
	p->done_ev = event_new(base, -1, 0, done_cb, p);
	p->shards = calloc(conf->nhosts, sizeof(*p->shards));
	if (p->done_ev == NULL || p->shards == NULL)
		goto oom;
	for (i = 0; i < conf->nhosts; i++) {
		struct shard *s = &p->shards[i];
		const struct sc_host *h = &conf->hosts[i];

		p->nshards++;	/* from here pool_free() tears this shard down */
		s->pool = p;
		s->idx = (int)i;
		s->up = 1;
		s->st.up = 1;
		TAILQ_INIT(&s->conns);
		host_name(s->name, sizeof(s->name), h);
		s->host = strdup(h->host);
		s->probe_timer = evtimer_new(base, probe_timer_cb, s);
		if (s->host == NULL || s->probe_timer == NULL)
			goto oom;
		memcpy(&s->addr, &addrs->a[i].ss, addrs->a[i].len);
		s->addrlen = addrs->a[i].len;
	}
	return p;
oom:
	seterr(err, errlen, "pool: out of memory");
fail:
	pool_free(p);
	return NULL;
}

struct pool *pool_new(struct event_base *base, const struct sc_pool_conf *conf, SSL_CTX *tls,
		      char *err, size_t errlen)
{
	struct pool_addrs *a = pool_addrs_resolve(conf, err, errlen);
	struct pool *p;

	if (a == NULL)
		return NULL;
	p = pool_new_at(base, conf, a, tls, err, errlen);
	pool_addrs_free(a);
	return p;
}

void pool_free(struct pool *p)
{
	int i;

	if (p == NULL)
		return;
	if (p->in_cb) {
		log_msg(LOG_CRIT, "pool_free() called from inside a pool callback");
		abort();
	}
	p->closing = 1;
	for (i = 0; i < p->nshards; i++) {
		struct shard *s = &p->shards[i];
		struct conn *c;

		while ((c = TAILQ_FIRST(&s->conns)) != NULL)
			conn_close_fail(c, FW_IO);
		if (s->probe)
			conn_close_fail(s->probe, FW_IO);
		if (s->probe_timer)
			event_free(s->probe_timer);
		s->probe_timer = NULL;
	}
	/* every request is on p->done now: answer them before going away */
	if (p->done_ev)
		done_cb(-1, 0, p);
	if (p->done_ev)
		event_free(p->done_ev);
	p->done_ev = NULL;
	for (i = 0; i < p->nshards; i++) {
		free(p->shards[i].host);
		p->shards[i].host = NULL;
	}
	free(p->shards);
	p->shards = NULL;
	ketama_free(p->ring);
	p->ring = NULL;
	free(p);
}

int pool_nshards(const struct pool *p)
{
	return p ? p->nshards : 0;
}

int pool_shard_of(const struct pool *p, const char *key, size_t klen)
{
	if (p == NULL || !mc_key_valid(key, klen))
		return -1;
	return ketama_pick(p->ring, key, klen);
}

const char *pool_shard_name(const struct pool *p, int shard)
{
	if (p == NULL || shard < 0 || shard >= p->nshards)
		return NULL;
	return p->shards[shard].name;
}

const struct pool_shard_stats *pool_shard_stats(const struct pool *p, int shard)
{
	if (p == NULL || shard < 0 || shard >= p->nshards)
		return NULL;
	return &p->shards[shard].st;
}

/* ---- TLS context ------------------------------------------------------------- */

SSL_CTX *pool_tls_ctx_new(const struct sc_pool_conf *conf, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	char e[512];

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		seterr(err, errlen, "tls: cannot create a TLS context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		goto ssl_fail;
	if (conf->tls_ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, conf->tls_ca_file, NULL) != 1) {
			ssl_errors(e, sizeof(e), next_global_err, NULL);
			seterr(err, errlen, "tls_ca_file %s: %s", conf->tls_ca_file, e);
			goto fail;
		}
	} else if (conf->tls_verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
		goto ssl_fail;
	}
	if (conf->tls_cert_file) {
		const char *key = conf->tls_key_file ? conf->tls_key_file : conf->tls_cert_file;

		if (SSL_CTX_use_certificate_chain_file(ctx, conf->tls_cert_file) != 1) {
			ssl_errors(e, sizeof(e), next_global_err, NULL);
			seterr(err, errlen, "tls_cert_file %s: %s", conf->tls_cert_file, e);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			ssl_errors(e, sizeof(e), next_global_err, NULL);
			seterr(err, errlen, "tls_key_file %s: %s", key, e);
			goto fail;
		}
	} else if (conf->tls_key_file) {
		seterr(err, errlen, "tls_key_file given without tls_cert_file");
		goto fail;
	}
	SSL_CTX_set_verify(ctx, conf->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	return ctx;
ssl_fail:
	ssl_errors(e, sizeof(e), next_global_err, NULL);
	seterr(err, errlen, "tls: %s", e);
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
