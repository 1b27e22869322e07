/*
 * l1.c - how long the node-local tier may keep a hit, and the copy it
 * keeps; see l1.h.
 */
#include <stdio.h>
#include <string.h>

#include "cachecontrol.h"
#include "hdrs.h"
#include "l1.h"

int
l1_policy_ttl(const struct sc_policy *p)
{
	if (p == NULL || p->l1_ttl <= 0)
		return 0;
	/* The key must be a function of the URL alone. */
	if (p->vary_headers.n > 0 || p->vary_body_json_fields.n > 0)
		return 0;
	return p->l1_ttl;
}

int64_t
l1_grant_ms(int ttl_s, const struct pol_lookup *L, unsigned req,
    const struct pol_hit *h, int now_ms)
{
	int64_t left, ttl;

	if (ttl_s <= 0)
		return 0;
	if (req & (L1_REQ_CONSUMER | L1_REQ_BODY))
		return 0;
	if (L->flags & (PL_HEAD | PL_AUTH | PL_IMS | PL_RANGE | PL_ROUTED))
		return 0;
	if (L->inm_len > 0 || (L->rcc.flags & CC_PRESENT))
		return 0;
	/* A plain Hit of a whole response, stored without Vary. */
	if (h->answer != PE_HIT || h->status != CS_HIT || !h->serve || h->vary)
		return 0;
	if (h->fresh_left <= 0 || now_ms < 0 || now_ms > 999)
		return 0;
	if (h->fresh_left > INT64_MAX / 1000 - 1)
		left = INT64_MAX / 1000 - 1;
	else
		left = h->fresh_left;
	left = left * 1000 - now_ms;
	ttl = (int64_t)ttl_s * 1000;
	return left < ttl ? left : ttl;
}

/* The next "name: value\r\n" line of a block at *p (which serve() and
 * entry_check_replay() guarantee): 1 and its parts, 0 at the end. */
static int
next_line(const char **p, const char *end, const char **name, size_t *nlen,
    const char **val, size_t *vlen, size_t *llen)
{
	const char *s = *p, *colon, *eol;

	/* the colon is looked for inside the line only */
	if (s >= end || (eol = memchr(s, '\r', (size_t)(end - s))) == NULL || end - eol < 2 ||
	    eol[1] != '\n' || (colon = memchr(s, ':', (size_t)(eol - s))) == NULL ||
	    colon == s || eol - colon < 2 || colon[1] != ' ')
		return 0;
	*name = s;
	*nlen = (size_t)(colon - s);
	*val = colon + 2;
	*vlen = (size_t)(eol - colon - 2);
	*llen = (size_t)(eol + 2 - s);
	*p = eol + 2;
	return 1;
}

/* s-maxage and max-age as HAProxy's cache reads them
 * (http_calc_maxage()): element by element, the last one wins. */
static void
last_lifetimes(const char *v, size_t len, int64_t *smax, int64_t *max)
{
	const char *end = v + len, *c;
	struct cachectl one;

	while (v < end) {
		c = memchr(v, ',', (size_t)(end - v));
		if (c == NULL)
			c = end;
		cachectl_init(&one);
		(void)cachectl_parse(v, (size_t)(c - v), &one);
		if (one.s_maxage >= 0)
			*smax = one.s_maxage;
		if (one.max_age >= 0)
			*max = one.max_age;
		v = c + (c < end);
	}
}

static int
is(const char *name, size_t nlen, const char *want)
{
	return hdr_name_eq(name, nlen, want, strlen(want));
}

int
l1_copy(char *buf, size_t *len, size_t cap, int64_t age, int cstatus, int64_t grant_ms,
    int64_t now, int *expires)
{
	const char *p = buf, *end = buf + *len, *name, *val;
	size_t nlen, vlen, llen, agelen = 0, tierlen = 0, n = 0, out;
	char add[160], date[30];
	int64_t life, smax = -1, max = -1;
	int known = 0, fast, keep_age;

	while (next_line(&p, end, &name, &nlen, &val, &vlen, &llen)) {
		if (is(name, nlen, "etag") || is(name, nlen, "last-modified") ||
		    is(name, nlen, "expires"))
			known = 1;
		else if (is(name, nlen, "cache-control"))
			last_lifetimes(val, vlen, &smax, &max);
		else if (is(name, nlen, "age"))
			agelen += llen;
		else if (is(name, nlen, "x-cache-tier"))
			tierlen += llen;
	}
	if (p != end)
		return -1;	/* not a block serve() wrote: no copy */
	life = smax > 0 ? smax : max;
	known = known || life > 0;
	fast = !cstatus && ((age == 0 && known) || (age > 0 && life >= age));
	keep_age = fast && age > 0;
	if (!fast && !known && http_date_format(now + grant_ms / 1000, date) < 0)
		return -1;
	if (fast)
		n = (size_t)snprintf(add, sizeof(add), "x-cache-tier: L1\r\n");
	else
		n = (size_t)snprintf(add, sizeof(add), "%s%s%sx-spoe-cache-l1: %lld%s\r\n"
		    "x-cache-tier: L1\r\n", known ? "" : "expires: ", known ? "" : date,
		    known ? "" : "\r\n", (long long)age, known ? "" : ";e");
	if (n >= sizeof(add))
		return -1;
	/* Room: what stays of the block, then the added lines. */
	if (*len - tierlen - (keep_age ? 0 : agelen) + n > cap)
		return -1;
	p = buf;
	out = 0;
	while (next_line(&p, end, &name, &nlen, &val, &vlen, &llen)) {
		if (is(name, nlen, "x-cache-tier") || (is(name, nlen, "age") && !keep_age))
			continue;
		memmove(buf + out, name, llen);	/* never forward: p is past it */
		out += llen;
	}
	memcpy(buf + out, add, n);
	*len = out + n;
	*expires = !fast && !known;
	return 0;
}
