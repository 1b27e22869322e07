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

#include "cacheio.h"
#include "l1.h"
#include "log.h"
#include "policy.h"
#include "spoeconn.h"

struct args {
	struct spop_data policy, method, url, tls, hdrs, consumer, body;	/* lookup */
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
	struct pol_lookup L;
	struct pol_limits lim;
};

static void
finish(struct cache_env *env, struct spoe_req *r, enum cache_status st)
{
	M_INC(env->m, lookups[st]);
	log_debug("lookup: %s", cache_status_name[st]);
	spoe_req_done(r);
}

/* Queue what policy_entry() decided; the ACK is sent by the caller. */
static void
set_answer(struct spoe_req *r, struct lookup *lk, const struct pol_hit *h)
{
	const char *st = cache_status_name[h->status];

	spoe_req_set_str(r, "status", st, strlen(st));
	spoe_req_set_str(r, "key", lk->L.key, KEY_HEX_LEN);
	if (h->serve) {
		spoe_req_set_bool(r, "serve", 1);
		spoe_req_set_int(r, "code", h->code);
		spoe_req_set_bin(r, "headers", h->hdrs, h->hlen);
		if (h->body != NULL)
			spoe_req_set_bin(r, "body", h->body, h->blen);
		/* How long HAProxy's node-local tier may answer this URL with
		 * it (lua-glue/spoe-cache.lua); absent: not at all. */
		int64_t l1 = l1_grant_ms(lk->l1_ttl, &lk->L, lk->l1req, h, lk->now_ms);
		if (l1 > 0)
			spoe_req_set_int(r, "l1", l1);
	} else {
		spoe_req_set_bin(r, "ctx", lk->L.ctx, lk->L.ctx_len);
	}
}

static void
lookup_done(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct lookup *lk = arg;
	struct spoe_req *r = lk->r;
	struct pol_hit h;
	size_t cap = POL_HIT_BUF(st == MC_OK ? vlen : 0);
	char *buf = malloc(cap);

	if (buf == NULL) {
		spoe_req_set_str(r, "status", "Bypass", 6);
		finish(lk->env, r, CS_BYPASS);
		free(lk);
		return;
	}
	spoe_req_hold(r, buf);	/* the headers live in buf until the ACK is sent */
	/* The secret of the config in use now: lk keeps nothing of a config
	 * across the fetch, and a reload may have freed the one it began with. */
	lk->lim.auth = lk->env->cf->pool.entry_auth;
	policy_entry(&lk->L, &lk->lim, st == MC_OK ? val : NULL, vlen, lk->now, buf, cap, &h);
	if (h.reject != 0) {
		M_INC(lk->env->m, entries_rejected[ENTRY_ERR_INDEX(h.reject)]);
		log_every(1, LOG_NOTICE, "entry %s refused (%s: %s), treated as a miss", lk->L.key,
		    entry_err_name(h.reject), h.note);
	}
	set_answer(r, lk, &h);
	if (h.answer == PE_HIT || h.answer == PE_NOT_MODIFIED) {
		if (spoe_req_ack_size(r) > spoe_req_max_ack(r)) {
			/* Stored through an HAProxy with larger frames: cannot
			 * be replayed here. */
			spoe_req_clear(r);
			policy_entry(&lk->L, &lk->lim, NULL, 0, lk->now, buf, cap, &h);
			set_answer(r, lk, &h);
		}
	}
	finish(lk->env, r, h.status);
	free(lk);
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
		bypass(env, r, L.why);
		return;
	}
	/* The ctx and, for a fetch, the request facts outlive this call. */
	lk = malloc(sizeof(*lk));
	if (lk == NULL) {
		bypass(env, r, "out of memory");
		return;
	}
	lk->env = env;
	lk->r = r;
	lk->l1_ttl = l1_policy_ttl(p);
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
		spoe_req_set_bool(r, "inval", 1);
		spoe_req_hold(r, lk);	/* the ctx lives in lk until the ACK is sent */
		finish(env, r, CS_BYPASS);
		return;
	}
	if (pool_get(env->pool, lk->L.key, KEY_HEX_LEN, lookup_done, lk) < 0)
		lookup_done(lk, MC_ERROR, NULL, 0);
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
	char key[KEY_HEX_LEN];
};

struct inval {
	struct cache_env *env;
	struct spoe_req *r;
};

static void
refuse(struct cache_env *env, struct spoe_req *r, enum store_refusal why)
{
	M_INC(env->m, refused[why]);
	log_debug("not stored: %s", store_refusal_name[why]);
	answer(r, "Bypass");
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
	memcpy(S->key, ps->key, KEY_HEX_LEN);
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
		answer(r, ps->label);
		break;
	case PS_REFUSE:
		refuse(env, r, ps->why);
		break;
	case PS_INVALIDATE:
		if ((I = malloc(sizeof(*I))) == NULL) {
			answer(r, "Bypass");
			break;
		}
		I->env = env;
		I->r = r;
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
