/*
 * l1.h - may HAProxy's node-local tier (L1: HAProxy's own cache, the
 * templates' spoe-cache-l1 section) keep this hit, and for how long?
 *
 * The L1 answers requests before the agent is asked, so it may only keep
 * what any plain request for the same URL would get from the agent: a Hit
 * of a full GET, for a policy whose key depends on the URL alone, of an
 * entry without Vary, asked by a request that carries nothing the agent
 * treats specially (Authorization, conditionals, a consumer, a body,
 * request Cache-Control or Pragma, Range). The template's cache-use line
 * refuses such requests on its own too; this is the agent's half, the one
 * that knows the policy and the entry.
 *
 * Pure: time is an argument. Must not widen what policy.c decides: it only
 * ever narrows a Hit to "also keep it in L1 for n ms".
 */
#ifndef SC_L1_H
#define SC_L1_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/* Request facts policy_request() does not keep in struct pol_lookup. */
#define L1_REQ_CONSUMER	0x1u	/* a consumer identity was sent */
#define L1_REQ_BODY	0x2u	/* a request body was sent */

/* The l1_ttl of policy p in seconds, 0 when its key depends on more than
 * the URL (vary_headers, vary_body_json_fields) or p is NULL. What a
 * lookup keeps of the policy until its fetch returns. */
int l1_policy_ttl(const struct sc_policy *p);

/*
 * Milliseconds the L1 may serve h (what policy_entry() decided for L) from
 * now on: min(ttl seconds from l1_policy_ttl(), the entry's freshness
 * left), or 0 for "do not keep it". now_ms is the millisecond within the second policy_entry() was
 * given as now (0..999): the entry goes stale when that second count
 * reaches its end of freshness, so that much of its last second is gone.
 */
int64_t l1_grant_ms(int ttl, const struct pol_lookup *L, unsigned req,
    const struct pol_hit *h, int now_ms);

/*
 * The copy of a granted Hit that HAProxy's cache can keep and replay as it
 * is, labelled "x-cache-tier: L1"; the hit service sends it as it sends
 * any answer, and the template's rules give the live answer back what
 * differs (the L2 label, age as its Age, no added Expires). Made from
 * the served block buf[0..*len) in place (cap bytes of room), for a Hit
 * of age seconds granted grant_ms at now (unix seconds); cstatus: the
 * block ends with a Cache-Status "hit; ttl=" line (PL_CSTATUS).
 *
 * HAProxy's cache adds Age = the Age it kept (none for "Age: 0", which it
 * refuses, so that line goes) plus the whole seconds since, and keeps a
 * response's Age only up to its s-maxage or max-age. So:
 * - fast form, for a block with such a lifetime at least age (or age 0
 *   and a validator, an Expires or a lifetime) and no ttl to count down:
 *   the block as it is, without "age: 0";
 * - marked form, for the rest: no Age, "x-spoe-cache-l1: AGE" (";e" after
 *   it when an Expires was added: HAProxy's cache keeps nothing without
 *   a validator or a lifetime), and the template's rules turn each replay
 *   back into this answer (Age = AGE + the seconds since, the added
 *   Expires removed, the ttl counted down).
 * A wrong guess only costs the copy (HAProxy then keeps none), never a
 * wrong Age. Returns 0 and sets *expires (1: an Expires was added), or -1
 * when it makes none (a block it cannot read whole, or not room enough in
 * cap): buf is then unchanged.
 */
int l1_copy(char *buf, size_t *len, size_t cap, int64_t age, int cstatus, int64_t grant_ms,
    int64_t now, int *expires);

#endif
