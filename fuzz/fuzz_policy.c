/*
 * fuzz_policy.c - libFuzzer target for the policy core: an arbitrary lookup
 * message, upstream response, stored value, ctx and now, under a few fixed
 * policies. What it checks beyond "no crash, no sanitizer report":
 *   - a fetch's key is 64 hex digits, is what policy_key() computes, and
 *     its ctx names the policy;
 *   - a stored entry fits max_ack and max_item, encodes, and its header
 *     block is replayable line by line, with nothing a hit adds itself
 *     (Set-Cookie only for a policy that stores it); it is never a 206,
 *     and its memcached exptime is never past 2^31 - 1;
 *   - without request Cache-Control, what was just stored for a request is
 *     a hit for that very request;
 *   - whatever is served stays inside the buffers it was given, and a
 *     206 is only ever a part of a stored 200, served to a Range request;
 *   - with cache_status, a store's Cache-Status says "stored".
 *
 * Input layout (big-endian; a part whose length runs past the end takes
 * what is left):
 *   u8 sel    bits 0-1 policy, 2 tls, 3/4 request/response headers as
 *             "name:value" lines (else a raw hdrs_bin block), 5 add the
 *             response's Content-Length, 6 fix the stored value's magic,
 *             version, key and CRC, 7 the response has no body
 *   u8 max_headers, u8 max_query_params (0: the maximum)
 *   u64 now, u16 later (seconds after now for the second lookup), u16 status
 *   u16 max_ack / 32, u16 max_item / 32 (0: 1 MiB)
 *   then parts, each u16 length + bytes: method (0 or 1 byte: one of a
 *   table), url, request headers, consumer, request body, response
 *   headers, response body, a stored value, a ctx
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "policy.h"
#include "varint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEL_TLS		0x04u
#define SEL_RQ_LINES	0x08u
#define SEL_RS_LINES	0x10u
#define SEL_CLEN	0x20u
#define SEL_FIX_VALUE	0x40u
#define SEL_NO_BODY	0x80u

static char *methods_gh[] = { "GET", "HEAD" };
static char *methods_ghp[] = { "GET", "HEAD", "POST" };
static char *types_default[] = { "text/plain", "application/json" };
static char *types_any[] = { "*" };
static char *types_params[] = { "text/html; charset=utf-8", "application/json" };
static char *vary_hdrs[] = { "Accept-Language", "X-Tenant" };
static char *json_fields[] = { "id", "user" };
static char *query_params[] = { "a", "b" };
static char *routing[] = { "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded" };
static char *targeted_cdn[] = { "CDN-Cache-Control" };
static char *targeted_two[] = { "Edge-Cache-Control", "CDN-Cache-Control" };
static int codes_default[] = { 200, 301, 404 };
static int codes_many[] = { 200, 203, 206, 301, 302, 404, 500 };
static char long_name[POL_MAX_NAME + 1];

#define SL(a)	{ (a), sizeof(a) / sizeof((a)[0]) }

static struct sc_policy policies[4] = {
	/* Kong's defaults */
	{ .name = "default", .response_codes = codes_default, .n_response_codes = 3,
	  .request_method = SL(methods_gh), .content_type = SL(types_default),
	  .cache_ttl = 300, .storage_ttl = -1, .key_routing_headers = SL(routing) },
	/* RFC 9111, Vary on two headers, force header, storage_ttl, Bypass
	 * on routing headers, CDN-Cache-Control, Cache-Status, Set-Cookie kept */
	{ .name = "rfc", .response_codes = codes_many, .n_response_codes = 7,
	  .request_method = SL(methods_gh), .content_type = SL(types_params),
	  .cache_ttl = 60, .storage_ttl = 3600, .cache_control = 1, .allow_force_cache_header = 1,
	  .vary_headers = SL(vary_hdrs), .key_routing_headers = SL(routing), .routing_bypass = 1,
	  .targeted_cc = SL(targeted_cdn), .cache_status = 1, .set_cookie = SC_COOKIE_STORE },
	/* JSON body fields, query params, any type, two targeted fields,
	 * Set-Cookie stripped */
	{ .name = "json", .response_codes = codes_many, .n_response_codes = 7,
	  .request_method = SL(methods_ghp), .content_type = SL(types_any),
	  .cache_ttl = 10, .storage_ttl = -1, .cache_control = 1,
	  .vary_query_params = SL(query_params), .vary_body_json_fields = SL(json_fields),
	  .targeted_cc = SL(targeted_two), .set_cookie = SC_COOKIE_STRIP },
	/* the longest name, a zero cache_ttl kept by a storage_ttl past 30 days */
	{ .name = long_name, .response_codes = codes_default, .n_response_codes = 3,
	  .request_method = SL(methods_gh), .content_type = SL(types_any),
	  .cache_ttl = 0, .storage_ttl = 40 * 86400, .allow_force_cache_header = 1 },
};

struct cur {
	const uint8_t *p;
	size_t n;
};

static uint64_t
take_u(struct cur *c, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++) {
		v <<= 8;
		if (c->n > 0) {
			v |= *c->p++;
			c->n--;
		}
	}
	return v;
}

static const uint8_t *
take(struct cur *c, size_t *len)
{
	const uint8_t *p;

	*len = (size_t)take_u(c, 2);
	if (*len > c->n)
		*len = c->n;
	p = c->p;
	c->p += *len;
	c->n -= *len;
	return p;
}

static size_t
put_str(uint8_t *out, const void *s, size_t len)
{
	int r = varint_encode(len, out, out + VARINT_MAX_LEN);

	memcpy(out + r, s, len);
	return (size_t)r + len;
}

/* "name:value" lines -> a hdrs_bin block in a new buffer (free it). An
 * extra Content-Length line is appended when clen >= 0. */
static uint8_t *
lines_block(const uint8_t *s, size_t len, long long clen, size_t *olen)
{
	uint8_t *out = malloc((len + 2) * (2 * VARINT_MAX_LEN + 1) + 64), *o = out;
	const uint8_t *end = s + len;

	while (s < end) {
		const uint8_t *eol = memchr(s, '\n', (size_t)(end - s));
		const uint8_t *colon;

		if (eol == NULL)
			eol = end;
		colon = memchr(s, ':', (size_t)(eol - s));
		if (colon == NULL)
			colon = eol;
		if (colon > s) {
			o += put_str(o, s, (size_t)(colon - s));
			o += put_str(o, colon + (colon < eol), (size_t)(eol - colon - (colon < eol)));
		}
		s = eol + 1;
	}
	if (clen >= 0) {
		char v[24];
		int n = snprintf(v, sizeof(v), "%lld", clen);

		o += put_str(o, "Content-Length", 14);
		o += put_str(o, v, (size_t)n);
	}
	*o++ = 0;
	*o++ = 0;
	*olen = (size_t)(o - out);
	return out;
}

/* The part as a header block: lines, or the raw bytes copied (so a read
 * past the end is the sanitizer's). */
static uint8_t *
block_of(const uint8_t *s, size_t len, int lines, long long clen, size_t *olen)
{
	uint8_t *out;

	if (lines)
		return lines_block(s, len, clen, olen);
	out = malloc(len + 1);
	memcpy(out, s, len);
	*olen = len;
	return out;
}

static void *
dup(const void *p, size_t n)
{
	void *d = malloc(n + 1);

	memcpy(d, p, n);
	return d;
}

static int
is_hex_key(const char *k)
{
	return strlen(k) == KEY_HEX_LEN && strspn(k, "0123456789abcdef") == KEY_HEX_LEN;
}

/* Every line of a stored block is "name: value\r\n", replayable, and none
 * is one the agent computes at hit time or must never replay. */
static void
check_stored_hdrs(const char *h, size_t len, int cookies)
{
	static const char *const never[] = { "content-length", "age", "connection",
		"transfer-encoding", "x-cache-status", "x-cache-key", NULL };
	const char *end = h + len;

	while (h < end) {
		const char *eol = memchr(h, '\r', (size_t)(end - h)), *colon;

		if (eol == NULL || end - eol < 2 || eol[1] != '\n')
			abort();
		colon = memchr(h, ':', (size_t)(eol - h));
		if (colon == NULL || colon + 1 >= eol || colon[1] != ' ' ||
		    !hdr_name_valid(h, (size_t)(colon - h)) ||
		    !hdr_value_safe(colon + 2, (size_t)(eol - colon - 2)))
			abort();
		for (const char *const *n = never; *n != NULL; n++)
			if (hdr_name_eq(h, (size_t)(colon - h), *n, strlen(*n)))
				abort();
		if (!cookies && hdr_name_eq(h, (size_t)(colon - h), "set-cookie", 10))
			abort();
		h = eol + 2;
	}
}

/* policy_entry() over a copy of val sized exactly, so that what it serves
 * is checked to stay inside val and buf. */
static enum pol_answer
entry(struct pol_lookup *L, const struct pol_limits *lim, const uint8_t *val, size_t vlen,
    int64_t now, struct pol_hit *out)
{
	size_t cap = POL_HIT_BUF(vlen);
	uint8_t *v = val != NULL ? dup(val, vlen) : NULL;
	char *buf = malloc(cap);

	policy_entry(L, lim, v, vlen, now, buf, cap, out);
	if (out->answer > PE_MISS || out->status >= CS_MAX)
		abort();
	if (out->serve) {
		/* never a status HAProxy cannot replay, whatever was stored */
		if (out->hdrs != buf || out->hlen > cap || out->code < 200 || out->code > 599)
			abort();
		if (out->body != NULL && (v == NULL || out->body < v || out->body + out->blen > v + vlen))
			abort();
		/* a part only for a Range request, and only of a whole 200 */
		if (out->code == 206 && !(L->flags & PL_RANGE))
			abort();
	}
	free(buf);
	free(v);
	return out->answer;
}

/* A store decision: checked, and when it stores, encoded and returned in
 * a new buffer (free it). */
static uint8_t *
store(const struct sc_policy *p, const struct pol_limits *lim, const struct pol_response *rs,
    int64_t now, size_t max_ack, size_t max_item, struct pol_store *st, size_t *vlen)
{
	size_t hcap = POL_STORE_HBUF(rs->hdrs_len);
	char *hbuf = malloc(hcap);
	uint8_t *val = NULL;

	policy_response(p, lim, rs, now, max_ack, max_item, hbuf, hcap, st);
	if (st->action > PS_STORE || st->label == NULL)
		abort();
	if (st->action == PS_REFUSE && st->why >= SR_MAX)
		abort();
	if (st->action == PS_STORE) {
		const struct entry *e = &st->e;
		int n;

		if (!is_hex_key(st->key) || st->mc_ttl == 0 || st->mc_ttl > INT32_MAX ||
		    e->status == 206 || entry_size(e, lim->auth) > max_item ||
		    e->klen != KEY_HEX_LEN || memcmp(e->key, st->key, KEY_HEX_LEN) != 0 ||
		    e->hlen + e->blen + POL_ACK_SLACK > max_ack || e->hlen > hcap)
			abort();
		check_stored_hdrs(e->hdrs, e->hlen, p->set_cookie == SC_COOKIE_STORE);
		if (p->cache_status && (st->cstatus_unstored >= strlen(st->cstatus) ||
		    strcmp(st->cstatus + strlen(st->cstatus) - 8, "; stored") != 0))
			abort();
		val = malloc(entry_size(e, lim->auth));
		n = entry_encode(e, lim->auth, val, entry_size(e, lim->auth));
		if (n < 0 || (size_t)n != entry_size(e, lim->auth))
			abort();
		*vlen = (size_t)n;
	}
	free(hbuf);
	return val;
}

static void
check_lookup(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_request *rq, const struct pol_lookup *L)
{
	struct hdr h[POL_MAX_HEADERS];
	size_t nh = 0, nlen = 0, max = lim->max_headers;
	const char *name = NULL;
	char hex[KEY_HEX_LEN + 1];

	if (L->action == PA_BYPASS) {
		if (L->why == NULL)
			abort();
		return;
	}
	if (!is_hex_key(L->key) || L->ctx_len > POL_CTX_MAX ||
	    policy_ctx_policy(L->ctx, L->ctx_len, &name, &nlen) != 0 ||
	    nlen != strlen(p->name) ||
	    memcmp(name, p->name, nlen) != 0)
		abort();
	if (L->action != PA_FETCH)
		return;
	if (max == 0 || max > POL_MAX_HEADERS)
		max = POL_MAX_HEADERS;
	if (hdrs_parse(rq->hdrs, rq->hdrs_len, h, max, &nh) != 0 ||
	    policy_key(p, lim, rq, h, nh, hex) != 0 || strcmp(hex, L->key) != 0)
		abort();
}

/* The bytes with the entry magic, version, key and checksum made right, so
 * the policy sees arbitrary fields instead of a CRC or key failure. */
static void
fix_value(uint8_t *v, size_t n, const char *key)
{
	uint32_t c;

	if (n < ENTRY_OVERHEAD)
		return;
	memcpy(v, "SCE", 3);
	v[3] = ENTRY_VERSION;
	v[4] = ENTRY_TAG_CRC32C;
	if (n >= ENTRY_OVERHEAD + KEY_HEX_LEN) {
		v[43] = KEY_HEX_LEN;
		memcpy(v + 44, key, KEY_HEX_LEN);
	}
	c = entry_crc32c(v, n - 4);
	v[n - 4] = (uint8_t)(c >> 24);
	v[n - 3] = (uint8_t)(c >> 16);
	v[n - 2] = (uint8_t)(c >> 8);
	v[n - 1] = (uint8_t)c;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mtab[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
		"OPTIONS", "get", "M-SEARCH" };
	struct cur c = { data, size };
	const struct sc_policy *p;
	struct pol_limits lim;
	struct pol_request rq;
	struct pol_response rs;
	struct pol_lookup L;
	struct pol_store st;
	struct pol_hit hit;
	const uint8_t *part[9];
	size_t plen[9], vlen = 0, max_ack, max_item;
	uint8_t *rqh, *rsh, *val, *arb;
	unsigned sel;
	int64_t now, later;

	if (long_name[0] == '\0')
		memset(long_name, 'n', sizeof(long_name) - 1);
	sel = (unsigned)take_u(&c, 1);
	p = &policies[sel & 3];
	lim.max_headers = (size_t)take_u(&c, 1);
	lim.max_query_params = (size_t)take_u(&c, 1);
	lim.auth = NULL;
	now = (int64_t)take_u(&c, 8);
	later = (int64_t)take_u(&c, 2);
	later = now > INT64_MAX - later ? INT64_MAX : now + later;
	memset(&rs, 0, sizeof(rs));
	rs.status = (int64_t)take_u(&c, 2);
	max_ack = (size_t)take_u(&c, 2) * 32;
	max_item = (size_t)take_u(&c, 2) * 32;
	if (max_ack == 0)
		max_ack = 1 << 20;
	if (max_item == 0)
		max_item = 1 << 20;
	for (int i = 0; i < 9; i++)
		part[i] = take(&c, &plen[i]);

	/* the lookup */
	memset(&rq, 0, sizeof(rq));
	if (plen[0] <= 1) {
		rq.method = mtab[plen[0] ? part[0][0] % 9 : 0];
		rq.method_len = strlen(rq.method);
	} else {
		rq.method = dup(part[0], plen[0]);
		rq.method_len = plen[0];
	}
	rq.url = dup(part[1], plen[1]);
	rq.url_len = plen[1];
	rq.tls = (sel & SEL_TLS) != 0;
	rq.hdrs = rqh = block_of(part[2], plen[2], sel & SEL_RQ_LINES, -1, &rq.hdrs_len);
	rq.consumer = plen[3] ? dup(part[3], plen[3]) : NULL;
	rq.consumer_len = plen[3];
	rq.body = plen[4] ? dup(part[4], plen[4]) : NULL;
	rq.body_len = plen[4];
	policy_request(p, &lim, &rq, &L);
	check_lookup(p, &lim, &rq, &L);

	/* the response to it, then what a lookup of the same request finds */
	rs.hdrs = rsh = block_of(part[5], plen[5], sel & SEL_RS_LINES,
	    (sel & SEL_CLEN) ? (long long)(sel & SEL_NO_BODY ? 0 : plen[6]) : -1, &rs.hdrs_len);
	rs.body = (sel & SEL_NO_BODY) ? NULL : dup(part[6], plen[6]);
	rs.body_len = (sel & SEL_NO_BODY) ? 0 : plen[6];
	if (L.action != PA_BYPASS) {
		rs.ctx = L.ctx;
		rs.ctx_len = L.ctx_len;
		val = store(p, &lim, &rs, now, max_ack, max_item, &st, &vlen);
		if (L.action == PA_FETCH && val != NULL) {
			struct pol_lookup L2 = L;

			if (strcmp(st.key, L.key) != 0)
				abort();
			entry(&L2, &lim, val, vlen, now, &hit);
			if (!(L.flags & PL_CC) && st.e.lifetime > st.e.age0 &&
			    hit.answer != PE_HIT && hit.answer != PE_NOT_MODIFIED)
				abort();
			L2 = L;
			entry(&L2, &lim, val, vlen, later, &hit);
		}
		free(val);
	}

	/* the same response under an arbitrary ctx */
	rs.ctx = arb = dup(part[8], plen[8]);
	rs.ctx_len = plen[8];
	free(store(p, &lim, &rs, now, max_ack, max_item, &st, &vlen));
	free(arb);

	/* an arbitrary stored value, as it came and made to decode */
	if (L.action == PA_FETCH) {
		struct pol_lookup L2 = L;

		entry(&L2, &lim, part[7], plen[7], now, &hit);
		entry(&L2, &lim, NULL, 0, now, &hit);
		arb = dup(part[7], plen[7]);
		if (sel & SEL_FIX_VALUE)
			fix_value(arb, plen[7], L.key);
		L2 = L;
		entry(&L2, &lim, arb, plen[7], later, &hit);
		free(arb);
	}

	if (plen[0] > 1)
		free((void *)rq.method);
	free((void *)rq.url);
	free((void *)rq.consumer);
	free((void *)rq.body);
	free((void *)rs.body);
	free(rqh);
	free(rsh);
	return 0;
}
