/*
 * jsonf.h - the vary_body_json_fields extractor: validates a request body
 * as one JSON object (RFC 8259) and picks the values of some of its
 * top-level members, for the cache key.
 *
 * Pure: no allocation, no I/O, no globals, no recursion (a body cannot
 * exhaust the stack). Decoded strings and canonical objects and arrays go
 * into the caller's scratch buffer; literals point into the caller's body.
 */
#ifndef SC_JSONF_H
#define SC_JSONF_H

#include <stddef.h>

#include "key.h"

#define JSONF_ERR_INVALID	(-1)	/* not exactly one valid JSON object */
#define JSONF_ERR_NOSPACE	(-2)	/* decoded strings do not fit in scratch */

#define JSONF_MAX_DEPTH		32	/* nested containers, the top-level object included */

/* key_kv.present values written by jsonf_extract(); the key hashes the
 * byte, so the string "1" and the number 1 never share a key. */
#define JSONF_ABSENT		0	/* no such member */
#define JSONF_STRING		1	/* val: the decoded string (UTF-8, may contain NUL) */
#define JSONF_LITERAL		2	/* val: a number's literal text, or true / false / null */
#define JSONF_JSON		3	/* val: an object's or array's canonical text (below) */

/*
 * Validate BUF[0..len) as one JSON object surrounded by optional JSON
 * whitespace and nothing else (no BOM), with strict RFC 8259 grammar,
 * strictly valid UTF-8, no lone surrogate escapes, at most JSONF_MAX_DEPTH
 * nested containers. Then for each i < n, out[i] gets name = names[i] and
 * the value of the top-level member whose decoded name equals names[i]
 * byte for byte (name_lens[i] bytes). When a name occurs more than once the
 * LAST occurrence wins, as in most JSON parsers an origin would use.
 * Numbers are kept as written (1.0 and 1 differ). An object or array
 * value is its canonical text: the JSON without insignificant whitespace,
 * every string re-escaped one way (\" \\ \b \f \n \r \t, \u00xx for
 * the other control characters, any other character as its UTF-8 bytes),
 * numbers, member order and repeated names as written; so two values
 * share a text only when every JSON parser reads them alike (Kong treats
 * them as absent, which would let {"q":{...}} bodies share one key).
 * Canonical text is never longer than the value as written. Only the
 * chosen values use scratch, and only once the whole body is known valid.
 * Returns 0, JSONF_ERR_INVALID or JSONF_ERR_NOSPACE (out then unspecified).
 */
int jsonf_extract(const char *buf, size_t len, const char *const *names, const size_t *name_lens,
    size_t n, struct key_kv *out, char *scratch, size_t scratch_cap);

#endif
