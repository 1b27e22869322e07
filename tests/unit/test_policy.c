/*
 * test_policy.c - the cache's decisions (MISSION 4.2-4.5) over plain
 * inputs: a lookup message, what memcached holds, an upstream response and
 * `now`. Messages are built as HAProxy sends them (req.hdrs_bin blocks),
 * stored entries are the bytes entry_encode() makes of what
 * policy_response() decided, and every input the policy parses sits
 * against a guard page. One "memcached" slot, keyed, stands for the pool.
 */
#include "entry.h"
#include "l1.h"
#include "policy.h"
#include "varint.h"
#include "t.h"
#include "guard.h"

#include <stdint.h>
#include <stdlib.h>

#define T0		1700000000LL	/* when the first response is stored */
#define DAY		86400
#define HOST		"Host", "example.com"
#define H(...)		((const char *const[]){ __VA_ARGS__, NULL })
#define SL(...)		((struct sc_strlist){ (char *[]){ __VA_ARGS__ }, \
			    sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *) })
#define CODES(...)	(int[]){ __VA_ARGS__ }, sizeof((int[]){ __VA_ARGS__ }) / sizeof(int)
#define RQ(...)		(&(struct rq){ __VA_ARGS__ })
#define RS(...)		(&(struct rs){ __VA_ARGS__ })
#define ROOT		RQ(.url = "/")
#define HELLO		RS(.body = "hello")
#define CT_TEXT		"Content-Type", "text/plain"
#define CT_LINE		"Content-Type: text/plain\r\n"
#define TEST(fn)	do { tx_reset(); RUN(fn); } while (0)

/* ---- req.hdrs_bin / res.hdrs_bin blocks ---- */

struct hb {
	uint8_t b[16384];
	size_t n;
};

/* One <varint len><bytes> string. */
static void
hb_put(struct hb *h, const char *s, size_t len)
{
	int r = varint_encode(len, h->b + h->n, h->b + sizeof(h->b));

	if (r == 0 || sizeof(h->b) - h->n - (size_t)r < len) {
		fprintf(stderr, "test bug: header block full\n");
		exit(2);
	}
	memcpy(h->b + h->n + r, s, len);
	h->n += (size_t)r + len;
}

static void
hb_add(struct hb *h, const char *name, size_t nlen, const char *val, size_t vlen)
{
	hb_put(h, name, nlen);
	hb_put(h, val, vlen);
}

/* The terminator: an empty name and an empty value. */
static void
hb_end(struct hb *h)
{
	hb_add(h, "", 0, "", 0);
}

/* name, value, ..., NULL: appended to h, not terminated. */
static void
hb_list(struct hb *h, const char *const *nv)
{
	for (; nv[0] != NULL; nv += 2)
		hb_add(h, nv[0], strlen(nv[0]), nv[1], strlen(nv[1]));
}

/* ---- one transaction's state ---- */

enum { G_RQH, G_RQBODY, G_RSH, G_RSBODY, G_VAL, G_MAX };

static struct {
	struct pol_limits lim;
	size_t max_ack, max_item;
	struct hb rqh, rsh;
	struct pol_lookup L;		/* the last lookup */
	struct pol_store st;		/* the last store decision */
	struct pol_hit hit;		/* the last fetch decision */
	char hbuf[POL_STORE_HBUF(sizeof(struct hb))];
	char buf[POL_HIT_BUF(2 * sizeof(struct hb))];
	uint8_t val[2 * sizeof(struct hb)];	/* what "memcached" holds under mkey */
	size_t vlen;
	int stored;
	int rs_tls;			/* what the store message says of the connection */
	const char *rs_consumer;
	char mkey[KEY_HEX_LEN + 1];
	struct guard g[G_MAX];
} T;

static void
tx_reset(void)
{
	T.lim.max_headers = 100;
	T.lim.max_query_params = 100;
	T.lim.auth = NULL;
	T.max_ack = 1 << 20;
	T.max_item = 1 << 20;
	T.stored = 0;
	T.rs_tls = 0;
	T.rs_consumer = NULL;
}

/* data[0..n) copied against a guard page; the slot's previous copy dies. */
static const void *
guarded(int slot, const void *data, size_t n)
{
	if (T.g[slot].map != NULL)
		guard_free(&T.g[slot]);
	return guard_put(&T.g[slot], data, n);
}

/* ---- policies ---- */

static int default_codes[] = { 200, 301, 404 };
static char *default_methods[] = { "GET", "HEAD" };
static char *default_types[] = { "text/plain", "application/json" };

/* key_routing_headers as config.c defaults it. */
static struct sc_strlist
routing_default(void)
{
	size_t n = 0;

	while (pol_routing_headers_default[n] != NULL)
		n++;
	return (struct sc_strlist){ (char **)pol_routing_headers_default, n };
}

static struct sc_policy
policy(void)
{
	struct sc_policy p;

	memset(&p, 0, sizeof(p));
	p.name = "p";
	p.response_codes = default_codes;
	p.n_response_codes = sizeof(default_codes) / sizeof(default_codes[0]);
	p.request_method = (struct sc_strlist){ default_methods, 2 };
	p.content_type = (struct sc_strlist){ default_types, 2 };
	p.cache_ttl = 300;
	p.storage_ttl = -1;
	p.key_routing_headers = routing_default();
	return p;
}

static struct sc_policy
policy_cc(void)
{
	struct sc_policy p = policy();

	p.cache_control = 1;
	return p;
}

static void
codes(struct sc_policy *p, int *c, size_t n)
{
	p->response_codes = c;
	p->n_response_codes = n;
}

/* ---- the request ---- */

struct rq {
	const char *method;		/* NULL: GET */
	const char *url;		/* NULL: "/" */
	int tls;
	const char *const *h;		/* name, value, ..., NULL; NULL: Host only */
	const char *consumer;
	const char *body;		/* NULL: not sent */
	size_t blen;			/* 0: strlen(body) */
};

static void
mkreq(const struct rq *r, struct pol_request *out)
{
	T.rqh.n = 0;
	hb_list(&T.rqh, r->h != NULL ? r->h : H(HOST));
	hb_end(&T.rqh);
	memset(out, 0, sizeof(*out));
	out->method = r->method != NULL ? r->method : "GET";
	out->method_len = strlen(out->method);
	out->url = r->url != NULL ? r->url : "/";
	out->url_len = strlen(out->url);
	out->tls = r->tls;
	out->hdrs = guarded(G_RQH, T.rqh.b, T.rqh.n);
	out->hdrs_len = T.rqh.n;
	if (r->consumer != NULL) {
		out->consumer = r->consumer;
		out->consumer_len = strlen(r->consumer);
	}
	if (r->body != NULL) {
		out->body_len = r->blen ? r->blen : strlen(r->body);
		out->body = guarded(G_RQBODY, r->body, out->body_len);
	}
}

static enum pol_action
lookup(const struct sc_policy *p, const struct rq *r)
{
	struct pol_request rq;

	mkreq(r, &rq);
	policy_request(p, &T.lim, &rq, &T.L);
	return T.L.action;
}

/* The key of a fetch ("" when the request is not one), in one of four
 * rotating buffers so two can be compared. */
static const char *
key(const struct sc_policy *p, const struct rq *r)
{
	static char k[4][KEY_HEX_LEN + 1];
	static unsigned i;
	char *out = k[i++ % 4];

	if (lookup(p, r) == PA_FETCH)
		memcpy(out, T.L.key, sizeof(k[0]));
	else
		out[0] = '\0';
	return out;
}

/* 1 same key, 0 different, -1 when one of them is not a fetch. */
static int
same_key(const struct sc_policy *p, const struct rq *a, const struct rq *b)
{
	const char *ka = key(p, a), *kb = key(p, b);

	if (ka[0] == '\0' || kb[0] == '\0')
		return -1;
	return strcmp(ka, kb) == 0;
}

/* The PKE_* code of a key Bypass, or 1 when the lookup was anything else. */
static int
keyerr(const struct sc_policy *p, const struct rq *r)
{
	if (lookup(p, r) != PA_BYPASS || T.L.bad || T.L.keyerr >= 0 ||
	    strcmp(T.L.why, pol_keyerr_str(T.L.keyerr)) != 0)
		return 1;
	return T.L.keyerr;
}

/* The lookup was a Bypass for this reason (and not for a key error). */
static int
bypassed(const char *why, int bad)
{
	return T.L.action == PA_BYPASS && T.L.why != NULL && strcmp(T.L.why, why) == 0 &&
	    T.L.bad == bad && T.L.keyerr == 0;
}

/* ---- what memcached holds ---- */

static enum pol_answer
fetch_bytes(const uint8_t *val, size_t vlen, int64_t now)
{
	const uint8_t *v = val != NULL ? guarded(G_VAL, val, vlen) : NULL;

	policy_entry(&T.L, &T.lim, v, vlen, now, T.buf, sizeof(T.buf), &T.hit);
	return T.hit.answer;
}

/* What the fetch of the last lookup's key finds at now. */
static enum pol_answer
fetch(int64_t now)
{
	if (T.stored && strcmp(T.mkey, T.L.key) == 0)
		return fetch_bytes(T.val, T.vlen, now);
	return fetch_bytes(NULL, 0, now);
}

/* A lookup that must be a fetch, and its answer at now; -1 if no fetch. */
static int
get(const struct sc_policy *p, const struct rq *r, int64_t now)
{
	if (lookup(p, r) != PA_FETCH)
		return -1;
	return (int)fetch(now);
}

static int
stored(struct entry *e)
{
	return T.stored && entry_decode(T.val, T.vlen, T.mkey, KEY_HEX_LEN, T.lim.auth, e) == 0;
}

/* ---- the response ---- */

struct rs {
	int status;			/* 0: 200 */
	const char *const *h;		/* NULL: Content-Type: text/plain */
	const char *body;		/* NULL: not sent */
	size_t blen;			/* 0: strlen(body) */
	int raw;			/* 0: Content-Length of the body is added */
};

/* The store step for the last lookup's ctx, over a header block as given;
 * a store or an invalidation is applied to "memcached". */
static enum pol_store_action
respond_block(const struct sc_policy *p, int64_t status, const struct hb *h,
    const void *body, size_t blen, int64_t now)
{
	struct pol_response rs;

	memset(&rs, 0, sizeof(rs));
	rs.ctx = T.L.ctx;
	rs.ctx_len = T.L.ctx_len;
	rs.status = status;
	rs.hdrs = guarded(G_RSH, h->b, h->n);
	rs.hdrs_len = h->n;
	rs.body = body != NULL ? guarded(G_RSBODY, body, blen) : NULL;
	rs.body_len = blen;
	rs.tls = T.rs_tls;
	if (T.rs_consumer != NULL) {
		rs.consumer = T.rs_consumer;
		rs.consumer_len = strlen(T.rs_consumer);
	}
	policy_response(p, &T.lim, &rs, now, T.max_ack, T.max_item, T.hbuf, sizeof(T.hbuf), &T.st);
	if (T.st.action == PS_STORE) {
		int n = entry_encode(&T.st.e, T.lim.auth, T.val, sizeof(T.val));

		CHECK(n > 0);
		T.stored = n > 0;
		T.vlen = n > 0 ? (size_t)n : 0;
		memcpy(T.mkey, T.st.key, sizeof(T.mkey));
	} else if (T.st.action == PS_INVALIDATE && strcmp(T.mkey, T.st.key) == 0) {
		T.stored = 0;
	}
	return T.st.action;
}

static enum pol_store_action
respond(const struct sc_policy *p, const struct rs *r, int64_t now)
{
	size_t blen = r->body == NULL ? 0 : r->blen ? r->blen : strlen(r->body);
	char cl[32];

	T.rsh.n = 0;
	hb_list(&T.rsh, r->h != NULL ? r->h : H(CT_TEXT));
	if (!r->raw) {
		snprintf(cl, sizeof(cl), "%zu", blen);
		hb_list(&T.rsh, H("Content-Length", cl));
	}
	hb_end(&T.rsh);
	return respond_block(p, r->status ? r->status : 200, &T.rsh, r->body, blen, now);
}

/* The first half of a transaction at T0: lookup, fetch, response. */
static int
store(const struct sc_policy *p, const struct rq *r, const struct rs *s)
{
	if (lookup(p, r) != PA_FETCH)
		return -1;
	fetch(T0);
	return (int)respond(p, s, T0);
}

/* Why the response was refused (labelled Bypass), or -1. */
static int
refusal(const struct sc_policy *p, const struct rq *r, const struct rs *s)
{
	if (store(p, r, s) != PS_REFUSE || strcmp(T.st.label, "Bypass") != 0)
		return -1;
	return (int)T.st.why;
}

/* A whole transaction: `first` stored at T0, then `second` fetched at now.
 * The answer to the second, or -1 when the first was not stored. */
static int
txn(const struct sc_policy *p, const struct rq *first, const struct rs *s,
    const struct rq *second, int64_t now)
{
	if (store(p, first, s) != PS_STORE)
		return -1;
	return get(p, second, now);
}

/* ---- checking what is served ---- */

/* 1 when the "name: value\r\n" block has exactly this line. */
static int
has_line(const char *blk, size_t len, const char *line)
{
	const char *p = blk, *end = blk + len, *eol;
	size_t ll = strlen(line);

	while (p < end && (eol = memmem(p, (size_t)(end - p), "\r\n", 2)) != NULL) {
		if ((size_t)(eol - p) == ll && memcmp(p, line, ll) == 0)
			return 1;
		p = eol + 2;
	}
	return 0;
}

static int
hit_has(const char *line)
{
	return T.hit.serve && has_line(T.hit.hdrs, T.hit.hlen, line);
}

/* The served header block is exactly `stored` + what the agent adds. */
static int
hit_hdrs_are(const char *stored_hdrs, const char *added)
{
	char want[1024];
	int n = snprintf(want, sizeof(want), "%s%sx-cache-tier: L2\r\nx-cache-key: %s\r\n",
	    stored_hdrs, added, T.L.key);

	return T.hit.serve && n > 0 && T.hit.hlen == (size_t)n && memcmp(T.hit.hdrs, want, (size_t)n) == 0;
}

static int
hit_body_is(const void *b, size_t n)
{
	return T.hit.blen == n && (n == 0 ? T.hit.body == NULL : memcmp(T.hit.body, b, n) == 0);
}

static int
stored_hdrs_are(const char *want)
{
	struct entry e;

	return stored(&e) && e.hlen == strlen(want) && memcmp(e.hdrs, want, e.hlen) == 0;
}

/* An HTTP-date, in one of four rotating buffers. */
static const char *
date(int64_t t)
{
	static char d[4][30];
	static unsigned i;
	char *out = d[i++ % 4];

	if (http_date_format(t, out) < 0)
		strcpy(out, "?");
	return out;
}

/* ==== 4.2 the cache key ==== */

static void
test_key_form(void)
{
	struct sc_policy p = policy();
	const char *k = key(&p, ROOT);

	CHECK(strlen(k) == KEY_HEX_LEN);
	CHECK(strspn(k, "0123456789abcdef") == KEY_HEX_LEN);
	CHECK(same_key(&p, ROOT, ROOT) == 1);
	CHECK(T.L.ctx_len > KEY_HEX_LEN);
}

static void
test_key_inputs(void)
{
	struct sc_policy p = policy(), q = policy();

	q.name = "other";
	CHECK(strcmp(key(&p, ROOT), key(&q, ROOT)) != 0);
	p.request_method = SL("GET", "HEAD", "REPORT");
	CHECK(same_key(&p, ROOT, RQ(.method = "REPORT")) == 0);
	CHECK(same_key(&p, ROOT, RQ(.tls = 1)) == 0);
	CHECK(same_key(&p, ROOT, RQ(.h = H("Host", "EXAMPLE.Com"))) == 1);
	CHECK(same_key(&p, ROOT, RQ(.h = H("host", "example.com"))) == 1);
	CHECK(same_key(&p, ROOT, RQ(.h = H("Host", "example.org"))) == 0);
	CHECK(same_key(&p, ROOT, RQ(.h = H("Host", "example.com:8080"))) == 0);
	CHECK(same_key(&p, RQ(.url = "/a"), RQ(.url = "/b")) == 0);
	CHECK(same_key(&p, RQ(.url = "/a"), RQ(.url = "/A")) == 0);
	/* headers that are not vary_headers are not in the key */
	CHECK(same_key(&p, ROOT, RQ(.h = H(HOST, "Accept", "text/html", "User-Agent", "x"))) == 1);
}

static void
test_key_query(void)
{
	struct sc_policy p = policy();

	CHECK(same_key(&p, RQ(.url = "/?a=1&b=2"), RQ(.url = "/?b=2&a=1")) == 1);
	CHECK(same_key(&p, RQ(.url = "/?a=%7e"), RQ(.url = "/?a=~")) == 1);
	CHECK(same_key(&p, RQ(.url = "/?a=%2f"), RQ(.url = "/?a=%2F")) == 1);
	CHECK(same_key(&p, RQ(.url = "/?&a=1&&"), RQ(.url = "/?a=1")) == 1);
	CHECK(same_key(&p, RQ(.url = "/?"), ROOT) == 1);
	CHECK(same_key(&p, RQ(.url = "/?a"), RQ(.url = "/?a=")) == 0);
	CHECK(same_key(&p, RQ(.url = "/?a=1"), ROOT) == 0);
	CHECK(same_key(&p, RQ(.url = "/?a=1"), RQ(.url = "/?a=2")) == 0);
	/* repeated parameters keep their order: origins read first or last */
	CHECK(same_key(&p, RQ(.url = "/?a=1&a=2"), RQ(.url = "/?a=2&a=1")) == 0);
	CHECK(same_key(&p, RQ(.url = "/?a=EVIL&a=1"), RQ(.url = "/?a=1&a=EVIL")) == 0);
	CHECK(same_key(&p, RQ(.url = "/?a=1&b=2&a=3"), RQ(.url = "/?b=2&a=1&a=3")) == 1);
	CHECK(same_key(&p, RQ(.url = "/?a=%2F"), RQ(.url = "/?a=/")) == 0);
	CHECK(same_key(&p, RQ(.url = "/?a=+"), RQ(.url = "/?a=%20")) == 0);
}

/* Every component is length-prefixed: bytes cannot move between them. */
static void
test_key_unambiguous(void)
{
	struct sc_policy p = policy();

	CHECK(same_key(&p, RQ(.url = "/?a=1%3Ab%3D2"), RQ(.url = "/?a=1&b=2")) == 0);
	CHECK(same_key(&p, RQ(.url = "/?a=1%26b%3D2"), RQ(.url = "/?a=1&b=2")) == 0);
	CHECK(same_key(&p, RQ(.url = "/a%3Fb"), RQ(.url = "/a?b")) == 0);
	CHECK(same_key(&p, RQ(.url = "/?a%3D1"), RQ(.url = "/?a=1")) == 0);
	CHECK(same_key(&p, RQ(.url = "/x"), RQ(.url = "/", .consumer = "x")) == 0);
	p.vary_headers = SL("X-A", "X-B");
	CHECK(same_key(&p, RQ(.h = H(HOST, "X-A", "1, 2")), RQ(.h = H(HOST, "X-A", "1", "X-B", "2"))) == 0);
	CHECK(same_key(&p, RQ(.h = H(HOST, "X-A", "")), RQ(.h = H(HOST, "X-B", ""))) == 0);
}

static void
test_key_vary_query_params(void)
{
	struct sc_policy p = policy();

	p.vary_query_params = SL("a", "c");
	CHECK(same_key(&p, RQ(.url = "/?a=1&b=2"), RQ(.url = "/?a=1&b=3")) == 1);
	CHECK(same_key(&p, RQ(.url = "/?a=1&b=2"), RQ(.url = "/?a=1")) == 1);
	CHECK(same_key(&p, RQ(.url = "/?c=1&a=1"), RQ(.url = "/?a=1&c=1&zz")) == 1);
	CHECK(same_key(&p, RQ(.url = "/?%61=1"), RQ(.url = "/?a=1")) == 1);
	CHECK(same_key(&p, RQ(.url = "/?a=1"), RQ(.url = "/?a=2")) == 0);
	CHECK(same_key(&p, RQ(.url = "/?a=1"), RQ(.url = "/?c=1")) == 0);
	CHECK(same_key(&p, RQ(.url = "/?b=1"), ROOT) == 1);
}

static void
test_key_vary_headers(void)
{
	struct sc_policy p = policy();

	p.vary_headers = SL("Accept-Language", "X-Tenant");
	CHECK(same_key(&p, RQ(.h = H(HOST, "Accept-Language", "en")),
	    RQ(.h = H(HOST, "Accept-Language", "fr"))) == 0);
	CHECK(same_key(&p, RQ(.h = H(HOST, "Accept-Language", "en")),
	    RQ(.h = H(HOST, "accept-language", "en"))) == 1);
	CHECK(same_key(&p, ROOT, RQ(.h = H(HOST, "Accept-Language", ""))) == 0);
	/* framed per field line: an origin may read only one of them */
	CHECK(same_key(&p, RQ(.h = H(HOST, "Accept-Language", "en", "Accept-Language", "fr")),
	    RQ(.h = H(HOST, "Accept-Language", "en, fr"))) == 0);
	CHECK(same_key(&p, RQ(.h = H(HOST, "X-Tenant", "a, EVIL")),
	    RQ(.h = H(HOST, "X-Tenant", "a", "X-Tenant", "EVIL"))) == 0);
	CHECK(same_key(&p, RQ(.h = H(HOST, "X-Tenant", "a", "X-Tenant", "EVIL")),
	    RQ(.h = H(HOST, "X-Tenant", "EVIL", "X-Tenant", "a"))) == 0);
	CHECK(same_key(&p, RQ(.h = H(HOST, "X-Tenant", "a", "Accept", "*/*", "X-Tenant", "b")),
	    RQ(.h = H(HOST, "X-Tenant", "a", "X-Tenant", "b"))) == 1);
	/* two lines of one header are not one line each of two */
	CHECK(same_key(&p, RQ(.h = H(HOST, "Accept-Language", "en", "Accept-Language", "fr")),
	    RQ(.h = H(HOST, "Accept-Language", "en", "X-Tenant", "fr"))) == 0);
	CHECK(same_key(&p, RQ(.h = H(HOST, "X-Tenant", "a")), RQ(.h = H(HOST, "X-Tenant", "b"))) == 0);
	CHECK(same_key(&p, RQ(.h = H(HOST, "X-Tenant", "a")), RQ(.h = H("X-Tenant", "a", HOST))) == 1);
}

static void
test_key_vary_headers_too_long(void)
{
	struct sc_policy p = policy();
	static char big[9000];

	memset(big, 'x', sizeof(big) - 1);
	p.vary_headers = SL("X-Big");
	CHECK(keyerr(&p, RQ(.h = H(HOST, "X-Big", big))) == PKE_TOO_LONG);
	p.vary_headers = SL("X-Other");
	CHECK(lookup(&p, RQ(.h = H(HOST, "X-Big", big))) == PA_FETCH);
}

static void
test_key_json_fields(void)
{
	struct sc_policy p = policy();
	const struct rq *id1 = RQ(.method = "POST", .body = "{\"id\":1}");

	p.request_method = SL("GET", "POST");
	p.vary_body_json_fields = SL("id");
	CHECK(same_key(&p, id1, RQ(.method = "POST", .body = "{\"id\":2}")) == 0);
	CHECK(same_key(&p, id1, RQ(.method = "POST", .body = "{\"x\":5, \"id\":1}")) == 1);
	CHECK(same_key(&p, id1, RQ(.method = "POST", .body = "{\"id\":\"1\"}")) == 0);
	CHECK(same_key(&p, id1, RQ(.method = "POST", .body = "{\"id\":1.0}")) == 0);
	CHECK(same_key(&p, RQ(.method = "POST", .body = "{}"),
	    RQ(.method = "POST", .body = "{\"id\":null}")) == 0);
	/* objects and arrays are part of the key, canonically encoded */
	CHECK(same_key(&p, RQ(.method = "POST", .body = "{}"),
	    RQ(.method = "POST", .body = "{\"id\":{\"a\":1}}")) == 0);
	CHECK(same_key(&p, RQ(.method = "POST", .body = "{\"id\":[1]}"),
	    RQ(.method = "POST", .body = "{\"id\":[2]}")) == 0);
	CHECK(same_key(&p, RQ(.method = "POST", .body = "{\"id\":{\"a\":1}}"),
	    RQ(.method = "POST", .body = "{\"id\":{\"a\":\"EVIL\"}}")) == 0);
	CHECK(same_key(&p, RQ(.method = "POST", .body = "{\"id\":[1]}"),
	    RQ(.method = "POST", .body = "{\"id\":\"[1]\"}")) == 0);
	CHECK(same_key(&p, RQ(.method = "POST", .body = "{\"id\":{\"a\":1,\"b\":[\"x\"]}}"),
	    RQ(.method = "POST", .body = "{ \"id\" : { \"a\" : 1 , \"b\" : [ \"\\u0078\" ] } }")) == 1);
	CHECK(same_key(&p, RQ(.method = "POST", .body = "{\"id\":{\"a\":1,\"b\":2}}"),
	    RQ(.method = "POST", .body = "{\"id\":{\"b\":2,\"a\":1}}")) == 0);
	CHECK(keyerr(&p, RQ(.method = "POST")) == PKE_BODY);
	CHECK(keyerr(&p, RQ(.method = "POST", .body = "id=1")) == PKE_BODY);
	CHECK(keyerr(&p, RQ(.method = "POST", .body = "[1]")) == PKE_BODY);
	CHECK(keyerr(&p, ROOT) == PKE_BODY);
}

static void
test_key_consumer(void)
{
	struct sc_policy p = policy();

	CHECK(same_key(&p, ROOT, RQ(.consumer = "alice")) == 0);
	CHECK(same_key(&p, RQ(.consumer = "alice"), RQ(.consumer = "bob")) == 0);
	CHECK(same_key(&p, RQ(.consumer = "alice"), RQ(.consumer = "alice")) == 1);
	CHECK(same_key(&p, ROOT, RQ(.consumer = "")) == 1);
}

static void
test_key_url_and_host(void)
{
	struct sc_policy p = policy();
	const struct rq *x = RQ(.url = "/x");

	CHECK(same_key(&p, x, RQ(.url = "http://example.com/x")) == 1);
	CHECK(same_key(&p, x, RQ(.url = "http://EXAMPLE.com/x", .h = H("Host", "example.COM"))) == 1);
	CHECK(same_key(&p, x, RQ(.url = "http://example.com/x", .h = H("Other", "1"))) == 1);
	CHECK(same_key(&p, ROOT, RQ(.url = "http://example.com")) == 1);
	CHECK(keyerr(&p, RQ(.url = "http://example.org/x")) == PKE_HOST);
	CHECK(keyerr(&p, RQ(.h = H("Accept", "*/*"))) == PKE_HOST);
	CHECK(keyerr(&p, RQ(.h = H(HOST, HOST))) == PKE_HOST);
	CHECK(keyerr(&p, RQ(.h = H("Host", ""))) == PKE_HOST);
	CHECK(keyerr(&p, RQ(.url = "http://user@example.com/x")) == PKE_URL);
	CHECK(keyerr(&p, RQ(.url = "/x#frag")) == PKE_URL);
	CHECK(keyerr(&p, RQ(.url = "x")) == PKE_URL);
	CHECK(keyerr(&p, RQ(.url = "")) == PKE_URL);
	CHECK(keyerr(&p, RQ(.url = "http:/x")) == PKE_URL);
	CHECK(keyerr(&p, RQ(.url = "/a b")) == PKE_KEY_INPUT);
	CHECK(keyerr(&p, RQ(.url = "/?a=%zz")) == PKE_KEY_INPUT);
	CHECK(keyerr(&p, RQ(.h = H("Host", "exa mple.com"))) == PKE_KEY_INPUT);
}

static void
test_key_head_is_get(void)
{
	struct sc_policy p = policy();

	CHECK(same_key(&p, RQ(.url = "/x?a=1"), RQ(.method = "HEAD", .url = "/x?a=1")) == 1);
	CHECK((T.L.flags & PL_HEAD) != 0);
	CHECK(lookup(&p, ROOT) == PA_FETCH && (T.L.flags & PL_HEAD) == 0);
}

/* spoe-cache-ctl computes keys offline with policy_key(): the same key. */
static void
test_key_offline(void)
{
	struct sc_policy p = policy();
	struct pol_request rq;
	struct hdr h[8];
	size_t nh = 0;
	char hex[KEY_HEX_LEN + 1];
	const struct rq *r = RQ(.url = "/a?z=1&b=2", .tls = 1, .consumer = "c",
	    .h = H(HOST, "X-V", "1"));

	p.vary_headers = SL("X-V");
	CHECK(lookup(&p, r) == PA_FETCH);
	mkreq(r, &rq);
	CHECK(hdrs_parse(rq.hdrs, rq.hdrs_len, h, 8, &nh) == 0 && nh == 2);
	CHECK(policy_key(&p, &T.lim, &rq, h, nh, hex) == 0);
	CHECK(strcmp(hex, T.L.key) == 0);
}

/* No silent truncation: too many parameters or headers is a Bypass. */
static void
test_too_many(void)
{
	struct sc_policy p = policy();

	T.lim.max_query_params = 3;
	CHECK(lookup(&p, RQ(.url = "/?a&b&c")) == PA_FETCH);
	CHECK(keyerr(&p, RQ(.url = "/?a&b&c&d")) == PKE_TOO_MANY);
	CHECK(strcmp(T.L.why, "too many query parameters or headers") == 0);
	p.vary_query_params = SL("a");
	CHECK(keyerr(&p, RQ(.url = "/?a&b&c&d")) == PKE_TOO_MANY);
	T.lim.max_headers = 3;
	CHECK(lookup(&p, RQ(.h = H(HOST, "A", "1", "B", "2"))) == PA_FETCH);
	CHECK(lookup(&p, RQ(.h = H(HOST, "A", "1", "B", "2", "C", "3"))) == PA_BYPASS);
	CHECK(bypassed("too many headers", 0));
	/* and a response with too many headers is not stored */
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "A", "1", "B", "2"))) == SR_HEADERS);
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "A", "1"))) == PS_STORE);
}

/* Keys of requests without routing headers, bodies or absolute-form
 * targets, as the key code before issue 15 computed them: the entries
 * already stored stay valid. */
static void
test_key_unchanged(void)
{
	struct sc_policy p = policy(), v = policy(), j = policy();

	p.name = v.name = j.name = "default";
	CHECK(strcmp(key(&p, RQ(.url = "/api/items?b=2&a=1&c",
	    .h = H("Host", "example.com", "Accept", "*/*"))),
	    "ffdb24cb9aa869dba3dbd0bfe8f87b60e67c6c589251c32ce6dfe6384842691d") == 0);
	CHECK(strcmp(key(&p, RQ(.url = "/x", .tls = 1, .h = H("Host", "Example.COM"))),
	    "3d8fe60a8ac83874b88d14b4618a8760cf360a1d579f475e9beb3c3adcc03710") == 0);
	CHECK(strcmp(key(&p, RQ(.method = "HEAD", .url = "/x?q=%7e")),
	    "31d3f8b723b4ef902bfbdc9ef086a0a3838b205a57deeb76e48a684400f55c21") == 0);
	/* HTTP/2 as HAProxy gives it: absolute-form, same key as origin-form */
	CHECK(strcmp(key(&p, RQ(.url = "https://example.com/x", .tls = 1)),
	    "3d8fe60a8ac83874b88d14b4618a8760cf360a1d579f475e9beb3c3adcc03710") == 0);
	v.vary_headers = SL("Accept-Language", "X-Tenant");
	CHECK(strcmp(key(&v, RQ(.url = "/v", .h = H(HOST, "Accept-Language", "en, fr"))),
	    "5ed7c0a23c63b11bbd51a2693abbc25c46eec12f0eefd634ad8359486af804c0") == 0);
	CHECK(strcmp(key(&v, RQ(.url = "/v")),
	    "6437e93e5076539cd4c117065779704d424e5a075292d5eebd1b34b4964c3f8c") == 0);
	j.request_method = SL("GET", "HEAD", "POST");
	j.vary_body_json_fields = SL("id", "name");
	CHECK(strcmp(key(&j, RQ(.method = "POST", .url = "/j",
	    .body = "{\"id\":1,\"name\":\"x\\u0041\"}")),
	    "d18453a644aeb508f42cb38d01909f56dedabd9aeb2bf653a8aabb6733b596db") == 0);
	CHECK(strcmp(key(&j, RQ(.method = "POST", .url = "/j", .body = "{\"id\":true}")),
	    "b0fe1701cf837d7fe2893a8dce7ebaf07d200b5b37c7a5fde6f7cbda0e607572") == 0);
}

/* An absolute-form target is keyed on its own scheme and authority, and
 * only when they are the connection's and the Host header's. */
static void
test_key_absolute_form(void)
{
	struct sc_policy p = policy();
	const struct rq *x = RQ(.url = "/x"), *xs = RQ(.url = "/x", .tls = 1);

	CHECK(same_key(&p, x, RQ(.url = "http://example.com/x")) == 1);
	CHECK(same_key(&p, xs, RQ(.url = "https://example.com/x", .tls = 1)) == 1);
	CHECK(same_key(&p, xs, RQ(.url = "HTTPS://Example.com/x", .tls = 1)) == 1);
	CHECK(same_key(&p, x, RQ(.url = "http://example.com/x", .h = H("Accept", "*/*"))) == 1);
	/* another authority: its own key without Host, a Bypass against Host */
	CHECK(same_key(&p, x, RQ(.url = "http://other.example/x", .h = H("Accept", "*/*"))) == 0);
	CHECK(keyerr(&p, RQ(.url = "http://evil.example/x")) == PKE_HOST);
	CHECK(keyerr(&p, RQ(.url = "http://example.com:80/x")) == PKE_HOST);
	/* a scheme that is not the connection's: never the other scheme's entry */
	CHECK(keyerr(&p, RQ(.url = "https://example.com/x")) == PKE_SCHEME);
	CHECK(strcmp(T.L.why, "absolute URL's scheme is not the connection's") == 0);
	CHECK(keyerr(&p, RQ(.url = "http://example.com/x", .tls = 1)) == PKE_SCHEME);
	CHECK(keyerr(&p, RQ(.url = "ftp://example.com/x")) == PKE_URL);
	CHECK(keyerr(&p, RQ(.url = "httpx://example.com/x")) == PKE_URL);
	CHECK(keyerr(&p, RQ(.url = "://example.com/x")) == PKE_URL);
}

/* The routing headers of issue 15 are keyed by default: a response one of
 * them shaped only reaches requests carrying the same values, and a
 * request without them keeps its key. */
static void
test_key_routing_headers(void)
{
	struct sc_policy p = policy(), none = policy();
	char plain[KEY_HEX_LEN + 1], name[64];

	memcpy(plain, key(&p, RQ(.url = "/r")), sizeof(plain));

	for (size_t i = 0; pol_routing_headers_default[i] != NULL; i++) {
		const char *h = pol_routing_headers_default[i];

		CHECK(same_key(&p, RQ(.url = "/r"), RQ(.url = "/r", .h = H(HOST, h, "evil"))) == 0);
		CHECK(same_key(&p, RQ(.url = "/r", .h = H(HOST, h, "evil")),
		    RQ(.url = "/r", .h = H(HOST, h, "evil"))) == 1);
		CHECK(same_key(&p, RQ(.url = "/r", .h = H(HOST, h, "a")),
		    RQ(.url = "/r", .h = H(HOST, h, "b"))) == 0);
		for (size_t k = 0; h[k] != '\0' && k < sizeof(name) - 1; k++)
			name[k] = (char)(h[k] >= 'A' && h[k] <= 'Z' ? h[k] + 32 : h[k]);
		name[strlen(h)] = '\0';
		CHECK(same_key(&p, RQ(.url = "/r", .h = H(HOST, h, "v")),
		    RQ(.url = "/r", .h = H(HOST, name, "v"))) == 1);
	}
	CHECK(strcmp(key(&p, RQ(.url = "/r")), plain) == 0);
	CHECK(same_key(&p, RQ(.url = "/r"), RQ(.url = "/r", .h = H(HOST, "X-Forwarded-For", "1.2.3.4"))) == 1);
	/* framed per field line, in message order */
	CHECK(same_key(&p, RQ(.h = H(HOST, "Forwarded", "host=a, host=b")),
	    RQ(.h = H(HOST, "Forwarded", "host=a", "Forwarded", "host=b"))) == 0);
	CHECK(same_key(&p, RQ(.h = H(HOST, "X-Forwarded-Host", "a", "X-Forwarded-Proto", "https")),
	    RQ(.h = H(HOST, "X-Forwarded-Proto", "https", "X-Forwarded-Host", "a"))) == 0);
	/* a routing header is not a vary header of the same value */
	none.key_routing_headers = SL("X-Forwarded-Host");
	none.vary_headers = SL("X-Forwarded-Host");
	p.vary_headers = SL("X-Forwarded-Host");
	p.key_routing_headers = (struct sc_strlist){ NULL, 0 };
	CHECK(strcmp(key(&p, RQ(.h = H(HOST, "X-Forwarded-Host", "a"))),
	    key(&none, RQ(.h = H(HOST, "X-Forwarded-Host", "a")))) != 0);
	/* an empty list drops them (a trusted load balancer sets them) */
	p = policy();
	p.key_routing_headers = (struct sc_strlist){ NULL, 0 };
	CHECK(strcmp(key(&p, RQ(.url = "/r", .h = H(HOST, "X-Forwarded-Host", "evil"))), plain) == 0);
	/* a list of one keeps only that one */
	p.key_routing_headers = SL("Forwarded");
	CHECK(strcmp(key(&p, RQ(.url = "/r", .h = H(HOST, "X-Forwarded-Host", "evil"))), plain) == 0);
	CHECK(strcmp(key(&p, RQ(.url = "/r", .h = H(HOST, "forwarded", "for=x"))), plain) != 0);
}

/* routing_headers = "bypass": a request carrying one is not cached. */
static void
test_routing_headers_bypass(void)
{
	struct sc_policy p = policy(), k = policy();

	p.routing_bypass = 1;
	CHECK(lookup(&p, RQ(.url = "/r", .h = H(HOST, "X-Forwarded-Host", "evil"))) == PA_BYPASS);
	CHECK(bypassed("routing header", 0));
	CHECK(lookup(&p, RQ(.url = "/r", .h = H(HOST, "x-http-method-override", "DELETE"))) == PA_BYPASS);
	CHECK(lookup(&p, RQ(.url = "/r", .h = H(HOST, "X-Forwarded-For", "1.2.3.4"))) == PA_FETCH);
	/* without one: the same key as a policy that keys them */
	CHECK(same_key(&p, RQ(.url = "/r"), RQ(.url = "/r")) == 1);
	CHECK(strcmp(key(&p, RQ(.url = "/r")), key(&k, RQ(.url = "/r"))) == 0);
	/* the store half of a request that carried one never runs: no ctx */
	CHECK(lookup(&p, RQ(.h = H(HOST, "Forwarded", "host=x"))) == PA_BYPASS && T.L.ctx_len == 0);
	p.key_routing_headers = SL("X-Custom-Route");
	CHECK(lookup(&p, RQ(.h = H(HOST, "X-Forwarded-Host", "x"))) == PA_FETCH);
	CHECK(lookup(&p, RQ(.h = H(HOST, "x-custom-route", "x"))) == PA_BYPASS);
}

/* A body the key does not hold must not shape what it stores. */
static void
test_request_body_bypass(void)
{
	struct sc_policy p = policy(), j = policy();
	const char *why = "request body not in the key";

	CHECK(lookup(&p, RQ(.h = H(HOST, "Content-Length", "5"))) == PA_BYPASS && bypassed(why, 0));
	CHECK(lookup(&p, RQ(.method = "HEAD", .h = H(HOST, "Content-Length", "1"))) == PA_BYPASS);
	CHECK(lookup(&p, RQ(.h = H(HOST, "Transfer-Encoding", "chunked"))) == PA_BYPASS);
	CHECK(bypassed(why, 0));
	CHECK(lookup(&p, RQ(.h = H(HOST, "transfer-encoding", "identity"))) == PA_BYPASS);
	CHECK(lookup(&p, RQ(.h = H(HOST, "Content-Length", "x"))) == PA_BYPASS);
	CHECK(lookup(&p, RQ(.h = H(HOST, "Content-Length", "0", "Content-Length", "3"))) == PA_BYPASS);
	CHECK(lookup(&p, RQ(.body = "EVIL")) == PA_BYPASS && bypassed(why, 0));
	/* no body: cached as before, with the same key */
	CHECK(same_key(&p, ROOT, RQ(.h = H(HOST, "Content-Length", "0"))) == 1);
	CHECK(same_key(&p, ROOT, RQ(.h = H(HOST, "Content-Length", "00"))) == 1);
	CHECK(same_key(&p, ROOT, RQ(.body = "", .blen = 0)) == 1);
	/* a policy that caches POST: the same rule */
	p.request_method = SL("GET", "POST");
	CHECK(lookup(&p, RQ(.method = "POST", .body = "x", .h = H(HOST, "Content-Length", "1"))) ==
	    PA_BYPASS && bypassed(why, 0));
	CHECK(lookup(&p, RQ(.method = "POST", .h = H(HOST, "Content-Length", "0"))) == PA_FETCH);
	/* the force header does not lift it */
	p = policy();
	p.allow_force_cache_header = 1;
	CHECK(lookup(&p, RQ(.method = "POST", .h = H(HOST, "X-Proxy-Cache-Memcached-Force", "true",
	    "Content-Length", "4"))) == PA_BYPASS && bypassed(why, 0));
	/* an unsafe method with a body still invalidates */
	p = policy();
	CHECK(lookup(&p, RQ(.method = "POST", .body = "x")) == PA_INVALIDATE);
	/* a policy keyed on body fields keys it, whole bodies only */
	j.request_method = SL("GET", "POST");
	j.vary_body_json_fields = SL("q");
	CHECK(lookup(&j, RQ(.method = "POST", .body = "{\"q\":1}",
	    .h = H(HOST, "Content-Length", "7"))) == PA_FETCH);
	CHECK(lookup(&j, RQ(.body = "{\"q\":1}", .h = H(HOST, "Transfer-Encoding", "chunked"))) ==
	    PA_FETCH);
	CHECK(keyerr(&j, RQ(.method = "POST", .body = "{\"q\":1}",
	    .h = H(HOST, "Content-Length", "70"))) == PKE_BODY);
	CHECK(keyerr(&j, RQ(.method = "POST", .body = "{\"q\":1}",
	    .h = H(HOST, "Content-Length", "7", "Content-Length", "8"))) == PKE_BODY);
}

/* Vary and routing header lines are bounded; beyond that, a Bypass. */
static void
test_key_lines_bounded(void)
{
	struct sc_policy p = policy();
	const char *h[2 * (POL_KEY_LINES + 2) + 1];
	size_t n = 0, i;

	T.lim.max_headers = POL_MAX_HEADERS;
	h[n++] = "Host";
	h[n++] = "example.com";
	for (i = 0; i < POL_KEY_LINES; i++) {
		h[n++] = "X-Forwarded-Host";
		h[n++] = "x";
	}
	h[n] = NULL;
	CHECK(lookup(&p, RQ(.h = h)) == PA_FETCH);
	h[n++] = "Forwarded";
	h[n++] = "y";
	h[n] = NULL;
	CHECK(keyerr(&p, RQ(.h = h)) == PKE_TOO_MANY);
	p.vary_headers = SL("X-Forwarded-Host");
	h[n - 2] = "X-Other";
	CHECK(keyerr(&p, RQ(.h = h)) == PKE_TOO_MANY);	/* 256 vary + 256 routing lines */
	p.key_routing_headers = (struct sc_strlist){ NULL, 0 };
	CHECK(lookup(&p, RQ(.h = h)) == PA_FETCH);
}

/* ==== 4.3 policies ==== */

static void
test_unknown_policy(void)
{
	struct sc_policy p = policy(), q = policy();
	struct pol_request rq;
	const char *name = NULL;
	size_t nlen = 0;

	mkreq(ROOT, &rq);
	policy_request(NULL, &T.lim, &rq, &T.L);
	CHECK(bypassed("unknown policy", 1));
	rq.hdrs = NULL;
	policy_request(&p, &T.lim, &rq, &T.L);
	CHECK(bypassed("lookup message without method, url or hdrs", 1));
	T.rqh.n = 0;
	hb_list(&T.rqh, H(HOST));	/* no terminator */
	rq.hdrs = guarded(G_RQH, T.rqh.b, T.rqh.n);
	rq.hdrs_len = T.rqh.n;
	policy_request(&p, &T.lim, &rq, &T.L);
	CHECK(bypassed("malformed hdrs", 0));

	/* the store step: the ctx must be ours and name this policy */
	CHECK(lookup(&p, ROOT) == PA_FETCH);
	CHECK(policy_ctx_policy(T.L.ctx, T.L.ctx_len, &name, &nlen) == 0);
	CHECK(nlen == 1 && name != NULL && name[0] == 'p');
	CHECK(respond(NULL, HELLO, T0) == PS_BAD);
	q.name = "q";
	CHECK(respond(&q, HELLO, T0) == PS_BAD);
	T.L.ctx_len--;
	CHECK(policy_ctx_policy(T.L.ctx, T.L.ctx_len, &name, &nlen) == -1);
	CHECK(respond(&p, HELLO, T0) == PS_BAD);
	T.L.ctx_len++;
	T.L.ctx[0] ^= 0xff;
	CHECK(respond(&p, HELLO, T0) == PS_BAD);
	T.L.ctx[0] ^= 0xff;
	T.L.ctx[2] = 'G';	/* the key it carries is not hex */
	CHECK(respond(&p, HELLO, T0) == PS_BAD);
	T.L.ctx[2] = '0';
	CHECK(respond(&p, HELLO, T0) == PS_STORE);
	T.stored = 0;
	CHECK(!T.stored);
}

static void
test_method_not_allowed(void)
{
	struct sc_policy p = policy();

	CHECK(lookup(&p, RQ(.method = "OPTIONS")) == PA_BYPASS && bypassed("method", 0));
	CHECK(lookup(&p, RQ(.method = "TRACE")) == PA_BYPASS && bypassed("method", 0));
	/* methods are case-sensitive: "get" is an extension method, not known
	 * to be safe, so it invalidates (RFC 9111 4.4) */
	CHECK(lookup(&p, RQ(.method = "get")) == PA_INVALIDATE);
	CHECK(lookup(&p, RQ(.method = "HEAD")) == PA_FETCH);
	p.request_method = SL("GET");
	CHECK(lookup(&p, RQ(.method = "HEAD")) == PA_BYPASS && bypassed("method", 0));
}

/* RFC 9111 4.4: a successful unsafe request invalidates the GET entry. */
static void
test_unsafe_methods_invalidate(void)
{
	static const char *const methods[] = { "POST", "PUT", "DELETE", "PATCH" };
	static const int ok[] = { 200, 201, 204, 301, 303, 399 }, fail[] = { 100, 400, 404, 500, 503 };
	struct sc_policy p = policy();
	const char *get_key = key(&p, RQ(.url = "/x?a=1"));

	for (size_t m = 0; m < 4; m++) {
		CHECK(lookup(&p, RQ(.method = methods[m], .url = "/x?a=1")) == PA_INVALIDATE);
		CHECK(strcmp(T.L.key, get_key) == 0);
		for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
			CHECK(respond(&p, RS(.status = ok[i]), T0) == PS_INVALIDATE &&
			    strcmp(T.st.key, get_key) == 0);
		for (size_t i = 0; i < sizeof(fail) / sizeof(fail[0]); i++)
			CHECK(respond(&p, RS(.status = fail[i]), T0) == PS_NONE);
	}
	/* the whole story: stored, a failed POST keeps it, a good one drops it */
	CHECK(txn(&p, RQ(.url = "/x?a=1"), HELLO, RQ(.url = "/x?a=1"), T0 + 1) == PE_HIT);
	CHECK(lookup(&p, RQ(.method = "POST", .url = "/x?a=1")) == PA_INVALIDATE);
	CHECK(respond(&p, RS(.status = 500), T0 + 1) == PS_NONE);
	CHECK(get(&p, RQ(.url = "/x?a=1"), T0 + 2) == PE_HIT);
	CHECK(lookup(&p, RQ(.method = "DELETE", .url = "/x?a=1")) == PA_INVALIDATE);
	CHECK(respond(&p, RS(.status = 204), T0 + 2) == PS_INVALIDATE);
	CHECK(get(&p, RQ(.url = "/x?a=1"), T0 + 3) == PE_MISS);
	/* a policy that caches POST looks it up instead */
	p.request_method = SL("GET", "POST");
	CHECK(lookup(&p, RQ(.method = "POST")) == PA_FETCH);
}

static void
test_force_header(void)
{
	struct sc_policy p = policy_cc();
	const char *const *force = H(HOST, "X-Proxy-Cache-Memcached-Force", "true");
	const char *const *force_ns = H(HOST, "X-Proxy-Cache-Memcached-Force", "true",
	    "Cache-Control", "no-store");

	CHECK(lookup(&p, RQ(.method = "OPTIONS", .h = force)) == PA_BYPASS && bypassed("method", 0));
	p.allow_force_cache_header = 1;
	CHECK(lookup(&p, RQ(.method = "OPTIONS", .h = force)) == PA_FETCH);
	CHECK(lookup(&p, RQ(.method = "OPTIONS",
	    .h = H(HOST, "x-proxy-cache-memcached-force", "TRUE"))) == PA_FETCH);
	CHECK(lookup(&p, RQ(.method = "OPTIONS",
	    .h = H(HOST, "X-Proxy-Cache-Memcached-Force", "yes"))) == PA_BYPASS);
	CHECK(lookup(&p, RQ(.method = "OPTIONS",
	    .h = H(HOST, "X-Proxy-Cache-Memcached-Force", "truex"))) == PA_BYPASS);
	CHECK(lookup(&p, RQ(.method = "OPTIONS", .h = H(HOST))) == PA_BYPASS);
	/* it skips request no-cache / no-store too */
	CHECK(lookup(&p, RQ(.h = H(HOST, "Cache-Control", "no-store"))) == PA_BYPASS);
	CHECK(lookup(&p, RQ(.h = force_ns)) == PA_FETCH);
	CHECK(lookup(&p, RQ(.method = "POST", .h = force)) == PA_FETCH);
	/* response checks still apply */
	CHECK(refusal(&p, RQ(.method = "OPTIONS", .h = force), RS(.status = 500)) == SR_STATUS);
	CHECK(refusal(&p, RQ(.method = "OPTIONS", .h = force),
	    RS(.h = H("Content-Type", "text/html"))) == SR_CONTENT_TYPE);
	CHECK(refusal(&p, RQ(.h = force_ns), RS(.h = H(CT_TEXT, "Set-Cookie", "a=b"))) == SR_SET_COOKIE);
	CHECK(refusal(&p, RQ(.h = force_ns), RS(.h = H(CT_TEXT, "Cache-Control", "no-store"))) ==
	    SR_NO_STORE);
	CHECK(store(&p, RQ(.method = "OPTIONS", .h = force),
	    RS(.h = H(CT_TEXT, "Cache-Control", "max-age=60"))) == PS_STORE);
}

static void
test_response_codes(void)
{
	struct sc_policy p = policy();

	CHECK(store(&p, ROOT, RS(.status = 200)) == PS_STORE);
	CHECK(store(&p, ROOT, RS(.status = 301)) == PS_STORE);
	CHECK(store(&p, ROOT, RS(.status = 404)) == PS_STORE);
	CHECK(refusal(&p, ROOT, RS(.status = 302)) == SR_STATUS);
	CHECK(refusal(&p, ROOT, RS(.status = 203)) == SR_STATUS);
	CHECK(refusal(&p, ROOT, RS(.status = 500)) == SR_STATUS);
	CHECK(refusal(&p, ROOT, RS(.status = -1)) == SR_STATUS);
	codes(&p, CODES(500));
	CHECK(store(&p, ROOT, RS(.status = 500)) == PS_STORE);
	CHECK(refusal(&p, ROOT, RS(.status = 200)) == SR_STATUS);
	/* the stored status is replayed */
	CHECK(get(&p, ROOT, T0 + 1) == PE_HIT && T.hit.code == 500);
}

static void
test_content_types(void)
{
	struct sc_policy p = policy();

	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT))) == PS_STORE);
	CHECK(store(&p, ROOT, RS(.h = H("Content-Type", "application/json"))) == PS_STORE);
	CHECK(refusal(&p, ROOT, RS(.h = H("Content-Type", "text/html"))) == SR_CONTENT_TYPE);
	CHECK(refusal(&p, ROOT, RS(.h = H("Content-Type", "text/plainx"))) == SR_CONTENT_TYPE);
	CHECK(refusal(&p, ROOT, RS(.h = H("Content-Type", "text/plai"))) == SR_CONTENT_TYPE);
	CHECK(refusal(&p, ROOT, RS(.h = H("Content-Type", "application/json+x"))) == SR_CONTENT_TYPE);
	CHECK(refusal(&p, ROOT, RS(.h = H("X-Type", "text/plain"))) == SR_CONTENT_TYPE);
	/* a configured type with parameters matches that exact value */
	p.content_type = SL("application/json; charset=utf-8");
	CHECK(store(&p, ROOT, RS(.h = H("Content-Type", "application/json; charset=utf-8"))) ==
	    PS_STORE);
	CHECK(refusal(&p, ROOT, RS(.h = H("Content-Type", "application/json"))) == SR_CONTENT_TYPE);
	CHECK(refusal(&p, ROOT, RS(.h = H("Content-Type", "application/json; charset=latin1"))) ==
	    SR_CONTENT_TYPE);
	/* "*" allows any, and none */
	p.content_type = SL("text/html", "*");
	CHECK(store(&p, ROOT, RS(.h = H("Content-Type", "image/png"))) == PS_STORE);
	CHECK(store(&p, ROOT, RS(.h = H("X-None", "1"))) == PS_STORE);
}

/* ==== 4.4 HTTP semantics ==== */

static void
test_miss_then_hit(void)
{
	struct sc_policy p = policy();

	CHECK(lookup(&p, ROOT) == PA_FETCH);
	CHECK(fetch(T0) == PE_MISS);
	CHECK(T.hit.status == CS_MISS && !T.hit.serve && T.hit.note == NULL);
	CHECK(respond(&p, HELLO, T0) == PS_STORE);
	CHECK(strcmp(T.st.label, "Miss") == 0 && strcmp(T.st.key, T.L.key) == 0);
	CHECK(T.st.mc_ttl == 301);
	CHECK(get(&p, ROOT, T0 + 10) == PE_HIT);
	CHECK(T.hit.status == CS_HIT && T.hit.code == 200 && T.hit.age == 10);
	CHECK(hit_body_is("hello", 5));
	CHECK(hit_hdrs_are("Content-Type: text/plain\r\n",
	    "content-length: 5\r\nage: 10\r\nx-cache-status: Hit\r\n"));
	/* another URL, policy or scheme does not see it */
	CHECK(get(&p, RQ(.url = "/other"), T0 + 10) == PE_MISS);
	CHECK(get(&p, RQ(.tls = 1), T0 + 10) == PE_MISS);
}

static void
test_refresh(void)
{
	struct sc_policy p = policy();

	CHECK(txn(&p, ROOT, HELLO, ROOT, T0 + 299) == PE_HIT);
	CHECK(get(&p, ROOT, T0 + 300) == PE_REFRESH);
	CHECK(T.hit.status == CS_REFRESH && !T.hit.serve);
	CHECK(respond(&p, RS(.body = "new"), T0 + 300) == PS_STORE);
	CHECK(strcmp(T.st.label, "Refresh") == 0);
	CHECK(get(&p, ROOT, T0 + 310) == PE_HIT && T.hit.age == 10 && hit_body_is("new", 3));
}

static void
test_head(void)
{
	struct sc_policy p = policy();

	/* a HEAD miss stores nothing */
	CHECK(lookup(&p, RQ(.method = "HEAD")) == PA_FETCH && fetch(T0) == PE_MISS);
	CHECK(respond(&p, RS(.body = NULL), T0) == PS_NONE && strcmp(T.st.label, "Miss") == 0);
	CHECK(!T.stored);
	/* a HEAD hit is the GET entry without its body */
	CHECK(txn(&p, ROOT, HELLO, RQ(.method = "HEAD"), T0 + 1) == PE_HIT);
	CHECK(T.hit.code == 200 && T.hit.body == NULL && T.hit.blen == 0);
	CHECK(hit_has("content-length: 5") && hit_has("Content-Type: text/plain"));
}

static void
test_not_modified(void)
{
	struct sc_policy p = policy();
	const struct rs *tagged = RS(.body = "hello", .h = H(CT_TEXT, "ETag", "\"v1\"",
	    "Last-Modified", date(T0 - 100)));

	CHECK(txn(&p, ROOT, tagged, RQ(.h = H(HOST, "If-None-Match", "\"v1\"")), T0 + 10) ==
	    PE_NOT_MODIFIED);
	CHECK(T.hit.code == 304 && T.hit.status == CS_HIT && T.hit.serve && hit_body_is(NULL, 0));
	CHECK(hit_has("ETag: \"v1\"") && hit_has("age: 10") && !hit_has("content-length: 5"));
	CHECK(get(&p, RQ(.h = H(HOST, "If-None-Match", "W/\"v1\"")), T0 + 1) == PE_NOT_MODIFIED);
	CHECK(get(&p, RQ(.h = H(HOST, "If-None-Match", "\"v0\", \"v1\"")), T0 + 1) == PE_NOT_MODIFIED);
	CHECK(get(&p, RQ(.h = H(HOST, "If-None-Match", "*")), T0 + 1) == PE_NOT_MODIFIED);
	CHECK(get(&p, RQ(.method = "HEAD", .h = H(HOST, "If-None-Match", "\"v1\"")), T0 + 1) ==
	    PE_NOT_MODIFIED);
	CHECK(get(&p, RQ(.h = H(HOST, "If-None-Match", "\"v2\"")), T0 + 1) == PE_HIT);
	CHECK(T.hit.code == 200 && hit_body_is("hello", 5));
	CHECK(get(&p, RQ(.h = H(HOST, "If-None-Match", "v1")), T0 + 1) == PE_HIT);
	/* If-Modified-Since */
	CHECK(get(&p, RQ(.h = H(HOST, "If-Modified-Since", date(T0 - 100))), T0 + 1) ==
	    PE_NOT_MODIFIED);
	CHECK(get(&p, RQ(.h = H(HOST, "If-Modified-Since", date(T0))), T0 + 1) == PE_NOT_MODIFIED);
	CHECK(get(&p, RQ(.h = H(HOST, "If-Modified-Since", date(T0 - 101))), T0 + 1) == PE_HIT);
	CHECK(get(&p, RQ(.h = H(HOST, "If-Modified-Since", "yesterday")), T0 + 1) == PE_HIT);
	/* If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3) */
	CHECK(get(&p, RQ(.h = H(HOST, "If-None-Match", "\"v2\"", "If-Modified-Since", date(T0))),
	    T0 + 1) == PE_HIT);
	/* "*" matches an entry without an ETag; a tag does not */
	CHECK(txn(&p, ROOT, HELLO, RQ(.h = H(HOST, "If-None-Match", "*")), T0 + 1) ==
	    PE_NOT_MODIFIED);
	CHECK(get(&p, RQ(.h = H(HOST, "If-None-Match", "\"v1\"")), T0 + 1) == PE_HIT);
	/* without Last-Modified, If-Modified-Since is compared with Date, and
	 * without Date with when the entry was stored (RFC 9111 4.3.2) */
	CHECK(get(&p, RQ(.h = H(HOST, "If-Modified-Since", date(T0))), T0 + 1) == PE_NOT_MODIFIED);
	CHECK(get(&p, RQ(.h = H(HOST, "If-Modified-Since", date(T0 - 1))), T0 + 1) == PE_HIT);
	CHECK(txn(&p, ROOT, RS(.body = "hello", .h = H(CT_TEXT, "Date", date(T0 - 50))),
	    RQ(.h = H(HOST, "If-Modified-Since", date(T0 - 50))), T0 + 1) == PE_NOT_MODIFIED);
	CHECK(get(&p, RQ(.h = H(HOST, "If-Modified-Since", date(T0 - 51))), T0 + 1) == PE_HIT);
	CHECK(txn(&p, ROOT, RS(.body = "hello", .h = H(CT_TEXT, "Date", "junk")),
	    RQ(.h = H(HOST, "If-Modified-Since", date(T0 + 50))), T0 + 1) == PE_HIT);
	/* conditionals apply to a 200 only */
	CHECK(txn(&p, ROOT, RS(.status = 404, .h = H(CT_TEXT, "ETag", "\"v1\"")),
	    RQ(.h = H(HOST, "If-None-Match", "\"v1\"")), T0 + 1) == PE_HIT && T.hit.code == 404);
}

static void
test_only_if_cached(void)
{
	struct sc_policy p = policy_cc();
	const struct rq *oic = RQ(.h = H(HOST, "Cache-Control", "only-if-cached"));

	CHECK(get(&p, oic, T0) == PE_GATEWAY_TIMEOUT);
	CHECK(T.hit.serve && T.hit.code == 504 && hit_body_is(NULL, 0) && T.hit.status == CS_MISS);
	CHECK(hit_hdrs_are("", "content-length: 0\r\nx-cache-status: Miss\r\n"));
	CHECK(txn(&p, ROOT, RS(.body = "hello", .h = H(CT_TEXT, "Cache-Control", "max-age=300")),
	    oic, T0 + 10) == PE_HIT && hit_body_is("hello", 5));
	CHECK(get(&p, oic, T0 + 300) == PE_GATEWAY_TIMEOUT && T.hit.code == 504);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "only-if-cached, max-stale")), T0 + 300) ==
	    PE_HIT);
	/* without cache_control the directive means nothing */
	p.cache_control = 0;
	T.stored = 0;
	CHECK(get(&p, oic, T0) == PE_MISS && !T.hit.serve);
}

static void
test_request_no_cache(void)
{
	const char *const *const reqs[] = {
		H(HOST, "Cache-Control", "no-cache"),
		H(HOST, "Cache-Control", "no-store"),
		H(HOST, "Cache-Control", "max-age=10", "Cache-Control", "NO-CACHE"),
		H(HOST, "Pragma", "no-cache"),
	};
	struct sc_policy p = policy_cc();

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		p.cache_control = 1;
		CHECK(lookup(&p, RQ(.h = reqs[i])) == PA_BYPASS &&
		    bypassed("request no-store/no-cache", 0));
		p.cache_control = 0;
		CHECK(txn(&p, ROOT, HELLO, RQ(.h = reqs[i]), T0 + 10) == PE_HIT);
	}
	/* Pragma counts only without Cache-Control (RFC 9111 5.4) */
	p.cache_control = 1;
	CHECK(lookup(&p, RQ(.h = H(HOST, "Pragma", "no-cache", "Cache-Control", "max-age=10"))) ==
	    PA_FETCH);
}

/* Without cache_control the freshness lifetime is cache_ttl, whatever the
 * headers say. */
static void
test_freshness_cache_ttl(void)
{
	struct sc_policy p = policy();
	const struct rs *r = RS(.body = "hello", .h = H(CT_TEXT, "Cache-Control", "max-age=5",
	    "Expires", date(T0 - 10)));
	struct entry e;

	p.cache_ttl = 60;
	CHECK(txn(&p, ROOT, r, ROOT, T0 + 59) == PE_HIT);
	CHECK(stored(&e) && e.lifetime == 60 && e.stored_at == T0 && T.st.mc_ttl == 61);
	CHECK(get(&p, ROOT, T0 + 60) == PE_REFRESH);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-age=0")), T0 + 10) == PE_HIT);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-stale")), T0 + 70) == PE_REFRESH);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "min-fresh=100")), T0 + 10) == PE_HIT);
}

/* The lifetime of what the last store step stored, or -1. */
static int64_t
stored_lifetime(void)
{
	struct entry e;

	return T.st.action == PS_STORE && stored(&e) ? e.lifetime : -1;
}

/* The lifetime stored for response headers rh under p, or -1. */
static int64_t
lifetime(const struct sc_policy *p, const char *const *rh)
{
	struct entry e;

	if (store(p, ROOT, RS(.h = rh)) != PS_STORE || !stored(&e))
		return -1;
	return e.lifetime;
}

static void
test_freshness_response(void)
{
	struct sc_policy p = policy_cc();

	CHECK(lifetime(&p, H(CT_TEXT, "Cache-Control", "max-age=60")) == 60);
	CHECK(lifetime(&p, H(CT_TEXT, "Cache-Control", "max-age=60, s-maxage=30")) == 30);
	CHECK(lifetime(&p, H(CT_TEXT, "Cache-Control", "s-maxage=30", "Cache-Control", "max-age=60")) ==
	    30);
	CHECK(lifetime(&p, H(CT_TEXT, "Cache-Control", "max-age=10", "Expires", date(T0 + 500))) == 10);
	CHECK(lifetime(&p, H(CT_TEXT, "Date", date(T0), "Expires", date(T0 + 120))) == 120);
	CHECK(lifetime(&p, H(CT_TEXT, "Date", date(T0 - 100), "Expires", date(T0 + 20))) == 120);
	CHECK(lifetime(&p, H(CT_TEXT, "Expires", date(T0 + 50))) == 50);
	/* no freshness stated and no validator: nothing to serve fresh
	 * (RFC 9111 4.2.2; test_heuristic_freshness has the rest) */
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT))) == SR_ZERO_TTL);
	/* an Expires in the past, or not a date, is already stale */
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Expires", date(T0 - 1)))) == SR_ZERO_TTL);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Expires", "0"))) == SR_ZERO_TTL);
	p.storage_ttl = 600;
	CHECK(lifetime(&p, H(CT_TEXT, "Expires", "0")) == 0);
	CHECK(get(&p, ROOT, T0) == PE_REFRESH);
	/* and it is checked on every lookup */
	CHECK(txn(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "max-age=60")), ROOT, T0 + 59) ==
	    PE_HIT);
	CHECK(get(&p, ROOT, T0 + 60) == PE_REFRESH && T.hit.status == CS_REFRESH);
}

static void
test_freshness_request(void)
{
	struct sc_policy p = policy_cc();

	CHECK(lifetime(&p, H(CT_TEXT, "Cache-Control", "max-age=600")) == 600);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-age=50")), T0 + 100) == PE_REFRESH);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-age=100")), T0 + 100) == PE_HIT);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-age=0")), T0) == PE_HIT);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-age=0")), T0 + 1) == PE_REFRESH);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "min-fresh=500")), T0 + 100) == PE_HIT);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "min-fresh=501")), T0 + 100) == PE_REFRESH);
	/* stale by 30 */
	CHECK(lifetime(&p, H(CT_TEXT, "Cache-Control", "max-age=60")) == 60);
	CHECK(get(&p, ROOT, T0 + 90) == PE_REFRESH);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-stale=30")), T0 + 90) == PE_HIT);
	CHECK(T.hit.age == 90 && hit_has("age: 90") && hit_has("x-cache-status: Hit"));
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-stale=29")), T0 + 90) == PE_REFRESH);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-stale")), T0 + 90) == PE_HIT);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-stale")), T0 + 100 * DAY) == PE_HIT);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-stale, max-age=80")), T0 + 90) ==
	    PE_REFRESH);
}

/* must-revalidate, proxy-revalidate and s-maxage: never served stale. */
static void
test_never_stale(void)
{
	static const char *const cc[] = { "max-age=60, must-revalidate", "max-age=60, proxy-revalidate",
		"s-maxage=60" };
	const struct rq *any_stale = RQ(.h = H(HOST, "Cache-Control", "max-stale"));
	struct sc_policy p = policy_cc();

	for (size_t i = 0; i < sizeof(cc) / sizeof(cc[0]); i++) {
		CHECK(txn(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", cc[i])), any_stale, T0 + 59) ==
		    PE_HIT);
		CHECK(get(&p, any_stale, T0 + 90) == PE_REFRESH);
		CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-stale=1000")), T0 + 61) ==
		    PE_REFRESH);
	}
	CHECK(txn(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "max-age=60")), any_stale, T0 + 90) ==
	    PE_HIT);
}

/* Age on hits accounts for the upstream's Age. */
static void
test_age(void)
{
	struct sc_policy p = policy(), q = policy_cc();
	struct entry e;

	CHECK(txn(&p, ROOT, RS(.h = H(CT_TEXT, "Age", "20")), ROOT, T0 + 10) == PE_HIT);
	CHECK(stored(&e) && e.age0 == 20);
	CHECK(T.hit.age == 30 && hit_has("age: 30") && !hit_has("Age: 20"));
	CHECK(get(&p, ROOT, T0 + 279) == PE_HIT && T.hit.age == 299);
	CHECK(get(&p, ROOT, T0 + 280) == PE_REFRESH);
	CHECK(get(&p, ROOT, T0 - 50) == PE_HIT && T.hit.age == 20);	/* the clock went back */
	CHECK(txn(&p, ROOT, RS(.h = H(CT_TEXT, "Age", "junk")), ROOT, T0 + 10) == PE_HIT);
	CHECK(stored(&e) && e.age0 == 0 && T.hit.age == 10);
	CHECK(txn(&q, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "max-age=60", "Age", "50")), ROOT,
	    T0 + 9) == PE_HIT && T.hit.age == 59);
	CHECK(get(&q, ROOT, T0 + 10) == PE_REFRESH);
	/* a request max-age is compared with the whole age too */
	CHECK(get(&q, RQ(.h = H(HOST, "Cache-Control", "max-age=54")), T0 + 4) == PE_HIT &&
	    T.hit.age == 54);
	CHECK(get(&q, RQ(.h = H(HOST, "Cache-Control", "max-age=54")), T0 + 5) == PE_REFRESH);
}

/* RFC 9111 3.5: Authorization, in a shared cache. */
static void
test_authorization(void)
{
	/* with cache_control, each also states a freshness (RFC 9111 4.2.2) */
	static const char *const allow[2][3] = { { "public", "s-maxage=60", "must-revalidate" },
		{ "public, max-age=60", "s-maxage=60", "must-revalidate, max-age=60" } };
	const struct rq *auth = RQ(.h = H(HOST, "Authorization", "Bearer x"));
	struct sc_policy pols[2] = { policy(), policy_cc() };
	const struct rs *fresh = RS(.body = "hello", .h = H(CT_TEXT, "Cache-Control", "max-age=60"));
	struct entry e;

	for (size_t k = 0; k < 2; k++) {
		struct sc_policy *p = &pols[k];

		CHECK(lookup(p, auth) == PA_FETCH && (T.L.flags & PL_AUTH));
		CHECK(refusal(p, auth, HELLO) == SR_AUTHORIZATION);
		CHECK(refusal(p, auth, RS(.h = H(CT_TEXT, "Cache-Control", "proxy-revalidate"))) ==
		    SR_AUTHORIZATION);
		CHECK(refusal(p, auth, RS(.h = H(CT_TEXT, "Cache-Control", "max-age=60"))) ==
		    SR_AUTHORIZATION);
		for (size_t i = 0; i < 3; i++) {
			CHECK(txn(p, auth, RS(.h = H(CT_TEXT, "Cache-Control", allow[k][i])), auth, T0 + 1) ==
			    PE_HIT);
			CHECK(stored(&e) && (e.flags & EF_AUTH_OK));
			CHECK(get(p, ROOT, T0 + 1) == PE_HIT);
		}
		/* stored for an anonymous request: not served to Authorization */
		CHECK(txn(p, ROOT, fresh, ROOT, T0 + 1) == PE_HIT);
		CHECK(stored(&e) && !(e.flags & EF_AUTH_OK));
		CHECK(get(p, auth, T0 + 1) == PE_MISS && T.hit.status == CS_MISS && !T.hit.serve);
		CHECK(txn(p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", allow[k][0])), auth, T0 + 1) ==
		    PE_HIT);
	}
}

static void
test_set_cookie(void)
{
	struct sc_policy pols[2] = { policy(), policy_cc() };

	for (size_t k = 0; k < 2; k++) {
		CHECK(refusal(&pols[k], ROOT, RS(.h = H(CT_TEXT, "Set-Cookie", "a=b"))) == SR_SET_COOKIE);
		CHECK(refusal(&pols[k], ROOT, RS(.h = H(CT_TEXT, "set-cookie", "a=b",
		    "Cache-Control", "public, max-age=60"))) == SR_SET_COOKIE);
		CHECK(!T.stored);
	}
}

static void
test_response_cache_control(void)
{
	struct sc_policy p = policy_cc();

	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "no-store"))) == SR_NO_STORE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "max-age=60, no-cache"))) ==
	    SR_NO_STORE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "no-cache=\"Set-Cookie\""))) ==
	    SR_NO_STORE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "private"))) == SR_PRIVATE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "public", "Cache-Control",
	    "private=\"X-A\""))) == SR_PRIVATE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Pragma", "no-cache"))) == SR_NO_STORE);
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "Pragma", "no-cache", "Cache-Control",
	    "max-age=60"))) == PS_STORE);
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "public, max-age=60"))) == PS_STORE);
	/* without cache_control, no-cache is not a reason to refuse */
	p.cache_control = 0;
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "no-cache"))) == PS_STORE);
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "Pragma", "no-cache"))) == PS_STORE);
}

/* Whatever cache_control says, private and no-store are never stored
 * (unlike Kong, which ignores them with cache_control off). */
static void
test_private_no_store_always(void)
{
	struct sc_policy p = policy();

	CHECK(p.cache_control == 0);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "private"))) == SR_PRIVATE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "no-store"))) == SR_NO_STORE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "max-age=60, Private"))) ==
	    SR_PRIVATE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "private=\"Set-Cookie\""))) ==
	    SR_PRIVATE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "public",
	    "cache-control", "NO-STORE"))) == SR_NO_STORE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "no-store, s-maxage=60"))) ==
	    SR_NO_STORE);
	CHECK(!T.stored);
	/* and nothing is served from what was refused */
	CHECK(get(&p, ROOT, T0 + 1) == PE_MISS);
	/* the force header does not lift response checks */
	p.allow_force_cache_header = 1;
	CHECK(refusal(&p, RQ(.h = H(HOST, "X-Proxy-Cache-Memcached-Force", "true")),
	    RS(.h = H(CT_TEXT, "Cache-Control", "private"))) == SR_PRIVATE);
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "public, max-age=5"))) == PS_STORE);
}

/* RFC 9111 4.1: a response with Vary is stored with what the request sent. */
static void
test_vary(void)
{
	static const uint8_t record[] = "\x0f" "accept-encoding" "\x01\x00\x04" "gzip";
	struct sc_policy p = policy();
	const struct rs *vary_ae = RS(.h = H(CT_TEXT, "Vary", "Accept-Encoding"));
	const struct rq *gzip = RQ(.h = H(HOST, "Accept-Encoding", "gzip"));
	struct entry e;

	CHECK(txn(&p, gzip, vary_ae, gzip, T0 + 1) == PE_HIT);
	CHECK(stored(&e) && e.vlen == sizeof(record) - 1 && memcmp(e.vary, record, e.vlen) == 0);
	CHECK(get(&p, RQ(.h = H(HOST, "accept-encoding", "gzip")), T0 + 1) == PE_HIT);
	CHECK(get(&p, RQ(.h = H(HOST, "Accept-Encoding", "br")), T0 + 1) == PE_MISS);
	CHECK(T.hit.status == CS_MISS && !T.hit.serve);
	CHECK(get(&p, ROOT, T0 + 1) == PE_MISS);
	CHECK(get(&p, RQ(.h = H(HOST, "Accept-Encoding", "gzip", "Accept-Encoding", "br")), T0 + 1) ==
	    PE_MISS);
	/* stored for a request without the header: matches only its absence */
	CHECK(txn(&p, ROOT, vary_ae, ROOT, T0 + 1) == PE_HIT);
	CHECK(get(&p, RQ(.h = H(HOST, "Accept-Encoding", "")), T0 + 1) == PE_MISS);
	CHECK(get(&p, gzip, T0 + 1) == PE_MISS);
	/* several fields, on several lines, all of them must match */
	CHECK(txn(&p, RQ(.h = H(HOST, "X-A", "1", "X-B", "2")), RS(.h = H(CT_TEXT, "Vary", "X-A",
	    "vary", " x-b ,")), RQ(.h = H("X-B", "2", HOST, "X-A", "1")), T0 + 1) == PE_HIT);
	CHECK(get(&p, RQ(.h = H(HOST, "X-A", "1", "X-B", "3")), T0 + 1) == PE_MISS);
	CHECK(get(&p, RQ(.h = H(HOST, "X-A", "1")), T0 + 1) == PE_MISS);
	/* Vary: * is never reusable */
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Vary", "*"))) == SR_VARY);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Vary", "Accept, *"))) == SR_VARY);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Vary", "Accept", "Vary", "*"))) == SR_VARY);
}

/* Request headers too big for the ctx: a response with Vary cannot be
 * stored for them, nor can such a request match an entry with Vary. */
static void
test_vary_big_request(void)
{
	static char big[POL_CTX_HDRS_MAX + 1];
	struct sc_policy p = policy();
	const struct rq *bigrq = RQ(.h = H(HOST, "X-Big", big));

	memset(big, 'x', sizeof(big) - 1);
	CHECK(refusal(&p, bigrq, RS(.h = H(CT_TEXT, "Vary", "Accept"))) == SR_VARY);
	CHECK(txn(&p, bigrq, HELLO, bigrq, T0 + 1) == PE_HIT);
	CHECK(txn(&p, ROOT, RS(.h = H(CT_TEXT, "Vary", "Accept")), bigrq, T0 + 1) == PE_MISS);
}

/* Hop-by-hop headers, those named in Connection and those the agent
 * computes at hit time are not stored. */
static void
test_stripped_headers(void)
{
	struct sc_policy p = policy();
	const char *const *rh = H(CT_TEXT, "Connection", "close, X-Secret", "X-Secret", "s",
	    "x-secret", "t", "Connection", "X-Other", "X-OTHER", "o", "Keep-Alive", "timeout=5",
	    "Proxy-Connection", "keep-alive", "TE", "trailers", "Trailer", "X-T", "Upgrade", "h2c",
	    "Proxy-Authenticate", "Basic", "Proxy-Authorization", "x", "Age", "5",
	    "X-Cache-Status", "Hit", "x-cache-key", "forged", "X-Cache-Tier", "L1", "X-Keep", "1",
	    "X-Secret-2", "kept");

	CHECK(txn(&p, ROOT, RS(.h = rh, .body = "hello"), ROOT, T0) == PE_HIT);
	CHECK(stored_hdrs_are("Content-Type: text/plain\r\nX-Keep: 1\r\nX-Secret-2: kept\r\n"));
	CHECK(hit_hdrs_are("Content-Type: text/plain\r\nX-Keep: 1\r\nX-Secret-2: kept\r\n",
	    "content-length: 5\r\nage: 5\r\nx-cache-status: Hit\r\n"));
}

/* Only a body proven complete: Content-Length, once, equal to its length. */
static void
test_body_length(void)
{
	struct sc_policy p = policy();

	CHECK(store(&p, ROOT, RS(.body = "hello", .raw = 1, .h = H(CT_TEXT, "Content-Length", "5"))) ==
	    PS_STORE);
	CHECK(store(&p, ROOT, RS(.body = NULL)) == PS_STORE);
	CHECK(refusal(&p, ROOT, RS(.body = "hell", .raw = 1, .h = H(CT_TEXT, "Content-Length", "5"))) ==
	    SR_LENGTH);
	CHECK(refusal(&p, ROOT, RS(.body = NULL, .raw = 1, .h = H(CT_TEXT, "Content-Length", "5"))) ==
	    SR_LENGTH);
	CHECK(refusal(&p, ROOT, RS(.body = "hello", .raw = 1, .h = H(CT_TEXT, "Content-Length", "4"))) ==
	    SR_LENGTH);
	CHECK(refusal(&p, ROOT, RS(.body = "hello", .raw = 1, .h = H(CT_TEXT))) == SR_LENGTH);
	CHECK(refusal(&p, ROOT, RS(.body = "hello", .raw = 1, .h = H(CT_TEXT, "Content-Length", "5",
	    "Content-Length", "5"))) == SR_LENGTH);
	CHECK(refusal(&p, ROOT, RS(.body = "hello", .raw = 1, .h = H(CT_TEXT, "Content-Length", "5x"))) ==
	    SR_LENGTH);
	CHECK(refusal(&p, ROOT, RS(.body = "hello", .raw = 1, .h = H(CT_TEXT, "Content-Length", "+5"))) ==
	    SR_LENGTH);
	CHECK(refusal(&p, ROOT, RS(.body = "hello", .h = H(CT_TEXT, "Transfer-Encoding", "chunked"))) ==
	    SR_LENGTH);
}

/* One response header line made of (name, value) with explicit lengths. */
static enum pol_store_action
respond_with(const struct sc_policy *p, const char *name, size_t nlen, const char *val, size_t vlen)
{
	if (lookup(p, ROOT) != PA_FETCH)
		return PS_BAD;
	T.rsh.n = 0;
	hb_list(&T.rsh, H(CT_TEXT, "Content-Length", "5"));
	hb_add(&T.rsh, name, nlen, val, vlen);
	hb_end(&T.rsh);
	return respond_block(p, 200, &T.rsh, "hello", 5, T0);
}

#define RESPOND_WITH(p, n, v)	respond_with((p), (n), sizeof(n) - 1, (v), sizeof(v) - 1)

static void
test_unsafe_headers(void)
{
	struct sc_policy p = policy();
	struct pol_response rs;

	CHECK(RESPOND_WITH(&p, "Bad Name", "1") == PS_REFUSE && T.st.why == SR_HEADERS);
	CHECK(RESPOND_WITH(&p, "X-A:", "1") == PS_REFUSE && T.st.why == SR_HEADERS);
	CHECK(RESPOND_WITH(&p, "X-\xc3\xa9", "1") == PS_REFUSE && T.st.why == SR_HEADERS);
	CHECK(RESPOND_WITH(&p, "X-A", "a\r\nX-Injected: 1") == PS_REFUSE && T.st.why == SR_HEADERS);
	CHECK(RESPOND_WITH(&p, "X-A", "a\nb") == PS_REFUSE && T.st.why == SR_HEADERS);
	CHECK(RESPOND_WITH(&p, "X-A", "a\0b") == PS_REFUSE && T.st.why == SR_HEADERS);
	CHECK(RESPOND_WITH(&p, "X-A", "a\x7f") == PS_REFUSE && T.st.why == SR_HEADERS);
	CHECK(!T.stored);
	CHECK(RESPOND_WITH(&p, "X-A", "caf\xc3\xa9\tok") == PS_STORE);
	CHECK(stored_hdrs_are("Content-Type: text/plain\r\nX-A: caf\xc3\xa9\tok\r\n"));
	/* a block that is not one, or none */
	CHECK(lookup(&p, ROOT) == PA_FETCH);
	T.rsh.n = 0;
	hb_list(&T.rsh, H(CT_TEXT, "Content-Length", "0"));
	CHECK(respond_block(&p, 200, &T.rsh, NULL, 0, T0) == PS_REFUSE && T.st.why == SR_HEADERS);
	memset(&rs, 0, sizeof(rs));
	rs.ctx = T.L.ctx;
	rs.ctx_len = T.L.ctx_len;
	rs.status = 200;
	policy_response(&p, &T.lim, &rs, T0, T.max_ack, T.max_item, T.hbuf, sizeof(T.hbuf), &T.st);
	CHECK(T.st.action == PS_REFUSE && T.st.why == SR_HEADERS);
}

/* A hit must fit in one ACK (max_ack) and the entry in memcached (max_item). */
static void
test_too_big(void)
{
	struct sc_policy p = policy();
	size_t hl = strlen("Content-Type: text/plain\r\n"), bl = 5;

	T.max_ack = hl + bl + POL_ACK_SLACK;
	CHECK(store(&p, ROOT, HELLO) == PS_STORE);
	T.max_ack--;
	CHECK(refusal(&p, ROOT, HELLO) == SR_TOO_BIG);
	T.max_ack = 1 << 20;
	T.max_item = ENTRY_OVERHEAD + KEY_HEX_LEN + hl + bl;	/* the key is in the entry */
	CHECK(store(&p, ROOT, HELLO) == PS_STORE);
	T.max_item--;
	CHECK(refusal(&p, ROOT, HELLO) == SR_TOO_BIG);
}

/* memcached's TTL: storage_ttl, else the lifetime; past 30 days an
 * absolute time, as memcached reads it. */
static void
test_mc_ttl(void)
{
	struct sc_policy p = policy(), q = policy_cc();
	const struct rs *max60 = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=60"));

	CHECK(store(&p, ROOT, HELLO) == PS_STORE && T.st.mc_ttl == 301);
	p.storage_ttl = 3600;
	CHECK(store(&p, ROOT, HELLO) == PS_STORE && T.st.mc_ttl == 3601);
	p.storage_ttl = 30 * DAY;
	CHECK(store(&p, ROOT, HELLO) == PS_STORE && T.st.mc_ttl == 30 * DAY);
	p.storage_ttl = 30 * DAY + 1;
	CHECK(store(&p, ROOT, HELLO) == PS_STORE && T.st.mc_ttl == T0 + 30 * DAY + 1);
	CHECK(store(&q, ROOT, max60) == PS_STORE && T.st.mc_ttl == 61);
	q.storage_ttl = 10;
	CHECK(store(&q, ROOT, max60) == PS_STORE && T.st.mc_ttl == 11);
	q.storage_ttl = -1;
	CHECK(store(&q, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "max-age=3000000"))) == PS_STORE &&
	    T.st.mc_ttl == T0 + 3000000);
}

/* ---- collapsed forwarding and stale serving (issue 17) ---- */

/* The lookup of r, then what a fetch answered with meta flags mc finds. */
static int
get_mc(const struct sc_policy *p, const struct rq *r, unsigned mc, int64_t now)
{
	if (lookup(p, r) != PA_FETCH)
		return -1;
	T.L.mc = mc;
	return (int)fetch(now);
}

static void
test_collapsed_forwarding(void)
{
	struct sc_policy p = policy();
	const uint8_t empty[1] = { 0 };

	p.collapse_wait = 1000;
	/* a miss claims the fetch for a little longer than anyone waits */
	CHECK(lookup(&p, ROOT) == PA_FETCH && T.L.vivify == 2 && T.L.lock_ttl == 2);
	CHECK(lookup(&p, RQ(.method = "HEAD")) == PA_FETCH && T.L.vivify == 0);
	CHECK(lookup(&p, RQ(.h = H(HOST, "If-None-Match", "\"x\""))) == PA_FETCH && T.L.vivify == 0);
	p.collapse_wait = 2500;
	CHECK(lookup(&p, ROOT) == PA_FETCH && T.L.vivify == 4);
	p.collapse_wait = 1000;
	/* the empty item memcached made for us: go, and leave an entry or the pass marker */
	lookup(&p, ROOT);
	T.L.mc = MC_MF_WON;
	CHECK(fetch_bytes(empty, 0, T0) == PE_MISS && T.hit.status == CS_MISS);
	CHECK(respond(&p, RS(.status = 500, .body = "x"), T0) == PS_REFUSE && T.st.pass == 1);
	lookup(&p, ROOT);
	T.L.mc = MC_MF_WON;
	fetch_bytes(empty, 0, T0);
	CHECK(respond(&p, HELLO, T0) == PS_STORE && T.st.pass == 0 && T.st.unlock == 0);
	/* another's fetch: wait, then go when the wait is over */
	lookup(&p, ROOT);
	T.L.mc = MC_MF_LOST;
	CHECK(fetch_bytes(empty, 0, T0) == PE_WAIT);
	T.L.mc = 0;
	T.L.flags |= PL_POLL;
	CHECK(fetch_bytes(empty, 0, T0) == PE_WAIT);
	T.L.flags |= PL_WAIT_OVER;
	CHECK(fetch_bytes(empty, 0, T0) == PE_MISS);
	/* a waiter's own response is no one's to pass on */
	CHECK(respond(&p, RS(.status = 500, .body = "x"), T0) == PS_REFUSE && T.st.pass == 0);
	/* the pass marker: known not storable, go at once */
	lookup(&p, ROOT);
	T.L.flags |= PL_POLL;
	CHECK(fetch_bytes((const uint8_t *)POL_PASS_MARK, POL_PASS_LEN, T0) == PE_MISS &&
	    T.hit.reject == 0);
	/* a poll that finds the entry stored: a hit */
	CHECK(store(&p, ROOT, HELLO) == PS_STORE);
	lookup(&p, ROOT);
	T.L.flags |= PL_POLL;
	CHECK(fetch(T0 + 1) == PE_HIT && hit_body_is("hello", 5));
	/* a policy that does not wait: nobody waits, nobody claims */
	p.collapse_wait = 0;
	CHECK(lookup(&p, ROOT) == PA_FETCH && T.L.vivify == 0);
	T.L.mc = MC_MF_LOST;
	CHECK(fetch_bytes(empty, 0, T0) == PE_MISS);
}

static void
test_stale_while_revalidate(void)
{
	struct sc_policy p = policy_cc();
	const struct rs *swr = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=10, stale-while-revalidate=60"),
	    .body = "hello");
	struct entry e;

	/* kept for its freshness and its window (RFC 5861 3) */
	CHECK(store(&p, ROOT, swr) == PS_STORE && T.st.mc_ttl == 71);
	CHECK(stored(&e) && e.swr == 60 && e.sie == 0);
	CHECK(get(&p, ROOT, T0 + 5) == PE_HIT && T.hit.stale == PST_NONE);
	/* stale inside the window: one lookup takes the refresh lock ... */
	CHECK(get(&p, ROOT, T0 + 20) == PE_LOCK);
	T.L.lock = PLK_WON;
	CHECK(fetch(T0 + 20) == PE_REFRESH && T.hit.status == CS_REFRESH);
	CHECK(respond(&p, swr, T0 + 20) == PS_STORE && T.st.unlock == 1 &&
	    strcmp(T.st.label, "Refresh") == 0);
	/* ... and the others are served the stale entry, with its true Age */
	CHECK(store(&p, ROOT, swr) == PS_STORE);
	CHECK(get(&p, ROOT, T0 + 20) == PE_LOCK);
	T.L.lock = PLK_LOST;
	CHECK(fetch(T0 + 20) == PE_HIT && T.hit.stale == PST_SWR && T.hit.status == CS_HIT);
	CHECK(hit_has("age: 20") && hit_body_is("hello", 5));
	/* a waiting lookup that reads it again does not take the lock */
	T.L.lock = PLK_NONE;
	T.L.flags |= PL_POLL;
	CHECK(fetch(T0 + 20) == PE_REFRESH);
	/* past the window: refreshed, or waited for when the policy waits */
	CHECK(get(&p, ROOT, T0 + 71) == PE_REFRESH);
	p.collapse_wait = 1000;
	CHECK(get(&p, ROOT, T0 + 71) == PE_LOCK);
	T.L.lock = PLK_LOST;
	CHECK(fetch(T0 + 71) == PE_WAIT);
	/* a client asking for freshness is never served stale */
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-age=30")), T0 + 20) == PE_LOCK);
	T.L.lock = PLK_LOST;
	CHECK(fetch(T0 + 20) == PE_WAIT);
	p.collapse_wait = 0;
	/* never for an entry that must be revalidated (RFC 9111 5.2.2.2, 5.2.2.8, 5.2.2.10) */
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control",
	    "max-age=10, stale-while-revalidate=60, must-revalidate"), .body = "x")) == PS_STORE);
	CHECK(T.st.mc_ttl == 11 && stored(&e) && e.swr == 0);
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control",
	    "s-maxage=10, stale-while-revalidate=60"), .body = "x")) == PS_STORE && T.st.mc_ttl == 11);
	/* the policy's window when the response gives none; the response's otherwise */
	p.stale_while_revalidate = 30;
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "max-age=10"), .body = "x")) ==
	    PS_STORE && T.st.mc_ttl == 41);
	CHECK(store(&p, ROOT, swr) == PS_STORE && T.st.mc_ttl == 71);
	p.stale_if_error = 600;
	CHECK(store(&p, ROOT, swr) == PS_STORE && T.st.mc_ttl == 611 && stored(&e) && e.sie == 600);
	/* cache_control = false (Kong's): the response's directives are not read */
	p.cache_control = 0;
	p.stale_if_error = 0;
	CHECK(store(&p, ROOT, swr) == PS_STORE && T.st.mc_ttl == 300 + 30 + 1);
}

static void
test_soft_purge(void)
{
	struct sc_policy p = policy();

	CHECK(store(&p, ROOT, HELLO) == PS_STORE);
	/* marked stale (md I): the first reader refreshes, the others are served */
	CHECK(get_mc(&p, ROOT, MC_MF_STALE | MC_MF_WON, T0 + 1) == PE_REFRESH);
	CHECK(respond(&p, RS(.status = 500, .body = "x"), T0 + 1) == PS_REFUSE && T.st.pass == 1);
	CHECK(store(&p, ROOT, HELLO) == PS_STORE);
	CHECK(get_mc(&p, ROOT, MC_MF_STALE | MC_MF_LOST, T0 + 1) == PE_HIT &&
	    T.hit.stale == PST_PURGE);
	CHECK(get_mc(&p, ROOT, MC_MF_STALE, T0 + 1) == PE_HIT && T.hit.stale == PST_PURGE);
	/* an entry that must be revalidated is waited for instead */
	p.cache_control = 1;
	p.collapse_wait = 1000;
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "max-age=60, must-revalidate"),
	    .body = "x")) == PS_STORE);
	CHECK(get_mc(&p, ROOT, MC_MF_STALE | MC_MF_LOST, T0 + 1) == PE_WAIT);
	CHECK(get_mc(&p, ROOT, 0, T0 + 1) == PE_HIT);
}

static void
test_stale_if_error(void)
{
	struct sc_policy p = policy_cc();
	const struct rs *sie = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=10, stale-if-error=60"),
	    .body = "hello");
	struct pol_lookup L;
	struct entry e;

	CHECK(store(&p, ROOT, sie) == PS_STORE && T.st.mc_ttl == 71 && stored(&e) && e.sie == 60);
	/* stale: refreshed, and the ctx says a stale entry may stand in */
	CHECK(get(&p, ROOT, T0 + 20) == PE_REFRESH);
	CHECK(respond(&p, RS(.status = 503, .body = "down"), T0 + 20) == PS_STALE_IF_ERROR);
	CHECK(respond(&p, RS(.status = 500, .body = "x"), T0 + 20) == PS_STALE_IF_ERROR);
	CHECK(respond(&p, RS(.status = 501, .body = "x"), T0 + 20) == PS_REFUSE);
	/* the store step reads it again (RFC 5861 4): inside the window it is served */
	CHECK(policy_ctx_lookup(T.L.ctx, T.L.ctx_len, &L) == 0 && strcmp(L.key, T.L.key) == 0);
	L.flags |= PL_ERROR;
	T.L = L;
	CHECK(fetch(T0 + 20) == PE_HIT && T.hit.stale == PST_ERROR && hit_has("age: 20"));
	T.L = L;
	CHECK(fetch(T0 + 71) == PE_MISS && !T.hit.serve);
	CHECK(policy_ctx_lookup((const uint8_t *)"junk", 4, &L) == -1);
	/* never for an entry that must be revalidated */
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control",
	    "max-age=10, stale-if-error=60, must-revalidate"), .body = "x")) == PS_STORE);
	CHECK(stored(&e) && e.sie == 0);
	CHECK(get(&p, ROOT, T0 + 20) == PE_REFRESH);
	CHECK(respond(&p, RS(.status = 503, .body = "down"), T0 + 20) == PS_REFUSE);
}

static void
test_revalidate(void)
{
	struct sc_policy p = policy_cc();
	const struct rs *et = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=10", "ETag", "\"a\"",
	    "X-Old", "1"), .body = "hello");
	struct pol_response rs;
	struct entry e;
	uint8_t old[sizeof(T.val)];
	size_t oldlen;
	char hbuf[POL_REVAL_HBUF(sizeof(T.val), sizeof(struct hb))];

	/* kept past its freshness for stale_keep, to be revalidated */
	p.stale_keep = 600;
	CHECK(store(&p, ROOT, et) == PS_STORE && T.st.mc_ttl == 611);
	CHECK(store(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "max-age=10"), .body = "x")) ==
	    PS_STORE && T.st.mc_ttl == 11);
	CHECK(store(&p, ROOT, et) == PS_STORE);
	/* stale: refreshed with its validator, and carrying the entry (4.3.1) */
	CHECK(get(&p, ROOT, T0 + 20) == PE_REFRESH && T.hit.reval && !T.hit.serve);
	CHECK(T.hit.etag_len == 3 && memcmp(T.hit.etag, "\"a\"", 3) == 0 && T.hit.lastmod == NULL);
	CHECK(T.hit.code == 200 && hit_body_is("hello", 5));
	/* not for a request that cannot claim the refresh (its own validator) */
	CHECK(get(&p, RQ(.h = H(HOST, "If-None-Match", "\"b\"")), T0 + 20) == PE_REFRESH &&
	    !T.hit.reval);
	/* the 304 (4.3.4): its fields replace the stored ones, freshness renews */
	CHECK(get(&p, ROOT, T0 + 20) == PE_REFRESH && T.hit.reval);
	CHECK(respond(&p, RS(.status = 304, .h = H("Cache-Control", "max-age=100", "X-New", "2",
	    "Content-Length", "99"), .raw = 1), T0 + 20) == PS_REVALIDATE);
	memcpy(old, T.val, T.vlen);
	oldlen = T.vlen;
	memset(&rs, 0, sizeof(rs));
	rs.ctx = T.L.ctx;
	rs.ctx_len = T.L.ctx_len;
	rs.status = 304;
	rs.hdrs = T.rsh.b;
	rs.hdrs_len = T.rsh.n;
	policy_revalidate(&p, &T.lim, &rs, old, oldlen, T0 + 20, T.max_ack, T.max_item, hbuf,
	    sizeof(hbuf), &T.st);
	CHECK(T.st.action == PS_STORE && strcmp(T.st.label, "Refresh") == 0);
	CHECK(T.st.e.lifetime == 100 && T.st.e.stored_at == T0 + 20 && T.st.e.blen == 5);
	CHECK(has_line(T.st.e.hdrs, T.st.e.hlen, "Cache-Control: max-age=100"));
	CHECK(!has_line(T.st.e.hdrs, T.st.e.hlen, "Cache-Control: max-age=10"));
	CHECK(has_line(T.st.e.hdrs, T.st.e.hlen, "X-New: 2") &&
	    has_line(T.st.e.hdrs, T.st.e.hlen, "X-Old: 1") &&
	    has_line(T.st.e.hdrs, T.st.e.hlen, "ETag: \"a\""));
	/* the merged response goes through the storage rules again */
	rs.hdrs = NULL;
	T.rsh.n = 0;
	hb_list(&T.rsh, H("Cache-Control", "no-store"));
	hb_end(&T.rsh);
	rs.hdrs = T.rsh.b;
	rs.hdrs_len = T.rsh.n;
	policy_revalidate(&p, &T.lim, &rs, old, oldlen, T0 + 20, T.max_ack, T.max_item, hbuf,
	    sizeof(hbuf), &T.st);
	CHECK(T.st.action == PS_REFUSE && T.st.why == SR_NO_STORE);
	/* nothing to update: not an entry of this key */
	policy_revalidate(&p, &T.lim, &rs, (const uint8_t *)"junk", 4, T0 + 20, T.max_ack,
	    T.max_item, hbuf, sizeof(hbuf), &T.st);
	CHECK(T.st.action == PS_BAD);
	/* the revalidated entry is served as it is, labelled Refresh */
	T.L.flags |= PL_REVALIDATED;
	CHECK(fetch_bytes(old, oldlen, T0 + 20) == PE_HIT && T.hit.status == CS_REFRESH &&
	    stored(&e));
}

static void
test_zero_ttl(void)
{
	struct sc_policy p = policy(), q = policy_cc();
	const struct rs *max0 = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=0"));

	p.cache_ttl = 0;
	CHECK(refusal(&p, ROOT, HELLO) == SR_ZERO_TTL);
	CHECK(refusal(&q, ROOT, max0) == SR_ZERO_TTL);
	CHECK(refusal(&q, ROOT, RS(.h = H(CT_TEXT, "Cache-Control", "s-maxage=0, max-age=60"))) ==
	    SR_ZERO_TTL);
	/* kept for max-stale clients when storage_ttl says so */
	q.storage_ttl = 60;
	CHECK(lifetime(&q, max0->h) == 0 && T.st.mc_ttl == 61);
	CHECK(get(&q, ROOT, T0) == PE_REFRESH);
	CHECK(get(&q, RQ(.h = H(HOST, "Cache-Control", "max-stale")), T0 + 30) == PE_HIT);
}

/* ==== 4.5 the stored entry ==== */

static void
test_entry_unusable(void)
{
	struct sc_policy p = policy();
	uint8_t bad[sizeof(T.val)];

	CHECK(txn(&p, ROOT, HELLO, ROOT, T0 + 1) == PE_HIT && T.hit.note == NULL);
	memcpy(bad, T.val, T.vlen);
	bad[3] = ENTRY_VERSION + 1;
	CHECK(fetch_bytes(bad, T.vlen, T0 + 1) == PE_MISS && T.hit.status == CS_MISS);
	CHECK(T.hit.note != NULL && strcmp(T.hit.note, "another format version") == 0);
	memcpy(bad, T.val, T.vlen);
	bad[T.vlen - 6] ^= 0x01;
	CHECK(fetch_bytes(bad, T.vlen, T0 + 1) == PE_MISS && !T.hit.serve);
	CHECK(T.hit.note != NULL && strcmp(T.hit.note, "corrupt") == 0);
	CHECK(fetch_bytes(T.val, T.vlen - 1, T0 + 1) == PE_MISS && strcmp(T.hit.note, "corrupt") == 0);
	CHECK(fetch_bytes((const uint8_t *)"hello", 5, T0 + 1) == PE_MISS &&
	    strcmp(T.hit.note, "corrupt") == 0);
	/* an empty value is a fetch in progress (collapsed forwarding), not
	 * an entry: without collapse_wait nobody waits for it */
	CHECK(fetch_bytes(T.val, 0, T0 + 1) == PE_MISS && T.hit.note == NULL);
	/* and is overwritten by the response to this miss */
	CHECK(respond(&p, RS(.body = "again"), T0 + 1) == PS_STORE && strcmp(T.st.label, "Miss") == 0);
	CHECK(get(&p, ROOT, T0 + 2) == PE_HIT && hit_body_is("again", 5));
}

/* What the last lookup gets for an entry written by someone else. */
static enum pol_answer
fetch_entry(int64_t stored_at, int64_t lifetime, int64_t age0, int64_t now)
{
	struct entry e;
	uint8_t v[ENTRY_OVERHEAD + KEY_HEX_LEN + 16];
	int n;

	memset(&e, 0, sizeof(e));
	e.stored_at = stored_at;
	e.lifetime = lifetime;
	e.age0 = age0;
	e.status = 200;
	e.body = (const uint8_t *)"x";
	e.blen = 1;
	e.key = T.L.key;
	e.klen = KEY_HEX_LEN;
	n = entry_encode(&e, NULL, v, sizeof(v));
	CHECK(n > 0);
	return fetch_bytes(v, n > 0 ? (size_t)n : 0, now);
}

/* Any stored_at and age0 an entry can carry: the age saturates. */
static void
test_entry_extreme_fields(void)
{
	struct sc_policy p = policy_cc();

	CHECK(lookup(&p, ROOT) == PA_FETCH);
	CHECK(fetch_entry(T0, 300, 0, T0 + 1) == PE_HIT && T.hit.age == 1);
	CHECK(fetch_entry(INT64_MIN, INT64_MAX, 0, T0) == PE_REFRESH);
	CHECK(fetch_entry(T0 - 10, INT64_MAX, INT64_MAX, T0) == PE_REFRESH);
	CHECK(fetch_entry(INT64_MIN, INT64_MAX, INT64_MAX, INT64_MAX) == PE_REFRESH);
	CHECK(fetch_entry(INT64_MAX, 300, 7, T0) == PE_HIT && T.hit.age == 7);
	CHECK(lookup(&p, RQ(.h = H(HOST, "Cache-Control", "max-stale"))) == PA_FETCH);
	CHECK(fetch_entry(INT64_MIN, 0, 0, INT64_MAX) == PE_HIT && T.hit.age == INT64_MAX);
	CHECK(hit_has("age: 9223372036854775807"));
}

/* What the last lookup gets for an entry someone wrote under key with
 * these status, headers and body, signed with auth or not. */
static enum pol_answer
fetch_forged(const char *key, unsigned status, const char *hdrs, const char *body,
    const struct entry_auth *auth)
{
	struct entry e;
	uint8_t v[4096];
	int n;

	memset(&e, 0, sizeof(e));
	e.stored_at = T0;
	e.lifetime = 300;
	e.status = (uint16_t)status;
	e.key = key;
	e.klen = strlen(key);
	e.hdrs = hdrs;
	e.hlen = strlen(hdrs);
	e.body = (const uint8_t *)body;
	e.blen = strlen(body);
	n = entry_encode(&e, auth, v, sizeof(v));
	CHECK(n > 0);
	return fetch_bytes(v, n > 0 ? (size_t)n : 0, T0 + 1);
}

/* A Miss for this reason, with nothing of the entry served. */
static int
refused(int why)
{
	return T.hit.answer == PE_MISS && T.hit.status == CS_MISS && !T.hit.serve &&
	    T.hit.reject == why && T.hit.note != NULL && strcmp(T.hit.note, entry_err_str(why)) == 0;
}

/* MISSION 5: a stored entry is checked before replay as strictly as an
 * origin's response before store, and a failing one is a Miss that the
 * response to it overwrites. */
static void
test_entry_refused_before_replay(void)
{
	struct sc_policy p = policy(), q = policy_cc();
	static const struct { unsigned status; const char *hdrs, *body; int why; } bad[] = {
		{ 100, "", "", ENTRY_ERR_STATUS },
		{ 150, "", "", ENTRY_ERR_STATUS },
		{ 199, CT_LINE, "x", ENTRY_ERR_STATUS },
		{ 600, CT_LINE, "x", ENTRY_ERR_STATUS },
		{ 200, "X-A\r\nB: v\r\n", "x", ENTRY_ERR_HDR_NAME },
		{ 200, "X-A: v\r\nSet-Cookie: s=1\r\n", "x", ENTRY_ERR_FORBIDDEN },
		{ 200, "X-A: v\nX-B: w\r\n", "x", ENTRY_ERR_HDR_VALUE },
		{ 200, "X-A: v\r\n\r\nHTTP/1.1 200 OK\r\n", "x", ENTRY_ERR_HDR_NAME },
		{ 200, "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n", "x", ENTRY_ERR_FRAMING },
		{ 200, "Content-Length: 1000\r\n", "x", ENTRY_ERR_FRAMING },
		{ 200, "Connection: close\r\n", "x", ENTRY_ERR_HOP_BY_HOP },
		{ 200, "Upgrade: websocket\r\n", "x", ENTRY_ERR_HOP_BY_HOP },
		{ 200, "X-Cache-Status: Hit\r\n", "x", ENTRY_ERR_FORBIDDEN },
		{ 204, "", "x", ENTRY_ERR_FRAMING },
		{ 200, "X-A:v\r\n", "x", ENTRY_ERR_HDR_LINE },
	};

	CHECK(lookup(&p, ROOT) == PA_FETCH);
	CHECK(fetch_forged(T.L.key, 200, CT_LINE, "x", NULL) == PE_HIT && T.hit.reject == 0 &&
	    T.hit.note == NULL && hit_has("content-length: 1"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(lookup(&p, ROOT) == PA_FETCH);
		CHECK(fetch_forged(T.L.key, bad[i].status, bad[i].hdrs, bad[i].body, NULL) == PE_MISS);
		CHECK(refused(bad[i].why));
	}
	/* a value with a NUL, which strlen() above cannot carry */
	{
		static const char h[] = "X-A: a\0b\r\n";
		struct entry e;
		uint8_t v[512];
		int n;

		CHECK(lookup(&p, ROOT) == PA_FETCH);
		memset(&e, 0, sizeof(e));
		e.status = 200;
		e.lifetime = 300;
		e.stored_at = T0;
		e.key = T.L.key;
		e.klen = KEY_HEX_LEN;
		e.hdrs = h;
		e.hlen = sizeof(h) - 1;
		n = entry_encode(&e, NULL, v, sizeof(v));
		CHECK(n > 0 && fetch_bytes(v, (size_t)n, T0 + 1) == PE_MISS && refused(ENTRY_ERR_HDR_VALUE));
	}
	/* an entry stored for another key is not this one's */
	{
		char other[KEY_HEX_LEN + 1];

		CHECK(lookup(&p, RQ(.url = "/other")) == PA_FETCH);
		memcpy(other, T.L.key, sizeof(other));
		CHECK(lookup(&p, ROOT) == PA_FETCH && strcmp(other, T.L.key) != 0);
		CHECK(fetch_forged(other, 200, CT_LINE, "x", NULL) == PE_MISS && refused(ENTRY_ERR_KEY));
	}
	/* more header lines than a request may have */
	{
		char many[16 * 10 + 1] = "";

		T.lim.max_headers = 15;
		for (int i = 0; i < 16; i++)
			strcat(many, "X-A: 012\r\n");
		CHECK(lookup(&p, ROOT) == PA_FETCH);
		CHECK(fetch_forged(T.L.key, 200, many, "x", NULL) == PE_MISS && refused(ENTRY_ERR_HDR_LINE));
		many[10 * 15] = '\0';
		CHECK(lookup(&p, ROOT) == PA_FETCH);
		CHECK(fetch_forged(T.L.key, 200, many, "x", NULL) == PE_HIT);
		T.lim.max_headers = 100;
	}
	/* only-if-cached: nothing usable is stored, so 504 with nothing of it */
	CHECK(lookup(&q, RQ(.h = H(HOST, "Cache-Control", "only-if-cached"))) == PA_FETCH);
	CHECK(fetch_forged(T.L.key, 101, "Upgrade: h2c\r\n", "", NULL) == PE_GATEWAY_TIMEOUT);
	CHECK(T.hit.serve && T.hit.code == 504 && T.hit.reject == ENTRY_ERR_STATUS &&
	    !hit_has("Upgrade: h2c") && T.hit.body == NULL);
	/* the response to the miss overwrites it, and is served */
	CHECK(lookup(&p, ROOT) == PA_FETCH);
	CHECK(fetch_forged(T.L.key, 100, "", "", NULL) == PE_MISS);
	CHECK(respond(&p, HELLO, T0 + 1) == PS_STORE && strcmp(T.st.label, "Miss") == 0);
	CHECK(get(&p, ROOT, T0 + 2) == PE_HIT && T.hit.code == 200 && hit_body_is("hello", 5));
}

/* With an entry secret, entries are signed and only signed ones served. */
static void
test_entry_signed(void)
{
	struct entry_auth *a = entry_auth_new("0123456789abcdef", 16);
	struct entry_auth *b = entry_auth_new("0123456789abcdeF", 16);
	struct sc_policy p = policy();
	uint8_t copy[sizeof(T.val)];
	size_t n;

	CHECK(a != NULL && b != NULL);
	if (a == NULL || b == NULL)
		return;
	T.lim.auth = a;
	CHECK(txn(&p, ROOT, HELLO, ROOT, T0 + 1) == PE_HIT && hit_body_is("hello", 5));
	CHECK(T.val[4] == ENTRY_TAG_HMAC);
	/* without the secret, a writer to memcached cannot make one */
	CHECK(fetch_forged(T.L.key, 200, CT_LINE, "forged", NULL) == PE_MISS &&
	    refused(ENTRY_ERR_UNSIGNED));
	CHECK(fetch_forged(T.L.key, 200, CT_LINE, "forged", b) == PE_MISS &&
	    refused(ENTRY_ERR_SIGNATURE));
	CHECK(fetch_forged(T.L.key, 200, CT_LINE, "signed", a) == PE_HIT && hit_body_is("signed", 6));
	/* a signed entry copied under another key is refused for it */
	memcpy(copy, T.val, T.vlen);
	n = T.vlen;
	CHECK(lookup(&p, RQ(.url = "/elsewhere")) == PA_FETCH);
	CHECK(fetch_bytes(copy, n, T0 + 1) == PE_MISS && refused(ENTRY_ERR_KEY));
	/* one bit of the body */
	CHECK(lookup(&p, ROOT) == PA_FETCH);
	copy[n - ENTRY_HMAC_LEN - 1] ^= 1;
	CHECK(fetch_bytes(copy, n, T0 + 1) == PE_MISS && refused(ENTRY_ERR_SIGNATURE));
	/* an agent without the secret does not take it either */
	T.lim.auth = NULL;
	CHECK(fetch_bytes(T.val, T.vlen, T0 + 1) == PE_MISS && refused(ENTRY_ERR_SIGNATURE));
	/* the signature counts against max_item */
	T.lim.auth = a;
	T.max_item = ENTRY_OVERHEAD - ENTRY_CRC_LEN + ENTRY_HMAC_LEN + KEY_HEX_LEN +
	    strlen("Content-Type: text/plain\r\n") + 5;
	CHECK(store(&p, ROOT, HELLO) == PS_STORE);
	T.max_item--;
	CHECK(refusal(&p, ROOT, HELLO) == SR_TOO_BIG);
	T.lim.auth = NULL;
	entry_auth_free(a);
	entry_auth_free(b);
}

/* A body with NUL bytes, and every byte value, round-trips exactly. */
static void
test_binary_body(void)
{
	struct sc_policy p = policy();
	static char body[3 * 256];

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)(i % 256);
	body[1] = body[2] = 0;
	p.content_type = SL("*");
	CHECK(txn(&p, ROOT, RS(.body = body, .blen = sizeof(body), .h = H("Content-Type",
	    "application/octet-stream")), ROOT, T0 + 1) == PE_HIT);
	CHECK(hit_body_is(body, sizeof(body)));
	CHECK(hit_has("content-length: 768"));
	CHECK(get(&p, RQ(.method = "HEAD"), T0 + 1) == PE_HIT && hit_body_is(NULL, 0) &&
	    hit_has("content-length: 768"));
}

/* ==== HTTP to the letter (issue 16) ==== */

/* RFC 9111 4.2.2: a heuristic only where the RFC allows one (10% of the
 * time since Last-Modified, at most cache_ttl), and never without a
 * Last-Modified: a response that states no freshness is not fresh. */
static void
test_heuristic_freshness(void)
{
	struct sc_policy p = policy_cc(), k = policy();
	int codes302[] = { 200, 302 };

	CHECK(lifetime(&p, H(CT_TEXT, "Date", date(T0), "Last-Modified", date(T0 - 1000))) == 100);
	CHECK(get(&p, ROOT, T0 + 99) == PE_HIT && get(&p, ROOT, T0 + 100) == PE_REFRESH);
	/* without Date, from now */
	CHECK(lifetime(&p, H(CT_TEXT, "Last-Modified", date(T0 - 500))) == 50);
	/* from Date, not from now */
	CHECK(lifetime(&p, H(CT_TEXT, "Date", date(T0 - 100), "Last-Modified", date(T0 - 600))) ==
	    50);
	/* cache_ttl caps it */
	CHECK(lifetime(&p, H(CT_TEXT, "Date", date(T0), "Last-Modified", date(T0 - 100 * DAY))) ==
	    300);
	p.cache_ttl = 20;
	CHECK(lifetime(&p, H(CT_TEXT, "Last-Modified", date(T0 - 1000))) == 20);
	p.cache_ttl = 300;
	/* no Last-Modified, or a useless one (not a date, not before Date):
	 * no heuristic, so nothing fresh to keep */
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT))) == SR_ZERO_TTL);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Last-Modified", "last week"))) == SR_ZERO_TTL);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Date", date(T0), "Last-Modified", date(T0)))) ==
	    SR_ZERO_TTL);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Last-Modified", date(T0 + 50)))) == SR_ZERO_TTL);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Last-Modified", date(T0 - 5)))) == SR_ZERO_TTL);
	/* with storage_ttl it is kept, but stale: never a Hit */
	p.storage_ttl = 600;
	CHECK(lifetime(&p, H(CT_TEXT)) == 0 && T.st.mc_ttl == 601);
	CHECK(get(&p, ROOT, T0) == PE_REFRESH);
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-stale")), T0) == PE_HIT);
	p.storage_ttl = -1;
	/* explicit freshness is not a heuristic: cache_ttl does not cap it */
	CHECK(lifetime(&p, H(CT_TEXT, "Cache-Control", "max-age=5000",
	    "Last-Modified", date(T0 - 1000))) == 5000);
	/* a status that is not heuristically cacheable (RFC 9110 15.1) needs
	 * explicit freshness or public (RFC 9111 3) */
	codes(&p, codes302, 2);
	CHECK(refusal(&p, ROOT, RS(.status = 302, .h = H(CT_TEXT, "Last-Modified",
	    date(T0 - 1000)))) == SR_UNCACHEABLE);
	CHECK(refusal(&p, ROOT, RS(.status = 302)) == SR_UNCACHEABLE);
	CHECK(store(&p, ROOT, RS(.status = 302, .h = H(CT_TEXT, "Cache-Control", "public",
	    "Last-Modified", date(T0 - 1000)))) == PS_STORE);
	CHECK(stored_lifetime() == 100);
	CHECK(store(&p, ROOT, RS(.status = 302, .h = H(CT_TEXT, "Cache-Control", "max-age=9"))) ==
	    PS_STORE && stored_lifetime() == 9);
	CHECK(store(&p, ROOT, RS(.status = 302, .h = H(CT_TEXT, "Expires", date(T0 + 9)))) ==
	    PS_STORE && stored_lifetime() == 9);
	/* every heuristically cacheable status the policy lists gets one */
	{
		int all[] = { 200, 203, 300, 301, 308, 404, 405, 410, 414, 501 };

		codes(&p, all, sizeof(all) / sizeof(all[0]));
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			CHECK(store(&p, ROOT, RS(.status = all[i], .h = H(CT_TEXT, "Last-Modified",
			    date(T0 - 1000)))) == PS_STORE && stored_lifetime() == 100);
	}
	/* Kong compatibility: without cache_control, freshness is cache_ttl */
	CHECK(lifetime(&k, H(CT_TEXT)) == 300);
	CHECK(lifetime(&k, H(CT_TEXT, "Last-Modified", date(T0 - 1000))) == 300);
}

/* The answer to a GET with this Range header, for the entry stored. */
static int
ranged(const struct sc_policy *p, const char *range, int64_t now)
{
	return get(p, RQ(.h = H(HOST, "Range", range)), now);
}

/* RFC 9110 14, 15.3.7; RFC 9111 3.3, 4.3.5: a 206 never answers a
 * request it does not match. */
static void
test_partial_content(void)
{
	struct sc_policy p = policy_cc();
	int with206[] = { 200, 206, 404 };
	const struct rs *whole = RS(.body = "hello world",
	    .h = H(CT_TEXT, "Cache-Control", "max-age=60", "ETag", "\"v\""));
	struct entry e;

	codes(&p, with206, 3);
	/* a 206 is never stored, even when the policy lists it */
	CHECK(refusal(&p, ROOT, RS(.status = 206, .body = "hell", .h = H(CT_TEXT, "Content-Range",
	    "bytes 0-3/11", "Cache-Control", "max-age=60"))) == SR_PARTIAL && !T.stored);
	/* a Range request is served from a whole stored 200 */
	CHECK(txn(&p, ROOT, whole, ROOT, T0 + 1) == PE_HIT && T.hit.code == 200);
	CHECK(ranged(&p, "bytes=0-4", T0 + 1) == PE_HIT && T.hit.code == 206);
	CHECK(T.L.flags & PL_RANGE);
	CHECK(hit_body_is("hello", 5) && hit_has("content-range: bytes 0-4/11") &&
	    hit_has("content-length: 5") && hit_has("ETag: \"v\"") && hit_has("Content-Type: text/plain"));
	CHECK(ranged(&p, "bytes=6-", T0 + 1) == PE_HIT && T.hit.code == 206 &&
	    hit_body_is("world", 5) && hit_has("content-range: bytes 6-10/11"));
	CHECK(ranged(&p, "bytes=-5", T0 + 1) == PE_HIT && T.hit.code == 206 &&
	    hit_body_is("world", 5));
	CHECK(ranged(&p, "bytes=-50", T0 + 1) == PE_HIT && T.hit.code == 206 &&
	    hit_body_is("hello world", 11) && hit_has("content-range: bytes 0-10/11"));
	CHECK(ranged(&p, "bytes=10-99", T0 + 1) == PE_HIT && hit_body_is("d", 1));
	/* one that cannot be satisfied is a 416, with nothing of the entry */
	CHECK(ranged(&p, "bytes=11-", T0 + 1) == PE_HIT && T.hit.code == 416);
	CHECK(hit_body_is(NULL, 0) && hit_has("content-range: bytes */11") &&
	    hit_has("content-length: 0") && !hit_has("Content-Type: text/plain"));
	CHECK(ranged(&p, "bytes=-0", T0 + 1) == PE_HIT && T.hit.code == 416);
	/* the L1 never keeps a ranged answer */
	CHECK(ranged(&p, "bytes=0-4", T0 + 1) == PE_HIT &&
	    l1_grant_ms(1, &T.L, 0, &T.hit, 0) == 0);
	/* a conditional comes first (RFC 9110 13.2.2) */
	CHECK(get(&p, RQ(.h = H(HOST, "Range", "bytes=0-4", "If-None-Match", "\"v\"")), T0 + 1) ==
	    PE_NOT_MODIFIED && T.hit.code == 304);
	/* HEAD ignores Range (RFC 9110 14.2) */
	CHECK(get(&p, RQ(.method = "HEAD", .h = H(HOST, "Range", "bytes=0-4")), T0 + 1) == PE_HIT &&
	    T.hit.code == 200 && hit_body_is(NULL, 0) && hit_has("content-length: 11"));
	/* what it cannot answer exactly passes through, the entry untouched */
	{
		static const char *const pass[] = { "bytes=0-1,3-4", "items=0-1", "bytes=5-2", "bytes=x" };

		for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++)
			CHECK(lookup(&p, RQ(.h = H(HOST, "Range", pass[i]))) == PA_BYPASS &&
			    bypassed("Range not served from the cache", 0));
		CHECK(lookup(&p, RQ(.h = H(HOST, "Range", "bytes=0-1", "If-Range", "\"v\""))) ==
		    PA_BYPASS);
		CHECK(lookup(&p, RQ(.h = H(HOST, "Range", "bytes=0-1", "Range", "bytes=0-1"))) ==
		    PA_BYPASS);
		CHECK(get(&p, ROOT, T0 + 1) == PE_HIT && hit_body_is("hello world", 11));
	}
	/* stale: the Range request goes to the origin; its 206 is not stored
	 * and the whole entry stays */
	CHECK(ranged(&p, "bytes=0-4", T0 + 61) == PE_REFRESH);
	CHECK(respond(&p, RS(.status = 206, .body = "hello", .h = H(CT_TEXT,
	    "Content-Range", "bytes 0-4/11", "Cache-Control", "max-age=60")), T0 + 61) == PS_REFUSE &&
	    T.st.why == SR_PARTIAL);
	CHECK(stored(&e) && e.status == 200 && e.blen == 11);
	/* a miss answered with the whole 200 stores it */
	T.stored = 0;
	CHECK(ranged(&p, "bytes=0-4", T0 + 61) == PE_MISS);
	CHECK(respond(&p, whole, T0 + 61) == PS_STORE);
	CHECK(ranged(&p, "bytes=0-4", T0 + 62) == PE_HIT && T.hit.code == 206);
	/* another stored status ignores Range, as its origin would */
	CHECK(txn(&p, ROOT, RS(.status = 404, .body = "gone", .h = H(CT_TEXT, "Cache-Control",
	    "max-age=60")), RQ(.h = H(HOST, "Range", "bytes=0-1")), T0 + 1) == PE_HIT);
	CHECK(T.hit.code == 404 && hit_body_is("gone", 4));
	/* a 206 entry someone else wrote is a miss, for any request */
	{
		uint8_t v[1024];
		int n;

		CHECK(lookup(&p, ROOT) == PA_FETCH);
		memset(&e, 0, sizeof(e));
		e.stored_at = T0;
		e.lifetime = 60;
		e.status = 206;
		e.hdrs = "Content-Range: bytes 0-3/11\r\n";
		e.hlen = strlen(e.hdrs);
		e.body = (const uint8_t *)"hell";
		e.blen = 4;
		e.key = T.L.key;
		e.klen = KEY_HEX_LEN;
		n = entry_encode(&e, NULL, v, sizeof(v));
		CHECK(n > 0);
		CHECK(fetch_bytes(v, (size_t)n, T0 + 1) == PE_MISS && !T.hit.serve);
		CHECK(lookup(&p, RQ(.h = H(HOST, "Range", "bytes=0-3"))) == PA_FETCH);
		CHECK(fetch_bytes(v, (size_t)n, T0 + 1) == PE_MISS && !T.hit.serve);
	}
	/* without cache_control too */
	p.cache_control = 0;
	CHECK(refusal(&p, ROOT, RS(.status = 206, .body = "hell")) == SR_PARTIAL);
	CHECK(txn(&p, ROOT, RS(.body = "hello world"), RQ(.h = H(HOST, "Range", "bytes=1-2")),
	    T0 + 1) == PE_HIT && T.hit.code == 206 && hit_body_is("el", 2));
}

/* RFC 9213: the first valid targeted field of the policy's list replaces
 * Cache-Control and Expires for this cache. */
static void
test_targeted_cache_control(void)
{
	struct sc_policy p = policy_cc(), k = policy();
	struct entry e;

	p.targeted_cc = SL("CDN-Cache-Control");
	k.targeted_cc = SL("CDN-Cache-Control");
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "CDN-Cache-Control", "no-store",
	    "Cache-Control", "max-age=3600"))) == SR_NO_STORE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "cdn-cache-control", "private",
	    "Cache-Control", "public, max-age=3600"))) == SR_PRIVATE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "CDN-Cache-Control", "no-cache",
	    "Cache-Control", "max-age=3600"))) == SR_NO_STORE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "CDN-Cache-Control", "max-age=0",
	    "Cache-Control", "max-age=3600"))) == SR_ZERO_TTL);
	p.storage_ttl = 600;
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "max-age=0", "Cache-Control",
	    "max-age=3600")) == 0 && get(&p, ROOT, T0) == PE_REFRESH);
	p.storage_ttl = -1;
	/* it grants what Cache-Control, meant for others, does not... */
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "max-age=600", "Cache-Control",
	    "max-age=0")) == 600);
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "max-age=600", "Cache-Control",
	    "no-cache, max-age=5", "Pragma", "no-cache")) == 600);
	/* ...but never lifts its no-store or private (what the shared cache
	 * owes every user: it may always decline to store) */
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "CDN-Cache-Control", "max-age=600",
	    "Cache-Control", "no-store"))) == SR_NO_STORE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "CDN-Cache-Control", "max-age=600, public",
	    "Cache-Control", "private"))) == SR_PRIVATE);
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "max-age=600, must-understand",
	    "Cache-Control", "max-age=5")) == 600);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "CDN-Cache-Control", "max-age=600, must-understand",
	    "Cache-Control", "no-store"))) == SR_NO_STORE);
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "s-maxage=30, max-age=600")) == 30);
	CHECK(stored(&e) && (e.flags & EF_MUST_REVALIDATE) && (e.flags & EF_AUTH_OK));
	/* Expires is ignored with it, Cache-Control's max-age too */
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "CDN-Cache-Control", "must-revalidate",
	    "Expires", date(T0 + 100), "Cache-Control", "max-age=100"))) == SR_ZERO_TTL);
	/* one that is not a valid Dictionary is as if absent (RFC 9213 2.1) */
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "Max-Age=5", "Cache-Control",
	    "max-age=70")) == 70);
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "max-age=5,", "Cache-Control",
	    "max-age=70")) == 70);
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "", "Cache-Control", "max-age=70")) == 70);
	/* a bad line spoils the whole field; good lines add up */
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "max-age=5", "CDN-Cache-Control", "x=(",
	    "Cache-Control", "max-age=70")) == 70);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "CDN-Cache-Control", "max-age=5",
	    "CDN-Cache-Control", "no-store"))) == SR_NO_STORE);
	/* the list is by precedence; the first present and valid one wins */
	p.targeted_cc = SL("Edge-Cache-Control", "CDN-Cache-Control");
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "max-age=20", "Edge-Cache-Control",
	    "max-age=10")) == 10);
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "max-age=20", "Edge-Cache-Control",
	    "max-age=1.0.0")) == 20);
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "max-age=20")) == 20);
	/* and a policy without the list reads none */
	p.targeted_cc = (struct sc_strlist){ NULL, 0 };
	CHECK(lifetime(&p, H(CT_TEXT, "CDN-Cache-Control", "no-store", "Cache-Control",
	    "max-age=70")) == 70);
	/* Authorization: its public or s-maxage allows it (RFC 9111 3.5) */
	p.targeted_cc = SL("CDN-Cache-Control");
	CHECK(store(&p, RQ(.h = H(HOST, "Authorization", "x")), RS(.h = H(CT_TEXT,
	    "CDN-Cache-Control", "public, max-age=60"))) == PS_STORE);
	CHECK(refusal(&p, RQ(.h = H(HOST, "Authorization", "x")), RS(.h = H(CT_TEXT,
	    "CDN-Cache-Control", "max-age=60", "Cache-Control", "public"))) == SR_AUTHORIZATION);
	/* without cache_control: freshness stays cache_ttl, but its no-store
	 * and private are obeyed too */
	CHECK(refusal(&k, ROOT, RS(.h = H(CT_TEXT, "CDN-Cache-Control", "no-store"))) == SR_NO_STORE);
	CHECK(refusal(&k, ROOT, RS(.h = H(CT_TEXT, "CDN-Cache-Control", "private"))) == SR_PRIVATE);
	CHECK(refusal(&k, ROOT, RS(.h = H(CT_TEXT, "CDN-Cache-Control", "max-age=60",
	    "Cache-Control", "no-store"))) == SR_NO_STORE);
	CHECK(lifetime(&k, H(CT_TEXT, "CDN-Cache-Control", "max-age=60")) == 300);
}

/* RFC 9111 5.2.2.3: must-understand, with a status this cache implements,
 * lifts no-store; with one it does not, nothing is stored. */
static void
test_must_understand(void)
{
	struct sc_policy p = policy_cc(), k = policy();
	int odd[] = { 200, 299 };

	codes(&p, odd, 2);
	CHECK(lifetime(&p, H(CT_TEXT, "Cache-Control", "must-understand, no-store, max-age=60")) ==
	    60);
	CHECK(get(&p, ROOT, T0 + 1) == PE_HIT);
	/* a status it does not implement: its no-store stands, and without
	 * one must-understand alone forbids storing (RFC 9111 3) */
	CHECK(refusal(&p, ROOT, RS(.status = 299, .h = H(CT_TEXT, "Cache-Control",
	    "must-understand, no-store, max-age=60"))) == SR_NO_STORE);
	CHECK(refusal(&p, ROOT, RS(.status = 299, .h = H(CT_TEXT, "Cache-Control",
	    "must-understand, max-age=60"))) == SR_UNCACHEABLE);
	CHECK(store(&p, ROOT, RS(.status = 299, .h = H(CT_TEXT, "Cache-Control", "max-age=60"))) ==
	    PS_STORE);
	/* its other refusals stand */
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control",
	    "must-understand, no-store, private, max-age=60"))) == SR_PRIVATE);
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Cache-Control",
	    "must-understand=1, no-store, max-age=60"))) == SR_NO_STORE);
	/* without cache_control no-store is never lifted */
	CHECK(refusal(&k, ROOT, RS(.h = H(CT_TEXT, "Cache-Control",
	    "must-understand, no-store, max-age=60"))) == SR_NO_STORE);
}

/* RFC 9111 5.1, 4.2.3: an Age that cannot be read errs toward staleness. */
static void
test_age_errs_stale(void)
{
	static const char *const bad[] = { "junk", "-1", "1.5", "", "7200 s", "0x10", NULL };
	struct sc_policy p = policy_cc();
	const struct rs *r;
	struct entry e;

	r = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=3600", "Age", "7200, 0"));
	CHECK(txn(&p, ROOT, r, ROOT, T0) == PE_REFRESH && stored(&e) && e.age0 == 7200);
	r = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=3600", "Age", "0, 7200"));
	CHECK(txn(&p, ROOT, r, ROOT, T0) == PE_REFRESH && stored(&e) && e.age0 == 7200);
	r = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=3600", "Age", "10", "Age", "20"));
	CHECK(txn(&p, ROOT, r, ROOT, T0) == PE_HIT && stored(&e) && e.age0 == 20);
	r = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=3600", "Age", " 30 "));
	CHECK(txn(&p, ROOT, r, ROOT, T0) == PE_HIT && T.hit.age == 30);
	for (size_t i = 0; bad[i] != NULL; i++) {
		r = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=3600", "Age", bad[i]));
		CHECK(txn(&p, ROOT, r, ROOT, T0) == PE_REFRESH && stored(&e) &&
		    e.age0 == CC_DELTA_MAX);
	}
	r = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=3600", "Age", "5, junk"));
	CHECK(txn(&p, ROOT, r, ROOT, T0) == PE_REFRESH);
	/* a huge one is 2^31 (RFC 9111 1.2.2) */
	r = RS(.h = H(CT_TEXT, "Cache-Control", "max-age=3600", "Age", "99999999999999999999"));
	CHECK(txn(&p, ROOT, r, ROOT, T0) == PE_REFRESH && stored(&e) && e.age0 == CC_DELTA_MAX);
}

/* memcached reads an exptime over 30 days as a signed 32-bit Unix time:
 * one past 2038-01-19 would drop the item at once. */
static void
test_far_future_expiry(void)
{
	struct sc_policy p = policy_cc(), k = policy();

	CHECK(policy_mc_exptime(60, T0) == 61);
	CHECK(policy_mc_exptime(30 * DAY, T0) == 30 * DAY);
	CHECK(policy_mc_exptime(30 * DAY + 1, T0) == T0 + 30 * DAY + 1);
	CHECK(policy_mc_exptime(CC_DELTA_MAX, T0) == INT32_MAX);
	CHECK(policy_mc_exptime(INT64_MAX, T0) == INT32_MAX);
	/* when even 2038 is not 30 days ahead, 30 days relative */
	CHECK(policy_mc_exptime(40 * DAY, INT32_MAX - DAY) == 30 * DAY);
	CHECK(policy_mc_exptime(40 * DAY, 3000000000LL) == 30 * DAY);
	CHECK(policy_mc_exptime(0, T0) == 1);
	CHECK(policy_mc_exptime(40 * DAY, -T0) == 30 * DAY);	/* a clock before 1970 */
	CHECK(policy_mc_exptime(INT64_MAX, INT64_MIN) == 30 * DAY);
	/* what a response gets */
	CHECK(lifetime(&p, H(CT_TEXT, "Date", date(T0), "Expires", "Fri, 01 Jan 2100 00:00:00 GMT")) ==
	    4102444800LL - T0 && T.st.mc_ttl == INT32_MAX);
	CHECK(get(&p, ROOT, T0 + 365 * DAY) == PE_HIT);
	CHECK(lifetime(&p, H(CT_TEXT, "Cache-Control", "max-age=2147483648")) == CC_DELTA_MAX &&
	    T.st.mc_ttl == INT32_MAX);
	CHECK(lifetime(&p, H(CT_TEXT, "Cache-Control", "max-age=99999999999")) == CC_DELTA_MAX &&
	    T.st.mc_ttl == INT32_MAX);
	k.storage_ttl = 365 * DAY;
	CHECK(store(&k, ROOT, HELLO) == PS_STORE && T.st.mc_ttl == T0 + 365 * DAY);
}

/* RFC 9111 4.4: every method not known to be safe invalidates, and so do
 * the Location and Content-Location targets on the request's authority. */
static void
test_invalidation(void)
{
	static const char *const unsafe[] = { "M-SEARCH", "PURGE", "LOCK", "MKCOL", "FOO", "get" };
	static const char *const safe[] = { "OPTIONS", "TRACE", "PROPFIND", "REPORT", "SEARCH" };
	static const char *const none[] = { "http://other.example/a", "https://example.com/a",
		"a", "../a", "mailto:x@example.com", "/x", "http://example.com/x", "" };
	struct sc_policy p = policy(), v = policy();
	const char *ka, *kb, *kd;
	static char big[POL_CTX_HDRS_MAX + 1];

	for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
		CHECK(lookup(&p, RQ(.method = unsafe[i], .url = "/x")) == PA_INVALIDATE);
		CHECK(respond(&p, RS(.status = 200), T0) == PS_INVALIDATE);
		CHECK(respond(&p, RS(.status = 404), T0) == PS_NONE);
	}
	for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		CHECK(lookup(&p, RQ(.method = safe[i], .url = "/x")) == PA_BYPASS &&
		    bypassed("method", 0));
	/* the targets of a successful one */
	ka = key(&p, RQ(.url = "/a"));
	kb = key(&p, RQ(.url = "/b?q=1"));
	kd = key(&p, RQ(.url = "/d"));
	CHECK(lookup(&p, RQ(.method = "POST", .url = "/x")) == PA_INVALIDATE);
	CHECK(respond(&p, RS(.status = 201, .h = H(CT_TEXT, "Location", "/a",
	    "Content-Location", "http://example.com/b?q=1")), T0) == PS_INVALIDATE);
	CHECK(T.st.n_also == 2 && strcmp(T.st.also[0], ka) == 0 && strcmp(T.st.also[1], kb) == 0);
	CHECK(respond(&p, RS(.status = 303, .h = H(CT_TEXT, "Location", " //example.com/d#frag ")),
	    T0) == PS_INVALIDATE && T.st.n_also == 1 && strcmp(T.st.also[0], kd) == 0);
	/* another authority or scheme, a relative path, the request's own
	 * URI (already deleted), or a failure: nothing more */
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		CHECK(respond(&p, RS(.status = 200, .h = H(CT_TEXT, "Location", none[i],
		    "Content-Location", none[i])), T0) == PS_INVALIDATE);
		CHECK(T.st.n_also == 0);
	}
	CHECK(respond(&p, RS(.status = 500, .h = H(CT_TEXT, "Location", "/a")), T0) == PS_NONE &&
	    T.st.n_also == 0);
	/* the same target twice is deleted once */
	CHECK(respond(&p, RS(.status = 200, .h = H(CT_TEXT, "Location", "/a",
	    "Content-Location", "http://example.com/a")), T0) == PS_INVALIDATE && T.st.n_also == 1);
	/* over TLS, https targets; with a consumer, the consumer's keys */
	T.rs_tls = 1;
	CHECK(lookup(&p, RQ(.method = "PUT", .url = "/x", .tls = 1)) == PA_INVALIDATE);
	CHECK(respond(&p, RS(.status = 200, .h = H(CT_TEXT, "Location", "https://example.com/a")),
	    T0) == PS_INVALIDATE && T.st.n_also == 1 &&
	    strcmp(T.st.also[0], key(&p, RQ(.url = "/a", .tls = 1))) == 0);
	T.rs_tls = 0;
	T.rs_consumer = "alice";
	CHECK(lookup(&p, RQ(.method = "PUT", .url = "/x", .consumer = "alice")) == PA_INVALIDATE);
	CHECK(respond(&p, RS(.status = 200, .h = H(CT_TEXT, "Location", "/a")), T0) ==
	    PS_INVALIDATE && T.st.n_also == 1 &&
	    strcmp(T.st.also[0], key(&p, RQ(.url = "/a", .consumer = "alice"))) == 0);
	T.rs_consumer = NULL;
	/* vary headers of the request are keyed as for its own URI */
	v.vary_headers = SL("X-A");
	CHECK(lookup(&v, RQ(.method = "DELETE", .url = "/x", .h = H(HOST, "X-A", "1"))) ==
	    PA_INVALIDATE);
	CHECK(respond(&v, RS(.status = 204, .h = H(CT_TEXT, "Content-Location", "/a")), T0) ==
	    PS_INVALIDATE && T.st.n_also == 1 &&
	    strcmp(T.st.also[0], key(&v, RQ(.url = "/a", .h = H(HOST, "X-A", "1")))) == 0);
	/* request headers too large to carry: only the request's own URI */
	memset(big, 'a', POL_CTX_HDRS_MAX);
	CHECK(lookup(&p, RQ(.method = "POST", .url = "/x", .h = H(HOST, "X-Big", big))) ==
	    PA_INVALIDATE);
	CHECK(respond(&p, RS(.status = 200, .h = H(CT_TEXT, "Location", "/a")), T0) ==
	    PS_INVALIDATE && T.st.n_also == 0);
}

/* RFC 9111 7.3: what a response with Set-Cookie gets is the operator's
 * call, per policy. */
static void
test_set_cookie_modes(void)
{
	struct sc_policy p = policy_cc(), q;
	const struct rs *r = RS(.body = "hi", .h = H(CT_TEXT, "Cache-Control", "max-age=60",
	    "Set-Cookie", "a=1", "X-Other", "o", "set-cookie2", "b=2"));
	struct entry e;

	CHECK(p.set_cookie == SC_COOKIE_REFUSE && refusal(&p, ROOT, r) == SR_SET_COOKIE);
	p.set_cookie = SC_COOKIE_STRIP;
	CHECK(txn(&p, ROOT, r, ROOT, T0 + 1) == PE_HIT);
	CHECK(stored_hdrs_are(CT_LINE "Cache-Control: max-age=60\r\nX-Other: o\r\n"));
	CHECK(!hit_has("Set-Cookie: a=1") && hit_has("X-Other: o"));
	p.set_cookie = SC_COOKIE_STORE;
	CHECK(txn(&p, ROOT, r, ROOT, T0 + 1) == PE_HIT);
	CHECK(stored_hdrs_are(CT_LINE "Cache-Control: max-age=60\r\nSet-Cookie: a=1\r\n"
	    "X-Other: o\r\nset-cookie2: b=2\r\n"));
	CHECK(hit_has("Set-Cookie: a=1") && hit_has("set-cookie2: b=2") && T.hit.reject == 0);
	/* it still needs what every response needs */
	CHECK(refusal(&p, ROOT, RS(.h = H(CT_TEXT, "Set-Cookie", "a=1", "Cache-Control",
	    "private, max-age=60"))) == SR_PRIVATE);
	/* an entry with Set-Cookie answers only a policy that stores it */
	CHECK(txn(&p, ROOT, r, ROOT, T0 + 1) == PE_HIT && stored(&e));
	q = p;
	q.set_cookie = SC_COOKIE_STRIP;
	CHECK(get(&q, ROOT, T0 + 1) == PE_MISS && T.hit.reject == ENTRY_ERR_FORBIDDEN);
	q.set_cookie = SC_COOKIE_REFUSE;
	CHECK(get(&q, ROOT, T0 + 1) == PE_MISS && T.hit.reject == ENTRY_ERR_FORBIDDEN);
	/* without cache_control the same three */
	q = policy();
	CHECK(refusal(&q, ROOT, r) == SR_SET_COOKIE);
	q.set_cookie = SC_COOKIE_STRIP;
	CHECK(txn(&q, ROOT, r, ROOT, T0 + 1) == PE_HIT && !hit_has("Set-Cookie: a=1"));
	q.set_cookie = SC_COOKIE_STORE;
	CHECK(txn(&q, ROOT, r, ROOT, T0 + 1) == PE_HIT && hit_has("Set-Cookie: a=1"));
}

/* RFC 9110 15.3.5, 8.6: a 204 has no body and no Content-Length; it is
 * stored without one and replayed without one. */
static void
test_no_content(void)
{
	struct sc_policy p = policy_cc();
	int c204[] = { 200, 204 };

	codes(&p, c204, 2);
	CHECK(txn(&p, ROOT, RS(.status = 204, .raw = 1, .h = H(CT_TEXT, "Cache-Control",
	    "max-age=60")), ROOT, T0 + 1) == PE_HIT);
	CHECK(T.hit.code == 204 && hit_body_is(NULL, 0) && !hit_has("content-length: 0"));
	CHECK(store(&p, ROOT, RS(.status = 204, .h = H(CT_TEXT, "Cache-Control", "max-age=60"))) ==
	    PS_STORE);
	CHECK(refusal(&p, ROOT, RS(.status = 204, .raw = 1, .body = "x", .h = H(CT_TEXT,
	    "Cache-Control", "max-age=60"))) == SR_LENGTH);
	CHECK(refusal(&p, ROOT, RS(.status = 204, .raw = 1, .h = H(CT_TEXT, "Cache-Control",
	    "max-age=60", "Transfer-Encoding", "chunked"))) == SR_LENGTH);
	/* a 200 still needs its Content-Length */
	CHECK(refusal(&p, ROOT, RS(.status = 200, .raw = 1, .h = H(CT_TEXT, "Cache-Control",
	    "max-age=60"))) == SR_LENGTH);
}

static int
cs_is(const char *got, const char *want)
{
	return got != NULL && strcmp(got, want) == 0;
}

/* RFC 9211 Cache-Status, when the policy asks for it. */
static void
test_cache_status(void)
{
	struct sc_policy p = policy_cc(), off = policy_cc();
	const struct rs *r = RS(.body = "hello", .h = H(CT_TEXT, "Cache-Control", "max-age=60",
	    "Vary", "X-A"));

	p.cache_status = 1;
	CHECK(get(&p, ROOT, T0) == PE_MISS && cs_is(T.hit.cstatus, "spoe-cache; fwd=uri-miss"));
	CHECK(respond(&p, r, T0) == PS_STORE && cs_is(T.st.cstatus, "; fwd-status=200; stored"));
	CHECK(T.st.cstatus_unstored == strlen("; fwd-status=200"));
	CHECK(get(&p, ROOT, T0 + 10) == PE_HIT && T.hit.cstatus == NULL);
	CHECK(hit_has("cache-status: spoe-cache; hit; ttl=50"));
	CHECK(get(&p, RQ(.h = H(HOST, "X-A", "1")), T0 + 10) == PE_MISS &&
	    cs_is(T.hit.cstatus, "spoe-cache; fwd=vary-miss"));
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-age=5")), T0 + 10) == PE_REFRESH &&
	    cs_is(T.hit.cstatus, "spoe-cache; fwd=request"));
	CHECK(get(&p, ROOT, T0 + 60) == PE_REFRESH && cs_is(T.hit.cstatus, "spoe-cache; fwd=stale"));
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "max-stale")), T0 + 70) == PE_HIT &&
	    hit_has("cache-status: spoe-cache; hit; ttl=-10"));
	CHECK(get(&p, RQ(.h = H(HOST, "If-None-Match", "*")), T0 + 10) == PE_NOT_MODIFIED &&
	    hit_has("cache-status: spoe-cache; hit; ttl=50"));
	CHECK(get(&p, RQ(.h = H(HOST, "Authorization", "x")), T0 + 10) == PE_MISS &&
	    cs_is(T.hit.cstatus, "spoe-cache; fwd=request"));
	CHECK(get(&p, RQ(.h = H(HOST, "Cache-Control", "only-if-cached", "X-A", "2")), T0) ==
	    PE_GATEWAY_TIMEOUT && hit_has("cache-status: spoe-cache; detail=only-if-cached"));
	/* what the store step adds */
	CHECK(get(&p, RQ(.url = "/c"), T0) == PE_MISS);
	CHECK(respond(&p, RS(.h = H(CT_TEXT, "Set-Cookie", "a")), T0) == PS_REFUSE &&
	    cs_is(T.st.cstatus, "; fwd-status=200; detail=set_cookie"));
	CHECK(respond(&p, RS(.status = 500), T0) == PS_REFUSE &&
	    cs_is(T.st.cstatus, "; fwd-status=500; detail=status"));
	/* lookups that go forward without one */
	CHECK(lookup(&p, RQ(.h = H(HOST, "Cache-Control", "no-cache"))) == PA_BYPASS &&
	    cs_is(T.L.cstatus, "spoe-cache; fwd=request"));
	CHECK(lookup(&p, RQ(.method = "OPTIONS")) == PA_BYPASS &&
	    cs_is(T.L.cstatus, "spoe-cache; fwd=method"));
	CHECK(lookup(&p, RQ(.h = H(HOST, "Range", "bytes=0-1,3-4"))) == PA_BYPASS &&
	    cs_is(T.L.cstatus, "spoe-cache; fwd=request"));
	CHECK(lookup(&p, RQ(.url = "/a", .body = "x")) == PA_BYPASS &&
	    cs_is(T.L.cstatus, "spoe-cache; fwd=bypass"));
	CHECK(lookup(&p, RQ(.method = "POST")) == PA_INVALIDATE &&
	    cs_is(T.L.cstatus, "spoe-cache; fwd=method"));
	CHECK(respond(&p, RS(.status = 201), T0) == PS_INVALIDATE &&
	    cs_is(T.st.cstatus, "; fwd-status=201"));
	CHECK(lookup(&p, RQ(.method = "HEAD")) == PA_FETCH && T.L.cstatus == NULL);
	CHECK(respond(&p, RS(.status = 200), T0) == PS_NONE &&
	    cs_is(T.st.cstatus, "; fwd-status=200"));
	/* a policy without it says nothing */
	CHECK(txn(&off, ROOT, r, ROOT, T0 + 10) == PE_HIT && !(T.L.flags & PL_CSTATUS));
	CHECK(T.st.cstatus[0] == '\0' && !hit_has("cache-status: spoe-cache; hit; ttl=50"));
	CHECK(get(&off, ROOT, T0 + 60) == PE_REFRESH && T.hit.cstatus == NULL);
	CHECK(lookup(&off, RQ(.method = "OPTIONS")) == PA_BYPASS && T.L.cstatus == NULL);
	CHECK(lookup(NULL, ROOT) == PA_BYPASS && T.L.cstatus == NULL);
}

int
main(void)
{
	TEST(test_key_form);
	TEST(test_key_inputs);
	TEST(test_key_query);
	TEST(test_key_unambiguous);
	TEST(test_key_vary_query_params);
	TEST(test_key_vary_headers);
	TEST(test_key_vary_headers_too_long);
	TEST(test_key_json_fields);
	TEST(test_key_consumer);
	TEST(test_key_url_and_host);
	TEST(test_key_head_is_get);
	TEST(test_key_offline);
	TEST(test_too_many);
	TEST(test_key_unchanged);
	TEST(test_key_absolute_form);
	TEST(test_key_routing_headers);
	TEST(test_routing_headers_bypass);
	TEST(test_request_body_bypass);
	TEST(test_key_lines_bounded);
	TEST(test_unknown_policy);
	TEST(test_method_not_allowed);
	TEST(test_unsafe_methods_invalidate);
	TEST(test_force_header);
	TEST(test_response_codes);
	TEST(test_content_types);
	TEST(test_miss_then_hit);
	TEST(test_refresh);
	TEST(test_head);
	TEST(test_not_modified);
	TEST(test_only_if_cached);
	TEST(test_request_no_cache);
	TEST(test_freshness_cache_ttl);
	TEST(test_freshness_response);
	TEST(test_freshness_request);
	TEST(test_never_stale);
	TEST(test_age);
	TEST(test_authorization);
	TEST(test_set_cookie);
	TEST(test_response_cache_control);
	TEST(test_private_no_store_always);
	TEST(test_vary);
	TEST(test_vary_big_request);
	TEST(test_stripped_headers);
	TEST(test_body_length);
	TEST(test_unsafe_headers);
	TEST(test_too_big);
	TEST(test_mc_ttl);
	TEST(test_zero_ttl);
	TEST(test_collapsed_forwarding);
	TEST(test_stale_while_revalidate);
	TEST(test_soft_purge);
	TEST(test_stale_if_error);
	TEST(test_revalidate);
	TEST(test_entry_unusable);
	TEST(test_entry_extreme_fields);
	TEST(test_entry_refused_before_replay);
	TEST(test_entry_signed);
	TEST(test_binary_body);
	TEST(test_heuristic_freshness);
	TEST(test_partial_content);
	TEST(test_targeted_cache_control);
	TEST(test_must_understand);
	TEST(test_age_errs_stale);
	TEST(test_far_future_expiry);
	TEST(test_invalidation);
	TEST(test_set_cookie_modes);
	TEST(test_no_content);
	TEST(test_cache_status);
	return T_EXIT();
}
