/*
 * cache.c - lookup and store decisions; see cache.h.
 *
 * A lookup ends in one of: Bypass (not cacheable, nothing looked up), Hit
 * (a usable entry: the ACK carries the whole response), Refresh (an entry,
 * not fresh enough for this request), Miss (none). Miss and Refresh carry a
 * ctx the store step gets back from HAProxy, so the agent keeps no state
 * between the two halves of a transaction and any agent can store it.
 *
 * Nothing here blocks: memcached is reached through the worker's pool, and
 * every pointer into the NOTIFY frame is used before cache_notify returns;
 * what a callback needs later is copied into a struct lookup or store.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cache.h"
#include "cachectl.h"
#include "entry.h"
#include "jsonf.h"
#include "log.h"
#include "pool.h"
#include "spoeconn.h"
#include "worker.h"

#define CTX_VERSION	1
#define CTX_F_HEAD	0x01u	/* the request was HEAD: nothing to store */
#define CTX_F_AUTH	0x02u	/* the request had Authorization */
#define CTX_F_REFRESH	0x04u	/* the lookup said Refresh (else Miss) */
#define CTX_F_INVALIDATE 0x08u	/* unsafe method: delete the GET entry on success */
#define CTX_HDRS_MAX	4096	/* request headers carried for Vary; larger: not carried */
#define CTX_MAX		(1 + 1 + KEY_HEX_LEN + 1 + 255 + 2 + CTX_HDRS_MAX)
#define VARY_MAX	4096	/* an entry's recorded Vary values */

#define VARY_SCRATCH	8192	/* vary header values of one request */
#define JSON_SCRATCH	8192	/* decoded JSON field values */
#define INM_MAX		1024	/* If-None-Match we keep for a conditional hit */

const char *
cache_reqerr_str(int e)
{
	switch (e) {
	case CRE_OK: return "ok";
	case CRE_METHOD: return "method not cacheable";
	case CRE_URL: return "URL not accepted";
	case CRE_HOST: return "missing, repeated or mismatched Host";
	case CRE_KEY_INPUT: return "bad characters in the URL or Host";
	case CRE_TOO_MANY: return "too many query parameters or headers";
	case CRE_BODY: return "body is not a JSON object";
	case CRE_TOO_LONG: return "vary header values too long";
	}
	return "unknown";
}

static int
str_in(const struct sc_strlist *l, const char *s, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		if (strlen(l->v[i]) == len && memcmp(l->v[i], s, len) == 0)
			return 1;
	return 0;
}

static int
name_eq(const char *a, size_t alen, const char *lit)
{
	return hdr_name_eq(a, alen, lit, strlen(lit));
}

/* Split the request target into host (absolute-form only), path, query. */
static int
split_url(const char *u, size_t len, const char **auth, size_t *alen, const char **path,
    size_t *plen, const char **query, size_t *qlen)
{
	const char *end = u + len, *p, *q;

	*auth = NULL;
	*alen = 0;
	if (len == 0)
		return CRE_URL;
	if (u[0] != '/') {
		/* absolute-form: scheme "://" authority [path] */
		const char *s = memchr(u, ':', len);

		if (s == NULL || end - s < 3 || s[1] != '/' || s[2] != '/')
			return CRE_URL;
		*auth = s + 3;
		p = *auth;
		while (p < end && *p != '/' && *p != '?')
			p++;
		*alen = (size_t)(p - *auth);
		if (*alen == 0 || memchr(*auth, '@', *alen) != NULL)
			return CRE_URL;	/* userinfo has no place in a cache key */
		u = p;
	}
	q = memchr(u, '?', (size_t)(end - u));
	if (memchr(u, '#', (size_t)(end - u)) != NULL)
		return CRE_URL;
	*path = u;
	*plen = (size_t)((q ? q : end) - u);
	if (*plen == 0) {
		*path = "/";
		*plen = 1;
	}
	*query = q ? q + 1 : "";
	*qlen = q ? (size_t)(end - q - 1) : 0;
	return 0;
}

int
cache_request_key(const struct sc_config *cf, const struct sc_policy *p,
    const struct cache_request *req, char hex[KEY_HEX_LEN + 1])
{
	struct key_input in;
	struct key_kv vary[64], json[64];
	char vscratch[VARY_SCRATCH], jscratch[JSON_SCRATCH];
	size_t voff = 0, from = 0;
	const struct hdr *host, *h2;
	const char *auth, *path, *query;
	size_t alen, plen, qlen;
	int rc;

	memset(&in, 0, sizeof(in));
	rc = split_url(req->url, req->url_len, &auth, &alen, &path, &plen, &query, &qlen);
	if (rc < 0)
		return rc;
	host = hdrs_find(req->hdrs, req->nhdrs, "host", 4, &from);
	h2 = host ? hdrs_find(req->hdrs, req->nhdrs, "host", 4, &from) : NULL;
	if (h2 != NULL)
		return CRE_HOST;
	if (host == NULL && auth == NULL)
		return CRE_HOST;
	if (host != NULL && auth != NULL &&
	    !(host->vlen == alen && strncasecmp(host->val, auth, alen) == 0))
		return CRE_HOST;	/* Host must be the absolute URI's authority */
	if (host == NULL) {
		in.host = auth;
		in.host_len = alen;
	} else {
		in.host = host->val;
		in.host_len = host->vlen;
	}
	if (in.host_len == 0)
		return CRE_HOST;
	in.policy = p->name;
	in.policy_len = strlen(p->name);
	/* HEAD is answered from GET's entry. */
	if (req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0) {
		in.method = "GET";
		in.method_len = 3;
	} else {
		in.method = req->method;
		in.method_len = req->method_len;
	}
	in.scheme = req->tls ? "https" : "http";
	in.scheme_len = strlen(in.scheme);
	in.path = path;
	in.path_len = plen;
	in.query = query;
	in.query_len = qlen;
	in.consumer = req->consumer;
	in.consumer_len = req->consumer ? req->consumer_len : 0;
	in.only_params = (const char *const *)p->vary_query_params.v;
	in.n_only_params = p->vary_query_params.n;
	in.max_params = (size_t)cf->agent.max_query_params;
	if (p->vary_headers.n > 64 || p->vary_body_json_fields.n > 64)
		return CRE_TOO_MANY;
	for (size_t i = 0; i < p->vary_headers.n; i++) {
		const char *n = p->vary_headers.v[i];
		size_t outlen = 0;

		rc = hdrs_join(req->hdrs, req->nhdrs, n, strlen(n), vscratch + voff,
		    sizeof(vscratch) - voff, &outlen);
		if (rc < 0)
			return CRE_TOO_LONG;
		vary[i].name = n;
		vary[i].nlen = strlen(n);
		vary[i].present = rc;
		vary[i].val = vscratch + voff;
		vary[i].vlen = outlen;
		voff += outlen;
	}
	in.vary_hdrs = vary;
	in.n_vary_hdrs = p->vary_headers.n;
	if (p->vary_body_json_fields.n > 0) {
		size_t lens[64];

		if (req->body == NULL)
			return CRE_BODY;
		for (size_t i = 0; i < p->vary_body_json_fields.n; i++)
			lens[i] = strlen(p->vary_body_json_fields.v[i]);
		if (jsonf_extract(req->body, req->body_len,
		    (const char *const *)p->vary_body_json_fields.v, lens,
		    p->vary_body_json_fields.n, json, jscratch, sizeof(jscratch)) != 0)
			return CRE_BODY;
		in.json = json;
		in.n_json = p->vary_body_json_fields.n;
	}
	rc = key_compute(&in, hex);
	if (rc == KEY_ERR_TOO_MANY)
		return CRE_TOO_MANY;
	if (rc < 0)
		return CRE_KEY_INPUT;
	return 0;
}

/* ---- message arguments ---- */

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
			if (spop_str_eq(&name, map[k].name))
				*(struct spop_data *)((char *)a + map[k].off) = val;
	}
}

/* ---- lookup ---- */

struct lookup {
	struct spoe_req *r;
	char key[KEY_HEX_LEN + 1];
	int head, auth, cc_on;
	struct cachectl rcc;
	int has_ims;
	int64_t ims;
	size_t inm_len;		/* 0: no If-None-Match */
	char inm[INM_MAX];
	int64_t now;
	uint8_t ctx[CTX_MAX];
	size_t ctx_len;
};

static void
finish(struct spoe_req *r, enum cache_status st)
{
	M_INC(&r->w->m, lookups[st]);
	log_debug("lookup: %s", cache_status_name[st]);
	spoe_req_done(r);
}

static void
bypass(struct spoe_req *r, const char *why)
{
	log_debug("bypass: %s", why);
	spoe_req_set_str(r, "status", "Bypass", 6);
	finish(r, CS_BYPASS);
}

/*
 * The ctx HAProxy carries from the lookup to the store (txn.cache.ctx): made
 * by the agent, never by the client.
 *   <u8 version> <u8 flags> <key: 64> <u8 len> <policy> <u16 len> <req.hdrs_bin>
 * The request headers are there for Vary (RFC 9111 4.1); when they are
 * larger than CTX_HDRS_MAX they are left out, and a response with Vary is
 * then not stored.
 */
struct ctx {
	unsigned flags;
	const char *key;		/* KEY_HEX_LEN bytes */
	const char *policy;
	size_t plen;
	const uint8_t *hdrs;		/* NULL: not carried */
	size_t hlen;
};

static size_t
ctx_encode(uint8_t *out, unsigned flags, const char *key, const char *policy,
    const uint8_t *hdrs, size_t hlen)
{
	size_t pl = strlen(policy), n = 0;

	if (pl > 255)
		pl = 255;
	if (hlen > CTX_HDRS_MAX)
		hlen = 0;
	out[n++] = CTX_VERSION;
	out[n++] = (uint8_t)flags;
	memcpy(out + n, key, KEY_HEX_LEN);
	n += KEY_HEX_LEN;
	out[n++] = (uint8_t)pl;
	memcpy(out + n, policy, pl);
	n += pl;
	out[n++] = (uint8_t)(hlen >> 8);
	out[n++] = (uint8_t)hlen;
	if (hlen > 0)
		memcpy(out + n, hdrs, hlen);
	return n + hlen;
}

static int
ctx_decode(const uint8_t *p, size_t len, struct ctx *c)
{
	size_t n = 2 + KEY_HEX_LEN;

	if (len < n + 1 + 2 || p[0] != CTX_VERSION)
		return -1;
	c->flags = p[1];
	c->key = (const char *)p + 2;
	c->plen = p[n++];
	if (len < n + c->plen + 2)
		return -1;
	c->policy = (const char *)p + n;
	n += c->plen;
	c->hlen = (size_t)p[n] << 8 | p[n + 1];
	n += 2;
	if (len != n + c->hlen)
		return -1;
	c->hdrs = c->hlen > 0 ? p + n : NULL;
	return 0;
}

/*
 * An entry's Vary record: for each header the response nominated, what the
 * request that caused it sent.
 *   repeated <u8 len> <name, lowercase> <u8 present> <u16 len> <value>
 */
static int
vary_record(const struct hdr *h, size_t nh, const char *name, size_t nlen, uint8_t *out,
    size_t cap, size_t *off)
{
	size_t vlen = 0;
	int present;

	if (nlen > 255 || *off + 1 + nlen + 3 > cap)
		return -1;
	out[(*off)++] = (uint8_t)nlen;
	for (size_t i = 0; i < nlen; i++)
		out[(*off)++] = (uint8_t)tolower((unsigned char)name[i]);
	present = hdrs_join(h, nh, name, nlen, (char *)out + *off + 3, cap - *off - 3, &vlen);
	if (present < 0 || vlen > 65535)
		return -1;
	out[(*off)++] = (uint8_t)present;
	out[(*off)++] = (uint8_t)(vlen >> 8);
	out[(*off)++] = (uint8_t)vlen;
	*off += vlen;
	return 0;
}

/* Does the request (h, nh) send what the Vary record says? */
static int
vary_match(const uint8_t *v, size_t len, const struct hdr *h, size_t nh)
{
	const uint8_t *end = v + len;
	char buf[VARY_MAX];

	while (v < end) {
		size_t nlen = *v++, vlen, got = 0;
		int present, rc;

		if ((size_t)(end - v) < nlen + 3)
			return 0;
		present = v[nlen];
		vlen = (size_t)v[nlen + 1] << 8 | v[nlen + 2];
		if ((size_t)(end - v) < nlen + 3 + vlen)
			return 0;
		rc = hdrs_join(h, nh, (const char *)v, nlen, buf, sizeof(buf), &got);
		if (rc < 0 || rc != present || got != vlen || memcmp(buf, v + nlen + 3, vlen) != 0)
			return 0;
		v += nlen + 3 + vlen;
	}
	return 1;
}

/* Find a header in the stored "name: value\r\n" block. */
static const char *
block_find(const char *h, size_t len, const char *name, size_t *vlen)
{
	const char *end = h + len, *line = h;
	size_t nl = strlen(name);

	while (line < end) {
		const char *eol = memchr(line, '\r', (size_t)(end - line));

		if (eol == NULL)
			break;
		if ((size_t)(eol - line) > nl + 1 && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
			const char *v = line + nl + 1;

			while (v < eol && *v == ' ')
				v++;
			*vlen = (size_t)(eol - v);
			return v;
		}
		line = eol + 2;
	}
	return NULL;
}

/* Would this entry answer the request with 304 Not Modified? */
static int
not_modified(const struct lookup *L, const struct entry *e)
{
	const char *v;
	size_t vlen;

	if (e->status != 200)
		return 0;
	if (L->inm_len > 0) {
		v = block_find(e->hdrs, e->hlen, "etag", &vlen);
		return v != NULL && if_none_match(L->inm, L->inm_len, v, vlen);
	}
	if (L->has_ims) {
		int64_t lm;

		v = block_find(e->hdrs, e->hlen, "last-modified", &vlen);
		return v != NULL && http_date_parse(v, vlen, &lm) == 0 && lm <= L->ims;
	}
	return 0;
}

/* Was entry e stored for a request that sent what this one sends, for
 * every header its response varies on? */
static int
vary_matches(const struct lookup *L, const struct entry *e)
{
	struct ctx c;
	struct hdr h[256];
	size_t nh = 0;

	if (ctx_decode(L->ctx, L->ctx_len, &c) < 0 || c.hdrs == NULL ||
	    hdrs_parse(c.hdrs, c.hlen, h, sizeof(h) / sizeof(h[0]), &nh) < 0)
		return 0;
	return vary_match(e->vary, e->vlen, h, nh);
}

/* May entry e answer this request at all? An entry stored for another
 * Vary variant, or not allowed for Authorization, is not "there" for it. */
static int
for_this_request(const struct lookup *L, const struct entry *e)
{
	if (L->auth && !(e->flags & EF_AUTH_OK))
		return 0;
	return e->vlen == 0 || vary_matches(L, e);
}

/* Is entry e, age seconds old, fresh enough for this request? */
static int
fresh_enough(const struct lookup *L, const struct entry *e, int64_t age)
{
	int64_t left = e->lifetime - age;	/* freshness left; < 0 is stale */

	if (!L->cc_on)
		return left > 0;
	if (L->rcc.max_age >= 0 && age > L->rcc.max_age)
		return 0;
	if (L->rcc.min_fresh >= 0 && left < L->rcc.min_fresh)
		return 0;
	if (left > 0)
		return 1;
	if (e->flags & EF_MUST_REVALIDATE)
		return 0;
	if (L->rcc.flags & CC_MAX_STALE_ANY)
		return 1;
	return L->rcc.max_stale >= 0 && -left <= L->rcc.max_stale;
}

static void
serve(struct spoe_req *r, const struct lookup *L, int code, const struct entry *e,
    int64_t age, const char *status)
{
	size_t cap = (e ? e->hlen : 0) + 256, n = 0;
	char *h = malloc(cap);
	int w;

	if (h == NULL) {
		bypass(r, "out of memory");
		return;
	}
	if (e != NULL) {
		memcpy(h, e->hdrs, e->hlen);
		n = e->hlen;
	}
	if (code != 304)
		n += (size_t)snprintf(h + n, cap - n, "content-length: %zu\r\n", e ? e->blen : 0);
	if (e != NULL)
		n += (size_t)snprintf(h + n, cap - n, "age: %lld\r\n", (long long)age);
	w = snprintf(h + n, cap - n, "x-cache-status: %s\r\nx-cache-key: %s\r\n", status, L->key);
	n += (size_t)w;
	r->hold = h;
	spoe_req_set_str(r, "status", status, strlen(status));
	spoe_req_set_str(r, "key", L->key, KEY_HEX_LEN);
	spoe_req_set_bool(r, "serve", 1);
	spoe_req_set_int(r, "code", code);
	spoe_req_set_bin(r, "headers", h, n);
	if (e != NULL && code == e->status && !L->head && e->blen > 0)
		spoe_req_set_bin(r, "body", e->body, e->blen);
}

static void
miss(struct spoe_req *r, struct lookup *L, enum cache_status st)
{
	if (L->cc_on && (L->rcc.flags & CC_ONLY_IF_CACHED)) {
		/* RFC 9111 5.2.1.7: nothing usable stored, so 504. */
		serve(r, L, 504, NULL, 0, cache_status_name[st]);
		finish(r, st);
		return;
	}
	if (st == CS_REFRESH)
		L->ctx[1] |= CTX_F_REFRESH;
	spoe_req_set_str(r, "status", cache_status_name[st], strlen(cache_status_name[st]));
	spoe_req_set_str(r, "key", L->key, KEY_HEX_LEN);
	spoe_req_set_bin(r, "ctx", L->ctx, L->ctx_len);
	finish(r, st);
}

static void
lookup_done(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct lookup *L = arg;
	struct spoe_req *r = L->r;
	struct entry e;
	int64_t age;
	int rc;

	if (st != MC_OK) {
		miss(r, L, CS_MISS);
		goto out;
	}
	rc = entry_decode(val, vlen, &e);
	if (rc < 0) {
		if (worker_may_warn(r->w))
			log_notice("entry %s: %s, treated as a miss", L->key,
			    rc == ENTRY_ERR_VERSION ? "another format version" : "corrupt");
		miss(r, L, CS_MISS);
		goto out;
	}
	age = e.age0 + (L->now > e.stored_at ? L->now - e.stored_at : 0);
	if (!for_this_request(L, &e)) {
		miss(r, L, CS_MISS);
		goto out;
	}
	if (!fresh_enough(L, &e, age)) {
		miss(r, L, CS_REFRESH);
		goto out;
	}
	serve(r, L, not_modified(L, &e) ? 304 : e.status, &e, age, "Hit");
	if (spoe_req_ack_size(r) > r->max_ack) {
		/* Stored through an HAProxy with larger frames: cannot be
		 * replayed here. */
		free(r->hold);
		r->hold = NULL;
		r->nvars = 0;
		miss(r, L, CS_MISS);
		goto out;
	}
	finish(r, CS_HIT);
out:
	free(L);
}

static int
method_is(const struct spop_data *m, const char *s)
{
	return spop_str_eq(&m->v.s, s);
}

static int
unsafe_method(const struct spop_data *m)
{
	return method_is(m, "POST") || method_is(m, "PUT") || method_is(m, "DELETE") ||
	    method_is(m, "PATCH");
}

static void
do_lookup(struct spoe_req *r, const struct args *a)
{
	const struct sc_config *cf = r->w->cf;
	const struct sc_policy *p;
	struct hdr hdrs[1000];
	size_t nh = 0, from = 0;
	struct cache_request req;
	struct lookup *L;
	const struct hdr *h;
	int force = 0, cacheable, rc;
	unsigned flags = 0;
	char key[KEY_HEX_LEN + 1];

	if (!is_text(&a->policy))
		return bypass(r, "no policy named");
	p = config_policy(cf, (const char *)a->policy.v.s.p, a->policy.v.s.len);
	if (p == NULL) {
		if (worker_may_warn(r->w))
			log_warn("lookup for unknown policy \"%.*s\": Bypass",
			    (int)(a->policy.v.s.len > 64 ? 64 : a->policy.v.s.len),
			    (const char *)a->policy.v.s.p);
		M_INC(&r->w->m, bad_messages);
		return bypass(r, "unknown policy");
	}
	if (!is_text(&a->method) || !is_text(&a->url) || !is_text(&a->hdrs)) {
		M_INC(&r->w->m, bad_messages);
		return bypass(r, "lookup message without method, url or hdrs");
	}
	rc = hdrs_parse(a->hdrs.v.s.p, a->hdrs.v.s.len, hdrs,
	    (size_t)cf->agent.max_headers, &nh);
	if (rc < 0)
		return bypass(r, rc == HDRS_ERR_TOO_MANY ? "too many headers" : "malformed hdrs");

	if (p->allow_force_cache_header) {
		from = 0;
		h = hdrs_find(hdrs, nh, "x-proxy-cache-memcached-force", 29, &from);
		force = h != NULL && h->vlen == 4 && strncasecmp(h->val, "true", 4) == 0;
	}
	cacheable = force || str_in(&p->request_method, (const char *)a->method.v.s.p,
	    a->method.v.s.len);
	if (!cacheable && !unsafe_method(&a->method))
		return bypass(r, "method");

	L = calloc(1, sizeof(*L));
	if (L == NULL)
		return bypass(r, "out of memory");
	L->r = r;
	L->now = (int64_t)time(NULL);
	L->head = method_is(&a->method, "HEAD");
	L->cc_on = p->cache_control && !force;
	cachectl_init(&L->rcc);
	for (from = 0; (h = hdrs_find(hdrs, nh, "cache-control", 13, &from)) != NULL;)
		cachectl_parse(h->val, h->vlen, &L->rcc);
	from = 0;
	if (!(L->rcc.flags & CC_PRESENT) && (h = hdrs_find(hdrs, nh, "pragma", 6, &from)) != NULL &&
	    hdr_token_in_list(h->val, h->vlen, "no-cache", 8))
		L->rcc.flags |= CC_NO_CACHE;
	from = 0;
	L->auth = hdrs_find(hdrs, nh, "authorization", 13, &from) != NULL;

	memset(&req, 0, sizeof(req));
	req.method = (const char *)a->method.v.s.p;
	req.method_len = a->method.v.s.len;
	req.url = (const char *)a->url.v.s.p;
	req.url_len = a->url.v.s.len;
	req.tls = a->tls.type == SPOP_T_BOOL && a->tls.v.b;
	req.hdrs = hdrs;
	req.nhdrs = nh;
	if (is_text(&a->consumer) && a->consumer.v.s.len > 0) {
		req.consumer = (const char *)a->consumer.v.s.p;
		req.consumer_len = a->consumer.v.s.len;
	}
	if (is_text(&a->body)) {
		req.body = (const char *)a->body.v.s.p;
		req.body_len = a->body.v.s.len;
	}

	if (!cacheable) {
		/* A successful unsafe request invalidates the URL's GET entry
		 * (RFC 9111 4.4): compute that key now, delete at store time. */
		req.method = "GET";
		req.method_len = 3;
		if (cache_request_key(cf, p, &req, key) == 0) {
			L->ctx_len = ctx_encode(L->ctx, CTX_F_INVALIDATE, key, p->name, NULL, 0);
			spoe_req_set_str(r, "status", "Bypass", 6);
			spoe_req_set_bin(r, "ctx", L->ctx, L->ctx_len);
			r->hold = L;	/* the ctx lives in L until the ACK is sent */
			finish(r, CS_BYPASS);
			return;
		}
		free(L);
		return bypass(r, "method");
	}
	if (L->cc_on && (L->rcc.flags & (CC_NO_STORE | CC_NO_CACHE))) {
		free(L);
		return bypass(r, "request no-store/no-cache");
	}
	rc = cache_request_key(cf, p, &req, L->key);
	if (rc < 0) {
		free(L);
		if (worker_may_warn(r->w))
			log_info("lookup bypassed: %s", cache_reqerr_str(rc));
		return bypass(r, cache_reqerr_str(rc));
	}
	from = 0;
	if ((h = hdrs_find(hdrs, nh, "if-none-match", 13, &from)) != NULL && h->vlen <= INM_MAX) {
		memcpy(L->inm, h->val, h->vlen);
		L->inm_len = h->vlen;
	}
	from = 0;
	if ((h = hdrs_find(hdrs, nh, "if-modified-since", 17, &from)) != NULL &&
	    http_date_parse(h->val, h->vlen, &L->ims) == 0)
		L->has_ims = 1;
	if (L->head)
		flags |= CTX_F_HEAD;
	if (L->auth)
		flags |= CTX_F_AUTH;
	L->ctx_len = ctx_encode(L->ctx, flags, L->key, p->name, a->hdrs.v.s.p, a->hdrs.v.s.len);
	if (pool_get(r->w->pool, L->key, KEY_HEX_LEN, lookup_done, L) < 0) {
		miss(r, L, CS_MISS);
		free(L);
	}
}

/* ---- store ---- */

struct store {
	struct spoe_req *r;
	const char *status;	/* what the lookup said: Miss or Refresh */
	char key[KEY_HEX_LEN];
	int invalidate;
	uint8_t *entry;
};

static void
refuse(struct spoe_req *r, enum store_refusal why)
{
	M_INC(&r->w->m, refused[why]);
	log_debug("not stored: %s", store_refusal_name[why]);
	spoe_req_set_str(r, "status", "Bypass", 6);
	spoe_req_done(r);
}

static void
store_done(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct store *S = arg;
	struct spoe_req *r = S->r;

	(void)val;
	(void)vlen;
	if (S->invalidate) {
		M_INC(&r->w->m, invalidations);
		spoe_req_set_str(r, "status", "Bypass", 6);
	} else {
		if (st == MC_OK) {
			M_INC(&r->w->m, stores);
			log_debug("stored %.*s", KEY_HEX_LEN, S->key);
		} else {
			M_INC(&r->w->m, refused[SR_STORE_FAILED]);
			log_debug("store of %.*s failed: %s", KEY_HEX_LEN, S->key, mc_status_name(st));
		}
		spoe_req_set_str(r, "status", S->status, strlen(S->status));
	}
	free(S->entry);
	free(S);
	spoe_req_done(r);
}

static int
media_type_ok(const struct sc_policy *p, const struct hdr *ct)
{
	size_t n;

	for (size_t i = 0; i < p->content_type.n; i++)
		if (strcmp(p->content_type.v[i], "*") == 0)
			return 1;
	if (ct == NULL)
		return 0;
	n = ct->vlen;
	if (memchr(ct->val, ';', ct->vlen) != NULL)
		n = (size_t)((const char *)memchr(ct->val, ';', ct->vlen) - ct->val);
	while (n > 0 && (ct->val[n - 1] == ' ' || ct->val[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < p->content_type.n; i++) {
		const char *c = p->content_type.v[i];

		/* exact match, either on the whole value or on its media type */
		if ((strlen(c) == ct->vlen && strncasecmp(c, ct->val, ct->vlen) == 0) ||
		    (strlen(c) == n && strncasecmp(c, ct->val, n) == 0))
			return 1;
	}
	return 0;
}

static int
parse_delta(const char *s, size_t len, int64_t *out)
{
	int64_t v = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v < CC_DELTA_MAX)
			v = v * 10 + (s[i] - '0');
	}
	*out = v > CC_DELTA_MAX ? CC_DELTA_MAX : v;
	return 0;
}

/* Freshness lifetime of a response (RFC 9111 4.2.1), or -1: not storable. */
static int64_t
lifetime_of(const struct sc_policy *p, const struct cachectl *cc, const struct hdr *hdrs,
    size_t nh, int64_t now)
{
	const struct hdr *h;
	size_t from = 0;
	int64_t exp, date;

	if (!p->cache_control)
		return p->cache_ttl;
	if (cc->s_maxage >= 0)
		return cc->s_maxage;
	if (cc->max_age >= 0)
		return cc->max_age;
	if ((h = hdrs_find(hdrs, nh, "expires", 7, &from)) != NULL) {
		if (http_date_parse(h->val, h->vlen, &exp) < 0)
			return 0;	/* an invalid Expires means already expired */
		from = 0;
		h = hdrs_find(hdrs, nh, "date", 4, &from);
		if (h == NULL || http_date_parse(h->val, h->vlen, &date) < 0)
			date = now;
		return exp > date ? exp - date : 0;
	}
	return p->cache_ttl;
}

/* Headers to replay: not hop-by-hop, not named by Connection, not the ones
 * the agent computes at hit time. */
static int
keep_header(const struct hdr *h, const struct hdr *hdrs, size_t nh)
{
	static const char *const drop[] = {
		"content-length", "age", "set-cookie", "set-cookie2", "x-cache-status",
		"x-cache-key", NULL
	};
	const struct hdr *c;
	size_t from = 0;

	if (hdrs_is_hop_by_hop(h->name, h->nlen))
		return 0;
	for (const char *const *d = drop; *d != NULL; d++)
		if (name_eq(h->name, h->nlen, *d))
			return 0;
	while ((c = hdrs_find(hdrs, nh, "connection", 10, &from)) != NULL)
		if (hdr_token_in_list(c->val, c->vlen, h->name, h->nlen))
			return 0;
	return 1;
}

/* Build the Vary record of a response (hdrs) for the request in c. 0,
 * or -1 when it cannot be stored: Vary: *, request headers not carried,
 * or values too long. */
static int
vary_build(const struct ctx *c, const struct hdr *hdrs, size_t nh, uint8_t *out, size_t *olen)
{
	struct hdr rq[256];
	size_t nrq = 0, from = 0;
	const struct hdr *h;

	*olen = 0;
	while ((h = hdrs_find(hdrs, nh, "vary", 4, &from)) != NULL) {
		const char *s = h->val, *end = h->val + h->vlen;

		while (s < end) {
			const char *t;

			while (s < end && (*s == ' ' || *s == '\t' || *s == ','))
				s++;
			t = s;
			while (s < end && *s != ',' && *s != ' ' && *s != '\t')
				s++;
			if (s == t)
				continue;
			if (s - t == 1 && *t == '*')
				return -1;	/* varies on everything: never reusable */
			if (c->hdrs == NULL)
				return -1;
			if (nrq == 0 && hdrs_parse(c->hdrs, c->hlen, rq, sizeof(rq) / sizeof(rq[0]), &nrq) < 0)
				return -1;
			if (vary_record(rq, nrq, t, (size_t)(s - t), out, VARY_MAX, olen) < 0)
				return -1;
		}
	}
	return 0;
}

/* Replayable headers of a response as "name: value\r\n" lines (malloc'd),
 * or NULL when one is unsafe to replay. */
static char *
replay_headers(const struct hdr *hdrs, size_t nh, size_t *len)
{
	size_t cap = 1, n = 0;
	char *b;

	for (size_t i = 0; i < nh; i++)
		cap += hdrs[i].nlen + hdrs[i].vlen + 4;
	b = malloc(cap);
	if (b == NULL)
		return NULL;
	for (size_t i = 0; i < nh; i++) {
		const struct hdr *h = &hdrs[i];

		if (!keep_header(h, hdrs, nh))
			continue;
		if (!hdr_name_valid(h->name, h->nlen) || !hdr_value_safe(h->val, h->vlen)) {
			free(b);
			return NULL;
		}
		memcpy(b + n, h->name, h->nlen);
		n += h->nlen;
		memcpy(b + n, ": ", 2);
		memcpy(b + n + 2, h->val, h->vlen);
		n += 2 + h->vlen;
		memcpy(b + n, "\r\n", 2);
		n += 2;
	}
	*len = n;
	return b;
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

static void
answer(struct spoe_req *r, const char *status)
{
	spoe_req_set_str(r, "status", status, strlen(status));
	spoe_req_done(r);
}

static void
do_store(struct spoe_req *r, const struct args *a)
{
	const struct sc_config *cf = r->w->cf;
	const struct sc_policy *p;
	struct hdr hdrs[1000];
	size_t nh = 0, from = 0, vlen = 0;
	const struct hdr *h;
	struct cachectl cc;
	struct entry e;
	struct store *S;
	struct ctx c;
	int64_t now = (int64_t)time(NULL), lifetime, status, clen, ttl;
	uint8_t vary[VARY_MAX];
	char *hblock;
	int rc, ok = 0;

	if (a->ctx.type != SPOP_T_BIN || ctx_decode(a->ctx.v.s.p, a->ctx.v.s.len, &c) < 0 ||
	    (p = config_policy(cf, c.policy, c.plen)) == NULL) {
		M_INC(&r->w->m, bad_messages);
		return answer(r, "Bypass");
	}
	status = int_arg(&a->status);
	if (c.flags & CTX_F_INVALIDATE) {
		/* RFC 9111 4.4: a successful unsafe request invalidates. */
		if (status < 200 || status >= 400 || (S = calloc(1, sizeof(*S))) == NULL)
			return answer(r, "Bypass");
		S->r = r;
		S->invalidate = 1;
		if (pool_delete(r->w->pool, c.key, KEY_HEX_LEN, store_done, S) < 0) {
			free(S);
			return answer(r, "Bypass");
		}
		return;
	}
	if (c.flags & CTX_F_HEAD)
		return answer(r, "Miss");	/* a HEAD response has no body to store */

	for (size_t i = 0; i < p->n_response_codes; i++)
		ok |= p->response_codes[i] == status;
	if (!ok)
		return refuse(r, SR_STATUS);
	if (!is_text(&a->hdrs) ||
	    hdrs_parse(a->hdrs.v.s.p, a->hdrs.v.s.len, hdrs, (size_t)cf->agent.max_headers, &nh) < 0)
		return refuse(r, SR_HEADERS);
	from = 0;
	if (!media_type_ok(p, hdrs_find(hdrs, nh, "content-type", 12, &from)))
		return refuse(r, SR_CONTENT_TYPE);
	from = 0;
	if (hdrs_find(hdrs, nh, "set-cookie", 10, &from) != NULL)
		return refuse(r, SR_SET_COOKIE);
	cachectl_init(&cc);
	for (from = 0; (h = hdrs_find(hdrs, nh, "cache-control", 13, &from)) != NULL;)
		cachectl_parse(h->val, h->vlen, &cc);
	if (p->cache_control) {
		if (cc.flags & (CC_NO_STORE | CC_NO_CACHE))
			return refuse(r, SR_NO_STORE);
		if (cc.flags & CC_PRIVATE)
			return refuse(r, SR_PRIVATE);
		from = 0;
		if (!(cc.flags & CC_PRESENT) && (h = hdrs_find(hdrs, nh, "pragma", 6, &from)) != NULL &&
		    hdr_token_in_list(h->val, h->vlen, "no-cache", 8))
			return refuse(r, SR_NO_STORE);
	}
	/* RFC 9111 3.5: a shared cache stores an answer to a request with
	 * Authorization only when the response explicitly allows it. */
	if ((c.flags & CTX_F_AUTH) && !(cc.flags & (CC_PUBLIC | CC_MUST_REVALIDATE)) && cc.s_maxage < 0)
		return refuse(r, SR_AUTHORIZATION);
	if (vary_build(&c, hdrs, nh, vary, &vlen) < 0)
		return refuse(r, SR_VARY);
	/* Only a body whose completeness is proven: HAProxy cuts res.body to
	 * its buffer without saying so, so it must match Content-Length. */
	from = 0;
	if (hdrs_find(hdrs, nh, "transfer-encoding", 17, &from) != NULL)
		return refuse(r, SR_LENGTH);
	from = 0;
	h = hdrs_find(hdrs, nh, "content-length", 14, &from);
	if (h == NULL || parse_delta(h->val, h->vlen, &clen) < 0 ||
	    hdrs_find(hdrs, nh, "content-length", 14, &from) != NULL ||
	    clen != (is_text(&a->body) ? (int64_t)a->body.v.s.len : 0))
		return refuse(r, SR_LENGTH);
	lifetime = lifetime_of(p, &cc, hdrs, nh, now);
	if (lifetime <= 0 && p->storage_ttl <= 0)
		return refuse(r, SR_ZERO_TTL);

	memset(&e, 0, sizeof(e));
	e.stored_at = now;
	e.lifetime = lifetime > 0 ? lifetime : 0;
	from = 0;
	if ((h = hdrs_find(hdrs, nh, "age", 3, &from)) == NULL || parse_delta(h->val, h->vlen, &e.age0) < 0)
		e.age0 = 0;
	e.status = (uint16_t)status;
	if (cc.flags & (CC_PUBLIC | CC_MUST_REVALIDATE) || cc.s_maxage >= 0)
		e.flags |= EF_AUTH_OK;
	if (cc.flags & (CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE) || cc.s_maxage >= 0)
		e.flags |= EF_MUST_REVALIDATE;
	e.vary = vary;
	e.vlen = vlen;
	e.body = is_text(&a->body) ? a->body.v.s.p : NULL;
	e.blen = is_text(&a->body) ? a->body.v.s.len : 0;
	hblock = replay_headers(hdrs, nh, &e.hlen);
	if (hblock == NULL)
		return refuse(r, SR_HEADERS);
	e.hdrs = hblock;
	/* It must be replayable: a hit's ACK carries headers, body and a few
	 * hundred bytes of variables in one frame. */
	if (e.hlen + e.blen + 512 > r->max_ack || entry_size(&e) > cf->pool.max_item_size) {
		free(hblock);
		return refuse(r, SR_TOO_BIG);
	}
	S = calloc(1, sizeof(*S));
	if (S == NULL || (S->entry = malloc(entry_size(&e))) == NULL ||
	    (rc = entry_encode(&e, S->entry, entry_size(&e))) < 0) {
		free(hblock);
		if (S != NULL)
			free(S->entry);
		free(S);
		return refuse(r, SR_STORE_FAILED);
	}
	free(hblock);
	S->r = r;
	S->status = (c.flags & CTX_F_REFRESH) ? "Refresh" : "Miss";
	memcpy(S->key, c.key, KEY_HEX_LEN);
	ttl = p->storage_ttl > 0 ? p->storage_ttl : e.lifetime;
	if (ttl > 30 * 86400)
		ttl = now + ttl;	/* memcached reads larger values as a Unix time */
	if (pool_set(r->w->pool, c.key, KEY_HEX_LEN, S->entry, (size_t)rc, (uint32_t)ttl,
	    store_done, S) < 0) {
		free(S->entry);
		free(S);
		return refuse(r, SR_STORE_FAILED);
	}
}

void
cache_notify(struct spoe_req *r, const uint8_t *payload, size_t len)
{
	const uint8_t *p = payload, *end = payload + len;
	struct spop_str name;
	int nargs;

	while (spop_msg_next(&p, end, &name, &nargs) == 1) {
		struct args a;

		memset(&a, 0, sizeof(a));
		read_args(&p, end, nargs, &a);
		if (spop_str_eq(&name, "cache-lookup") || spop_str_eq(&name, "cache-lookup-body")) {
			do_lookup(r, &a);
			return;
		}
		if (spop_str_eq(&name, "cache-store")) {
			do_store(r, &a);
			return;
		}
	}
	M_INC(&r->w->m, bad_messages);
	spoe_req_set_str(r, "status", "Bypass", 6);
	spoe_req_done(r);
}
