/*
 * pool_driver.c - drives struct pool (agent/io/pool.c) for the wire tests in
 * tests/wire/test_pool.py: one or more pools from the command line, then
 * scripted commands on stdin, each answered by one "R <n> ..." line on
 * stdout when every request it made has been called back.
 *
 *   pool_driver [opts] host:port[:weight]... [-- [opts] host:port... ]
 *   opts: --timeout MS --keepalive MS --poolsize N --fail N --retry MS
 *         --max BYTES --tls --verify --ca F --cert F --key F --sni NAME -v
 *
 * Commands (SHARD "-" = any; keys are PREFIX-<i>, or the first N such keys
 * that ketama puts on SHARD; values hold every byte value, NULs included):
 *   set PREFIX N SIZE [SHARD] [TTL]    get PREFIX N SIZE|x [SHARD]
 *   del PREFIX N [SHARD]               flush SHARD        stats SHARD
 *   shards        sleep MS             waitup SHARD MS    waitdown SHARD MS
 *   use POOL      freeinflight PREFIX N                   badkey     quit
 *
 * A test tool: it trusts its stdin and talks only to the hosts it is given.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "pool.h"

#define MAXPOOLS 4

struct dpool {
	struct sc_pool_conf conf;
	SSL_CTX *tls;
	struct pool *pool;
};

static struct dpool pools[MAXPOOLS];
static int npools, cur;
static struct event_base *base;
static struct event *stdin_ev;
static int in_call;	/* set while a pool_* call runs: a callback then is a bug */
static int cmd_seq;
static int verbose;
static int outstanding;	/* batches and waits not answered yet */
static int quitting;	/* quit or EOF seen: exit once outstanding is 0 */

static void maybe_exit(void)
{
	if (quitting && outstanding == 0)
		event_base_loopexit(base, NULL);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* ---- batches of requests ------------------------------------------------- */

enum bkind { B_SET, B_GET, B_DEL, B_FLUSH, B_STATS };

struct batch {
	int id;
	enum bkind kind;
	int total, done;
	int requested;
	int st[5];
	int bad, sync;
	long size;		/* expected value size for get, -1 = do not check */
	uint64_t t0, maxus;
	size_t statbytes;
	char statfirst[128];
};

struct op {
	struct batch *b;
	unsigned i;
	uint64_t t0;
};

static void fill(uint8_t *v, size_t n, unsigned i)
{
	size_t j;

	for (j = 0; j < n; j++)
		v[j] = (uint8_t)(i * 31u + j * 7u + (j >> 8));
}

static void batch_report(struct batch *b)
{
	static const char *names[] = { "set", "get", "del", "flush", "stats" };

	out("R %d %s n=%d ok=%d notfound=%d notstored=%d error=%d toobig=%d bad=%d sync=%d "
	    "ms=%.1f maxms=%.1f", b->id, names[b->kind], b->requested, b->st[MC_OK],
	    b->st[MC_NOTFOUND], b->st[MC_NOTSTORED], b->st[MC_ERROR], b->st[MC_TOOBIG], b->bad,
	    b->sync, (double)(now_us() - b->t0) / 1000.0, (double)b->maxus / 1000.0);
	if (b->kind == B_STATS)
		out(" bytes=%zu first=%s", b->statbytes, b->statfirst);
	out("\n");
	free(b);
	outstanding--;
	maybe_exit();
}

static void op_cb(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct op *o = arg;
	struct batch *b = o->b;
	uint64_t d = now_us() - o->t0;

	if (in_call)
		b->sync++;
	if ((unsigned)st < 5)
		b->st[st]++;
	if (d > b->maxus)
		b->maxus = d;
	if (b->kind == B_GET && st == MC_OK && b->size >= 0) {
		uint8_t *want = malloc((size_t)b->size + 1);

		fill(want, (size_t)b->size, o->i);
		if (vlen != (size_t)b->size || (vlen && memcmp(val, want, vlen) != 0))
			b->bad++;
		free(want);
	}
	if (b->kind == B_GET && st != MC_OK && val != NULL)
		b->bad++;
	if (b->kind == B_STATS && st == MC_OK) {
		size_t n = 0;

		b->statbytes = vlen;
		while (n < vlen && n + 1 < sizeof(b->statfirst) && val[n] != '\r')
			n++;
		memcpy(b->statfirst, val, n);
		b->statfirst[n] = '\0';
		for (n = 0; b->statfirst[n]; n++)
			if (b->statfirst[n] == ' ')
				b->statfirst[n] = '_';
	}
	free(o);
	if (++b->done == b->total)
		batch_report(b);
}

static struct batch *batch_new(enum bkind k)
{
	struct batch *b = calloc(1, sizeof(*b));

	if (b == NULL)
		abort();
	b->id = cmd_seq;
	b->kind = k;
	b->t0 = now_us();
	b->size = -1;
	outstanding++;
	return b;
}

/* The n-th key with prefix (on shard, if shard >= 0). */
static size_t next_key(struct pool *p, const char *prefix, int shard, unsigned *i, char *key,
		       size_t cap)
{
	for (;;) {
		int n = snprintf(key, cap, "%s-%u", prefix, *i);

		(*i)++;
		if (n <= 0 || (size_t)n >= cap)
			abort();
		if (shard < 0 || pool_shard_of(p, key, (size_t)n) == shard)
			return (size_t)n;
	}
}

static void keyed(enum bkind k, char **av, int ac)
{
	struct dpool *dp = &pools[cur];
	struct batch *b;
	unsigned n, idx = 0, c;
	long size = 0;
	int shard = -1;
	uint32_t ttl = 0;
	uint8_t *val = NULL;
	char key[300];

	if (ac < 3)
		goto usage;
	n = (unsigned)strtoul(av[2], NULL, 10);
	if (k == B_SET || k == B_GET) {
		if (ac < 4)
			goto usage;
		size = strcmp(av[3], "x") == 0 ? -1 : strtol(av[3], NULL, 10);
		if (ac > 4 && strcmp(av[4], "-") != 0)
			shard = atoi(av[4]);
		if (ac > 5)
			ttl = (uint32_t)strtoul(av[5], NULL, 10);
	} else if (ac > 3 && strcmp(av[3], "-") != 0) {
		shard = atoi(av[3]);
	}
	b = batch_new(k);
	b->total = (int)n;
	b->requested = (int)n;
	b->size = size;
	if (k == B_SET && size >= 0 && (val = malloc((size_t)size + 1)) == NULL)
		abort();
	if (n == 0) {
		batch_report(b);
		free(val);
		return;
	}
	/* hold the report until every request is made: a callback cannot
	 * come before (that would be the bug "sync" counts) */
	b->total = (int)n + 1;
	for (c = 0; c < n; c++) {
		struct op *o = calloc(1, sizeof(*o));
		size_t kl = next_key(dp->pool, av[1], shard, &idx, key, sizeof(key));
		int rc;

		o->b = b;
		o->i = idx - 1;
		o->t0 = now_us();
		in_call = 1;
		if (k == B_SET) {
			fill(val, (size_t)size, o->i);
			rc = pool_set(dp->pool, key, kl, val, (size_t)size, ttl, op_cb, o);
		} else if (k == B_GET) {
			rc = pool_get(dp->pool, key, kl, op_cb, o);
		} else {
			rc = pool_delete(dp->pool, key, kl, op_cb, o);
		}
		in_call = 0;
		if (rc < 0) {
			out("E request %u refused\n", c);
			free(o);
			b->total--;
			b->requested--;
		}
	}
	free(val);
	if (++b->done == b->total)
		batch_report(b);
	return;
usage:
	out("R %d usage\n", cmd_seq);
}

static void shard_cmd(enum bkind k, char **av, int ac)
{
	struct batch *b;
	struct op *o;
	int rc;

	if (ac < 2) {
		out("R %d usage\n", cmd_seq);
		return;
	}
	b = batch_new(k);
	b->total = 1;
	b->requested = 1;
	o = calloc(1, sizeof(*o));
	o->b = b;
	o->t0 = now_us();
	in_call = 1;
	rc = k == B_FLUSH ? pool_flush_shard(pools[cur].pool, atoi(av[1]), op_cb, o)
			  : pool_stats_shard(pools[cur].pool, atoi(av[1]), op_cb, o);
	in_call = 0;
	if (rc < 0) {
		out("R %d refused\n", b->id);
		free(o);
		free(b);
		outstanding--;
	}
}

static void shards_cmd(void)
{
	struct pool *p = pools[cur].pool;
	int i, j;

	for (i = 0; i < pool_nshards(p); i++) {
		const struct pool_shard_stats *s = pool_shard_stats(p, i);

		out("S %d %s up=%d requests=%llu hits=%llu misses=%llu stored=%llu errors=%llu "
		    "timeouts=%llu fast_fails=%llu server_errors=%llu too_big=%llu conn_opened=%llu "
		    "conn_failures=%llu went_down=%llu lat_count=%llu lat_sum_us=%llu hist=", i,
		    pool_shard_name(p, i), s->up, (unsigned long long)s->requests,
		    (unsigned long long)s->hits, (unsigned long long)s->misses,
		    (unsigned long long)s->stored, (unsigned long long)s->errors,
		    (unsigned long long)s->timeouts, (unsigned long long)s->fast_fails,
		    (unsigned long long)s->server_errors, (unsigned long long)s->too_big,
		    (unsigned long long)s->conn_opened, (unsigned long long)s->conn_failures,
		    (unsigned long long)s->went_down, (unsigned long long)s->lat_count,
		    (unsigned long long)s->lat_sum_us);
		for (j = 0; j <= POOL_LAT_NBOUNDS; j++)
			out("%s%llu", j ? "," : "", (unsigned long long)s->lat_hist[j]);
		out("\n");
	}
	out("R %d shards n=%d\n", cmd_seq, pool_nshards(p));
}

/* ---- timers: sleep, waitup, waitdown ---------------------------------------- */

struct waiter {
	int id;
	int shard;
	int want_up;	/* -1: plain sleep */
	uint64_t t0, until;
	struct event *ev;
};

static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;
	uint64_t now = now_us();
	const struct pool_shard_stats *s;
	struct timeval tv = { 0, 10000 };

	(void)fd;
	(void)what;
	if (w->want_up < 0) {
		out("R %d sleep ms=%.1f\n", w->id, (double)(now - w->t0) / 1000.0);
		goto done;
	}
	s = pool_shard_stats(pools[cur].pool, w->shard);
	if (s == NULL || s->up == w->want_up || now >= w->until) {
		out("R %d wait%s up=%d ms=%.1f\n", w->id, w->want_up ? "up" : "down",
		    s ? s->up : -1, (double)(now - w->t0) / 1000.0);
		goto done;
	}
	evtimer_add(w->ev, &tv);
	return;
done:
	event_free(w->ev);
	free(w);
	outstanding--;
	maybe_exit();
}

static void wait_cmd(int want_up, int shard, long ms)
{
	struct waiter *w = calloc(1, sizeof(*w));
	struct timeval tv;

	w->id = cmd_seq;
	w->shard = shard;
	w->want_up = want_up;
	w->t0 = now_us();
	w->until = w->t0 + (uint64_t)ms * 1000u;
	w->ev = evtimer_new(base, wait_cb, w);
	outstanding++;
	if (want_up < 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
	} else {
		tv.tv_sec = 0;
		tv.tv_usec = 0;
	}
	evtimer_add(w->ev, &tv);
}

/* ---- pool lifetime ------------------------------------------------------------ */

static int open_pool(struct dpool *dp)
{
	char err[512];

	dp->pool = pool_new(base, &dp->conf, dp->tls, err, sizeof(err));
	if (dp->pool == NULL) {
		fprintf(stderr, "pool_new: %s\n", err);
		return -1;
	}
	return 0;
}

struct freecount {
	int called, error, total;
};

static void free_cb(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct freecount *fc = arg;
	char key[] = "after-free";

	(void)val;
	(void)vlen;
	fc->called++;
	fc->error += st == MC_ERROR;
	/* a request made from here must be refused, not lost */
	if (pool_get(pools[cur].pool, key, sizeof(key) - 1, free_cb, arg) != -1)
		fc->total = -1000;
}

static void freeinflight_cmd(char **av, int ac)
{
	struct dpool *dp = &pools[cur];
	struct freecount fc = { 0, 0, 0 };
	unsigned n, idx = 0, c;
	char key[300];

	if (ac < 3) {
		out("R %d usage\n", cmd_seq);
		return;
	}
	n = (unsigned)strtoul(av[2], NULL, 10);
	for (c = 0; c < n; c++) {
		size_t kl = next_key(dp->pool, av[1], -1, &idx, key, sizeof(key));

		if (pool_get(dp->pool, key, kl, free_cb, &fc) == 0)
			fc.total++;
	}
	pool_free(dp->pool);
	dp->pool = NULL;
	/* fc lives on this stack frame: every callback must be done by now */
	out("R %d freeinflight total=%d called=%d error=%d\n", cmd_seq, fc.total, fc.called,
	    fc.error);
	if (open_pool(dp) < 0)
		exit(1);
}

static void badkey_cmd(void)
{
	struct freecount fc = { 0, 0, 0 };
	struct pool *p = pools[cur].pool;
	char big[300];
	int r1, r2, r3, r4, r5;

	memset(big, 'k', sizeof(big));
	r1 = pool_get(p, "a b", 3, free_cb, &fc);
	r2 = pool_set(p, "", 0, "x", 1, 0, free_cb, &fc);
	r3 = pool_delete(p, big, 251, free_cb, &fc);
	r4 = pool_flush_shard(p, pool_nshards(p), free_cb, &fc);
	r5 = pool_get(p, "ok", 2, NULL, NULL);
	out("R %d badkey rc=%d,%d,%d,%d,%d called=%d\n", cmd_seq, r1, r2, r3, r4, r5, fc.called);
}

/* ---- stdin ---------------------------------------------------------------------- */

static void cleanup_and_exit(void)
{
	quitting = 1;
	if (stdin_ev)
		event_del(stdin_ev);
	maybe_exit();
}

static void command(char *line)
{
	char *av[16];
	int ac = 0;
	char *save = NULL, *t;

	for (t = strtok_r(line, " \t", &save); t && ac < 16; t = strtok_r(NULL, " \t", &save))
		av[ac++] = t;
	if (ac == 0)
		return;
	cmd_seq++;
	if (strcmp(av[0], "set") == 0)
		keyed(B_SET, av, ac);
	else if (strcmp(av[0], "get") == 0)
		keyed(B_GET, av, ac);
	else if (strcmp(av[0], "del") == 0)
		keyed(B_DEL, av, ac);
	else if (strcmp(av[0], "flush") == 0)
		shard_cmd(B_FLUSH, av, ac);
	else if (strcmp(av[0], "stats") == 0)
		shard_cmd(B_STATS, av, ac);
	else if (strcmp(av[0], "shards") == 0)
		shards_cmd();
	else if (strcmp(av[0], "sleep") == 0 && ac > 1)
		wait_cmd(-1, 0, atol(av[1]));
	else if (strcmp(av[0], "waitup") == 0 && ac > 2)
		wait_cmd(1, atoi(av[1]), atol(av[2]));
	else if (strcmp(av[0], "waitdown") == 0 && ac > 2)
		wait_cmd(0, atoi(av[1]), atol(av[2]));
	else if (strcmp(av[0], "use") == 0 && ac > 1 && atoi(av[1]) < npools) {
		cur = atoi(av[1]);
		out("R %d use %d\n", cmd_seq, cur);
	} else if (strcmp(av[0], "freeinflight") == 0)
		freeinflight_cmd(av, ac);
	else if (strcmp(av[0], "badkey") == 0)
		badkey_cmd();
	else if (strcmp(av[0], "quit") == 0) {
		out("R %d quit\n", cmd_seq);
		cleanup_and_exit();
	} else
		out("R %d unknown command\n", cmd_seq);
}

static void stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	static char buf[65536];
	static size_t have;
	ssize_t n;
	char *nl;

	(void)what;
	(void)arg;
	n = read(fd, buf + have, sizeof(buf) - 1 - have);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		cleanup_and_exit();
		return;
	}
	have += (size_t)n;
	buf[have] = '\0';
	while ((nl = memchr(buf, '\n', have)) != NULL) {
		size_t len = (size_t)(nl - buf) + 1;

		*nl = '\0';
		command(buf);
		memmove(buf, buf + len, have - len);
		have -= len;
	}
}

/* ---- arguments -------------------------------------------------------------------- */

static void defaults(struct sc_pool_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->timeout_ms = 1000;
	c->keepalive_timeout_ms = 10000;
	c->keepalive_pool_size = 2;
	c->fail_threshold = 2;
	c->retry_interval_ms = 500;
	c->max_item_size = 1024 * 1024;
}

static int add_host(struct sc_pool_conf *c, const char *arg)
{
	char *copy = strdup(arg), *colon, *w;
	struct sc_host *h;

	c->hosts = realloc(c->hosts, (c->nhosts + 1) * sizeof(*c->hosts));
	h = &c->hosts[c->nhosts++];
	memset(h, 0, sizeof(*h));
	colon = strrchr(copy, ':');
	if (colon == NULL)
		return -1;
	w = NULL;
	*colon = '\0';
	if (strchr(copy, ':') && copy[0] != '[') {
		/* host:port:weight */
		w = colon + 1;
		colon = strrchr(copy, ':');
		*colon = '\0';
	}
	h->host = copy;
	h->port = (uint16_t)atoi(colon + 1);
	h->weight = w ? (uint32_t)atoi(w) : 100;
	return 0;
}

static int parse_args(int argc, char **argv)
{
	int i;
	struct sc_pool_conf *c;

	npools = 1;
	c = &pools[0].conf;
	defaults(c);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--") == 0) {
			if (npools == MAXPOOLS)
				return -1;
			c = &pools[npools++].conf;
			defaults(c);
		} else if (strcmp(a, "-v") == 0) {
			verbose = 1;
		} else if (strcmp(a, "--tls") == 0) {
			c->tls = 1;
		} else if (strcmp(a, "--verify") == 0) {
			c->tls_verify = 1;
		} else if (a[0] == '-' && a[1] == '-' && v == NULL) {
			return -1;
		} else if (strcmp(a, "--timeout") == 0) {
			c->timeout_ms = atoi(v), i++;
		} else if (strcmp(a, "--keepalive") == 0) {
			c->keepalive_timeout_ms = atoi(v), i++;
		} else if (strcmp(a, "--poolsize") == 0) {
			c->keepalive_pool_size = atoi(v), i++;
		} else if (strcmp(a, "--fail") == 0) {
			c->fail_threshold = atoi(v), i++;
		} else if (strcmp(a, "--retry") == 0) {
			c->retry_interval_ms = atoi(v), i++;
		} else if (strcmp(a, "--max") == 0) {
			c->max_item_size = (size_t)atol(v), i++;
		} else if (strcmp(a, "--ca") == 0) {
			c->tls_ca_file = strdup(v), i++;
		} else if (strcmp(a, "--cert") == 0) {
			c->tls_cert_file = strdup(v), i++;
		} else if (strcmp(a, "--key") == 0) {
			c->tls_key_file = strdup(v), i++;
		} else if (strcmp(a, "--sni") == 0) {
			c->tls_server_name = strdup(v), i++;
		} else if (add_host(c, a) < 0) {
			return -1;
		}
	}
	return 0;
}

static void free_conf(struct sc_pool_conf *c)
{
	size_t i;

	for (i = 0; i < c->nhosts; i++)
		free(c->hosts[i].host);
	free(c->hosts);
	free(c->tls_ca_file);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	free(c->tls_server_name);
}

int main(int argc, char **argv)
{
	char err[512];
	int i, rc = 0;

	/* a write to a shard that just closed must be an error, not a death */
	signal(SIGPIPE, SIG_IGN);
	if (parse_args(argc, argv) < 0 || pools[0].conf.nhosts == 0) {
		fprintf(stderr, "usage: see the top of tests/tools/pool_driver.c\n");
		return 2;
	}
	log_init("pool_driver", verbose ? LOG_DEBUG : LOG_INFO, 0);
	base = event_base_new();
	if (base == NULL)
		return 2;
	for (i = 0; i < npools; i++) {
		if (pools[i].conf.tls) {
			pools[i].tls = pool_tls_ctx_new(&pools[i].conf, err, sizeof(err));
			if (pools[i].tls == NULL) {
				fprintf(stderr, "pool_tls_ctx_new: %s\n", err);
				return 1;
			}
		}
		if (open_pool(&pools[i]) < 0)
			return 1;
	}
	for (i = 0; i < npools; i++) {
		int j;

		for (j = 0; j < pool_nshards(pools[i].pool); j++)
			out("P %d shard %d %s\n", i, j, pool_shard_name(pools[i].pool, j));
	}
	out("READY\n");
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	stdin_ev = event_new(base, 0, EV_READ | EV_PERSIST, stdin_cb, NULL);
	event_add(stdin_ev, NULL);
	event_base_dispatch(base);

	event_free(stdin_ev);
	for (i = 0; i < npools; i++) {
		pool_free(pools[i].pool);
		pools[i].pool = NULL;
		if (pools[i].tls)
			SSL_CTX_free(pools[i].tls);
		free_conf(&pools[i].conf);
	}
	event_base_free(base);
	out("EXIT\n");
	return rc;
}
