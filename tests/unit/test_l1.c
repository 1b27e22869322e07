/*
 * test_l1.c - l1_grant_ms(): what the agent lets HAProxy's node-local tier
 * keep, over real policy_request() / policy_response() / policy_entry()
 * decisions (a store at T0, then a lookup at a later second); l1_copy():
 * the copy it keeps.
 */
#include "entry.h"
#include "l1.h"
#include "policy.h"
#include "varint.h"
#include "t.h"

#include <stdint.h>
#include <stdlib.h>

#define T0	1700000000LL
#define H(...)	((const char *const[]){ __VA_ARGS__, NULL })

struct hb {
	uint8_t b[4096];
	size_t n;
};

static void
hb_put(struct hb *h, const char *s)
{
	size_t len = strlen(s);
	int r = varint_encode(len, h->b + h->n, h->b + sizeof(h->b));

	if (r == 0 || sizeof(h->b) - h->n - (size_t)r < len)
		exit(2);
	memcpy(h->b + h->n + r, s, len);
	h->n += (size_t)r + len;
}

static void
hb_make(struct hb *h, const char *const *nv)
{
	h->n = 0;
	for (; nv[0] != NULL; nv += 2) {
		hb_put(h, nv[0]);
		hb_put(h, nv[1]);
	}
	hb_put(h, "");
	hb_put(h, "");
}

static int default_codes[] = { 200, 301, 404 };
static char *default_methods[] = { "GET", "HEAD" };
static char *default_types[] = { "text/plain" };
static char *one[] = { "Accept-Language" };

static struct sc_policy
policy(int l1_ttl)
{
	struct sc_policy p;

	memset(&p, 0, sizeof(p));
	p.name = "p";
	p.response_codes = default_codes;
	p.n_response_codes = 3;
	p.request_method = (struct sc_strlist){ default_methods, 2 };
	p.content_type = (struct sc_strlist){ default_types, 1 };
	p.cache_ttl = 10;
	p.storage_ttl = -1;
	p.l1_ttl = l1_ttl;
	return p;
}

static struct {
	struct pol_limits lim;
	struct hb rq, rs;
	struct pol_lookup L;
	struct pol_store st;
	struct pol_hit hit;
	char hbuf[POL_STORE_HBUF(4096)];
	char buf[POL_HIT_BUF(8192)];
	uint8_t val[8192];
	size_t vlen;
} T = { .lim = { 100, 100 } };

static void
lookup(const struct sc_policy *p, const char *method, const char *const *h,
    const char *consumer, const char *body)
{
	struct pol_request rq;

	hb_make(&T.rq, h);
	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.method_len = strlen(method);
	rq.url = "/a";
	rq.url_len = 2;
	rq.hdrs = T.rq.b;
	rq.hdrs_len = T.rq.n;
	if (consumer != NULL) {
		rq.consumer = consumer;
		rq.consumer_len = strlen(consumer);
	}
	if (body != NULL) {
		rq.body = body;
		rq.body_len = strlen(body);
	}
	policy_request(p, &T.lim, &rq, &T.L);
}

/* Store a 200 "hello" with these response headers at T0. */
static int
store(const struct sc_policy *p, const char *const *rsh)
{
	struct pol_response rs;
	int n;

	lookup(p, "GET", H("Host", "example.com"), NULL, NULL);
	if (T.L.action != PA_FETCH)
		return -1;
	hb_make(&T.rs, rsh);
	memset(&rs, 0, sizeof(rs));
	rs.ctx = T.L.ctx;
	rs.ctx_len = T.L.ctx_len;
	rs.status = 200;
	rs.hdrs = T.rs.b;
	rs.hdrs_len = T.rs.n;
	rs.body = (const uint8_t *)"hello";
	rs.body_len = 5;
	policy_response(p, &T.lim, &rs, T0, 1 << 20, 1 << 20, T.hbuf, sizeof(T.hbuf), &T.st);
	if (T.st.action != PS_STORE)
		return -1;
	n = entry_encode(&T.st.e, T.lim.auth, T.val, sizeof(T.val));
	T.vlen = n > 0 ? (size_t)n : 0;
	return n > 0 ? 0 : -1;
}

/* The grant for a lookup of the stored entry at now + ms / 1000. */
static int64_t
grant(const struct sc_policy *p, const char *method, const char *const *h, unsigned req,
    int64_t now, int ms)
{
	lookup(p, method, h, (req & L1_REQ_CONSUMER) ? "alice" : NULL,
	    (req & L1_REQ_BODY) ? "x" : NULL);
	if (T.L.action != PA_FETCH)
		return -1;
	policy_entry(&T.L, &T.lim, T.val, T.vlen, now, T.buf, sizeof(T.buf), &T.hit);
	return l1_grant_ms(l1_policy_ttl(p), &T.L, req, &T.hit, ms);
}

#define PLAIN	H("Host", "example.com")
#define CT	"Content-Type", "text/plain"
#define CL	"Content-Length", "5"

/* l1_ttl, capped by the freshness left, to the millisecond. */
static void
test_ttl_and_freshness(void)
{
	struct sc_policy p = policy(2);

	CHECK(store(&p, H(CT, CL)) == 0);
	CHECK(grant(&p, "GET", PLAIN, 0, T0 + 1, 0) == 2000);
	CHECK(T.hit.answer == PE_HIT && T.hit.fresh_left == 9);
	/* cache_ttl 10: fresh until T0 + 10 */
	CHECK(grant(&p, "GET", PLAIN, 0, T0 + 8, 500) == 1500);
	CHECK(grant(&p, "GET", PLAIN, 0, T0 + 9, 0) == 1000);
	CHECK(grant(&p, "GET", PLAIN, 0, T0 + 9, 999) == 1);
	CHECK(grant(&p, "GET", PLAIN, 0, T0 + 10, 0) == 0);	/* stale: a Miss */
	CHECK(grant(&p, "GET", PLAIN, 0, T0 + 1, 1000) == 0);	/* not a millisecond */
	p.l1_ttl = 0;
	CHECK(grant(&p, "GET", PLAIN, 0, T0 + 1, 0) == 0);
	p.l1_ttl = 3600;
	CHECK(grant(&p, "GET", PLAIN, 0, T0 + 1, 250) == 8750);
}

/* Whatever makes the agent's answer depend on more than the URL. */
static void
test_never_what_the_agent_would_refuse(void)
{
	struct sc_policy p = policy(5), pv = policy(5);

	CHECK(store(&p, H(CT, CL)) == 0);
	CHECK(grant(&p, "GET", PLAIN, 0, T0 + 1, 0) == 5000);
	CHECK(grant(&p, "HEAD", PLAIN, 0, T0 + 1, 0) == 0);
	CHECK(grant(&p, "GET", H("Host", "example.com", "Authorization", "Basic eA=="), 0,
	    T0 + 1, 0) <= 0);
	CHECK(grant(&p, "GET", H("Host", "example.com", "Cache-Control", "max-age=60"), 0,
	    T0 + 1, 0) == 0);
	CHECK(T.hit.answer == PE_HIT);	/* the agent serves it; the L1 does not keep it */
	CHECK(grant(&p, "GET", H("Host", "example.com", "If-None-Match", "\"x\""), 0,
	    T0 + 1, 0) == 0);
	CHECK(grant(&p, "GET", H("Host", "example.com", "If-Modified-Since",
	    "Sun, 06 Nov 1994 08:49:37 GMT"), 0, T0 + 1, 0) == 0);
	CHECK(grant(&p, "GET", PLAIN, L1_REQ_CONSUMER, T0 + 1, 0) <= 0);
	CHECK(grant(&p, "GET", PLAIN, L1_REQ_BODY, T0 + 1, 0) <= 0);
	/* a policy keyed on headers */
	pv.vary_headers = (struct sc_strlist){ one, 1 };
	CHECK(store(&pv, H(CT, CL)) == 0);
	CHECK(grant(&pv, "GET", PLAIN, 0, T0 + 1, 0) == 0);
	CHECK(T.hit.answer == PE_HIT);
	pv.vary_headers = (struct sc_strlist){ NULL, 0 };
	pv.vary_body_json_fields = (struct sc_strlist){ one, 1 };
	CHECK(l1_policy_ttl(&pv) == 0);
	CHECK(l1_policy_ttl(&p) == 5);
	CHECK(l1_grant_ms(5, &T.L, 0, &T.hit, 0) == 5000);	/* the policy is what refuses */
	/* a routing header the policy keys on: the key holds more than the
	 * URL, and HAProxy's cache keys on the URL alone */
	{
		static char *route[] = { "X-Original-URI" };
		struct sc_policy pr = policy(5);

		pr.key_routing_headers = (struct sc_strlist){ route, 1 };
		CHECK(store(&pr, H(CT, CL)) == 0);
		CHECK(grant(&pr, "GET", PLAIN, 0, T0 + 1, 0) == 5000);
		lookup(&pr, "GET", H("Host", "example.com", "X-Original-URI", "/evil"), NULL, NULL);
		CHECK(T.L.action == PA_FETCH && (T.L.flags & PL_ROUTED));
		CHECK(l1_grant_ms(5, &T.L, 0, &T.hit, 0) == 0);
	}
	/* a response with Vary */
	CHECK(store(&p, H(CT, CL, "Vary", "Accept-Language")) == 0);
	CHECK(grant(&p, "GET", PLAIN, 0, T0 + 1, 0) == 0);
	CHECK(T.hit.answer == PE_HIT && T.hit.vary);
	/* nothing stored */
	lookup(&p, "GET", PLAIN, NULL, NULL);
	policy_entry(&T.L, &T.lim, NULL, 0, T0 + 1, T.buf, sizeof(T.buf), &T.hit);
	CHECK(l1_grant_ms(5, &T.L, 0, &T.hit, 0) == 0);
	CHECK(l1_policy_ttl(NULL) == 0);
}

/* l1_copy() of block `in` (age, cstatus, a 5 s grant at T0) is `want`,
 * with *expires as given; want NULL: it does not fit in cap. */
static int
copy_is(const char *in, size_t cap, int64_t age, int cstatus, const char *want, int want_exp)
{
	char buf[1024];
	size_t len = strlen(in);
	int exp = -1, r;

	memcpy(buf, in, len);
	r = l1_copy(buf, &len, cap, age, cstatus, 5000, T0, &exp);
	if (want == NULL)
		return r == -1 && len == strlen(in) && memcmp(buf, in, len) == 0;
	return r == 0 && exp == want_exp && len == strlen(want) && memcmp(buf, want, len) == 0;
}

#define TAIL	"x-cache-status: Hit\r\nx-cache-tier: L2\r\nx-cache-key: k\r\n"
#define TAIL1	"x-cache-status: Hit\r\nx-cache-key: k\r\n"

static void
test_copy_forms(void)
{
	/* Fast: HAProxy's cache keeps the Age up to max-age and adds it back. */
	CHECK(copy_is("Cache-Control: max-age=60\r\ncontent-length: 5\r\nage: 10\r\n" TAIL, 1024,
	    10, 0, "Cache-Control: max-age=60\r\ncontent-length: 5\r\nage: 10\r\n" TAIL1
	    "x-cache-tier: L1\r\n", 0));
	/* s-maxage is the lifetime it looks at first; an Age exactly at it is kept. */
	CHECK(copy_is("Cache-Control: max-age=5, s-maxage=30\r\nage: 30\r\n" TAIL, 1024, 30, 0,
	    "Cache-Control: max-age=5, s-maxage=30\r\nage: 30\r\n" TAIL1 "x-cache-tier: L1\r\n", 0));
	/* Fast at Age 0, with a validator: "age: 0" goes (HAProxy refuses it). */
	CHECK(copy_is("ETag: \"a\"\r\nage: 0\r\n" TAIL, 1024, 0, 0,
	    "ETag: \"a\"\r\n" TAIL1 "x-cache-tier: L1\r\n", 0));
	CHECK(copy_is("Expires: Thu, 01 Jan 2099 00:00:00 GMT\r\nage: 0\r\n" TAIL, 1024, 0, 0,
	    "Expires: Thu, 01 Jan 2099 00:00:00 GMT\r\n" TAIL1 "x-cache-tier: L1\r\n", 0));
	/* Marked: an Age past the response's own lifetime (the policy's
	 * cache_ttl kept it longer), or no lifetime at all. */
	CHECK(copy_is("Cache-Control: max-age=5\r\nage: 9\r\n" TAIL, 1024, 9, 0,
	    "Cache-Control: max-age=5\r\n" TAIL1 "x-spoe-cache-l1: 9\r\nx-cache-tier: L1\r\n", 0));
	CHECK(copy_is("ETag: \"a\"\r\nage: 3\r\n" TAIL, 1024, 3, 0,
	    "ETag: \"a\"\r\n" TAIL1 "x-spoe-cache-l1: 3\r\nx-cache-tier: L1\r\n", 0));
	/* Nothing HAProxy's cache would keep it for: an Expires for the grant. */
	CHECK(copy_is("Content-Type: text/plain\r\nage: 2\r\n" TAIL, 1024, 2, 0,
	    "Content-Type: text/plain\r\n" TAIL1
	    "expires: Tue, 14 Nov 2023 22:13:25 GMT\r\nx-spoe-cache-l1: 2;e\r\nx-cache-tier: L1\r\n", 1));
	CHECK(copy_is("age: 0\r\n" TAIL, 1024, 0, 0, TAIL1
	    "expires: Tue, 14 Nov 2023 22:13:25 GMT\r\nx-spoe-cache-l1: 0;e\r\nx-cache-tier: L1\r\n", 1));
	/* max-age=0 is no lifetime. */
	CHECK(copy_is("Cache-Control: max-age=0\r\nage: 0\r\n" TAIL, 1024, 0, 0,
	    "Cache-Control: max-age=0\r\n" TAIL1
	    "expires: Tue, 14 Nov 2023 22:13:25 GMT\r\nx-spoe-cache-l1: 0;e\r\nx-cache-tier: L1\r\n", 1));
	/* HAProxy's cache reads the last max-age: 5 here, below the Age. */
	CHECK(copy_is("Cache-Control: max-age=60, max-age=5\r\nage: 10\r\n" TAIL, 1024, 10, 0,
	    "Cache-Control: max-age=60, max-age=5\r\n" TAIL1
	    "x-spoe-cache-l1: 10\r\nx-cache-tier: L1\r\n", 0));
	CHECK(copy_is("Cache-Control: max-age=5\r\nCache-Control: max-age=60\r\nage: 10\r\n" TAIL,
	    1024, 10, 0, "Cache-Control: max-age=5\r\nCache-Control: max-age=60\r\nage: 10\r\n" TAIL1
	    "x-cache-tier: L1\r\n", 0));
	/* Not a block serve() wrote: no copy, the block untouched. */
	CHECK(copy_is("Cache-Control: max-age=60\r\nage: 10\r\nbroken\r\n" TAIL, 1024, 10, 0,
	    NULL, 0));
	CHECK(copy_is("age: 10\r\n" TAIL "x-cut: a", 1024, 10, 0, NULL, 0));
	/* A ttl to count down (cache_status): always marked. */
	CHECK(copy_is("Cache-Control: max-age=60\r\nage: 10\r\n" TAIL
	    "cache-status: spoe-cache; hit; ttl=50\r\n", 1024, 10, 1,
	    "Cache-Control: max-age=60\r\n" TAIL1 "cache-status: spoe-cache; hit; ttl=50\r\n"
	    "x-spoe-cache-l1: 10\r\nx-cache-tier: L1\r\n", 0));
}

static void
test_copy_room(void)
{
	const char *in = "Content-Type: text/plain\r\nage: 2\r\n" TAIL;
	size_t need = strlen(in) - strlen("age: 2\r\n") - strlen("x-cache-tier: L2\r\n") +
	    strlen("expires: Tue, 14 Nov 2023 22:13:25 GMT\r\nx-spoe-cache-l1: 2;e\r\nx-cache-tier: L1\r\n");

	CHECK(copy_is(in, need - 1, 2, 0, NULL, 0));
	CHECK(copy_is(in, need, 2, 0, "Content-Type: text/plain\r\n" TAIL1
	    "expires: Tue, 14 Nov 2023 22:13:25 GMT\r\nx-spoe-cache-l1: 2;e\r\nx-cache-tier: L1\r\n", 1));
}

/* What the policy serves, made into the copy: the block policy_entry()
 * wrote, over a real store. */
static void
test_copy_of_a_served_hit(void)
{
	struct sc_policy p = policy(5);
	int exp = -1;
	size_t len;

	CHECK(store(&p, H(CT, CL, "Cache-Control", "max-age=60")) == 0);
	CHECK(grant(&p, "GET", PLAIN, 0, T0 + 2, 0) == 5000);
	len = T.hit.hlen;
	CHECK(T.hit.hdrs == T.buf);
	CHECK(l1_copy(T.buf, &len, sizeof(T.buf), T.hit.age, 0, 5000, T0 + 2, &exp) == 0 && exp == 0);
	CHECK(len == T.hit.hlen);	/* one label for the other */
	CHECK(memmem(T.buf, len, "age: 2\r\n", 8) != NULL);
	CHECK(memmem(T.buf, len, "x-cache-tier: L1\r\n", 18) != NULL);
	CHECK(memmem(T.buf, len, "L2", 2) == NULL);
}

int
main(void)
{
	RUN(test_ttl_and_freshness);
	RUN(test_never_what_the_agent_would_refuse);
	RUN(test_copy_forms);
	RUN(test_copy_room);
	RUN(test_copy_of_a_served_hit);
	return T_EXIT();
}
