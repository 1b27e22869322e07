/*
 * cacheio.c - the cache's I/O side; see cacheio.h.
 *
 * A lookup is: read the message, policy_request(), then either answer at
 * once (Bypass, Invalidate) or read the key from its shard and answer with
 * what policy_entry() makes of the value. A store is: policy_response(),
 * then answer with its label at once and set in the background, or delete
 * on the shard and answer (see "store" below).
 *
 * Nothing here blocks: memcached is reached through the pool, and every
 * pointer into the NOTIFY frame is used before cacheio_notify returns;
 * what a callback needs later is copied into a struct lookup or store.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cacheio.h"
#include "hdrs.h"
#include "l1.h"
#include "l1feed.h"
#include "log.h"
#include "policy.h"
#include "spoeconn.h"

struct args {
	struct spop_data policy, method, url, tls, hdrs, consumer, body, l1life;	/* lookup */
	struct spop_data ctx, status, body_len;					/* store */
};

static int
is_text(const struct spop_data *d)
{
	return d->type == SPOP_T_STR || d->type == SPOP_T_BIN;
}

static void
read_args(const uint8_t **p, const uint8_t *end, int nargs, struct args *a)
{
	static const struct { const char *name; size_t off; } map[] = {
		{ "policy", offsetof(struct args, policy) },
		{ "method", offsetof(struct args, method) },
		{ "url", offsetof(struct args, url) },
		{ "tls", offsetof(struct args, tls) },
		{ "hdrs", offsetof(struct args, hdrs) },
		{ "consumer", offsetof(struct args, consumer) },
		{ "body", offsetof(struct args, body) },
		{ "l1life", offsetof(struct args, l1life) },
		{ "ctx", offsetof(struct args, ctx) },
		{ "status", offsetof(struct args, status) },
		{ "body_len", offsetof(struct args, body_len) },
	};

	for (int i = 0; i < nargs; i++) {
		struct spop_str name;
		struct spop_data val;

		if (spop_arg_next(p, end, &name, &val) < 0)
			return;	/* spop_msgs_validate ran first: cannot happen */
		for (size_t k = 0; k < sizeof(map) / sizeof(map[0]); k++)
			if (spop_str_eq(&name, map[k].name)) {
				*(struct spop_data *)((char *)a + map[k].off) = val;
				break;	/* names are unique: the rest cannot match */
			}
	}
}

/* A text argument as (pointer, length); NULL when absent or not text. */
static const char *
text(const struct spop_data *d, size_t *len)
{
	*len = is_text(d) ? d->v.s.len : 0;
	return is_text(d) ? (const char *)d->v.s.p : NULL;
}

static int64_t
int_arg(const struct spop_data *d)
{
	switch (d->type) {
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		return d->v.i;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		return d->v.u > INT64_MAX ? -1 : (int64_t)d->v.u;
	default:
		return -1;
	}
}

static const struct sc_policy *
policy_named(const struct sc_config *cf, const struct spop_data *d)
{
	size_t len;
	const char *s = text(d, &len);

	return s != NULL ? config_policy(cf, s, len) : NULL;
}

static void
answer(struct spoe_req *r, const char *status)
{
	spoe_req_set_str(r, "status", status, strlen(status));
	spoe_req_done(r);
}

/* ---- lookup ---- */

struct lookup {
	struct cache_env *env;
	struct spoe_req *r;
	int64_t now;
	int now_ms;		/* the millisecond within now: what an L1 grant loses of it */
	unsigned l1req;		/* L1_REQ_* */
	int l1_ttl;		/* l1_policy_ttl(): the config may be gone when the fetch returns */
	int64_t l1_min_ms;	/* a shorter grant is never kept: no grant at all */
	struct pol_lookup L;
	struct pol_limits lim;
	/* Collapsed forwarding: waiting for another lookup's fetch. */
	struct event *timer;	/* the next read of the key */
	struct lookup *wnext, **wprev;	/* env->waiting, while timer exists */
	uint64_t deadline_ms;	/* CLOCK_MONOTONIC: when the wait is over */
	int poll_ms;		/* the pause before the next read, doubling */
	uint8_t *stale_copy;	/* PE_LOCK: the value, while the lock is taken */
	size_t stale_len;
	uint64_t cas;		/* of the entry fetched: what an L1 grant records */
	size_t blen;		/* 0: the L1 may keep nothing of this lookup */
	char base[];		/* Host + path, HAProxy's "base": its skip map's key */
};

#define POLL_FIRST_MS	5
#define POLL_MAX_MS	50

static void
finish(struct cache_env *env, struct spoe_req *r, enum cache_status st)
{
	M_INC(env->m, lookups[st]);
	log_debug("lookup: %s", cache_status_name[st]);
	spoe_req_done(r);
}

/* ---- the L1's grants (l1feed.h) ---- */

/* A copy HAProxy's L1 holds must go: tell every poller. */
static void
l1_withdraw(void *arg, const char *base, size_t blen, int64_t until_ms)
{
	struct cache_env *env = arg;

	pthread_mutex_lock(&env->feed->lock);
	l1r_push(&env->feed->ring, base, blen, until_ms);
	pthread_mutex_unlock(&env->feed->lock);
	M_INC(env->m, l1_withdrawn);
}

struct l1_check {
	struct cache_env *env;
	uint64_t cas;
	char key[KEY_HEX_LEN];
};

static void
l1_checked(void *arg, enum mc_status st, const struct pool_meta *m, const uint8_t *val,
    size_t vlen)
{
	struct l1_check *ck = arg;
	struct cache_env *env = ck->env;

	(void)val;
	(void)vlen;
	/* A check that failed (shard down, timeout) withdraws the grant too:
	 * what cannot be verified is not kept. */
	if (!env->drained)
		l1g_checked(&env->grants, ck->key, ck->cas, st == MC_OK, st == MC_OK ? m->cas : 0,
		    l1_withdraw, env);
	free(ck);
}

static int
l1_check(void *arg, const struct l1_grant *gr)
{
	struct cache_env *env = arg;
	struct l1_check *ck = malloc(sizeof(*ck));

	if (ck == NULL)
		return -1;
	ck->env = env;
	ck->cas = gr->cas;
	memcpy(ck->key, gr->key, KEY_HEX_LEN);
	if (pool_check(env->pool, ck->key, KEY_HEX_LEN, l1_checked, ck) < 0) {
		free(ck);
		return -1;
	}
	return 0;
}

static uint64_t mono_ms(void);

/* Every L1_CHECK_MS, re-read the CAS of every live grant, a slice of the
 * table at a time (65,536 checks in one callback would hold up every
 * request of the worker for tens of ms). A grant whose check is still out
 * (a slow shard: it times out within the pool's timeout, and withdraws the
 * grant) is not checked twice. */
static void
l1_round(evutil_socket_t fd, short what, void *arg)
{
	struct cache_env *env = arg;
	size_t slots = (env->grants.cap + L1_CHECK_SLICES - 1) / L1_CHECK_SLICES;

	(void)fd;
	(void)what;
	M_ADD(env->m, l1_checks, l1g_round(&env->grants, (int64_t)mono_ms(), slots, l1_check,
	    l1_withdraw, env));
	atomic_store_explicit(&env->m->l1_tracked, (int64_t)env->grants.n, memory_order_relaxed);
	if (env->grants.n == 0)
		(void)event_del(env->l1_timer);	/* an idle worker sleeps; l1_track() re-arms */
}

/* Record the grant of lk's hit for l1 ms; -1: the L1 may not keep it. The
 * copy may live a little longer than l1 from now: HAProxy stores it when
 * the ACK arrives, and counts its lifetime in whole seconds. */
static int
l1_track(struct lookup *lk, int64_t l1)
{
	struct cache_env *env = lk->env;

	if (env->feed == NULL || lk->blen == 0)
		return -1;
	if (env->l1_timer == NULL) {
		l1g_init(&env->grants, L1_GRANTS_MAX);
		env->l1_timer = event_new(env->base, -1, EV_PERSIST, l1_round, env);
		if (env->l1_timer == NULL)
			return -1;
	}
	if (!evtimer_pending(env->l1_timer, NULL)) {
		struct timeval tv = { 0, L1_CHECK_MS / L1_CHECK_SLICES * 1000 };

		if (event_add(env->l1_timer, &tv) < 0)
			return -1;
	}
	if (l1g_grant(&env->grants, lk->L.key, lk->cas, lk->base, lk->blen,
	    (int64_t)mono_ms() + l1 + 2000, l1_withdraw, env) < 0) {
		M_INC(env->m, l1_refused);
		return -1;
	}
	M_INC(env->m, l1_grants);
	return 0;
}

/* HAProxy's "base" of the request, Host + path (up to '?'), into out when
 * an L1 copy could be made of its answer: a GET of an origin-form URL with
 * one Host. 0 when not. */
static size_t
l1_base(const struct pol_request *rq, char *out, size_t cap)
{
	struct hdr h[POL_MAX_HEADERS];
	size_t n, from = 0, plen;
	const struct hdr *host;
	const char *q;

	if (rq->method_len != 3 || memcmp(rq->method, "GET", 3) != 0 || rq->url_len == 0 ||
	    rq->url[0] != '/' || hdrs_parse(rq->hdrs, rq->hdrs_len, h, POL_MAX_HEADERS, &n) < 0 ||
	    (host = hdrs_find(h, n, "host", 4, &from)) == NULL ||
	    hdrs_find(h, n, "host", 4, &from) != NULL)
		return 0;
	q = memchr(rq->url, '?', rq->url_len);
	plen = q != NULL ? (size_t)(q - rq->url) : rq->url_len;
	if (host->vlen == 0 || host->vlen + plen > cap)
		return 0;
	memcpy(out, host->val, host->vlen);
	memcpy(out + host->vlen, rq->url, plen);
	return host->vlen + plen;
}

/* Queue what policy_entry() decided (its served block is in buf, cap
 * bytes); the ACK is sent by the caller. */
static void
set_answer(struct spoe_req *r, struct lookup *lk, const struct pol_hit *h, char *buf, size_t cap)
{
	const char *st = cache_status_name[h->status];

	spoe_req_set_str(r, "status", st, strlen(st));
	spoe_req_set_str(r, "key", lk->L.key, KEY_HEX_LEN);
	if (h->serve) {
		/* How long HAProxy's node-local tier may answer this URL with
		 * it (absent: not at all), and the copy it keeps (l1_copy()). */
		int64_t l1 = l1_grant_ms(lk->l1_ttl, &lk->L, lk->l1req, h, lk->now_ms);
		size_t hlen = h->hlen;
		int expires = 0;

		if (l1 < lk->l1_min_ms)
			l1 = 0;
		if (l1 > 0 && (h->hdrs != buf || l1_track(lk, l1) < 0 || l1_copy(buf, &hlen, cap, h->age,
		    (lk->L.flags & PL_CSTATUS) != 0, l1, lk->now, &expires) < 0))
			l1 = 0;
		spoe_req_set_bool(r, "serve", 1);
		spoe_req_set_int(r, "code", h->code);
		spoe_req_set_bin(r, "headers", h->hdrs, hlen);
		if (h->body != NULL)
			spoe_req_set_bin(r, "body", h->body, h->blen);
		if (l1 > 0) {
			spoe_req_set_int(r, "l1", l1);
			spoe_req_set_int(r, "l1age", h->age);
			if (expires)
				spoe_req_set_bool(r, "l1e", 1);
		}
	} else {
		spoe_req_set_bin(r, "ctx", lk->L.ctx, lk->L.ctx_len);
		if (h->cstatus != NULL)
			spoe_req_set_str(r, "cstatus", h->cstatus, strlen(h->cstatus));
	}
	if (h->sie && !h->serve)
		spoe_req_set_bool(r, "sie", 1);
	if (h->reval) {
		/* the origin is asked with the entry's validators; a 304 is
		 * answered with this copy (or the one the store step reads) */
		if (h->etag != NULL)
			spoe_req_set_str(r, "inm", h->etag, h->etag_len);
		if (h->lastmod != NULL)
			spoe_req_set_str(r, "ims", h->lastmod, h->lastmod_len);
		spoe_req_set_int(r, "code", h->code);
		spoe_req_set_bin(r, "headers", h->hdrs, h->hlen);
		spoe_req_set_bin(r, "body", h->body != NULL ? h->body : (const uint8_t *)"", h->blen);
	}
}

static void
lookup_free(struct lookup *lk)
{
	if (lk->timer != NULL) {
		event_free(lk->timer);
		if (lk->wnext != NULL)
			lk->wnext->wprev = lk->wprev;
		*lk->wprev = lk->wnext;
	}
	free(lk);
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void fetch(struct lookup *lk);
static void decide(struct lookup *lk, const uint8_t *val, size_t vlen);

static void
ignore_cb(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	(void)arg;
	(void)st;
	(void)val;
	(void)vlen;
}

/* Another lookup is fetching this key: read it again a little later. */
static void
poll_timer(evutil_socket_t fd, short what, void *arg)
{
	struct lookup *lk = arg;

	(void)fd;
	(void)what;
	lk->L.flags |= PL_POLL;
	if (mono_ms() >= lk->deadline_ms)
		lk->L.flags |= PL_WAIT_OVER;
	fetch(lk);
}

static void
wait_more(struct lookup *lk)
{
	struct timeval tv;

	if (lk->timer == NULL) {
		lk->timer = evtimer_new(lk->env->base, poll_timer, lk);
		if (lk->timer == NULL) {
			lk->L.flags |= PL_POLL | PL_WAIT_OVER;
			fetch(lk);
			return;
		}
		M_INC(lk->env->m, collapse_waits);
		if ((lk->wnext = lk->env->waiting) != NULL)
			lk->wnext->wprev = &lk->wnext;
		lk->env->waiting = lk;
		lk->wprev = &lk->env->waiting;
		lk->deadline_ms = mono_ms() + (uint64_t)lk->L.collapse_ms;
		lk->poll_ms = POLL_FIRST_MS;
	} else if (lk->poll_ms < POLL_MAX_MS) {
		lk->poll_ms = lk->poll_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : lk->poll_ms * 2;
	}
	{
		uint64_t now = mono_ms(), left = lk->deadline_ms > now ? lk->deadline_ms - now : 0;
		uint64_t ms = (uint64_t)lk->poll_ms < left ? (uint64_t)lk->poll_ms : left;

		tv.tv_sec = (time_t)(ms / 1000u);
		tv.tv_usec = (suseconds_t)(ms % 1000u) * 1000;
	}
	evtimer_add(lk->timer, &tv);
}

static void
lock_done(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct lookup *lk = arg;
	uint8_t *copy = lk->stale_copy;

	(void)val;
	(void)vlen;
	/* A lock that cannot be taken (its shard failing) is this lookup's:
	 * better one refresh too many than a stale entry nobody refreshes. */
	lk->L.lock = st == MC_NOTSTORED ? PLK_LOST : PLK_WON;
	M_INC(lk->env->m, refresh_locks[lk->L.lock == PLK_WON ? 0 : 1]);
	lk->stale_copy = NULL;
	decide(lk, copy, lk->stale_len);
	free(copy);
}

/* What policy_entry() makes of the value read (NULL: nothing). */
static void
decide(struct lookup *lk, const uint8_t *val, size_t vlen)
{
	struct spoe_req *r = lk->r;
	struct pol_hit h;
	size_t cap = POL_HIT_BUF(val != NULL ? vlen : 0);
	char *buf = malloc(cap);

	if (buf == NULL) {
		spoe_req_set_str(r, "status", "Bypass", 6);
		finish(lk->env, r, CS_BYPASS);
		lookup_free(lk);
		return;
	}
	/* The secret of the config in use now: lk keeps nothing of a config
	 * across the fetch, and a reload may have freed the one it began with. */
	lk->lim.auth = lk->env->cf->pool.entry_auth;
	policy_entry(&lk->L, &lk->lim, val, vlen, lk->now, buf, cap, &h);
	if (h.reject != 0) {
		M_INC(lk->env->m, entries_rejected[ENTRY_ERR_INDEX(h.reject)]);
		log_every(1, LOG_NOTICE, "entry %s refused (%s: %s), treated as a miss", lk->L.key,
		    entry_err_name(h.reject), h.note);
	}
	if (h.answer == PE_WAIT) {
		free(buf);
		wait_more(lk);
		return;
	}
	if (h.answer == PE_LOCK) {
		char lkey[POL_LOCK_KEY_LEN + 1];

		free(buf);
		policy_lock_key(lk->L.key, lkey);
		lk->stale_copy = malloc(vlen);
		lk->stale_len = vlen;
		if (lk->stale_copy != NULL)
			memcpy(lk->stale_copy, val, vlen);
		if (lk->stale_copy == NULL ||
		    pool_add(lk->env->pool, lkey, POL_LOCK_KEY_LEN, "", 0, lk->L.lock_ttl,
		    lock_done, lk) < 0) {
			free(lk->stale_copy);
			lk->stale_copy = NULL;
			lk->L.lock = PLK_WON;
			decide(lk, val, vlen);
		}
		return;
	}
	if (lk->timer != NULL)
		M_INC(lk->env->m, collapse_outcomes[h.answer == PE_HIT || h.answer == PE_NOT_MODIFIED ?
		    0 : (lk->L.flags & PL_WAIT_OVER) ? 2 : 1]);
	if (h.stale != PST_NONE)
		M_INC(lk->env->m, stale_served[h.stale]);
	spoe_req_hold(r, buf);	/* the headers live in buf until the ACK is sent */
	set_answer(r, lk, &h, buf, cap);
	if (h.answer == PE_HIT || h.answer == PE_NOT_MODIFIED || h.reval) {
		if (spoe_req_ack_size(r) > spoe_req_max_ack(r)) {
			/* Stored through an HAProxy with larger frames: cannot
			 * be replayed here. */
			spoe_req_clear(r);
			policy_entry(&lk->L, &lk->lim, NULL, 0, lk->now, buf, cap, &h);
			set_answer(r, lk, &h, buf, cap);
		}
	}
	finish(lk->env, r, h.status);
	lookup_free(lk);
}

static void
fetched(void *arg, enum mc_status st, const struct pool_meta *m, const uint8_t *val, size_t vlen)
{
	struct lookup *lk = arg;

	lk->L.mc = st == MC_OK ? m->flags : 0;
	lk->cas = st == MC_OK ? m->cas : 0;
	decide(lk, st == MC_OK ? val : NULL, vlen);
}

/* Read the key: the first time with vivify (a miss then claims the fetch),
 * later as a waiting lookup. */
static void
fetch(struct lookup *lk)
{
	uint32_t vivify = (lk->L.flags & PL_POLL) ? 0 : lk->L.vivify;

	if (pool_get_meta(lk->env->pool, lk->L.key, KEY_HEX_LEN, vivify, fetched, lk) < 0)
		decide(lk, NULL, 0);
}

static void
bypass(struct cache_env *env, struct spoe_req *r, const char *why)
{
	log_debug("bypass: %s", why);
	spoe_req_set_str(r, "status", "Bypass", 6);
	finish(env, r, CS_BYPASS);
}

static void
do_lookup(struct cache_env *env, struct spoe_req *r, const struct args *a)
{
	const struct sc_config *cf = env->cf;
	const struct sc_policy *p = policy_named(cf, &a->policy);
	struct pol_request rq;
	struct pol_limits lim;
	struct pol_lookup L;
	struct lookup *lk;
	struct timespec ts;
	size_t hlen;

	if (p == NULL && is_text(&a->policy))
		log_every(1, LOG_WARNING, "lookup for unknown policy \"%.*s\": Bypass",
		    (int)(a->policy.v.s.len > 64 ? 64 : a->policy.v.s.len),
		    (const char *)a->policy.v.s.p);
	config_limits(cf, &lim);
	memset(&rq, 0, sizeof(rq));
	rq.method = text(&a->method, &rq.method_len);
	rq.url = text(&a->url, &rq.url_len);
	rq.tls = a->tls.type == SPOP_T_BOOL && a->tls.v.b;
	rq.hdrs = (const uint8_t *)text(&a->hdrs, &hlen);
	rq.hdrs_len = hlen;
	rq.consumer = text(&a->consumer, &rq.consumer_len);
	rq.body = text(&a->body, &rq.body_len);
	policy_request(p, &lim, &rq, &L);
	if (L.action == PA_BYPASS) {
		/* answered at once: nothing to keep, nothing allocated */
		if (L.bad)
			M_INC(env->m, bad_messages);
		if (L.keyerr != 0)
			log_every(1, LOG_INFO, "lookup bypassed: %s", L.why);
		if (L.cstatus != NULL)
			spoe_req_set_str(r, "cstatus", L.cstatus, strlen(L.cstatus));
		bypass(env, r, L.why);
		return;
	}
	/* The ctx and, for a fetch, the request facts outlive this call. */
	{
		/* l1life: the lifetime (s) of the copies this HAProxy's L1
		 * keeps, SPOE_CACHE_L1_TTL (0: it keeps none); its cache-store
		 * keeps only grants that long, so a shorter one is not made
		 * (nor tracked, nor checked every second). Absent (an older
		 * spoe-cache.conf) or not an integer: any grant is made. */
		int64_t life = int_arg(&a->l1life);
		int l1_ttl = env->feed != NULL ? l1_policy_ttl(p) : 0;
		char base[L1_BASE_MAX];

		if (life > 86400)
			life = 86400;	/* more than any l1_ttl (at most 3600) */
		if (life == 0 || (life > 0 && l1_ttl < life))
			l1_ttl = 0;
		size_t blen = l1_ttl > 0 && L.action == PA_FETCH ? l1_base(&rq, base, sizeof(base)) : 0;

		lk = calloc(1, sizeof(*lk) + blen);
		if (lk == NULL) {
			bypass(env, r, "out of memory");
			return;
		}
		lk->l1_ttl = l1_ttl;
		lk->l1_min_ms = life > 0 ? life * 1000 : 0;
		lk->blen = blen;
		memcpy(lk->base, base, blen);
	}
	lk->env = env;
	lk->r = r;
	clock_gettime(CLOCK_REALTIME, &ts);
	lk->now = (int64_t)ts.tv_sec;
	lk->now_ms = (int)(ts.tv_nsec / 1000000);
	lk->l1req = (rq.consumer_len > 0 ? L1_REQ_CONSUMER : 0) |
	    (rq.body != NULL ? L1_REQ_BODY : 0);
	lk->lim = lim;
	lk->lim.auth = NULL;	/* set again when the fetch is answered */
	lk->L = L;

	if (L.action == PA_INVALIDATE) {
		spoe_req_set_str(r, "status", "Bypass", 6);
		spoe_req_set_bin(r, "ctx", lk->L.ctx, lk->L.ctx_len);
		if (lk->L.cstatus != NULL)
			spoe_req_set_str(r, "cstatus", lk->L.cstatus, strlen(lk->L.cstatus));
		spoe_req_set_bool(r, "inval", 1);
		spoe_req_hold(r, lk);	/* the ctx lives in lk until the ACK is sent */
		finish(env, r, CS_BYPASS);
		return;
	}
	fetch(lk);
}

/* ---- store ---- */

/*
 * A store's label (Miss or Refresh) is decided by policy_response() and
 * does not wait for memcached's answer: the store is answered as soon as
 * its set has left the agent (store_sent: written to the shard's socket,
 * in the same batch as the other requests of that loop pass), so that the
 * request its answer leads to reaches memcached after the set, through
 * any connection, worker or HAProxy, and is a Hit. The set then finishes
 * in the background: memcached's answer changes no label any more, so a
 * failure is a metric (store_failures) and a debug line, and the next
 * request for the key is a Miss again. What background stores of one
 * worker hold is capped (memcached.store_backlog): past it a new store is
 * refused, Bypass, rather than queued, so a slow shard costs bounded
 * memory.
 *
 * An invalidation still waits for its delete: the client that changed a
 * resource must not read the old one back with its next request.
 *
 * Ownership: store_start() allocates a bg_store; the pool owns the encoded
 * entry (pool_set_take) and calls store_sent() then store_done() exactly
 * once each, in that order, also for a set that fails or a pool freed with
 * it in flight (a reload, shutdown: a failure then). store_sent() answers
 * the SPOP request and forgets it (an HAProxy connection closing before
 * that only detaches it, see spoeconn.h); store_done() frees the bg_store.
 * struct inval is the synchronous delete's and holds its request until
 * inval_done().
 */
struct bg_store {
	struct cache_env *env;
	struct spoe_req *r;	/* until store_sent() answers it */
	const char *label;	/* its answer: Miss or Refresh (static) */
	size_t bytes;		/* counted in env->backlog until the answer */
	int unlock;		/* release the refresh lock once memcached answers */
	char key[KEY_HEX_LEN];
};

struct inval {
	struct cache_env *env;
	struct spoe_req *r;
	char cstatus[POL_CSTATUS_MAX];	/* what the store step adds to Cache-Status */
};

/* What the store step adds to the lookup's Cache-Status (RFC 9211). */
static void
set_cstatus(struct spoe_req *r, const char *cs, size_t len)
{
	if (len > 0)
		spoe_req_set_str(r, "cstatus_store", cs, len);
}

static void
unlock(struct cache_env *env, const char *key)
{
	char lkey[POL_LOCK_KEY_LEN + 1];

	policy_lock_key(key, lkey);
	(void)pool_delete(env->pool, lkey, POL_LOCK_KEY_LEN, ignore_cb, NULL);
}

/* Not storable, and lookups may be waiting for it: the pass marker sends
 * them (and the next ones, for a while) to the origin at once. */
static void
pass(struct cache_env *env, const struct pol_store *ps)
{
	if (pool_set(env->pool, ps->key, KEY_HEX_LEN, POL_PASS_MARK, POL_PASS_LEN, POL_PASS_TTL,
	    ignore_cb, NULL) == 0)
		M_INC(env->m, pass_marks);
	if (ps->unlock)
		unlock(env, ps->key);
}

static void
refuse(struct cache_env *env, struct spoe_req *r, enum store_refusal why)
{
	M_INC(env->m, refused[why]);
	log_debug("not stored: %s", store_refusal_name[why]);
	answer(r, "Bypass");
}

/* A Location or Content-Location target deleted beside the request's
 * own (RFC 9111 4.4): nothing waits for it. */
static void
also_done(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct cache_env *env = arg;

	(void)st;
	(void)val;
	(void)vlen;
	M_INC(env->m, invalidations);	/* counted as store_done() counts the request's */
}

static void
store_sent(void *arg)
{
	struct bg_store *S = arg;

	answer(S->r, S->label);
	S->r = NULL;
}

static void
store_done(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct bg_store *S = arg;
	struct cache_env *env = S->env;

	(void)val;
	(void)vlen;
	if (S->r != NULL)	/* cannot happen: the pool calls store_sent() first */
		store_sent(S);
	env->backlog -= S->bytes;
	M_ADD(env->m, store_backlog, -(int64_t)S->bytes);
	if (S->unlock)
		unlock(env, S->key);
	if (st == MC_OK) {
		M_INC(env->m, stores);
		log_debug("stored %.*s", KEY_HEX_LEN, S->key);
	} else {
		M_INC(env->m, store_failures[st == MC_NOTSTORED ? SF_NOT_STORED :
		    st == MC_TOOBIG ? SF_TOO_BIG : SF_ERROR]);
		log_debug("store of %.*s failed: %s", KEY_HEX_LEN, S->key, mc_status_name(st));
	}
	free(S);
}

static void
inval_done(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct inval *I = arg;

	(void)st;
	(void)val;
	(void)vlen;
	M_INC(I->env->m, invalidations);
	set_cstatus(I->r, I->cstatus, strlen(I->cstatus));
	answer(I->r, "Bypass");
	free(I);
}

/* Start the background set of ps's entry; r is answered with its label
 * once the set has left (store_sent), or at once with Bypass when it
 * cannot be started. */
static void
store_start(struct cache_env *env, struct spoe_req *r, const struct pol_store *ps,
    const struct entry_auth *auth)
{
	size_t size = entry_size(&ps->e, auth);
	struct bg_store *S;
	uint8_t *buf;
	int n;

	if (env->backlog + size > env->cf->pool.store_backlog) {
		M_INC(env->m, stores_shed);
		log_every(10, LOG_WARNING, "background stores hold %zu bytes, a %zu-byte entry "
		    "would go past memcached.store_backlog (%zu): not stored (Bypass)",
		    env->backlog, size, env->cf->pool.store_backlog);
		answer(r, "Bypass");
		return;
	}
	S = malloc(sizeof(*S));
	buf = malloc(size);
	if (S == NULL || buf == NULL ||
	    (n = entry_encode(&ps->e, auth, buf, size)) < 0) {
		free(buf);
		free(S);
		refuse(env, r, SR_STORE_FAILED);
		return;
	}
	S->env = env;
	S->r = r;
	S->label = ps->label;
	S->bytes = (size_t)n;
	S->unlock = ps->unlock;
	memcpy(S->key, ps->key, KEY_HEX_LEN);
	set_cstatus(r, ps->cstatus, strlen(ps->cstatus));	/* before store_sent() answers */
	/* buf is the pool's from here, whatever this returns */
	if (pool_set_take(env->pool, ps->key, KEY_HEX_LEN, buf, (size_t)n, ps->mc_ttl,
	    store_done, store_sent, S) < 0) {
		free(S);
		refuse(env, r, SR_STORE_FAILED);
		return;
	}
	env->backlog += S->bytes;
	M_ADD(env->m, store_backlog, (int64_t)S->bytes);
}

/* ---- the store step's reads: revalidation (304) and stale-if-error ---- */

struct reread {
	struct cache_env *env;
	struct spoe_req *r;
	enum pol_store_action action;
	int unlock;
	int64_t now;
	char key[KEY_HEX_LEN + 1];
	size_t ctx_len, hdrs_len;
	uint8_t data[];		/* the ctx, then the 304's res.hdrs_bin */
};

/* The response HAProxy got is replaced (lua-glue's spoe_cache_replace)
 * with what the policy made of the entry. */
static void
set_replace(struct spoe_req *r, const struct pol_hit *h, const char *how)
{
	const char *st = cache_status_name[h->status];

	spoe_req_set_str(r, "status", st, strlen(st));
	spoe_req_set_bool(r, how, 1);
	spoe_req_set_int(r, "code", h->code);
	spoe_req_set_bin(r, "headers", h->hdrs, h->hlen);
	spoe_req_set_bin(r, "body", h->body != NULL ? h->body : (const uint8_t *)"", h->blen);
}

/* A 304 to the validators of the entry val: update it, store it, and
 * answer the client (who asked unconditionally) with it. When it cannot
 * be read back, the lookup's copy answers (txn.cache.code, headers, body
 * are still those). */
static void
revalidated(struct reread *R, const struct pol_limits *lim, struct pol_lookup *L,
    const uint8_t *val, size_t vlen)
{
	const struct sc_config *cf = R->env->cf;
	const struct sc_policy *p = NULL;
	struct pol_response rs = { .ctx = R->data, .ctx_len = R->ctx_len, .status = 304,
	    .hdrs = R->data + R->ctx_len, .hdrs_len = R->hdrs_len };
	size_t hcap = POL_REVAL_HBUF(vlen, R->hdrs_len), n = vlen, cap;
	struct pol_store *ps = malloc(sizeof(*ps));
	char *hbuf = malloc(hcap), *buf = NULL;
	const char *pname;
	size_t plen;
	struct pol_hit h;

	if (policy_ctx_policy(R->data, R->ctx_len, &pname, &plen) == 0)
		p = config_policy(cf, pname, plen);
	if (ps == NULL || hbuf == NULL)
		goto plain;
	policy_revalidate(p, lim, &rs, val, vlen, R->now, spoe_req_max_ack(R->r),
	    cf->pool.max_item_size, hbuf, hcap, ps);
	if (ps->action == PS_BAD)
		goto plain;
	if (ps->action == PS_STORE)
		n = entry_size(&ps->e, lim->auth);
	/* one block the ACK holds: the served header block, then the entry */
	cap = POL_HIT_BUF(n);
	if (n > SIZE_MAX / 2 || (buf = malloc(cap + n)) == NULL)
		goto plain;
	if (ps->action == PS_STORE) {
		if (entry_encode(&ps->e, lim->auth, (uint8_t *)buf + cap, n) != (int)n)
			goto plain;
		/* pool_set copies the value into the shard's output */
		if (pool_set(R->env->pool, R->key, KEY_HEX_LEN, buf + cap, n, ps->mc_ttl, ignore_cb,
		    NULL) == 0)
			M_INC(R->env->m, stores);
		val = (const uint8_t *)buf + cap;
	} else {
		M_INC(R->env->m, refused[ps->why]);
	}
	L->flags |= PL_REVALIDATED;
	policy_entry(L, lim, val, n, R->now, buf, cap, &h);
	if (h.answer != PE_HIT)
		goto plain;
	M_INC(R->env->m, revalidations);
	spoe_req_hold(R->r, buf);
	set_replace(R->r, &h, "replace");
	free(hbuf);
	free(ps);
	return;
plain:
	free(buf);
	free(hbuf);
	free(ps);
	spoe_req_set_str(R->r, "status", "Refresh", 7);
	spoe_req_set_bool(R->r, "replace", 1);
}

static void
reread_done(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct reread *R = arg;
	struct pol_limits lim;
	struct pol_lookup L;
	struct pol_hit h;
	char *buf = NULL;

	config_limits(R->env->cf, &lim);
	if (R->unlock)
		unlock(R->env, R->key);
	if (policy_ctx_lookup(R->data, R->ctx_len, &L) < 0)
		st = MC_ERROR;
	if (R->action == PS_REVALIDATE) {
		revalidated(R, &lim, &L, st == MC_OK ? val : NULL, st == MC_OK ? vlen : 0);
	} else if (st == MC_OK && (buf = malloc(POL_HIT_BUF(vlen))) != NULL) {
		/* the origin failed: a stale entry inside its window stands in */
		L.flags |= PL_ERROR;
		policy_entry(&L, &lim, val, vlen, R->now, buf, POL_HIT_BUF(vlen), &h);
		if (h.answer == PE_HIT && spoe_req_max_ack(R->r) >= h.hlen + h.blen + POL_ACK_SLACK) {
			if (h.stale != PST_NONE)
				M_INC(R->env->m, stale_served[h.stale]);
			spoe_req_hold(R->r, buf);
			set_replace(R->r, &h, "replace");
		} else {
			free(buf);
			M_INC(R->env->m, refused[SR_STATUS]);
			spoe_req_set_str(R->r, "status", "Bypass", 6);
		}
	} else {
		M_INC(R->env->m, refused[SR_STATUS]);
		spoe_req_set_str(R->r, "status", "Bypass", 6);
	}
	spoe_req_done(R->r);
	free(R);
}

/* Read the entry again for the store step (ps: PS_REVALIDATE or
 * PS_STALE_IF_ERROR); what the message carried is copied first. */
static void
reread(struct cache_env *env, struct spoe_req *r, const struct pol_store *ps,
    const struct pol_response *rs)
{
	size_t hl = ps->action == PS_REVALIDATE && rs->hdrs != NULL ? rs->hdrs_len : 0;
	struct reread *R = malloc(sizeof(*R) + rs->ctx_len + hl);

	if (R == NULL) {
		refuse(env, r, SR_STORE_FAILED);
		return;
	}
	R->env = env;
	R->r = r;
	R->action = ps->action;
	R->unlock = ps->unlock;
	R->now = (int64_t)time(NULL);
	memcpy(R->key, ps->key, sizeof(R->key));
	R->ctx_len = rs->ctx_len;
	R->hdrs_len = hl;
	memcpy(R->data, rs->ctx, rs->ctx_len);
	if (hl > 0)
		memcpy(R->data + rs->ctx_len, rs->hdrs, hl);
	if (pool_get(env->pool, R->key, KEY_HEX_LEN, reread_done, R) < 0)
		reread_done(R, MC_ERROR, NULL, 0);
}

static void
do_store(struct cache_env *env, struct spoe_req *r, const struct args *a)
{
	const struct sc_config *cf = env->cf;
	const struct sc_policy *p = NULL;
	struct pol_response rs;
	struct pol_limits lim;
	struct pol_store *ps;
	struct inval *I;
	const char *pname;
	size_t plen, hlen = 0, blen = 0;
	char *hbuf = NULL;

	memset(&rs, 0, sizeof(rs));
	if (a->ctx.type == SPOP_T_BIN) {
		rs.ctx = a->ctx.v.s.p;
		rs.ctx_len = a->ctx.v.s.len;
		if (policy_ctx_policy(rs.ctx, rs.ctx_len, &pname, &plen) == 0)
			p = config_policy(cf, pname, plen);
	}
	rs.status = int_arg(&a->status);
	rs.hdrs = (const uint8_t *)text(&a->hdrs, &hlen);
	rs.hdrs_len = hlen;
	rs.body = (const uint8_t *)text(&a->body, &blen);
	rs.body_len = blen;
	rs.tls = a->tls.type == SPOP_T_BOOL && a->tls.v.b;
	rs.consumer = text(&a->consumer, &rs.consumer_len);
	config_limits(cf, &lim);
	ps = malloc(sizeof(*ps));
	if (ps == NULL || (hbuf = malloc(POL_STORE_HBUF(hlen))) == NULL) {
		free(ps);
		refuse(env, r, SR_STORE_FAILED);
		return;
	}
	policy_response(p, &lim, &rs, (int64_t)time(NULL), spoe_req_max_ack(r),
	    cf->pool.max_item_size, hbuf, POL_STORE_HBUF(hlen), ps);

	switch (ps->action) {
	case PS_BAD:
		M_INC(env->m, bad_messages);
		answer(r, "Bypass");
		break;
	case PS_NONE:
		set_cstatus(r, ps->cstatus, strlen(ps->cstatus));
		answer(r, ps->label);
		break;
	case PS_REFUSE:
		if (ps->pass)
			pass(env, ps);
		set_cstatus(r, ps->cstatus, strlen(ps->cstatus));
		refuse(env, r, ps->why);
		break;
	case PS_REVALIDATE:
	case PS_STALE_IF_ERROR:
		reread(env, r, ps, &rs);
		break;
	case PS_INVALIDATE:
		if ((I = malloc(sizeof(*I))) == NULL) {
			answer(r, "Bypass");
			break;
		}
		I->env = env;
		I->r = r;
		memcpy(I->cstatus, ps->cstatus, sizeof(I->cstatus));
		for (size_t i = 0; i < ps->n_also; i++)
			(void)pool_delete(env->pool, ps->also[i], KEY_HEX_LEN, also_done, env);
		if (pool_delete(env->pool, ps->key, KEY_HEX_LEN, inval_done, I) < 0) {
			free(I);
			answer(r, "Bypass");
		}
		break;
	case PS_STORE:
		store_start(env, r, ps, lim.auth);
		break;
	}
	free(hbuf);
	free(ps);
}

void
cacheio_drain(struct cache_env *env)
{
	struct lookup *lk, *next;

	/* Those reading the key again are answered by pool_free(): a failed
	 * read is never a wait. */
	for (lk = env->waiting; lk != NULL; lk = next) {
		next = lk->wnext;
		if (!evtimer_pending(lk->timer, NULL))
			continue;
		event_del(lk->timer);
		lk->L.flags |= PL_POLL | PL_WAIT_OVER;
		decide(lk, NULL, 0);	/* a Miss; frees lk, unlinking it */
	}
	/* The checks still out are answered by pool_free() too: they find
	 * drained set and touch no grant. */
	if (env->l1_timer != NULL)
		event_free(env->l1_timer);
	env->l1_timer = NULL;
	l1g_free(&env->grants);
	env->drained = 1;
}

int
l1feed_init(struct l1feed *f)
{
	struct timespec ts;

	memset(f, 0, sizeof(*f));
	if (l1r_init(&f->ring, L1_FEED_EVENTS) < 0)
		return -1;
	if (pthread_mutex_init(&f->lock, NULL) != 0) {
		l1r_free(&f->ring);
		return -1;
	}
	/* Another number at each start (the millisecond and the pid), below
	 * 2^53 so that any poller reads it exactly. */
	clock_gettime(CLOCK_REALTIME, &ts);
	f->epoch = ((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u) * 1000u +
	    (uint64_t)getpid() % 1000u;
	return 0;
}

void
l1feed_free(struct l1feed *f)
{
	pthread_mutex_destroy(&f->lock);
	l1r_free(&f->ring);
}

void
cacheio_notify(void *arg, struct spoe_req *r, const uint8_t *payload, size_t len)
{
	struct cache_env *env = arg;
	const uint8_t *p = payload, *end = payload + len;
	struct spop_str name;
	int nargs;

	while (spop_msg_next(&p, end, &name, &nargs) == 1) {
		struct args a;

		memset(&a, 0, sizeof(a));
		read_args(&p, end, nargs, &a);
		if (spop_str_eq(&name, "cache-lookup") || spop_str_eq(&name, "cache-lookup-body")) {
			do_lookup(env, r, &a);
			return;
		}
		/* cache-invalidate: the store step of an unsafe method, sent
		 * without the body it has no use for (lookup said inval). */
		if (spop_str_eq(&name, "cache-store") || spop_str_eq(&name, "cache-invalidate")) {
			do_store(env, r, &a);
			return;
		}
	}
	M_INC(env->m, bad_messages);
	answer(r, "Bypass");
}
