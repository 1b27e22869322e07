/*
 * cache.h - the cache itself: what a lookup and a store message mean.
 *
 * cache_notify() reads the messages of one NOTIFY (cache-lookup,
 * cache-lookup-body, cache-store), decides Bypass / Hit / Miss / Refresh,
 * talks to memcached through the worker's pool and finishes the request with
 * spoe_req_done(). The key derivation is shared with spoe-cache-ctl
 * (cache_request_key), so the CLI computes exactly the agent's keys.
 *
 * Variables set for HAProxy (scope txn, prefix "cache"):
 *   status   Hit | Miss | Refresh | Bypass
 *   key      the cache key (hex SHA-256), when the request is cacheable
 *   ctx      what the store step needs (opaque, made by the agent)
 *   serve    true when the Lua service must answer (a Hit, a 304, a 504)
 *   code, headers, body   that answer
 */
#ifndef SC_CACHE_H
#define SC_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hdrs.h"
#include "key.h"

struct spoe_req;

void cache_notify(struct spoe_req *r, const uint8_t *payload, size_t len);

/* Why a request is not looked up (Bypass), for logs and the CLI. */
enum cache_reqerr {
	CRE_OK = 0,
	CRE_METHOD = -1,	/* method not cacheable by the policy */
	CRE_URL = -2,		/* not an origin-form or absolute URL we accept */
	CRE_HOST = -3,		/* no Host, several, or not the absolute URL's */
	CRE_KEY_INPUT = -4,	/* control characters, bad %-escapes, ... */
	CRE_TOO_MANY = -5,	/* too many query parameters or headers */
	CRE_BODY = -6,		/* vary_body_json_fields and no JSON object body */
	CRE_TOO_LONG = -7,	/* vary header values too long */
};
const char *cache_reqerr_str(int e);

/* The request facts a key is made of. */
struct cache_request {
	const char *method;
	size_t method_len;
	const char *url;
	size_t url_len;
	int tls;
	const struct hdr *hdrs;
	size_t nhdrs;
	const char *consumer;		/* NULL: none */
	size_t consumer_len;
	const char *body;		/* NULL: not sent */
	size_t body_len;
};

/* Key of req under policy p (HEAD shares GET's key). 0 or a CRE_* code. */
int cache_request_key(const struct sc_config *cf, const struct sc_policy *p,
    const struct cache_request *req, char hex[KEY_HEX_LEN + 1]);

/* Entry flags (struct entry.flags). */
#define EF_AUTH_OK		0x1u	/* may answer requests with Authorization */
#define EF_MUST_REVALIDATE	0x2u	/* never served stale */

#endif
