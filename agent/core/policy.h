/*
 * policy.h - every cache decision, as pure functions over plain inputs:
 * the HTTP semantics of MISSION 4.2-4.5 (key, freshness, Vary, what may be
 * stored and what may be served), with nothing else in them.
 *
 * Three decisions, one per step of a transaction:
 *   policy_request()   a lookup message -> Bypass (why) | Invalidate | Fetch
 *                      (the key to read, and the context of the request)
 *   policy_entry()     what the fetch found + the request + now -> Hit,
 *                      304, 504, Refresh or Miss, with what to serve
 *   policy_response()  an upstream response + the context + now -> an
 *                      entry to store with its memcached TTL, an
 *                      invalidation, or a refusal (why)
 *
 * Pure: no I/O, no clock (now is a parameter), no globals, no allocation
 * (OpenSSL's digest context aside, see key.h). Every output that is not a
 * pointer into the inputs is written into the caller's structs or buffers.
 *
 * The context (ctx) is what HAProxy carries from the lookup to the store
 * (txn.cache.ctx): made here, never by the client, checked when it comes
 * back; the agent keeps no state between the two halves, so any agent may
 * store what another looked up.
 */
#ifndef SC_POLICY_H
#define SC_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "cachecontrol.h"
#include "entry.h"
#include "hdrs.h"
#include "key.h"
#include "mcproto.h"

/* Limits the runtime works within; config.c refuses settings beyond them. */
#define POL_MAX_HEADERS		1000	/* header lines of one message */
#define POL_MAX_VARY		64	/* vary_headers, vary_body_json_fields, key_routing_headers each */
#define POL_MAX_NAME		255	/* a policy name, as the ctx carries it */
#define POL_CTX_HDRS_MAX	4096	/* request headers the ctx carries for Vary */
#define POL_CTX_MAX		(1 + 1 + KEY_HEX_LEN + 1 + POL_MAX_NAME + 2 + POL_CTX_HDRS_MAX)
#define POL_VARY_MAX		4096	/* an entry's Vary record */
#define POL_INM_MAX		1024	/* If-None-Match kept for a conditional hit */
#define POL_HIT_EXTRA		512	/* header bytes a hit adds to the stored ones */
#define POL_ACK_SLACK		512	/* an ACK's variables besides headers and body */
#define POL_KEY_LINES		256	/* vary and routing header field lines one key takes */
#define POL_KEY_HDR_BYTES	8192	/* their values, in all */

/* Collapsed forwarding (see policy_entry): how long a lookup waits by
 * default for the fetch another lookup of its key won, in ms. It must stay
 * below HAProxy's "timeout processing" (the templates: 1500 ms). */
#define POL_COLLAPSE_WAIT_DEFAULT	1000
#define POL_STALE_KEEP_DEFAULT		600
/* What a response with Set-Cookie gets (RFC 9111 7.3 leaves it to the
 * operator): not stored (the default), stored without its Set-Cookie
 * header lines, or stored and replayed with them. */
enum sc_set_cookie { SC_COOKIE_REFUSE = 0, SC_COOKIE_STRIP, SC_COOKIE_STORE };

#define POL_CSTATUS_NAME	"spoe-cache"	/* this cache in Cache-Status (RFC 9211) */
#define POL_CSTATUS_MAX		96		/* the longest Cache-Status value made here */

/* A comma-free list of strings, as configured. */
struct sc_strlist {
	char **v;
	size_t n;
};

/* One named policy (Kong's vocabulary). config.c allocates and fills it. */
struct sc_policy {
	char *name;
	int *response_codes;		/* default 200, 301, 404 */
	size_t n_response_codes;
	struct sc_strlist request_method;	/* default GET, HEAD */
	struct sc_strlist content_type;		/* default text/plain, application/json; "*" = any */
	int cache_ttl;			/* seconds, default 300 */
	int storage_ttl;		/* seconds, -1 = same as the freshness lifetime */
	int cache_control;		/* honour RFC 9111 Cache-Control, default off */
	int allow_force_cache_header;	/* X-Proxy-Cache-Memcached-Force: true */
	struct sc_strlist vary_headers;
	struct sc_strlist vary_query_params;	/* empty = every parameter */
	struct sc_strlist vary_body_json_fields;
	int l1_ttl;			/* seconds a node-local tier may keep a hit, 0 = never; default 60 */
	int collapse_wait;		/* ms a lookup waits for another's fetch of its key, 0 = never */
	int stale_while_revalidate;	/* s past freshness served while one request refreshes (RFC 5861) */
	int stale_if_error;		/* s past freshness served instead of an origin error */
	int stale_keep;			/* s past freshness an entry with a validator is kept */
	struct sc_strlist key_routing_headers;	/* default pol_routing_headers_default */
	int routing_bypass;		/* routing_headers = "bypass": Bypass, don't key */
	int cache_status;		/* add Cache-Status (RFC 9211), default off */
	enum sc_set_cookie set_cookie;	/* default SC_COOKIE_REFUSE */
	struct sc_strlist targeted_cc;	/* RFC 9213 targeted fields, first = most specific;
					 * default CDN-Cache-Control; read with cache_control */
	int line;
};

/* Headers origins honour for routing or URL building, keyed by default
 * (key_routing_headers): a response one of them shaped then only reaches
 * requests that carry the same values. NULL-terminated. */
extern const char *const pol_routing_headers_default[];

/* The agent-wide bounds a decision works within, and the entry secret. */
struct pol_limits {
	size_t max_headers;		/* 1..POL_MAX_HEADERS */
	size_t max_query_params;	/* 1..KEY_MAX_PARAMS */
	const struct entry_auth *auth;	/* NULL: entries are not signed (entry.h) */
};

/* What a lookup ends as, for X-Cache-Status and the metrics. */
enum cache_status { CS_HIT, CS_MISS, CS_REFRESH, CS_BYPASS, CS_MAX };
extern const char *const cache_status_name[CS_MAX];

/* Why a response was not stored. */
enum store_refusal {
	SR_STATUS, SR_CONTENT_TYPE, SR_NO_STORE, SR_PRIVATE, SR_SET_COOKIE,
	SR_AUTHORIZATION, SR_LENGTH, SR_TOO_BIG, SR_VARY, SR_ZERO_TTL, SR_HEADERS,
	SR_STORE_FAILED,
	SR_PARTIAL,		/* a 206: never stored (RFC 9111 3.3 is a MAY we do not take) */
	SR_UNCACHEABLE,		/* RFC 9111 3: no explicit freshness, and neither public
				 * nor a heuristically cacheable status; or must-understand
				 * with a status this cache does not implement */
	SR_MAX
};
extern const char *const store_refusal_name[SR_MAX];

/* Entry flags (struct entry.flags). */
#define EF_AUTH_OK		0x1u	/* may answer requests with Authorization */
#define EF_MUST_REVALIDATE	0x2u	/* never served stale */

/* ---- the request ---- */

/* A lookup message as HAProxy sent it. Borrowed; NULL pointers with a
 * zero length are absent. */
struct pol_request {
	const char *method;
	size_t method_len;
	const char *url;
	size_t url_len;
	int tls;
	const uint8_t *hdrs;		/* req.hdrs_bin; NULL: not sent */
	size_t hdrs_len;
	const char *consumer;		/* NULL or empty: none */
	size_t consumer_len;
	const char *body;		/* NULL: not sent */
	size_t body_len;
};

/* Why a request's key cannot be made (each one is a Bypass). */
enum pol_keyerr {
	PKE_OK = 0,
	PKE_URL = -1,		/* not an origin-form or absolute URL we accept */
	PKE_HOST = -2,		/* no Host, several, or not the absolute URL's */
	PKE_KEY_INPUT = -3,	/* control characters, bad %-escapes, ... */
	PKE_TOO_MANY = -4,	/* too many query parameters or headers */
	PKE_BODY = -5,		/* vary_body_json_fields and no JSON object body */
	PKE_TOO_LONG = -6,	/* vary and routing header values too long */
	PKE_SCHEME = -7,	/* absolute URL's scheme is not the connection's */
};
const char *pol_keyerr_str(int e);

/* The key of rq under p (HEAD shares GET's key), over headers already
 * parsed. 0 or a PKE_* code. spoe-cache-ctl computes keys with this too.
 * An absolute-form target is keyed on its own scheme and authority; it
 * must name the connection's scheme and the Host header (when there is
 * one), else PKE_SCHEME / PKE_HOST. Routing headers are keyed unless the
 * policy bypasses on them (policy_request() does that, before the key). */
int policy_key(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_request *rq, const struct hdr *hdrs, size_t nh,
    char hex[KEY_HEX_LEN + 1]);

enum pol_action {
	PA_BYPASS,		/* nothing to look up or store */
	PA_INVALIDATE,		/* unsafe method: the ctx names the entry to delete */
	PA_FETCH,		/* read key, then ask policy_entry() */
};

/* Request flags (struct pol_lookup.flags). */
#define PL_HEAD		0x1u	/* HEAD: answered from GET's entry, no body */
#define PL_AUTH		0x2u	/* the request carries Authorization */
#define PL_CC		0x4u	/* request Cache-Control is honoured */
#define PL_IMS		0x8u	/* ims is set */
#define PL_POLL		0x10u	/* set by the caller: a waiting lookup reads the key again */
#define PL_WAIT_OVER	0x20u	/* set by the caller: it waited collapse_wait already */
#define PL_NO_CLAIM	0x40u	/* its response cannot make an entry (HEAD, conditional,
				 * only-if-cached): it never claims a fetch others wait for */
#define PL_ERROR	0x80u	/* set by the caller: the origin failed, a stale entry
				 * inside its stale-if-error window may stand in */
#define PL_REVALIDATED	0x100u	/* set by the caller: the entry was just revalidated (a
				 * 304): serve it as it is, labelled Refresh */
#define PL_RANGE	0x200u	/* one byte range asked for: range_first, range_last */
#define PL_CSTATUS	0x400u	/* the policy adds Cache-Status */
#define PL_COOKIES	0x800u	/* the policy stores Set-Cookie: entries may replay it */
#define PL_ROUTED	0x1000u	/* the key holds routing header lines (key_routing_headers) */

/* The refresh lock of a stale entry (policy_entry's PE_LOCK). */
enum pol_lock { PLK_NONE, PLK_WON, PLK_LOST };

/* What memcached keeps besides entries: a fetch in progress is an empty
 * item (mc_enc_get_meta's vivify, or the refresh lock under the key
 * policy_lock_key() names), and a response known not to be storable is
 * the pass marker, kept POL_PASS_TTL seconds, so that lookups of its key
 * go to the origin at once instead of waiting for a store that will not
 * come. A forged marker can only cause misses. */
#define POL_PASS_MARK		"SCP1"
#define POL_PASS_LEN		4
#define POL_PASS_TTL		10
#define POL_LOCK_TTL		5	/* a refresh lock without collapse_wait */
/* A soft purge (spoe-cache-ctl purge --soft, the admin endpoint's
 * ?soft=1) marks an entry stale: the next lookup refreshes it, the ones
 * meanwhile are served from it, and it lives this long more at most. */
#define POL_SOFT_PURGE_TTL	30
#define POL_LOCK_KEY_LEN	(KEY_HEX_LEN + 2)
void policy_lock_key(const char *key, char out[POL_LOCK_KEY_LEN + 1]);

/* The request decision, and everything the later ones need of the request. */
struct pol_lookup {
	enum pol_action action;
	const char *why;		/* PA_BYPASS: a static reason, for logs */
	int bad;			/* PA_BYPASS: the message itself was unusable */
	int keyerr;			/* PA_BYPASS: the PKE_* code, or 0 */
	unsigned flags;			/* PL_* */
	char key[KEY_HEX_LEN + 1];	/* PA_FETCH */
	struct cachectl rcc;		/* request Cache-Control (with Pragma) */
	int64_t ims;			/* If-Modified-Since */
	size_t inm_len;			/* 0: no If-None-Match */
	char inm[POL_INM_MAX];
	uint8_t ctx[POL_CTX_MAX];	/* PA_FETCH, PA_INVALIDATE: txn.cache.ctx */
	size_t ctx_len;
	/* Collapsed forwarding and stale serving (PA_FETCH). */
	int collapse_ms;		/* the policy's collapse_wait */
	uint32_t vivify;		/* N<ttl> of the first fetch, 0: none */
	uint32_t lock_ttl;		/* seconds a refresh lock (PE_LOCK) lives */
	unsigned mc;			/* set by the caller: MC_MF_* of the fetch's reply */
	enum pol_lock lock;		/* set by the caller after PE_LOCK */
	int64_t range_first, range_last;	/* PL_RANGE: as http_range_parse() */
	const char *cstatus;		/* PL_CSTATUS, not PA_FETCH: Cache-Status (static) */
};

/* p NULL: the message named no known policy (Bypass, bad). Nothing in
 * *out points into rq. */
void policy_request(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_request *rq, struct pol_lookup *out);

/* ---- what was fetched ---- */

enum pol_answer {
	PE_HIT,			/* serve the entry */
	PE_NOT_MODIFIED,	/* serve 304 from the entry */
	PE_GATEWAY_TIMEOUT,	/* only-if-cached and nothing usable: 504 */
	PE_REFRESH,		/* stored, not fresh enough: fetch and store */
	PE_MISS,		/* nothing usable: fetch and store */
	PE_WAIT,		/* another lookup is fetching it: read the key again
				 * later (PL_POLL), or set PL_WAIT_OVER once
				 * collapse_ms has passed */
	PE_LOCK,		/* stale: take the refresh lock (pool_add under
				 * policy_lock_key(), ttl L->lock_ttl), set L->lock,
				 * and decide again on the same value */
};

/* Why a stale entry is served (pol_hit.stale). */
enum pol_stale { PST_NONE, PST_SWR, PST_PURGE, PST_ERROR, PST_MAX };
extern const char *const pol_stale_name[PST_MAX];

struct pol_hit {
	enum pol_answer answer;
	enum cache_status status;	/* what X-Cache-Status says */
	int serve;			/* the Lua service answers: code, hdrs, body */
	int code;
	const char *hdrs;		/* "name: value\r\n" lines, in the caller's buffer */
	size_t hlen;
	const uint8_t *body;		/* NULL: no body to send; else into the value */
	size_t blen;
	int64_t age;
	int64_t fresh_left;		/* serve of an entry: seconds of freshness left (<= 0: stale) */
	int vary;			/* serve of an entry: it was stored with a Vary record */
	int reject;			/* 0, or the ENTRY_ERR_* that made the value a Miss */
	enum pol_stale stale;		/* PE_HIT of a stale entry: why it may be served */
	int sie;			/* a stale entry inside its stale-if-error window:
					 * the store step may be answered with it */
	/* PE_REFRESH of a stale entry with validators (RFC 9111 4.3.1): send
	 * them to the origin, and carry the entry (code, hdrs, body as for
	 * serve, serve 0) so that a 304 can be answered with it. */
	int reval;
	const char *etag, *lastmod;	/* NULL: absent; into the value */
	size_t etag_len, lastmod_len;
	const char *note;		/* an entry refused or that did not decode: why, for a log */
	const char *cstatus;		/* PL_CSTATUS and !serve: Cache-Status so far (static);
					 * a served answer has it in hdrs */
};

/* Room policy_entry() needs in buf for a value of vlen bytes. */
#define POL_HIT_BUF(vlen)	((vlen) + POL_HIT_EXTRA)

/*
 * Decide on what the fetch of L->key found: val NULL means nothing (absent,
 * or the shard failed). An entry that does not decode under L->key and
 * lim->auth, or fails entry_check_replay(), is a Miss (out->reject says
 * why). The served header block is written to buf[0..cap) (cap >=
 * POL_HIT_BUF(vlen)); out->body points into val. On Refresh the ctx in L
 * is marked so the store step labels its response Refresh.
 */
void policy_entry(struct pol_lookup *L, const struct pol_limits *lim, const uint8_t *val,
    size_t vlen, int64_t now, char *buf, size_t cap, struct pol_hit *out);

/* ---- the upstream response ---- */

/* The store message as HAProxy sent it. Borrowed. */
struct pol_response {
	const uint8_t *ctx;		/* txn.cache.ctx from the lookup */
	size_t ctx_len;
	int64_t status;			/* -1: not sent */
	const uint8_t *hdrs;		/* res.hdrs_bin; NULL: not sent */
	size_t hdrs_len;
	const uint8_t *body;		/* NULL: not sent (no body) */
	size_t body_len;
	int tls;			/* the connection's: for Location targets */
	const char *consumer;		/* txn.cache_consumer: for Location targets */
	size_t consumer_len;
};

/* The policy a ctx names: 0 and (*name, *nlen), or -1 when it is not a
 * ctx this agent made. */
int policy_ctx_policy(const uint8_t *ctx, size_t len, const char **name, size_t *nlen);

enum pol_store_action {
	PS_BAD,			/* not a ctx we made, or its policy is gone: Bypass */
	PS_NONE,		/* nothing to do (a HEAD response): label as is */
	PS_REFUSE,		/* not storable: why; Bypass */
	PS_INVALIDATE,		/* delete key; Bypass */
	PS_STORE,		/* store e under key for mc_ttl seconds */
	PS_REVALIDATE,		/* a 304 to our validators: read key, then
				 * policy_revalidate() */
	PS_STALE_IF_ERROR,	/* an origin error: read key, then policy_entry()
				 * with PL_ERROR (policy_ctx_lookup()) */
};

struct pol_store {
	enum pol_store_action action;
	enum store_refusal why;		/* PS_REFUSE */
	const char *label;		/* X-Cache-Status for the client */
	char key[KEY_HEX_LEN + 1];
	struct entry e;			/* PS_STORE: hdrs in the caller's buffer, vary here, body in the input */
	uint32_t mc_ttl;		/* memcached exptime */
	int pass;			/* PS_REFUSE: store the pass marker under key (the
					 * lookup won the fetch others may wait for) */
	int unlock;			/* delete the refresh lock of key */
	/* PS_INVALIDATE: the Location and Content-Location targets on the
	 * request's authority (RFC 9111 4.4), to delete too */
	char also[2][KEY_HEX_LEN + 1];
	size_t n_also;
	/* the policy adds Cache-Status: what the store step appends to the
	 * lookup's (fwd-status, stored or why not); "" otherwise */
	char cstatus[POL_CSTATUS_MAX];
	size_t cstatus_unstored;	/* the prefix of cstatus to send if the store fails */
	uint8_t vary[POL_VARY_MAX];
};

/* Room policy_response() needs in hbuf for a header block of hlen bytes. */
#define POL_STORE_HBUF(hlen)	(2 * (hlen) + 16)

/*
 * Decide on an upstream response. p is the policy the ctx names (NULL when
 * it is unknown). max_replay is the largest header block + body a hit can
 * carry back to HAProxy; max_item the largest value memcached takes.
 */
void policy_response(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_response *rs, int64_t now, size_t max_replay, size_t max_item,
    char *hbuf, size_t hcap, struct pol_store *out);

/* A lookup rebuilt from a ctx, enough for policy_entry() at the store
 * step (stale-if-error, revalidation): 0, or -1 when it is not our ctx. */
int policy_ctx_lookup(const uint8_t *ctx, size_t len, struct pol_lookup *L);

/* Room policy_revalidate() needs in hbuf (the merged header block, and
 * the merged fields re-encoded as a response) for a stored entry of slen
 * bytes and a 304 whose header block is hlen bytes. */
#define POL_REVAL_HBUF(slen, hlen)	(6 * ((slen) + (hlen)) + 256)

/*
 * The 304 rs answered the validators of the entry val (RFC 9111 4.3.4):
 * the stored header fields are updated with the 304's (3.2) and the
 * result goes through the storage rules again, as a response with the
 * stored status and body. *out is then PS_STORE (with its body pointing
 * into val), or PS_REFUSE (serve the merged response, store nothing), or
 * PS_BAD when val is no entry of the ctx's key (nothing to answer with).
 */
void policy_revalidate(const struct sc_policy *p, const struct pol_limits *lim,
    const struct pol_response *rs, const uint8_t *val, size_t vlen, int64_t now,
    size_t max_replay, size_t max_item, char *hbuf, size_t hcap, struct pol_store *out);
/* memcached's exptime for an item kept ttl (> 0) seconds from now: up to
 * 30 days a relative time, beyond it a Unix time, which memcached reads as
 * a signed 32-bit number (anything past 2038-01-19 expires the item at
 * once): clamped there, and to 30 days when even that is not ahead. */
uint32_t policy_mc_exptime(int64_t ttl, int64_t now);

#endif
