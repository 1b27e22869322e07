/*
 * l1.c - how long the node-local tier may keep a hit; see l1.h.
 */
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
