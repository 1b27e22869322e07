/*
 * cachectl.h - Cache-Control (RFC 9111 5.2), HTTP dates (RFC 9110 5.6.7)
 * and entity-tag comparison (RFC 9110 8.8.3, 13.1.2): the pieces of HTTP
 * semantics the cache policy reads from request and response headers.
 *
 * Pure: no allocation, no I/O, no clock, no globals. Deciding freshness or
 * storability is the policy's job, not this file's: it only reports what
 * the headers say, resolving malformed input in the conservative direction
 * (see cachectl_parse).
 */
#ifndef SC_CACHECTL_H
#define SC_CACHECTL_H

#include <stddef.h>
#include <stdint.h>

#define CC_NO_STORE		0x0001u
#define CC_NO_CACHE		0x0002u	/* also no-cache="field" (stricter than required) */
#define CC_PRIVATE		0x0004u	/* also private="field" (stricter than required) */
#define CC_PUBLIC		0x0008u
#define CC_MUST_REVALIDATE	0x0010u
#define CC_PROXY_REVALIDATE	0x0020u
#define CC_ONLY_IF_CACHED	0x0040u
#define CC_MAX_STALE_ANY	0x0080u	/* max-stale without a value: any staleness */
#define CC_NO_TRANSFORM		0x0100u
#define CC_IMMUTABLE		0x0200u
#define CC_PRESENT		0x0400u	/* cachectl_parse() was called: the header exists */
#define CC_MUST_UNDERSTAND	0x0800u	/* RFC 9111 5.2.2.3 (exact form only, like public) */

#define CC_DELTA_MAX		2147483648LL	/* RFC 9111 1.2.2: larger values clamp here */
#define CC_MALFORMED		1		/* cachectl_parse(): something was not well-formed */

struct cachectl {
	unsigned flags;
	int64_t max_age, s_maxage, max_stale, min_fresh;	/* seconds, -1 absent */
	int64_t swr, sie;	/* stale-while-revalidate, stale-if-error (RFC 5861), -1 absent */
};

void cachectl_init(struct cachectl *cc);

/*
 * Add one Cache-Control field line to CC; call once per line (the result
 * is the same as for the lines joined with ","). Returns 0, or
 * CC_MALFORMED when some element was not well-formed (already applied as
 * below; the caller may log it).
 *
 * - Directive names are case-insensitive; unknown directives are ignored.
 *   Arguments may be a token or a quoted-string (RFC 9111 5.2: recipients
 *   accept both forms, so max-age="5" is 5).
 * - delta-seconds is 1*DIGIT; anything larger than 2^31 is 2^31.
 * - A numeric directive given twice: the first one wins (RFC 9111 4.2.1).
 * - Malformed input leans towards not caching / not serving stale:
 *   max-age or s-maxage without a valid number is 0 (already stale);
 *   max-stale or min-fresh without a valid number is ignored;
 *   restrictive flags (no-store, no-cache, private, must-revalidate,
 *   proxy-revalidate, only-if-cached, no-transform) count whatever
 *   argument or junk follows them; permissive ones (public, immutable,
 *   must-understand) count only in their exact, argument-less form.
 */
int cachectl_parse(const char *v, size_t len, struct cachectl *cc);

/*
 * Add one field line of a targeted Cache-Control field (RFC 9213:
 * CDN-Cache-Control and the like) to CC. Unlike Cache-Control, it is a
 * Structured Fields Dictionary (RFC 8941): lowercase keys, members
 * separated by commas, a later member replacing an earlier one of the
 * same key. Returns 0, or -1 when the line is empty or not a valid
 * Dictionary; CC is then unchanged, and RFC 9213 2.1 says the whole field
 * must be ignored (the caller falls back to Cache-Control).
 * Mapping: max-age and s-maxage take an Integer (anything else is 0,
 * already stale, as in cachectl_parse); a flag given as ?0 is off; the
 * restrictive flags count with any other value (no-cache="x" included);
 * public, immutable and must-understand only as Boolean true (a bare key).
 */
int cachectl_parse_targeted(const char *v, size_t len, struct cachectl *cc);

/*
 * Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime) into unix seconds.
 * Returns 0 or -1 (anything else, including out-of-range fields; an
 * invalid Expires means "already expired", which is the caller's call).
 * Surrounding OWS is ignored. Day and month names and "GMT" match in any
 * letter case: RFC 9110 makes the formats case-sensitive, but RFC 9111 4.2
 * asks a cache to match them case-insensitively.
 * The weekday is checked to be a day name, not to match the date.
 * RFC 850 two-digit years: 70-99 are 19xx and 00-69 are 20xx (a fixed
 * pivot, since this function has no clock; RFC 9110's "not more than 50
 * years in the future" rule gives a different year only for dates over 40
 * years away from today, which no server sends).
 */
int http_date_parse(const char *s, size_t len, int64_t *t);

/* IMF-fixdate of T, 29 characters + NUL. -1 when the year is not in
 * 0000..9999. */
int http_date_format(int64_t t, char out[30]);

/* 1 when A and B are both valid entity-tags whose opaque-tags are equal
 * (weak comparison: W/ is ignored), else 0. Surrounding OWS ignored. */
int etag_weak_match(const char *a, size_t alen, const char *b, size_t blen);

/*
 * If-None-Match evaluation for GET/HEAD against a stored representation
 * with entity-tag ETAG: 1 when the header matches (the condition is false:
 * answer 304), 0 otherwise. "*" matches any stored representation, even
 * one without an ETag. A malformed header or ETAG gives 0 (serve the full
 * response, which is always safe).
 */
int if_none_match(const char *hdr, size_t len, const char *etag, size_t elen);

#define HTTP_RANGE_MAX		(INT64_C(1) << 62)	/* larger positions clamp here */

/*
 * A Range header (RFC 9110 14.2) that asks for one byte range: 0 and
 * *first, *last, or -1 for anything else (another unit, several ranges,
 * bad syntax, last < first), which a cache does not answer from storage.
 * bytes=A-B: first A, last B; bytes=A-: last -1; bytes=-N (the last N
 * bytes): first -1, last N. The unit name is case-insensitive.
 */
int http_range_parse(const char *s, size_t len, int64_t *first, int64_t *last);

/* That range over a representation of SIZE bytes: 1 and the bytes
 * [*off, *off + *n) when it is satisfiable, else 0 (416). */
int http_range_resolve(int64_t first, int64_t last, int64_t size, int64_t *off, int64_t *n);

#endif
