/*
 * fuzz_entry.c - libFuzzer target for a stored entry, from the bytes
 * memcached returns to what a client would get: decode, the checks before
 * replay, and the replay decision (policy_entry) together, at any `now`.
 * What it checks beyond "no crash, no sanitizer report" (UBSan included,
 * so no stored time may overflow):
 *   - whatever decodes re-encodes to the very same bytes (the format is
 *     canonical), signed or not;
 *   - an entry that fails to decode or entry_check_replay() is a Miss (or
 *     the 504 of only-if-cached) with that very reason, and nothing of it
 *     is served;
 *   - whatever is served is a status HAProxy can replay (200..599) and a
 *     header block of "name: value\r\n" lines with token names and safe
 *     values, no hop-by-hop, Transfer-Encoding or Set-Cookie, and one
 *     Content-Length that the agent wrote: the stored body's length;
 *   - the L1's copy of what is served (l1_copy) passes the same checks,
 *     with the L1's label instead of the L2's, or leaves the block as it was;
 *   - an entry built from the input round-trips exactly.
 *
 * Input layout:
 *   u8 sel    bits 0-1 the request (GET, HEAD, GET only-if-cached with
 *             max-stale under an RFC 9111 policy, GET If-None-Match: *),
 *             2 an entry secret is configured, 3 also try the value with
 *             its magic, version, tag kind, key and tag made right, 4 at
 *             most 4 header lines
 *   u64 now   (big-endian)
 *   then the stored value
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "entry.h"
#include "l1.h"
#include "hdrs.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEL_AUTH	0x04u
#define SEL_FIX		0x08u
#define SEL_FEW_LINES	0x10u
#define SECRET		"fuzz entry secret, 32 bytes long"

static char *methods[] = { "GET", "HEAD" };
static char *types[] = { "*" };
static int codes[] = { 200 };
static struct sc_policy policies[2] = {
	{ .name = "default", .response_codes = codes, .n_response_codes = 1,
	  .request_method = { methods, 2 }, .content_type = { types, 1 },
	  .cache_ttl = 300, .storage_ttl = -1 },
	{ .name = "rfc", .response_codes = codes, .n_response_codes = 1,
	  .request_method = { methods, 2 }, .content_type = { types, 1 },
	  .cache_ttl = 300, .storage_ttl = -1, .cache_control = 1 },
};

/* hdrs_bin blocks: Host, and the one request header of each variant. */
#define HOST_HDR	"\x04host\x0b" "example.com"
static const struct { const char *method, *hdrs; size_t hlen; int policy; } requests[4] = {
	{ "GET", HOST_HDR "\0\0", 19, 0 },
	{ "HEAD", HOST_HDR "\0\0", 19, 0 },
	{ "GET", HOST_HDR "\x0d" "cache-control\x19" "only-if-cached, max-stale\0\0", 59, 1 },
	{ "GET", HOST_HDR "\x0d" "if-none-match\x01*\0\0", 35, 0 },
};

static struct entry_auth *auth;

static int
same(const struct entry *a, const struct entry *b)
{
	return a->stored_at == b->stored_at && a->lifetime == b->lifetime &&
	    a->age0 == b->age0 && a->status == b->status && a->flags == b->flags &&
	    a->klen == b->klen && (a->klen == 0 || memcmp(a->key, b->key, a->klen) == 0) &&
	    a->hlen == b->hlen && (a->hlen == 0 || memcmp(a->hdrs, b->hdrs, a->hlen) == 0) &&
	    a->vlen == b->vlen && (a->vlen == 0 || memcmp(a->vary, b->vary, a->vlen) == 0) &&
	    a->blen == b->blen && (a->blen == 0 || memcmp(a->body, b->body, a->blen) == 0);
}

static void *
dup(const void *p, size_t n)
{
	void *d = malloc(n + 1);

	if (n)
		memcpy(d, p, n);
	return d;
}

/* What a client would get from the Lua service: checked line by line,
 * independently of entry_check_replay(). blen: the stored body's length;
 * tier: the one X-Cache-Tier it must say. */
static void
check_served(const struct pol_hit *h, const struct entry *e, const char *tier)
{
	static const char *const never[] = { "connection", "keep-alive", "proxy-connection", "te",
		"trailer", "upgrade", "transfer-encoding", "set-cookie", "set-cookie2", NULL };
	const char *p = h->hdrs, *end = h->hdrs + h->hlen;
	int clen = 0, status = 0, key = 0, tiers = 0;
	char want[32];

	if (h->code < 200 || h->code > 599)
		abort();
	snprintf(want, sizeof(want), "%zu", e != NULL ? e->blen : 0);
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p)), *colon;
		size_t nlen;

		if (eol == NULL || end - eol < 2 || eol[1] != '\n')
			abort();
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon == NULL || colon + 1 >= eol || colon[1] != ' ')
			abort();
		nlen = (size_t)(colon - p);
		if (!hdr_name_valid(p, nlen) || !hdr_value_safe(colon + 2, (size_t)(eol - colon - 2)))
			abort();
		for (const char *const *n = never; *n != NULL; n++)
			if (hdr_name_eq(p, nlen, *n, strlen(*n)))
				abort();
		if (hdr_name_eq(p, nlen, "content-length", 14)) {
			if ((size_t)(eol - colon - 2) != strlen(want) || memcmp(colon + 2, want, strlen(want)))
				abort();
			clen++;
		}
		status += hdr_name_eq(p, nlen, "x-cache-status", 14);
		key += hdr_name_eq(p, nlen, "x-cache-key", 11);
		if (hdr_name_eq(p, nlen, "x-cache-tier", 12)) {
			if ((size_t)(eol - colon - 2) != strlen(tier) || memcmp(colon + 2, tier, strlen(tier)))
				abort();
			tiers++;
		}
		p = eol + 2;
	}
	/* no Content-Length on a 304 or a 204 (RFC 9110 8.6) */
	if (clen != (h->code == 304 || h->code == 204 ? 0 : 1) || status != 1 || key != 1 ||
	    tiers != 1)
		abort();
	if (h->body != NULL && (e == NULL || h->blen != e->blen || h->body != e->body))
		abort();
}

/* The L1's copy of what was served (as if granted 5 s): the same checks,
 * labelled L1; or, when it does not fit, the block untouched. */
static void
l1_copy_of(const struct pol_lookup *L, const struct pol_hit *h, const struct entry *e,
    char *buf, size_t cap, int64_t now)
{
	struct pol_hit c = *h;
	char *was = dup(buf, h->hlen);
	int exp = -1;

	if (l1_copy(buf, &c.hlen, cap, h->age, (L->flags & PL_CSTATUS) != 0, 5000, now, &exp) < 0) {
		if (c.hlen != h->hlen || memcmp(buf, was, h->hlen) != 0)
			abort();
	} else {
		if (c.hlen > cap || (exp != 0 && exp != 1))
			abort();
		check_served(&c, e, "L1");
	}
	free(was);
}

/* Decode and check val as the agent does, then replay it through
 * policy_entry() for the lookup L; the two must agree. */
static void
replay(const struct pol_lookup *L0, const struct pol_limits *lim, const uint8_t *data,
    size_t len, int64_t now)
{
	struct pol_lookup L = *L0;
	struct entry e, d;
	struct pol_hit h;
	uint8_t *val = dup(data, len), *re;
	size_t cap = POL_HIT_BUF(len);
	char *buf = malloc(cap);
	int r;

	if (len == 0 || (len == POL_PASS_LEN && memcmp(val, POL_PASS_MARK, POL_PASS_LEN) == 0)) {
		/* not entries: a fetch in progress, the pass marker (collapsed
		 * forwarding): nothing of them is served, nothing is refused */
		policy_entry(&L, lim, val, len, now, buf, cap, &h);
		if (h.reject != 0 || (h.serve && h.code != 504) ||
		    !(h.answer == PE_MISS || h.answer == PE_GATEWAY_TIMEOUT || h.answer == PE_WAIT))
			abort();
		free(buf);
		free(val);
		return;
	}
	r = entry_decode(val, len, L.key, KEY_HEX_LEN, lim->auth, &e);
	if (r < ENTRY_ERR_SIGNATURE || r > 0)
		abort();
	if (r == 0) {
		if (entry_size(&e, lim->auth) != len)
			abort();
		re = malloc(len);
		if (entry_encode(&e, lim->auth, re, len) != (int)len || memcmp(re, val, len) != 0)
			abort();
		free(re);
		if (entry_decode(val, len, NULL, 0, lim->auth, &d) != 0 || !same(&e, &d))
			abort();
		(void)entry_age(&e, now);
		r = entry_check_replay(&e, lim->max_headers);
		if (r < -ENTRY_NERR || r > 0)
			abort();
	}
	policy_entry(&L, lim, val, len, now, buf, cap, &h);
	if (h.reject != r || (r != 0 && h.note == NULL))
		abort();
	if (r != 0 && (!(h.answer == PE_MISS || h.answer == PE_GATEWAY_TIMEOUT) ||
	    (h.serve && h.code != 504)))
		abort();
	if (h.serve) {
		int gw = h.answer == PE_GATEWAY_TIMEOUT;

		if (h.hdrs != buf || h.hlen > cap || (gw && h.code != 504))
			abort();
		/* only-if-cached's 504 carries nothing of the entry (a stored 504
		 * served as a hit does) */
		check_served(&h, gw ? NULL : &e, "L2");
		if (gw && h.body != NULL)
			abort();
		if (!gw)
			l1_copy_of(&L, &h, &e, buf, cap, now);
	}
	free(buf);
	free(val);
}

/* The value with its header, key and tag made right, so that the fields
 * behind them are what is exercised. */
static uint8_t *
fix(const uint8_t *data, size_t len, const char *key, const struct entry_auth *a)
{
	size_t tlen = a != NULL ? ENTRY_HMAC_LEN : ENTRY_CRC_LEN;
	uint8_t *v = dup(data, len);

	if (len < ENTRY_OVERHEAD - ENTRY_CRC_LEN + tlen)
		return v;
	memcpy(v, "SCE", 3);
	v[3] = ENTRY_VERSION;
	v[4] = a != NULL ? ENTRY_TAG_HMAC : ENTRY_TAG_CRC32C;
	if (len >= ENTRY_OVERHEAD - ENTRY_CRC_LEN + tlen + KEY_HEX_LEN) {
		v[43] = KEY_HEX_LEN;
		memcpy(v + 44, key, KEY_HEX_LEN);
	}
	if (a != NULL) {
		unsigned int mdlen = 0;

		HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), v, len - tlen, v + len - tlen, &mdlen);
	} else {
		uint32_t c = entry_crc32c(v, len - 4);

		v[len - 4] = (uint8_t)(c >> 24);
		v[len - 3] = (uint8_t)(c >> 16);
		v[len - 2] = (uint8_t)(c >> 8);
		v[len - 1] = (uint8_t)c;
	}
	return v;
}

/* An entry built from the input: three blocks cut at input-chosen places. */
static void
build(const uint8_t *data, size_t size, const struct entry_auth *a)
{
	struct entry e, d;
	uint8_t *buf;
	size_t x, y;
	int n;

	memset(&e, 0, sizeof(e));
	if (size >= 2) {
		x = data[0] % size;
		y = data[1] % size;
		if (x > y) {
			size_t t = x;
			x = y;
			y = t;
		}
		e.key = (const char *)data;
		e.klen = x > ENTRY_KEY_MAX ? ENTRY_KEY_MAX : x;
		e.hdrs = (const char *)data;
		e.hlen = x;
		e.vary = data + x;
		e.vlen = y - x;
		e.body = data + y;
		e.blen = size - y;
		e.stored_at = (int64_t)size * 1000003 - 7;
		e.lifetime = data[0];
		e.age0 = data[1];
		e.status = (uint16_t)(100 + (data[0] * 7 + data[1]) % 900);
		e.flags = (uint32_t)data[0] << 24 | data[1];
	} else {
		e.status = 200;
	}
	buf = malloc(entry_size(&e, a));
	n = entry_encode(&e, a, buf, entry_size(&e, a));
	if (n < 0 || (size_t)n != entry_size(&e, a))
		abort();
	if (entry_decode(buf, (size_t)n, e.key, e.klen, a, &d) != 0 || !same(&e, &d))
		abort();
	if (n > 0 && entry_decode(buf, (size_t)n - 1, e.key, e.klen, a, &d) >= 0)
		abort();
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pol_limits lim = { .max_headers = 100, .max_query_params = 100 };
	struct pol_request rq;
	struct pol_lookup L;
	unsigned sel;
	int64_t now = 0;
	uint8_t *fixed;
	int v;

	if (auth == NULL && (auth = entry_auth_new(SECRET, strlen(SECRET))) == NULL)
		abort();
	if (size < 9) {
		build(data, size, NULL);
		return 0;
	}
	sel = data[0];
	for (int i = 1; i < 9; i++)
		now = (int64_t)((uint64_t)now << 8 | data[i]);
	data += 9;
	size -= 9;
	v = (int)(sel & 3);
	lim.auth = (sel & SEL_AUTH) ? auth : NULL;
	if (sel & SEL_FEW_LINES)
		lim.max_headers = 4;

	memset(&rq, 0, sizeof(rq));
	rq.method = requests[v].method;
	rq.method_len = strlen(rq.method);
	rq.url = "/";
	rq.url_len = 1;
	rq.hdrs = (const uint8_t *)requests[v].hdrs;
	rq.hdrs_len = requests[v].hlen;
	policy_request(&policies[requests[v].policy], &lim, &rq, &L);
	if (L.action != PA_FETCH)
		abort();

	replay(&L, &lim, data, size, now);
	if (sel & SEL_FIX) {
		fixed = fix(data, size, L.key, lim.auth);
		replay(&L, &lim, fixed, size, now);
		free(fixed);
	}
	build(data, size, lim.auth);
	return 0;
}
