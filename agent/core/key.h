/*
 * key.h - the cache key: SHA-256 over an unambiguous, length-prefixed
 * encoding of everything that selects a stored response (MISSION 4.2),
 * as 64 lowercase hex characters (fits memcached's 250-byte key limit).
 *
 * Pure: no I/O, no globals; the only allocation is OpenSSL's digest
 * context. Never truncates: too many query parameters is KEY_ERR_TOO_MANY
 * (the caller Bypasses), input that cannot be a request component is
 * KEY_ERR_BAD_INPUT (the caller Bypasses).
 *
 * Encoding, in this order, each component = 1-byte tag + 8-byte big-endian
 * length + bytes (tags differ per component kind, so the stream parses one
 * way only):
 *   'K' format ("spoe-cache-key/1"), 'P' policy, 'M' method (as given,
 *   case-sensitive), 'S' scheme (lowercased), 'H' host (lowercased),
 *   'U' path (byte-exact), then per canonical query parameter 'Q' name,
 *   'E' has-'=' (1 byte), 'R' value; per vary header 'V' name (lowercased),
 *   'F' present (1 byte), 'W' value, and one more 'W' per further field
 *   line of that header; per field line of a routing header the request
 *   carries 'O' name (lowercased), 'Y' value (nothing when it carries
 *   none, so such a request keys as it did before routing headers were
 *   keyed); per json field 'J' name, 'G' present (1 byte: 0,
 *   JSONF_STRING, JSONF_LITERAL or JSONF_JSON, so 1, "1" and [1] differ),
 *   'X' value; finally 'C' consumer.
 * Absent (present == 0) hashes as present byte 0 and an empty value, so
 * an absent header never equals an empty one. Field lines are framed one
 * by one: "X: a, b" on one line and "X: a" + "X: b" never share a key,
 * since an origin can read them differently (first line only, last one).
 */
#ifndef SC_KEY_H
#define SC_KEY_H

#include <stddef.h>

#define KEY_HEX_LEN		64
#define KEY_MAX_PARAMS		1000	/* hard cap on max_params (stack bound) */

#define KEY_ERR_TOO_MANY	(-1)	/* more than max_params parameters */
#define KEY_ERR_BAD_INPUT	(-2)	/* CTL, SP, DEL, raw >= 0x80, bad %-escape, NUL, NULL pointer */
#define KEY_ERR_NOSPACE		(-3)	/* key_canon_query: output does not fit */
#define KEY_ERR_CRYPTO		(-4)	/* OpenSSL failed (allocation) */

struct key_kv {
	const char *name;
	size_t nlen;
	const char *val;	/* ignored when present == 0 */
	size_t vlen;
	int present;		/* 0 absent; any other value is hashed as one byte (clamped to 255) */
	int cont;		/* vary_hdrs only: a further field line of the previous
				 * entry's header (name and present ignored); 0 elsewhere */
};

/* Borrowed pointers only; a NULL string with length 0 is an empty one. */
struct key_input {
	const char *policy, *method, *scheme, *host, *path, *query, *consumer;
	size_t policy_len, method_len, scheme_len, host_len, path_len, query_len, consumer_len;
	const struct key_kv *vary_hdrs;		/* config order; names case-insensitive;
						 * one entry per field line (cont) */
	size_t n_vary_hdrs;
	const struct key_kv *route_hdrs;	/* routing headers present: one entry per
						 * field line, message order; present ignored */
	size_t n_route_hdrs;
	const struct key_kv *json;		/* config order; from jsonf_extract() */
	size_t n_json;
	const char *const *only_params;		/* vary_query_params (NUL-terminated); n == 0: all */
	size_t n_only_params;
	size_t max_params;			/* 0 or > KEY_MAX_PARAMS: KEY_MAX_PARAMS */
};

/* 0 and hex[0..64) lowercase + NUL, or a KEY_ERR_* (hex then undefined). */
int key_compute(const struct key_input *in, char hex[KEY_HEX_LEN + 1]);

/*
 * The canonical form of a raw query string (without the '?'), as text:
 * the kept parameters in canonical order, each "name" or "name=value",
 * joined by '&', written to out[0..cap) (not NUL-terminated) with its
 * length in *outlen. The text is unambiguous because a raw '&' never
 * survives inside a parameter and the name ends at the first raw '='.
 * It is the same canonicaliser key_compute() hashes (one code path, two
 * outputs), so a query and its canonical text always share a key.
 *
 * Rules: split on raw '&' before any decoding; drop empty segments; split
 * each at the first '=' ("a" and "a=" differ); percent-encoding is
 * normalised per RFC 3986 6.2.2 only (hex digits uppercased, %XX decoded
 * only when XX is unreserved: ALPHA DIGIT - . _ ~; '+' is not a space);
 * with ONLY (n_only > 0) keep the parameters whose normalised name equals
 * a normalised ONLY entry (every other parameter is left out of the key);
 * sort by normalised name bytewise, keeping the relative order of the
 * parameters that share a name (?a=1&a=2 and ?a=2&a=1 differ: origins
 * read the first, the last or all of them).
 * max_params counts every non-empty segment, before filtering, so the work
 * is bounded whatever the filter is.
 * Returns 0, KEY_ERR_TOO_MANY, KEY_ERR_BAD_INPUT or KEY_ERR_NOSPACE.
 */
int key_canon_query(const char *q, size_t qlen, const char *const *only, size_t n_only,
    size_t max_params, char *out, size_t cap, size_t *outlen);

#endif
