/*
 * policy.c - the cache's decisions; see policy.h.
 *
 * Every byte here came from a client, an origin or a stored entry: header
 * blocks are parsed with their counts bounded by pol_limits, and everything
 * a later step reads back (the ctx, an entry's Vary record) is checked
 * against its own length first. Must not do I/O, read the clock, allocate
 * or keep state between calls.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "jsonf.h"
#include "policy.h"
#include "varint.h"

#define CTX_VERSION	1
#define CTX_F_HEAD	0x01u	/* the request was HEAD: nothing to store */
#define CTX_F_AUTH	0x02u	/* the request had Authorization */
#define CTX_F_REFRESH	0x04u	/* the lookup said Refresh (else Miss) */
#define CTX_F_INVALIDATE 0x08u	/* unsafe method: delete the GET entry on success */
#define CTX_F_WON	0x10u	/* won the fetch others wait for: leave an entry or the pass marker */
#define CTX_F_LOCKED	0x20u	/* holds the refresh lock of a stale entry: release it */
#define CTX_F_SIE	0x40u	/* a stale entry may stand in for an origin error */
#define CTX_F_REVAL	0x80u	/* the stale entry's validators were sent: a 304 updates it */

#define JSON_SCRATCH	8192	/* decoded JSON field values */

/* Cache-Status values (RFC 9211 2) of the lookups that do not serve. */
#define CSTAT_BYPASS	POL_CSTATUS_NAME "; fwd=bypass"
#define CSTAT_METHOD	POL_CSTATUS_NAME "; fwd=method"
#define CSTAT_REQUEST	POL_CSTATUS_NAME "; fwd=request"
#define CSTAT_MISS	POL_CSTATUS_NAME "; fwd=uri-miss"
#define CSTAT_VARY	POL_CSTATUS_NAME "; fwd=vary-miss"
#define CSTAT_STALE	POL_CSTATUS_NAME "; fwd=stale"
#define CSTAT_OIC	POL_CSTATUS_NAME "; detail=only-if-cached"

const char *const pol_routing_headers_default[] = {
	"X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Scheme", "X-Original-URL",
	"X-Rewrite-URL", "X-HTTP-Method-Override", "Forwarded", NULL
};

const char *const cache_status_name[CS_MAX] = { "Hit", "Miss", "Refresh", "Bypass" };
const char *const pol_stale_name[PST_MAX] = { "none", "while_revalidate", "soft_purge", "if_error" };

void
policy_lock_key(const char *key, char out[POL_LOCK_KEY_LEN + 1])
{
	memcpy(out, key, KEY_HEX_LEN);
	memcpy(out + KEY_HEX_LEN, ":r", 3);
}
const char *const store_refusal_name[SR_MAX] = {
	"status", "content_type", "no_store", "private", "set_cookie",
	"authorization", "length", "too_big", "vary", "zero_ttl", "headers",
	"store_failed", "partial", "uncacheable"
};

const char *
pol_keyerr_str(int e)
{
	switch (e) {
	case PKE_OK: return "ok";
	case PKE_URL: return "URL not accepted";
	case PKE_HOST: return "missing, repeated or mismatched Host";
	case PKE_KEY_INPUT: return "bad characters in the URL or Host";
	case PKE_TOO_MANY: return "too many query parameters or headers";
	case PKE_BODY: return "body is not a JSON object";
	case PKE_TOO_LONG: return "vary or routing header values too long";
	case PKE_SCHEME: return "absolute URL's scheme is not the connection's";
	}
	return "unknown";
}

static int parse_delta(const char *s, size_t len, int64_t *out);

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

static int
bytes_eq(const char *a, size_t alen, const char *lit)
{
	return alen == strlen(lit) && memcmp(a, lit, alen) == 0;
}

static const struct hdr *
first(const struct hdr *h, size_t nh, const char *name)
{
	return hdrs_find(h, nh, name, strlen(name), NULL);
}

/* Cache-Control of a message, every field line of it. */
static void
cc_of(const struct hdr *h, size_t nh, struct cachectl *cc)
{
	const struct hdr *c;
	size_t from = 0;

	cachectl_init(cc);
	while ((c = hdrs_find(h, nh, "cache-control", 13, &from)) != NULL)
		cachectl_parse(c->val, c->vlen, cc);
}

/* Pragma: no-cache counts only where Cache-Control is absent (RFC 9111 5.4). */
static int
pragma_no_cache(const struct cachectl *cc, const struct hdr *h, size_t nh)
{
	const struct hdr *p;

	return !(cc->flags & CC_PRESENT) && (p = first(h, nh, "pragma")) != NULL &&
	    hdr_token_in_list(p->val, p->vlen, "no-cache", 8);
}

/* ---- the key ---- */

/* Split the request target into scheme and authority (absolute-form
 * only), path, query. Only http and https are accepted as schemes. */
static int
split_url(const char *u, size_t len, const char **scheme, size_t *slen, const char **auth,
    size_t *alen, const char **path, size_t *plen, const char **query, size_t *qlen)
{
	const char *end = u + len, *p, *q;

	*scheme = *auth = NULL;
	*slen = *alen = 0;
	if (u == NULL || len == 0)
		return PKE_URL;
	if (u[0] != '/') {
		/* absolute-form: scheme "://" authority [path] */
		const char *s = memchr(u, ':', len);

		if (s == NULL || end - s < 3 || s[1] != '/' || s[2] != '/')
			return PKE_URL;
		if (!(s - u == 4 && strncasecmp(u, "http", 4) == 0) &&
		    !(s - u == 5 && strncasecmp(u, "https", 5) == 0))
			return PKE_URL;
		*scheme = u;
		*slen = (size_t)(s - u);
		*auth = s + 3;
		p = *auth;
		while (p < end && *p != '/' && *p != '?')
			p++;
		*alen = (size_t)(p - *auth);
		if (*alen == 0 || memchr(*auth, '@', *alen) != NULL)
			return PKE_URL;	/* userinfo has no place in a cache key */
		u = p;
	}
	q = memchr(u, '?', (size_t)(end - u));
	if (memchr(u, '#', (size_t)(end - u)) != NULL)
		return PKE_URL;
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

/* Header lines one key takes (vary and routing headers), in kv[0..*n). */
struct keylines {
	struct key_kv kv[POL_KEY_LINES];
	size_t n, bytes;
};

static int
kl_add(struct keylines *kl, const char *name, size_t nlen, const char *val, size_t vlen,
    int present, int cont)
{
	if (kl->n == POL_KEY_LINES)
		return PKE_TOO_MANY;
	if (vlen > POL_KEY_HDR_BYTES - kl->bytes)
		return PKE_TOO_LONG;
	kl->bytes += vlen;
	kl->kv[kl->n++] = (struct key_kv){ name, nlen, val, vlen, present, cont };
	return 0;
}

/* Every vary header, one entry per field line (an absent one: one entry,
 * present 0): "X: a, b" and "X: a" + "X: b" are different requests to an
 * origin that reads only one line. */
static int
key_vary(const struct sc_policy *p, const struct hdr *hdrs, size_t nh, struct keylines *kl)
{
	for (size_t i = 0; i < p->vary_headers.n; i++) {
		const char *n = p->vary_headers.v[i];
		size_t nlen = strlen(n), from = 0;
		const struct hdr *f;
		int lines = 0, rc;

		while ((f = hdrs_find(hdrs, nh, n, nlen, &from)) != NULL)
			if ((rc = kl_add(kl, n, nlen, f->val, f->vlen, 1, lines++ > 0)) < 0)
				return rc;
		if (lines == 0 && (rc = kl_add(kl, n, nlen, "", 0, 0, 0)) < 0)
			return rc;
	}
	return 0;
}

/* Runs for every header of every lookup: the first byte rules out
 * nearly all of them before a whole-name comparison (| 0x20 folds ASCII
 * letters; a false match on other bytes only costs the full compare). */
static int
routing_header(const struct sc_policy *p, const struct hdr *h)
{
	if (h->nlen == 0)
		return 0;
	for (size_t i = 0; i < p->key_routing_headers.n; i++) {
		const char *n = p->key_routing_headers.v[i];

		if (((unsigned char)n[0] | 0x20) == ((unsigned char)h->name[0] | 0x20) &&
		    name_eq(h->name, h->nlen, n))
			return 1;
	}
	return 0;
}

/* The routing headers the request carries, field line by field line in
 * message order; a request without any adds nothing to the key. */
static int
key_routing(const struct sc_policy *p, const struct hdr *hdrs, size_t nh, struct keylines *kl)
{
	int rc;

	for (size_t i = 0; i < nh; i++)
		if (routing_header(p, &hdrs[i]) &&
		    (rc = kl_add(kl, hdrs[i].name, hdrs[i].nlen, hdrs[i].val, hdrs[i].vlen, 1, 0)) < 0)
			return rc;
	return 0;
}

int
policy_key(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_request *rq, const struct hdr *hdrs, size_t nh,
    char hex[KEY_HEX_LEN + 1])
{
	struct key_input in;
	struct key_kv json[POL_MAX_VARY];
	struct keylines kl;
	char jscratch[JSON_SCRATCH];
	size_t from = 0, nvary;
	const struct hdr *host;
	const char *scheme, *auth, *path, *query;
	size_t slen, alen, plen, qlen;
	int rc;

	memset(&in, 0, sizeof(in));
	rc = split_url(rq->url, rq->url_len, &scheme, &slen, &auth, &alen, &path, &plen, &query,
	    &qlen);
	if (rc < 0)
		return rc;
	/* An absolute-form target is keyed on its own scheme, which must be
	 * the connection's: "GET https://h/x" over plain HTTP keyed as https
	 * would let a plain request's response (a redirect to https, say)
	 * answer the TLS ones, and keyed as http would merge two targets. */
	if (scheme != NULL && (slen == 5) != (rq->tls != 0))
		return PKE_SCHEME;	/* split_url() took only "http" or "https" */
	host = hdrs_find(hdrs, nh, "host", 4, &from);
	if (host != NULL && hdrs_find(hdrs, nh, "host", 4, &from) != NULL)
		return PKE_HOST;
	if (host == NULL && auth == NULL)
		return PKE_HOST;
	if (host != NULL && auth != NULL &&
	    !(host->vlen == alen && strncasecmp(host->val, auth, alen) == 0))
		return PKE_HOST;	/* Host must be the absolute URI's authority */
	in.host = host != NULL ? host->val : auth;
	in.host_len = host != NULL ? host->vlen : alen;
	if (in.host_len == 0)
		return PKE_HOST;
	in.policy = p->name;
	in.policy_len = strlen(p->name);
	/* HEAD is answered from GET's entry. */
	if (bytes_eq(rq->method, rq->method_len, "HEAD")) {
		in.method = "GET";
		in.method_len = 3;
	} else {
		in.method = rq->method;
		in.method_len = rq->method_len;
	}
	in.scheme = scheme != NULL ? scheme : rq->tls ? "https" : "http";
	in.scheme_len = scheme != NULL ? slen : strlen(in.scheme);
	in.path = path;
	in.path_len = plen;
	in.query = query;
	in.query_len = qlen;
	if (rq->consumer != NULL && rq->consumer_len > 0) {
		in.consumer = rq->consumer;
		in.consumer_len = rq->consumer_len;
	}
	in.only_params = (const char *const *)p->vary_query_params.v;
	in.n_only_params = p->vary_query_params.n;
	in.max_params = lim->max_query_params;
	if (p->vary_headers.n > POL_MAX_VARY || p->vary_body_json_fields.n > POL_MAX_VARY)
		return PKE_TOO_MANY;	/* config.c refuses these; never trust that here */
	kl.n = kl.bytes = 0;
	if ((rc = key_vary(p, hdrs, nh, &kl)) < 0)
		return rc;
	nvary = kl.n;
	if (!p->routing_bypass && (rc = key_routing(p, hdrs, nh, &kl)) < 0)
		return rc;
	in.vary_hdrs = kl.kv;
	in.n_vary_hdrs = nvary;
	in.route_hdrs = kl.kv + nvary;
	in.n_route_hdrs = kl.n - nvary;
	if (p->vary_body_json_fields.n > 0) {
		size_t lens[POL_MAX_VARY];
		const struct hdr *cl;
		int64_t clen;

		if (rq->body == NULL)
			return PKE_BODY;
		/* HAProxy cuts req.body at its buffer: only a whole body is keyed */
		from = 0;
		while ((cl = hdrs_find(hdrs, nh, "content-length", 14, &from)) != NULL)
			if (parse_delta(cl->val, cl->vlen, &clen) < 0 || clen != (int64_t)rq->body_len)
				return PKE_BODY;
		for (size_t i = 0; i < p->vary_body_json_fields.n; i++)
			lens[i] = strlen(p->vary_body_json_fields.v[i]);
		if (jsonf_extract(rq->body, rq->body_len,
		    (const char *const *)p->vary_body_json_fields.v, lens,
		    p->vary_body_json_fields.n, json, jscratch, sizeof(jscratch)) != 0)
			return PKE_BODY;
		in.json = json;
		in.n_json = p->vary_body_json_fields.n;
	}
	rc = key_compute(&in, hex);
	if (rc == KEY_ERR_TOO_MANY)
		return PKE_TOO_MANY;
	if (rc < 0)
		return PKE_KEY_INPUT;
	return 0;
}

/* ---- the ctx ----
 *   <u8 version> <u8 flags> <key: 64> <u8 len> <policy> <u16 len> <req.hdrs_bin>
 * The request headers are there for Vary (RFC 9111 4.1); when they are
 * larger than POL_CTX_HDRS_MAX they are left out, and a response with Vary
 * is then not stored.
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

	if (pl > POL_MAX_NAME)
		pl = POL_MAX_NAME;	/* config.c refuses longer names */
	if (hlen > POL_CTX_HDRS_MAX)
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

	if (p == NULL || len < n + 1 + 2 || p[0] != CTX_VERSION)
		return -1;
	/* ctx_encode() writes a key made by policy_key(): lowercase hex. */
	for (size_t i = 2; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
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

int
policy_ctx_policy(const uint8_t *ctx, size_t len, const char **name, size_t *nlen)
{
	struct ctx c;

	if (ctx_decode(ctx, len, &c) < 0)
		return -1;
	*name = c.policy;
	*nlen = c.plen;
	return 0;
}

/* ---- the request decision ---- */

/* The methods known to be safe (RFC 9110 9.2.1, and those the IANA
 * method registry marks safe). Every other one, an extension method
 * included, invalidates what it targets when it succeeds (RFC 9111 4.4). */
static int
safe_method(const char *m, size_t len)
{
	static const char *const safe[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND",
		"REPORT", "SEARCH", NULL };

	for (const char *const *s = safe; *s != NULL; s++)
		if (bytes_eq(m, len, *s))
			return 1;
	return 0;
}

static void
bypass(struct pol_lookup *out, const char *why, int bad)
{
	out->action = PA_BYPASS;
	out->why = why;
	out->bad = bad;
}

/* Does the request have a body? Any Transfer-Encoding, or a
 * Content-Length that is not plainly 0, or body bytes sent. */
static int
has_body(const struct pol_request *rq, const struct hdr *hdrs, size_t nh)
{
	const struct hdr *cl;
	size_t from = 0;
	int64_t n;

	if (first(hdrs, nh, "transfer-encoding") != NULL)
		return 1;
	while ((cl = hdrs_find(hdrs, nh, "content-length", 14, &from)) != NULL)
		if (parse_delta(cl->val, cl->vlen, &n) < 0 || n > 0)
			return 1;
	return rq->body != NULL && rq->body_len > 0;
}

static int
has_routing_header(const struct sc_policy *p, const struct hdr *hdrs, size_t nh)
{
	for (size_t i = 0; i < nh; i++)
		if (routing_header(p, &hdrs[i]))
			return 1;
	return 0;
}

/* A GET with Range (RFC 9110 14.2; HEAD ignores it): 0 to look it up,
 * with the one byte range it asks for in out, or -1 to pass it through
 * without touching the entry (several ranges, another unit, If-Range). */
static int
request_range(const struct pol_request *rq, const struct hdr *hdrs, size_t nh,
    struct pol_lookup *out)
{
	const struct hdr *r;
	size_t from = 0;

	if (!bytes_eq(rq->method, rq->method_len, "GET") ||
	    (r = hdrs_find(hdrs, nh, "range", 5, &from)) == NULL)
		return 0;
	if (hdrs_find(hdrs, nh, "range", 5, &from) != NULL || first(hdrs, nh, "if-range") != NULL ||
	    http_range_parse(r->val, r->vlen, &out->range_first, &out->range_last) < 0)
		return -1;
	out->flags |= PL_RANGE;
	return 0;
}

static void request_decide(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_request *rq, struct pol_lookup *out);

void
policy_request(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_request *rq, struct pol_lookup *out)
{
	request_decide(p, lim, rq, out);
	if (p == NULL || !p->cache_status) {
		out->cstatus = NULL;
		return;
	}
	out->flags |= PL_CSTATUS;
	if (out->action == PA_FETCH)
		out->cstatus = NULL;	/* policy_entry() says */
	else if (out->cstatus == NULL)
		out->cstatus = CSTAT_BYPASS;
}

static void
request_decide(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_request *rq, struct pol_lookup *out)
{
	struct hdr hdrs[POL_MAX_HEADERS];
	size_t nh = 0, max = lim->max_headers;
	const struct hdr *h;
	int force = 0, cacheable, rc;
	unsigned cflags = 0;

	memset(out, 0, sizeof(*out));
	cachectl_init(&out->rcc);
	if (p == NULL) {
		bypass(out, "unknown policy", 1);
		return;
	}
	if (rq->method == NULL || rq->url == NULL || rq->hdrs == NULL) {
		bypass(out, "lookup message without method, url or hdrs", 1);
		return;
	}
	if (max == 0 || max > POL_MAX_HEADERS)
		max = POL_MAX_HEADERS;
	rc = hdrs_parse(rq->hdrs, rq->hdrs_len, hdrs, max, &nh);
	if (rc < 0) {
		bypass(out, rc == HDRS_ERR_TOO_MANY ? "too many headers" : "malformed hdrs", 0);
		return;
	}

	if (p->allow_force_cache_header) {
		h = first(hdrs, nh, "x-proxy-cache-memcached-force");
		force = h != NULL && h->vlen == 4 && strncasecmp(h->val, "true", 4) == 0;
	}
	cacheable = force || str_in(&p->request_method, rq->method, rq->method_len);
	out->cstatus = CSTAT_METHOD;
	if (!cacheable && safe_method(rq->method, rq->method_len)) {
		bypass(out, "method", 0);
		return;
	}

	if (!cacheable) {
		/* A successful unsafe request invalidates the URL's GET entry
		 * (RFC 9111 4.4): compute that key now, delete at store time.
		 * The request headers go with it: the keys of Location and
		 * Content-Location are made from them then. */
		struct pol_request get = *rq;

		get.method = "GET";
		get.method_len = 3;
		if (policy_key(p, lim, &get, hdrs, nh, out->key) < 0) {
			bypass(out, "method", 0);
			return;
		}
		out->action = PA_INVALIDATE;
		out->ctx_len = ctx_encode(out->ctx, CTX_F_INVALIDATE, out->key, p->name, rq->hdrs,
		    rq->hdrs_len);
		return;
	}
	out->cstatus = NULL;
	if (bytes_eq(rq->method, rq->method_len, "HEAD"))
		out->flags |= PL_HEAD;
	if (first(hdrs, nh, "authorization") != NULL)
		out->flags |= PL_AUTH;
	if (p->cache_control && !force)
		out->flags |= PL_CC;
	cc_of(hdrs, nh, &out->rcc);
	if (pragma_no_cache(&out->rcc, hdrs, nh))
		out->rcc.flags |= CC_NO_CACHE;
	if ((out->flags & PL_CC) && (out->rcc.flags & (CC_NO_STORE | CC_NO_CACHE))) {
		out->cstatus = CSTAT_REQUEST;
		bypass(out, "request no-store/no-cache", 0);
		return;
	}
	/* What the key does not hold must not shape what it stores: a body
	 * (unless the policy keys on its fields), and routing headers when
	 * the policy bypasses on them rather than keying them. */
	if (p->vary_body_json_fields.n == 0 && has_body(rq, hdrs, nh)) {
		bypass(out, "request body not in the key", 0);
		return;
	}
	if (has_routing_header(p, hdrs, nh)) {
		if (p->routing_bypass) {
			bypass(out, "routing header", 0);
			return;
		}
		out->flags |= PL_ROUTED;	/* keyed on more than the URL */
	}
	rc = policy_key(p, lim, rq, hdrs, nh, out->key);
	if (rc < 0) {
		out->keyerr = rc;
		bypass(out, pol_keyerr_str(rc), 0);
		return;
	}
	if (request_range(rq, hdrs, nh, out) < 0) {
		out->cstatus = CSTAT_REQUEST;
		bypass(out, "Range not served from the cache", 0);
		return;
	}
	if (p->set_cookie == SC_COOKIE_STORE)
		out->flags |= PL_COOKIES;
	if ((h = first(hdrs, nh, "if-none-match")) != NULL && h->vlen <= POL_INM_MAX) {
		memcpy(out->inm, h->val, h->vlen);
		out->inm_len = h->vlen;
	}
	if ((h = first(hdrs, nh, "if-modified-since")) != NULL &&
	    http_date_parse(h->val, h->vlen, &out->ims) == 0)
		out->flags |= PL_IMS;
	if (out->flags & PL_HEAD)
		cflags |= CTX_F_HEAD;
	if (out->flags & PL_AUTH)
		cflags |= CTX_F_AUTH;
	/* Collapsed forwarding: a miss leaves an empty item living a little
	 * longer than anyone waits for it, so a fetch that never stores
	 * (its client gone, HAProxy killed) holds its key back only that
	 * long. A request whose response cannot be stored never claims a
	 * fetch (it would leave the pass marker and stop the collapsing). */
	if ((out->flags & (PL_HEAD | PL_IMS)) || out->inm_len > 0 ||
	    ((out->flags & PL_CC) && (out->rcc.flags & CC_ONLY_IF_CACHED)))
		out->flags |= PL_NO_CLAIM;
	out->collapse_ms = p->collapse_wait;
	out->lock_ttl = p->collapse_wait > 0 ? (uint32_t)(p->collapse_wait + 999) / 1000 + 1 :
	    POL_LOCK_TTL;
	if (p->collapse_wait > 0 && !(out->flags & PL_NO_CLAIM))
		out->vivify = out->lock_ttl;
	out->action = PA_FETCH;
	out->ctx_len = ctx_encode(out->ctx, cflags, out->key, p->name, rq->hdrs, rq->hdrs_len);
}

/* ---- Vary ----
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
	char buf[POL_VARY_MAX];

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

/* Parse the request headers a ctx carries; -1 when it carries none. */
static int
ctx_hdrs(const struct ctx *c, const struct pol_limits *lim, struct hdr *h, size_t *nh)
{
	size_t max = lim->max_headers;

	if (max == 0 || max > POL_MAX_HEADERS)
		max = POL_MAX_HEADERS;
	if (c->hdrs == NULL || hdrs_parse(c->hdrs, c->hlen, h, max, nh) < 0)
		return -1;
	return 0;
}

/* ---- the entry decision ---- */

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

/* The time If-Modified-Since is compared with (RFC 9111 4.3.2): the
 * entry's Last-Modified, else its Date, else when it was stored. -1 when
 * the header there is not a date: then nothing is "not modified". */
static int
modified_at(const struct entry *e, int64_t *t)
{
	const char *v;
	size_t vlen = 0;

	if ((v = block_find(e->hdrs, e->hlen, "last-modified", &vlen)) != NULL ||
	    (v = block_find(e->hdrs, e->hlen, "date", &vlen)) != NULL)
		return http_date_parse(v, vlen, t);
	*t = e->stored_at;
	return 0;
}

/* Would this entry answer the request with 304 Not Modified? */
static int
not_modified(const struct pol_lookup *L, const struct entry *e)
{
	const char *v;
	size_t vlen = 0;

	if (e->status != 200)
		return 0;
	if (L->inm_len > 0) {
		/* "*" matches an entry without an ETag too (RFC 9110 13.1.2). */
		v = block_find(e->hdrs, e->hlen, "etag", &vlen);
		return if_none_match(L->inm, L->inm_len, v, v != NULL ? vlen : 0);
	}
	if (L->flags & PL_IMS) {
		int64_t t;

		return modified_at(e, &t) == 0 && t <= L->ims;
	}
	return 0;
}

/* May entry e answer this request at all? An entry stored for another
 * Vary variant, or not allowed for Authorization, is not "there" for it;
 * *why is the Cache-Status of that. */
static int
for_this_request(const struct pol_lookup *L, const struct pol_limits *lim,
    const struct entry *e, const char **why)
{
	struct hdr h[POL_MAX_HEADERS];
	struct ctx c;
	size_t nh = 0;

	*why = CSTAT_MISS;
	/* The agent never stores a 206 (SR_PARTIAL): one that is there was
	 * not made here, and a part never answers for the whole. */
	if (e->status == 206)
		return 0;
	if ((L->flags & PL_AUTH) && !(e->flags & EF_AUTH_OK)) {
		*why = CSTAT_REQUEST;
		return 0;
	}
	if (e->vlen == 0)
		return 1;
	*why = CSTAT_VARY;
	if (ctx_decode(L->ctx, L->ctx_len, &c) < 0 || ctx_hdrs(&c, lim, h, &nh) < 0)
		return 0;
	return vary_match(e->vary, e->vlen, h, nh);
}

/* Freshness left of entry e at age (< 0: stale), saturating. */
static int64_t
fresh_left(const struct entry *e, int64_t age)
{
	int64_t left;

	if (__builtin_sub_overflow(e->lifetime, age, &left) || left < -INT64_MAX)
		left = -INT64_MAX;
	return left;
}

/* Is entry e, age seconds old, fresh enough for this request? */
static int
fresh_enough(const struct pol_lookup *L, const struct entry *e, int64_t age)
{
	int64_t left = fresh_left(e, age);

	if (!(L->flags & PL_CC))
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

/* The part of a 200 a Range request gets (RFC 9110 14.2, 15.3.7). */
struct part {
	int satisfiable;		/* 0: 416 */
	int64_t off, n, size;
};

/* snprintf into buf at *n, never past cap (POL_HIT_EXTRA is sized for
 * what serve() adds; this only keeps a mistake from writing past it). */
static void
put(char *buf, size_t cap, size_t *n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
put(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (*n >= cap)
		return;
	va_start(ap, fmt);
	r = vsnprintf(buf + *n, cap - *n, fmt, ap);
	va_end(ap);
	if (r > 0)
		*n += (size_t)r < cap - *n ? (size_t)r : cap - *n - 1;
}

/* What the Lua service replays: the stored headers (none for a 504 or a
 * 416), then what the agent computes at hit time. pt: NULL, or the range
 * of a 206 (a part of the body) or a 416. */
static void
serve(const struct pol_lookup *L, const struct entry *e, int code, int64_t age,
    enum cache_status st, const struct part *pt, char *buf, size_t cap, struct pol_hit *out)
{
	size_t n = 0, blen = 0;

	out->serve = 1;
	out->code = code;
	out->status = st;
	if (e != NULL) {
		if (code != 416) {
			memcpy(buf, e->hdrs, e->hlen);
			n = e->hlen;
		}
		out->fresh_left = fresh_left(e, age);
		out->vary = e->vlen > 0;
		blen = e->blen;
	}
	if (pt != NULL && pt->satisfiable) {
		put(buf, cap, &n, "content-range: bytes %lld-%lld/%lld\r\n", (long long)pt->off,
		    (long long)(pt->off + pt->n - 1), (long long)pt->size);
		blen = (size_t)pt->n;
	} else if (pt != NULL) {
		put(buf, cap, &n, "content-range: bytes */%lld\r\n", (long long)pt->size);
		blen = 0;
	}
	/* none on a 304 or a 204 (RFC 9110 8.6) */
	if (code != 304 && code != 204)
		put(buf, cap, &n, "content-length: %zu\r\n", blen);
	if (e != NULL)
		put(buf, cap, &n, "age: %lld\r\n", (long long)age);
	put(buf, cap, &n, "x-cache-status: %s\r\nx-cache-tier: L2\r\nx-cache-key: %s\r\n",
	    cache_status_name[st], L->key);
	if ((L->flags & PL_CSTATUS) && e != NULL)
		put(buf, cap, &n, "cache-status: " POL_CSTATUS_NAME "; hit; ttl=%lld\r\n",
		    (long long)out->fresh_left);
	else if (L->flags & PL_CSTATUS)
		put(buf, cap, &n, "cache-status: %s\r\n", CSTAT_OIC);
	out->hdrs = buf;
	out->hlen = n;
	if (e == NULL || (L->flags & PL_HEAD) || blen == 0)
		return;
	if (code == 206) {
		out->body = e->body + pt->off;
		out->blen = blen;
	} else if (code == e->status) {
		out->body = e->body;
		out->blen = blen;
	}
}

/* Nothing usable: fetch from the origin, or 504 for only-if-cached. */
static void
miss(struct pol_lookup *L, enum cache_status st, const char *why, char *buf, size_t cap,
    struct pol_hit *out)
{
	out->status = st;
	if ((L->flags & PL_CC) && (L->rcc.flags & CC_ONLY_IF_CACHED)) {
		/* RFC 9111 5.2.1.7: nothing usable stored, so 504. */
		out->answer = PE_GATEWAY_TIMEOUT;
		serve(L, NULL, 504, 0, st, NULL, buf, cap, out);
		return;
	}
	out->answer = st == CS_REFRESH ? PE_REFRESH : PE_MISS;
	if (L->flags & PL_CSTATUS)
		out->cstatus = why;
	if (st == CS_REFRESH)
		L->ctx[1] |= CTX_F_REFRESH;
}

/* The most header lines a replayed entry may have: what a request may. */
static size_t
max_lines(const struct pol_limits *lim)
{
	return lim->max_headers == 0 || lim->max_headers > POL_MAX_HEADERS ? POL_MAX_HEADERS :
	    lim->max_headers;
}

/* Seconds e has been stale at age (<= 0: fresh), saturating. */
static int64_t
staleness(const struct entry *e, int64_t age)
{
	int64_t d;

	return __builtin_sub_overflow(age, e->lifetime, &d) ? INT64_MAX : d;
}

/* May a stale e be served while one request refreshes it (RFC 5861
 * stale-while-revalidate, or a soft purge), and why? Never an entry that
 * must be revalidated (must-revalidate, proxy-revalidate, s-maxage), nor
 * to a client that asked for freshness itself. */
static enum pol_stale
stale_servable(const struct pol_lookup *L, const struct entry *e, int64_t age)
{
	if (e->flags & EF_MUST_REVALIDATE)
		return PST_NONE;
	if ((L->flags & PL_CC) && (L->rcc.max_age >= 0 || L->rcc.min_fresh >= 0))
		return PST_NONE;
	if (L->mc & MC_MF_STALE)
		return PST_PURGE;
	return e->swr > 0 && staleness(e, age) <= (int64_t)e->swr ? PST_SWR : PST_NONE;
}

/* Another lookup is fetching what this one needs: wait for its store,
 * unless this policy does not wait or the wait is over. */
static void
wait_or(struct pol_lookup *L, enum cache_status st, char *buf, size_t cap, struct pol_hit *out)
{
	if (L->collapse_ms > 0 && !(L->flags & PL_WAIT_OVER)) {
		out->answer = PE_WAIT;
		out->status = st;
		return;
	}
	miss(L, st, st == CS_REFRESH ? CSTAT_STALE : CSTAT_MISS, buf, cap, out);
}

/* A refresh of a stale 200 with validators asks the origin with them
 * (RFC 9111 4.3.1), and carries the entry so that a 304 is answered with
 * it (policy_revalidate() updates it then). */
static void
carry_validators(struct pol_lookup *L, const struct entry *e, int64_t age, char *buf,
    size_t cap, struct pol_hit *out)
{
	const char *et, *lm;
	size_t etl = 0, lml = 0;

	if (e->status != 200)
		return;
	et = block_find(e->hdrs, e->hlen, "etag", &etl);
	lm = block_find(e->hdrs, e->hlen, "last-modified", &lml);
	if (et == NULL && lm == NULL)
		return;
	serve(L, e, e->status, age, CS_REFRESH, NULL, buf, cap, out);
	out->serve = 0;
	out->answer = PE_REFRESH;
	out->reval = 1;
	out->etag = et;
	out->etag_len = etl;
	out->lastmod = lm;
	out->lastmod_len = lml;
	L->ctx[1] |= CTX_F_REVAL;
}

/* A stale entry: served (while one request refreshes it), refreshed by
 * this request, or waited for. Exactly one lookup across the fleet
 * refreshes: the one memcached told W of an entry marked stale, or the
 * one that took the refresh lock of an entry stale by its own clock. */
static void
stale(struct pol_lookup *L, const struct entry *e, int64_t age, char *buf, size_t cap,
    struct pol_hit *out)
{
	enum pol_stale why = stale_servable(L, e, age);
	int refresh = 0;

	if (L->flags & PL_ERROR) {
		/* the origin failed (RFC 5861 4): inside the window, serve it */
		if ((e->flags & EF_MUST_REVALIDATE) || e->sie == 0 ||
		    staleness(e, age) > (int64_t)e->sie) {
			miss(L, CS_MISS, CSTAT_STALE, buf, cap, out);
			return;
		}
		why = PST_ERROR;
		goto serve_stale;
	}

	if (!(e->flags & EF_MUST_REVALIDATE) && e->sie > 0 && staleness(e, age) <= (int64_t)e->sie) {
		L->ctx[1] |= CTX_F_SIE;
		out->sie = 1;
	}
	if (L->flags & PL_NO_CLAIM) {
		refresh = why == PST_NONE;
	} else if (L->mc & MC_MF_STALE) {
		if (L->mc & MC_MF_WON) {
			L->ctx[1] |= CTX_F_WON;
			refresh = 1;
		} else if (why == PST_NONE) {
			wait_or(L, CS_REFRESH, buf, cap, out);
			return;
		}
	} else if (L->lock == PLK_NONE) {
		if (L->flags & PL_POLL) {
			/* the lock's holder has not stored yet */
			wait_or(L, CS_REFRESH, buf, cap, out);
			return;
		}
		if (why == PST_NONE && L->collapse_ms == 0) {
			refresh = 1;	/* no one to serve stale to, nor to wait */
		} else {
			out->answer = PE_LOCK;
			out->status = CS_REFRESH;
			return;
		}
	} else if (L->lock == PLK_WON) {
		L->ctx[1] |= CTX_F_LOCKED;
		refresh = 1;
	} else if (why == PST_NONE) {
		wait_or(L, CS_REFRESH, buf, cap, out);
		return;
	}
	if (refresh) {
		miss(L, CS_REFRESH, CSTAT_STALE, buf, cap, out);
		if (out->answer == PE_REFRESH && !(L->flags & PL_NO_CLAIM))
			carry_validators(L, e, age, buf, cap, out);
		return;
	}
serve_stale:
	out->answer = PE_HIT;
	out->age = age;
	out->stale = why;
	serve(L, e, e->status, age, CS_HIT, NULL, buf, cap, out);
}

/* A fresh entry e for a request: the whole of it, a 304, or for a Range
 * request the part asked for of a 200 (a 206, or 416 when there is no
 * such part). Conditionals come first (RFC 9110 13.2.2); a stored status
 * other than 200 ignores Range, as its origin would. */
static void
answer_with(struct pol_lookup *L, const struct entry *e, int64_t age, char *buf, size_t cap,
    struct pol_hit *out)
{
	struct part pt;

	out->age = age;
	if (not_modified(L, e)) {
		out->answer = PE_NOT_MODIFIED;
		serve(L, e, 304, age, CS_HIT, NULL, buf, cap, out);
		return;
	}
	out->answer = PE_HIT;
	if (!(L->flags & PL_RANGE) || e->status != 200) {
		serve(L, e, e->status, age, CS_HIT, NULL, buf, cap, out);
		return;
	}
	pt.size = (int64_t)e->blen;
	pt.satisfiable = http_range_resolve(L->range_first, L->range_last, pt.size, &pt.off,
	    &pt.n);
	serve(L, e, pt.satisfiable ? 206 : 416, age, CS_HIT, &pt, buf, cap, out);
}

void
policy_entry(struct pol_lookup *L, const struct pol_limits *lim, const uint8_t *val,
    size_t vlen, int64_t now, char *buf, size_t cap, struct pol_hit *out)
{
	struct entry e;
	const char *why;
	int64_t age;
	int rc;

	memset(out, 0, sizeof(*out));
	if (cap < POL_HIT_BUF(val != NULL ? vlen : 0)) {
		/* the caller broke the contract: nothing can be served from buf */
		out->answer = PE_MISS;
		out->status = CS_MISS;
		return;
	}
	if (val == NULL) {
		/* absent (when polling: the fetch it waited for left nothing),
		 * or the shard failed */
		miss(L, CS_MISS, CSTAT_MISS, buf, cap, out);
		return;
	}
	if (vlen == 0) {
		/* a fetch in progress: ours (memcached created it for us), or
		 * another's to wait for */
		if ((L->mc & MC_MF_WON) && !(L->flags & PL_NO_CLAIM)) {
			L->ctx[1] |= CTX_F_WON;
			miss(L, CS_MISS, CSTAT_MISS, buf, cap, out);
		} else {
			wait_or(L, CS_MISS, buf, cap, out);
		}
		return;
	}
	if (vlen == POL_PASS_LEN && memcmp(val, POL_PASS_MARK, POL_PASS_LEN) == 0) {
		miss(L, CS_MISS, CSTAT_MISS, buf, cap, out);	/* known not storable: no wait */
		return;
	}
	/* As untrusted as the network (MISSION 5): bound to this key, signed
	 * when a secret is set, and replayable as it is, or a Miss that the
	 * response to it overwrites. */
	rc = entry_decode(val, vlen, L->key, KEY_HEX_LEN, lim->auth, &e);
	if (rc == 0)
		rc = entry_check_replay_allow(&e, max_lines(lim),
		    (L->flags & PL_COOKIES) ? ENTRY_ALLOW_SET_COOKIE : 0);
	if (rc < 0) {
		out->reject = rc;
		out->note = entry_err_str(rc);
		miss(L, CS_MISS, CSTAT_MISS, buf, cap, out);
		return;
	}
	age = entry_age(&e, now);
	if (!for_this_request(L, lim, &e, &why)) {
		miss(L, CS_MISS, why, buf, cap, out);
		return;
	}
	if (L->flags & PL_REVALIDATED) {
		out->answer = PE_HIT;
		out->age = age;
		serve(L, &e, e.status, age, CS_REFRESH, NULL, buf, cap, out);
		return;
	}
	if (!(L->mc & MC_MF_STALE)) {
		if (fresh_enough(L, &e, age)) {
			answer_with(L, &e, age, buf, cap, out);
			return;
		}
		if (fresh_left(&e, age) > 0) {
			/* fresh, but not enough for what the client asked */
			miss(L, CS_REFRESH, CSTAT_REQUEST, buf, cap, out);
			return;
		}
	}
	stale(L, &e, age, buf, cap, out);
}

/* ---- the response decision ---- */

static int
media_type_ok(const struct sc_policy *p, const struct hdr *ct)
{
	size_t n;
	const char *semi;

	for (size_t i = 0; i < p->content_type.n; i++)
		if (strcmp(p->content_type.v[i], "*") == 0)
			return 1;
	if (ct == NULL)
		return 0;
	n = ct->vlen;
	if ((semi = memchr(ct->val, ';', ct->vlen)) != NULL)
		n = (size_t)(semi - ct->val);
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

/* RFC 9110 15.1: what a cache may store without explicit freshness. */
static int
heuristically_cacheable(int64_t status)
{
	static const int codes[] = { 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i] == status)
			return 1;
	return 0;
}

/* The final statuses whose caching rules this cache implements, for
 * must-understand (RFC 9111 5.2.2.3): those RFC 9110 defines, less 206
 * (never stored) and 304 (never stored as such). */
static int
status_understood(int64_t status)
{
	return (status >= 200 && status <= 205) || (status >= 300 && status <= 308 &&
	    status != 304 && status != 306) || (status >= 400 && status <= 417) ||
	    status == 421 || status == 422 || status == 426 || (status >= 500 && status <= 505);
}

/* The first targeted field of the policy's list (RFC 9213 2.2) that is
 * present and valid, into *t: 1, or 0 when there is none (an invalid one
 * is as if absent, 2.1). */
static int
targeted_cc(const struct sc_policy *p, const struct hdr *hdrs, size_t nh, struct cachectl *t)
{
	for (size_t i = 0; i < p->targeted_cc.n; i++) {
		const char *name = p->targeted_cc.v[i];
		size_t from = 0, nlen = strlen(name);
		const struct hdr *h;
		int found = 0, ok = 1;

		cachectl_init(t);
		while (ok && (h = hdrs_find(hdrs, nh, name, nlen, &from)) != NULL) {
			found = 1;
			ok = cachectl_parse_targeted(h->val, h->vlen, t) == 0;
		}
		if (found && ok)
			return 1;
	}
	cachectl_init(t);
	return 0;
}

/* Heuristic freshness (RFC 9111 4.2.2): 10% of the time between
 * Last-Modified and Date (or now), at most cache_ttl. 0 without a usable
 * Last-Modified: a response that says nothing about its freshness and
 * has no validator is not served fresh. */
static int64_t
heuristic_lifetime(const struct sc_policy *p, const struct hdr *hdrs, size_t nh, int64_t now)
{
	const struct hdr *h;
	int64_t lm, date, f;

	if ((h = first(hdrs, nh, "last-modified")) == NULL || http_date_parse(h->val, h->vlen, &lm) < 0)
		return 0;
	h = first(hdrs, nh, "date");
	if (h == NULL || http_date_parse(h->val, h->vlen, &date) < 0)
		date = now;
	if (lm >= date)
		return 0;
	f = (date - lm) / 10;
	return f < p->cache_ttl ? f : p->cache_ttl;
}

/* Freshness lifetime of a response (RFC 9111 4.2.1) under directives cc
 * (a targeted field's when targeted: Expires is then ignored, RFC 9213
 * 2.2). -1: it may not be stored at all (RFC 9111 3: no explicit
 * expiration time, and neither public nor a heuristically cacheable
 * status). Without cache_control: cache_ttl, as Kong. */
static int64_t
lifetime_of(const struct sc_policy *p, const struct cachectl *cc, int targeted, int64_t status,
    const struct hdr *hdrs, size_t nh, int64_t now)
{
	const struct hdr *h;
	int64_t exp, date;

	if (!p->cache_control)
		return p->cache_ttl;
	if (cc->s_maxage >= 0)
		return cc->s_maxage;
	if (cc->max_age >= 0)
		return cc->max_age;
	if (!targeted && (h = first(hdrs, nh, "expires")) != NULL) {
		if (http_date_parse(h->val, h->vlen, &exp) < 0)
			return 0;	/* an invalid Expires means already expired */
		h = first(hdrs, nh, "date");
		if (h == NULL || http_date_parse(h->val, h->vlen, &date) < 0)
			date = now;
		return exp > date ? exp - date : 0;
	}
	if (!(cc->flags & CC_PUBLIC) && !heuristically_cacheable(status))
		return -1;
	return heuristic_lifetime(p, hdrs, nh, now);
}

/* The Age a response arrived with (RFC 9111 5.1). With cache_control,
 * what cannot be read errs toward staleness (4.2.1 encourages treating
 * invalid freshness information as stale): a list, or several lines,
 * counts as its largest member, and anything but digits as 2^31, always
 * stale. Without it, as before: the first line, 0 when not a number. */
static int64_t
age_of(const struct sc_policy *p, const struct hdr *hdrs, size_t nh)
{
	const struct hdr *h;
	size_t from = 0;
	int64_t age = 0, v;

	if (!p->cache_control) {
		h = first(hdrs, nh, "age");
		return h != NULL && parse_delta(h->val, h->vlen, &v) == 0 ? v : 0;
	}
	while ((h = hdrs_find(hdrs, nh, "age", 3, &from)) != NULL) {
		const char *s = h->val, *end = h->val + h->vlen;

		do {
			const char *m = s, *me;

			while (m < end && (*m == ' ' || *m == '\t'))
				m++;
			me = m;
			while (me < end && *me != ',')
				me++;
			s = me < end ? me + 1 : end;
			while (me > m && (me[-1] == ' ' || me[-1] == '\t'))
				me--;
			if (parse_delta(m, (size_t)(me - m), &v) < 0)
				return CC_DELTA_MAX;
			if (v > age)
				age = v;
		} while (s < end);
	}
	return age;
}

uint32_t
policy_mc_exptime(int64_t ttl, int64_t now)
{
	const int64_t rel_max = 30 * 86400;	/* memcached: larger is a Unix time */
	int64_t at, ahead;

	if (ttl <= 0)
		return 1;	/* the caller keeps nothing for 0 s; 0 would mean "forever" */
	/* memcached counts whole seconds of its own clock: an item set with
	 * T<n> lives more than n - 1 seconds only, so one more keeps it at
	 * least as long as it may be served */
	if (ttl < rel_max)
		return (uint32_t)ttl + 1;
	if (ttl == rel_max)
		return (uint32_t)rel_max;
	if (__builtin_add_overflow(now, ttl, &at) || at > INT32_MAX)
		at = INT32_MAX;
	/* it must read as a Unix time and still be more than 30 days ahead */
	if (at <= rel_max || (!__builtin_sub_overflow(at, now, &ahead) && ahead <= rel_max))
		return (uint32_t)rel_max;
	return (uint32_t)at;
}

/* The Connection field lines of a response, found once. */
struct conn_lines {
	const struct hdr *v[16];
	size_t n;
	int overflow;			/* more than 16: drop every non-standard header */
};

static void
conn_lines_of(const struct hdr *hdrs, size_t nh, struct conn_lines *cl)
{
	const struct hdr *c;
	size_t from = 0;

	cl->n = 0;
	cl->overflow = 0;
	while ((c = hdrs_find(hdrs, nh, "connection", 10, &from)) != NULL) {
		if (cl->n == sizeof(cl->v) / sizeof(cl->v[0])) {
			cl->overflow = 1;
			return;
		}
		cl->v[cl->n++] = c;
	}
}

/* Headers to replay: not hop-by-hop, not named by Connection, not the ones
 * the agent computes at hit time, no Set-Cookie unless the policy stores
 * it (set_cookie = "store"). */
static int
keep_header(const struct hdr *h, const struct conn_lines *cl, int cookies)
{
	static const char *const drop[] = {
		"content-length", "age", "x-cache-status", "x-cache-tier", "x-cache-key",
		"x-spoe-cache-l1", NULL
	};

	if (hdrs_is_hop_by_hop(h->name, h->nlen))
		return 0;
	if (!cookies && (name_eq(h->name, h->nlen, "set-cookie") ||
	    name_eq(h->name, h->nlen, "set-cookie2")))
		return 0;
	for (const char *const *d = drop; *d != NULL; d++)
		if (name_eq(h->name, h->nlen, *d))
			return 0;
	if (cl->overflow)
		return 0;
	for (size_t i = 0; i < cl->n; i++)
		if (hdr_token_in_list(cl->v[i]->val, cl->v[i]->vlen, h->name, h->nlen))
			return 0;
	return 1;
}

/* Build the Vary record of a response (hdrs) for the request in c. 0,
 * or -1 when it cannot be stored: Vary: *, request headers not carried,
 * or values too long. */
static int
vary_build(const struct ctx *c, const struct pol_limits *lim, const struct hdr *hdrs,
    size_t nh, uint8_t *out, size_t *olen)
{
	struct hdr rq[POL_MAX_HEADERS];
	size_t nrq = 0, from = 0;
	const struct hdr *h;
	int parsed = 0;

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
			if (!parsed && ctx_hdrs(c, lim, rq, &nrq) < 0)
				return -1;
			parsed = 1;
			if (vary_record(rq, nrq, t, (size_t)(s - t), out, POL_VARY_MAX, olen) < 0)
				return -1;
		}
	}
	return 0;
}

/* Replayable headers of a response as "name: value\r\n" lines into
 * out[0..cap); -1 when one is unsafe to replay or they do not fit. */
static int
replay_headers(const struct hdr *hdrs, size_t nh, int cookies, char *out, size_t cap,
    size_t *len)
{
	struct conn_lines cl;
	size_t n = 0;

	conn_lines_of(hdrs, nh, &cl);
	for (size_t i = 0; i < nh; i++) {
		const struct hdr *h = &hdrs[i];

		if (!keep_header(h, &cl, cookies))
			continue;
		if (!hdr_name_valid(h->name, h->nlen) || !hdr_value_safe(h->val, h->vlen))
			return -1;
		if (cap - n < h->nlen + h->vlen + 4)
			return -1;
		memcpy(out + n, h->name, h->nlen);
		n += h->nlen;
		memcpy(out + n, ": ", 2);
		memcpy(out + n + 2, h->val, h->vlen);
		n += 2 + h->vlen;
		memcpy(out + n, "\r\n", 2);
		n += 2;
	}
	*len = n;
	return 0;
}

static void
refuse(struct pol_store *out, enum store_refusal why)
{
	out->action = PS_REFUSE;
	out->why = why;
	out->label = "Bypass";
}

/* A stale window: the response's directive where Cache-Control is
 * honoured, else (or when it gives none) the policy's. */
static uint32_t
window(int64_t directive, int honoured, int policy)
{
	int64_t w = honoured && directive >= 0 ? directive : policy;

	return w > 30 * 86400 ? 30 * 86400 : (uint32_t)w;
}

/* no-store and private of one field: what keeps a response out. With
 * cache_control, must-understand with a status this cache implements
 * lifts that field's no-store (RFC 9111 5.2.2.3). */
static unsigned
never_flags(const struct sc_policy *p, int64_t status, unsigned f)
{
	if (p->cache_control && (f & CC_MUST_UNDERSTAND) && status_understood(status))
		f &= ~CC_NO_STORE;
	return f & (CC_NO_STORE | CC_PRIVATE);
}

/* The directives this cache obeys in a response, into *cc; 1 when they
 * are a targeted field's (RFC 9213 2.2: with cache_control, the first
 * valid one of the policy's list replaces Cache-Control and Expires).
 * *never is set when the response must not be stored whatever the policy
 * says: no-store or private in Cache-Control or in a targeted field. A
 * targeted field can so add those, and grant freshness, but it does not
 * lift Cache-Control's (MISSION 4.4; RFC 9213 would, but a cache may
 * always decline to store). */
static int
response_cc(const struct sc_policy *p, int64_t status, const struct hdr *hdrs, size_t nh,
    struct cachectl *cc, enum store_refusal *never)
{
	struct cachectl t;
	int targeted = targeted_cc(p, hdrs, nh, &t);
	unsigned f;

	cc_of(hdrs, nh, cc);
	f = never_flags(p, status, cc->flags) | (targeted ? never_flags(p, status, t.flags) : 0);
	*never = (f & CC_NO_STORE) ? SR_NO_STORE : (f & CC_PRIVATE) ? SR_PRIVATE : SR_MAX;
	if (p->cache_control && targeted) {
		*cc = t;
		return 1;
	}
	return 0;
}

/* Only a body whose completeness is proven: HAProxy cuts res.body to its
 * buffer without saying so, so it must match the one Content-Length. A
 * 204 has no body and needs none (RFC 9110 15.3.5). */
static int
body_complete(int64_t status, const struct hdr *hdrs, size_t nh, const struct pol_response *rs)
{
	size_t from = 0, blen = rs->body != NULL ? rs->body_len : 0;
	const struct hdr *h;
	int64_t clen;

	if (first(hdrs, nh, "transfer-encoding") != NULL)
		return 0;
	h = hdrs_find(hdrs, nh, "content-length", 14, &from);
	if (h == NULL)
		return status == 204 && blen == 0;
	return parse_delta(h->val, h->vlen, &clen) == 0 &&
	    hdrs_find(hdrs, nh, "content-length", 14, &from) == NULL && clen == (int64_t)blen;
}

/* A Location or Content-Location value as a request target policy_key()
 * takes: origin-form or absolute, without its fragment; a network-path
 * reference gets the connection's scheme. NULL for a relative path (the
 * request's own path is not kept) or anything else. */
static const char *
target_of(const struct hdr *h, int tls, char *buf, size_t cap, size_t *len)
{
	const char *v = h->val, *end = h->val + h->vlen, *hash;
	const char *scheme = tls ? "https:" : "http:";
	size_t n;

	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if ((hash = memchr(v, '#', (size_t)(end - v))) != NULL)
		end = hash;
	n = (size_t)(end - v);
	if (n >= 2 && v[0] == '/' && v[1] == '/') {
		if (strlen(scheme) + n > cap)
			return NULL;
		memcpy(buf, scheme, strlen(scheme));
		memcpy(buf + strlen(scheme), v, n);
		*len = strlen(scheme) + n;
		return buf;
	}
	if ((n >= 1 && v[0] == '/') || (n > 7 && strncasecmp(v, "http://", 7) == 0) ||
	    (n > 8 && strncasecmp(v, "https://", 8) == 0)) {
		*len = n;
		return v;
	}
	return NULL;
}

/* RFC 9111 4.4: a successful unsafe request also invalidates the URIs in
 * Location and Content-Location, when they are on the request's
 * authority (policy_key() refuses another Host or scheme): their GET keys
 * under the request's headers, into out->also. rh: the response's. */
static void
invalidate_targets(const struct sc_policy *p, const struct pol_limits *lim, const struct ctx *c,
    const struct pol_response *rs, const struct hdr *rh, size_t nrh, struct pol_store *out)
{
	static const char *const names[] = { "location", "content-location" };
	struct hdr qh[POL_MAX_HEADERS];
	char url[2048], key[KEY_HEX_LEN + 1];
	size_t nqh = 0;

	if (ctx_hdrs(c, lim, qh, &nqh) < 0)
		return;		/* the request's headers were too large to carry */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct hdr *h = first(rh, nrh, names[i]);
		struct pol_request get;
		int dup = 0;

		memset(&get, 0, sizeof(get));
		if (h == NULL || (get.url = target_of(h, rs->tls, url, sizeof(url), &get.url_len)) == NULL)
			continue;
		get.method = "GET";
		get.method_len = 3;
		get.tls = rs->tls;
		get.consumer = rs->consumer;
		get.consumer_len = rs->consumer_len;
		if (policy_key(p, lim, &get, qh, nqh, key) < 0)
			continue;
		dup = strcmp(key, out->key) == 0;
		for (size_t k = 0; k < out->n_also; k++)
			dup |= strcmp(key, out->also[k]) == 0;
		if (!dup)
			memcpy(out->also[out->n_also++], key, sizeof(key));
	}
}

static void response_decide(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_response *rs, int64_t now, size_t max_ack, size_t max_item,
    char *hbuf, size_t hcap, struct pol_store *out);

void
policy_response(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_response *rs, int64_t now, size_t max_ack, size_t max_item,
    char *hbuf, size_t hcap, struct pol_store *out)
{
	struct ctx c;
	size_t n = 0;

	response_decide(p, lim, rs, now, max_ack, max_item, hbuf, hcap, out);
	if (out->action != PS_BAD && ctx_decode(rs->ctx, rs->ctx_len, &c) == 0) {
		/* The lookup that claimed the fetch others wait for answers
		 * them: with the entry, or with the pass marker, so that they
		 * (and the lookups after them) go to the origin now instead of
		 * waiting. */
		out->unlock = (c.flags & CTX_F_LOCKED) != 0;
		out->pass = out->action == PS_REFUSE && (c.flags & (CTX_F_WON | CTX_F_LOCKED));
	}
	if (p == NULL || !p->cache_status || out->action == PS_BAD)
		return;
	/* RFC 9211 2.3-2.5: what the lookup's Cache-Status (fwd=...) gets */
	put(out->cstatus, sizeof(out->cstatus), &n, "; fwd-status=%lld", (long long)rs->status);
	out->cstatus_unstored = n;
	if (out->action == PS_STORE)
		put(out->cstatus, sizeof(out->cstatus), &n, "; stored");
	else if (out->action == PS_REFUSE)
		put(out->cstatus, sizeof(out->cstatus), &n, "; detail=%s", store_refusal_name[out->why]);
}

static void
response_decide(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_response *rs, int64_t now, size_t max_ack, size_t max_item,
    char *hbuf, size_t hcap, struct pol_store *out)
{
	struct hdr hdrs[POL_MAX_HEADERS];
	size_t nh = 0, vlen = 0, max = lim->max_headers;
	struct cachectl cc;
	enum store_refusal never;
	struct entry *e = &out->e;
	struct ctx c;
	int64_t lifetime, ttl;
	uint32_t keep;
	int ok = 0, targeted;

	memset(out, 0, offsetof(struct pol_store, vary));
	out->label = "Bypass";
	if (p == NULL || ctx_decode(rs->ctx, rs->ctx_len, &c) < 0 ||
	    !(c.plen == strlen(p->name) && memcmp(c.policy, p->name, c.plen) == 0)) {
		out->action = PS_BAD;
		return;
	}
	memcpy(out->key, c.key, KEY_HEX_LEN);
	out->key[KEY_HEX_LEN] = '\0';
	if (max == 0 || max > POL_MAX_HEADERS)
		max = POL_MAX_HEADERS;
	if (c.flags & CTX_F_INVALIDATE) {
		/* RFC 9111 4.4: a successful unsafe request invalidates. */
		if (rs->status < 200 || rs->status >= 400) {
			out->action = PS_NONE;
			return;
		}
		out->action = PS_INVALIDATE;
		if (rs->hdrs != NULL && hdrs_parse(rs->hdrs, rs->hdrs_len, hdrs, max, &nh) == 0)
			invalidate_targets(p, lim, &c, rs, hdrs, nh, out);
		return;
	}
	if (rs->status == 304 && (c.flags & CTX_F_REVAL)) {
		out->action = PS_REVALIDATE;
		out->label = "Refresh";
		return;
	}
	if ((rs->status == 500 || rs->status == 502 || rs->status == 503 || rs->status == 504) &&
	    (c.flags & CTX_F_SIE) && !(c.flags & CTX_F_HEAD)) {
		out->action = PS_STALE_IF_ERROR;
		return;
	}
	if (c.flags & CTX_F_HEAD) {
		out->action = PS_NONE;	/* a HEAD response has no body to store */
		out->label = "Miss";
		return;
	}
	if (rs->status == 206) {
		refuse(out, SR_PARTIAL);	/* a part must never answer for the whole */
		return;
	}
	for (size_t i = 0; i < p->n_response_codes; i++)
		ok |= p->response_codes[i] == rs->status;
	if (!ok) {
		refuse(out, SR_STATUS);
		return;
	}
	if (rs->hdrs == NULL || hdrs_parse(rs->hdrs, rs->hdrs_len, hdrs, max, &nh) < 0) {
		refuse(out, SR_HEADERS);
		return;
	}
	if (!media_type_ok(p, first(hdrs, nh, "content-type"))) {
		refuse(out, SR_CONTENT_TYPE);
		return;
	}
	/* RFC 9111 7.3 leaves Set-Cookie to the operator: by default a
	 * response that sets one is not stored at all. */
	if (p->set_cookie == SC_COOKIE_REFUSE && (first(hdrs, nh, "set-cookie") != NULL ||
	    first(hdrs, nh, "set-cookie2") != NULL)) {
		refuse(out, SR_SET_COOKIE);
		return;
	}
	targeted = response_cc(p, rs->status, hdrs, nh, &cc, &never);
	/* Whatever cache_control says, a shared cache never stores what the
	 * origin marked no-store or private (Kong ignores both when its
	 * cache_control is off; serving one user's private answer to the
	 * next is worse than a miss). */
	if (never != SR_MAX) {
		refuse(out, never);
		return;
	}
	if (p->cache_control && ((cc.flags & CC_NO_CACHE) ||
	    (!targeted && pragma_no_cache(&cc, hdrs, nh)))) {
		refuse(out, SR_NO_STORE);
		return;
	}
	if (p->cache_control && (cc.flags & CC_MUST_UNDERSTAND) && !status_understood(rs->status)) {
		refuse(out, SR_UNCACHEABLE);	/* RFC 9111 3, 5.2.2.3 */
		return;
	}
	/* RFC 9111 3.5: a shared cache stores an answer to a request with
	 * Authorization only when the response explicitly allows it. */
	if ((c.flags & CTX_F_AUTH) && !(cc.flags & (CC_PUBLIC | CC_MUST_REVALIDATE)) && cc.s_maxage < 0) {
		refuse(out, SR_AUTHORIZATION);
		return;
	}
	if (vary_build(&c, lim, hdrs, nh, out->vary, &vlen) < 0) {
		refuse(out, SR_VARY);
		return;
	}
	if (!body_complete(rs->status, hdrs, nh, rs)) {
		refuse(out, SR_LENGTH);
		return;
	}
	lifetime = lifetime_of(p, &cc, targeted, rs->status, hdrs, nh, now);
	if (lifetime < 0) {
		refuse(out, SR_UNCACHEABLE);
		return;
	}
	if (lifetime == 0 && p->storage_ttl <= 0) {
		refuse(out, SR_ZERO_TTL);
		return;
	}

	e->stored_at = now;
	e->lifetime = lifetime;
	e->age0 = age_of(p, hdrs, nh);
	e->status = (uint16_t)rs->status;
	if (cc.flags & (CC_PUBLIC | CC_MUST_REVALIDATE) || cc.s_maxage >= 0)
		e->flags |= EF_AUTH_OK;
	if (cc.flags & (CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE) || cc.s_maxage >= 0)
		e->flags |= EF_MUST_REVALIDATE;
	e->vary = out->vary;
	e->vlen = vlen;
	e->body = rs->body;
	e->blen = rs->body != NULL ? rs->body_len : 0;
	if (replay_headers(hdrs, nh, p->set_cookie == SC_COOKIE_STORE, hbuf, hcap, &e->hlen) < 0) {
		refuse(out, SR_HEADERS);
		return;
	}
	e->hdrs = hbuf;
	e->key = out->key;
	e->klen = KEY_HEX_LEN;
	/* It must be replayable: a hit's ACK carries headers, body and a few
	 * hundred bytes of variables in one frame. */
	if (e->hlen + e->blen + POL_ACK_SLACK > max_ack || entry_size(e, lim->auth) > max_item) {
		refuse(out, SR_TOO_BIG);
		return;
	}
	/* Kept past its freshness for as long as it may still be served:
	 * storage_ttl when set, else its stale windows (RFC 5861), and for
	 * stale_keep when it has a validator, to be revalidated (RFC 9111
	 * 4.3). */
	if (!(e->flags & EF_MUST_REVALIDATE)) {
		e->swr = window(cc.swr, p->cache_control, p->stale_while_revalidate);
		e->sie = window(cc.sie, p->cache_control, p->stale_if_error);
	}
	keep = e->swr > e->sie ? e->swr : e->sie;
	if ((int64_t)keep < p->stale_keep && e->status == 200 && (first(hdrs, nh, "etag") != NULL ||
	    first(hdrs, nh, "last-modified") != NULL))
		keep = (uint32_t)p->stale_keep;	/* revalidated with a 304 rather than refetched */
	ttl = p->storage_ttl > 0 ? p->storage_ttl : e->lifetime + (int64_t)keep;
	out->mc_ttl = policy_mc_exptime(ttl, now);
	out->action = PS_STORE;
	out->label = (c.flags & CTX_F_REFRESH) ? "Refresh" : "Miss";
}

/* ---- the store step's own lookups ---- */

int
policy_ctx_lookup(const uint8_t *ctx, size_t len, struct pol_lookup *L)
{
	struct ctx c;

	memset(L, 0, sizeof(*L));
	cachectl_init(&L->rcc);
	if (ctx_decode(ctx, len, &c) < 0 || len > sizeof(L->ctx))
		return -1;
	memcpy(L->key, c.key, KEY_HEX_LEN);
	L->key[KEY_HEX_LEN] = '\0';
	memcpy(L->ctx, ctx, len);
	L->ctx_len = len;
	L->action = PA_FETCH;
	L->flags = PL_NO_CLAIM | ((c.flags & CTX_F_HEAD) ? PL_HEAD : 0) |
	    ((c.flags & CTX_F_AUTH) ? PL_AUTH : 0);
	return 0;
}

/* The "name: value\r\n" lines of a stored block (entry_check_replay()
 * made sure of their form) as header fields. */
static size_t
block_fields(const char *b, size_t len, struct hdr *out, size_t max)
{
	const char *end = b + len;
	size_t n = 0;

	while (b < end && n < max) {
		const char *colon = memchr(b, ':', (size_t)(end - b));
		const char *eol = colon != NULL ? memchr(colon, '\r', (size_t)(end - colon)) : NULL;

		if (eol == NULL || eol + 2 > end)
			break;
		out[n].name = b;
		out[n].nlen = (size_t)(colon - b);
		out[n].val = colon + 1 + (colon + 1 < eol && colon[1] == ' ');
		out[n].vlen = (size_t)(eol - out[n].val);
		n++;
		b = eol + 2;
	}
	return n;
}

/* May a 304's field replace the stored ones of its name (RFC 9111 3.2)?
 * Not Content-Length, nor what is never stored or replayed. */
static int
updates(const struct hdr *h)
{
	static const char *const never[] = {
		"content-length", "age", "set-cookie", "set-cookie2", "x-cache-status",
		"x-cache-tier", "x-cache-key", "x-spoe-cache-l1", "transfer-encoding", NULL
	};

	if (hdrs_is_hop_by_hop(h->name, h->nlen) || !hdr_name_valid(h->name, h->nlen) ||
	    !hdr_value_safe(h->val, h->vlen))
		return 0;
	for (const char *const *n = never; *n != NULL; n++)
		if (name_eq(h->name, h->nlen, *n))
			return 0;
	return 1;
}

static int
bin_add(uint8_t **p, const uint8_t *end, const char *s, size_t len)
{
	int n = varint_encode(len, *p, end);

	if (n <= 0 || (size_t)(end - *p - n) < len)
		return -1;
	memcpy(*p + n, s, len);
	*p += (size_t)n + len;
	return 0;
}

void
policy_revalidate(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_response *rs, const uint8_t *val, size_t vlen, int64_t now,
    size_t max_replay, size_t max_item, char *hbuf, size_t hcap, struct pol_store *out)
{
	struct hdr fresh[POL_MAX_HEADERS], stored[POL_MAX_HEADERS];
	size_t nf = 0, ns, max = max_lines(lim);
	struct pol_response merged;
	struct entry e;
	struct ctx c;
	uint8_t *bin = (uint8_t *)hbuf, *w, *bend;
	char clen[32];
	size_t half = hcap / 3, i, k;
	int rc;

	memset(out, 0, offsetof(struct pol_store, vary));
	out->action = PS_BAD;
	out->label = "Refresh";
	if (p == NULL || ctx_decode(rs->ctx, rs->ctx_len, &c) < 0 || hcap < 64)
		return;
	rc = entry_decode(val, vlen, c.key, KEY_HEX_LEN, lim->auth, &e);
	if (rc < 0 || entry_check_replay(&e, max) < 0)
		return;
	if (rs->hdrs == NULL || hdrs_parse(rs->hdrs, rs->hdrs_len, fresh, max, &nf) < 0)
		nf = 0;
	ns = block_fields(e.hdrs, e.hlen, stored, max);
	/* The merged fields, encoded as HAProxy's res.hdrs_bin, in the first
	 * third of hbuf; policy_response's header block in the rest. */
	w = bin;
	bend = bin + half;
	for (i = 0; i < ns; i++) {
		int replaced = 0;

		for (k = 0; k < nf && !replaced; k++)
			replaced = updates(&fresh[k]) &&
			    hdr_name_eq(fresh[k].name, fresh[k].nlen, stored[i].name, stored[i].nlen);
		if (!replaced && (bin_add(&w, bend, stored[i].name, stored[i].nlen) < 0 ||
		    bin_add(&w, bend, stored[i].val, stored[i].vlen) < 0))
			return;
	}
	for (k = 0; k < nf; k++)
		if ((updates(&fresh[k]) || name_eq(fresh[k].name, fresh[k].nlen, "age")) &&
		    (bin_add(&w, bend, fresh[k].name, fresh[k].nlen) < 0 ||
		    bin_add(&w, bend, fresh[k].val, fresh[k].vlen) < 0))
			return;
	snprintf(clen, sizeof(clen), "%zu", e.blen);
	if (bin_add(&w, bend, "content-length", 14) < 0 || bin_add(&w, bend, clen, strlen(clen)) < 0 ||
	    bend - w < 2)
		return;
	*w++ = 0;
	*w++ = 0;
	merged = *rs;
	merged.status = e.status;
	merged.hdrs = bin;
	merged.hdrs_len = (size_t)(w - bin);
	merged.body = e.body;
	merged.body_len = e.blen;
	response_decide(p, lim, &merged, now, max_replay, max_item, hbuf + half, hcap - half, out);
	if (out->action != PS_STORE && out->action != PS_REFUSE)
		out->action = PS_REFUSE;	/* cannot be: the ctx was ours above */
	out->label = "Refresh";
	out->unlock = (c.flags & CTX_F_LOCKED) != 0;
	if (out->action == PS_STORE)
		out->e.vary = out->vary;
}
