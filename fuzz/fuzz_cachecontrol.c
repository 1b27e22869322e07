/*
 * fuzz_cachectl.c - libFuzzer target for Cache-Control, targeted
 * Cache-Control fields (RFC 9213), HTTP dates, entity-tags and Range.
 * Checks the documented ranges, that a rejected targeted field changes
 * nothing, that a parsed date formats and parses back to itself, that
 * etag comparison is symmetric, and that a resolved range lies inside
 * the representation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cachecontrol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
range(int64_t v)
{
	if (v < -1 || v > CC_DELTA_MAX)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const uint8_t *nl;
	struct cachectl cc, cc2;
	char out[30];
	int64_t t, t2;
	size_t alen;
	int r;

	cachectl_init(&cc);
	r = cachectl_parse(s, size, &cc);
	if ((r != 0 && r != CC_MALFORMED) || !(cc.flags & CC_PRESENT))
		abort();
	range(cc.max_age);
	range(cc.s_maxage);
	range(cc.max_stale);
	range(cc.min_fresh);
	if ((cc.flags & CC_MAX_STALE_ANY) && cc.max_stale != -1)
		abort();
	/* a second line can only add flags and cannot change a set number */
	cc2 = cc;
	cachectl_parse(s, size, &cc2);
	if (cc2.flags != cc.flags || cc2.max_age != cc.max_age || cc2.s_maxage != cc.s_maxage ||
	    cc2.max_stale != cc.max_stale || cc2.min_fresh != cc.min_fresh)
		abort();

	/* a targeted field: all or nothing */
	cachectl_init(&cc);
	cc2 = cc;
	if (cachectl_parse_targeted(s, size, &cc) == 0) {
		if (!(cc.flags & CC_PRESENT))
			abort();
		range(cc.max_age);
		range(cc.s_maxage);
	} else if (memcmp(&cc, &cc2, sizeof(cc)) != 0) {
		abort();
	}

	{
		int64_t first, last, off, n, len = (int64_t)size * 7;

		if (http_range_parse(s, size, &first, &last) == 0) {
			if ((first < 0 && last < 0) || first > HTTP_RANGE_MAX || last > HTTP_RANGE_MAX ||
			    (first >= 0 && last >= 0 && last < first))
				abort();
			if (http_range_resolve(first, last, len, &off, &n) == 1 &&
			    (off < 0 || n <= 0 || off + n > len))
				abort();
		}
	}

	if (http_date_parse(s, size, &t) == 0) {
		if (http_date_format(t, out) != 0 || strlen(out) != 29)
			abort();
		if (http_date_parse(out, 29, &t2) != 0 || t2 != t)
			abort();
	}

	/* two halves split at the first newline for the etag functions */
	nl = memchr(data, '\n', size);
	alen = nl ? (size_t)(nl - data) : size / 2;
	{
		const char *b = s + alen + (nl != NULL);
		size_t blen = size - alen - (nl != NULL);

		if (etag_weak_match(s, alen, b, blen) != etag_weak_match(b, blen, s, alen))
			abort();
		if (etag_weak_match(s, alen, s, alen) && !if_none_match(s, alen, s, alen))
			abort();
		(void)if_none_match(s, alen, b, blen);
	}
	return 0;
}
