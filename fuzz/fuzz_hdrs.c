/*
 * fuzz_hdrs.c - libFuzzer target for the hdrs_bin parser and the header
 * helpers. A parsed block is re-encoded and parsed again (the fields must
 * survive), and find/join must agree with the parsed array. Aborts on any
 * disagreement; the sanitizers catch the rest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdrs.h"
#include "varint.h"

#define MAXH 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *
put(uint8_t *p, const uint8_t *end, const char *s, size_t n)
{
	int r = varint_encode(n, p, end);

	if (r == 0 || (size_t)(end - p - r) < n)
		abort();
	memcpy(p + r, s, n);
	return p + r + n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hdr h[MAXH], h2[MAXH];
	size_t n, n2, i, from, ol, want;
	uint8_t *re, *p, *end;
	char *jo;
	int r, k;

	r = hdrs_parse(data, size, h, MAXH, &n);
	if (r != 0) {
		if (r != HDRS_ERR_MALFORMED && r != HDRS_ERR_TOO_MANY)
			abort();
		return 0;
	}
	if (n > MAXH)
		abort();
	/* re-encode canonically and parse again */
	re = malloc(size + 2 * MAXH * VARINT_MAX_LEN + 2);
	p = re;
	end = re + size + 2 * MAXH * VARINT_MAX_LEN + 2;
	for (i = 0; i < n; i++) {
		if ((const uint8_t *)h[i].name < data || (const uint8_t *)h[i].val + h[i].vlen > data + size)
			abort();
		p = put(p, end, h[i].name, h[i].nlen);
		p = put(p, end, h[i].val, h[i].vlen);
	}
	*p++ = 0;
	*p++ = 0;
	if (hdrs_parse(re, (size_t)(p - re), h2, MAXH, &n2) != 0 || n2 != n)
		abort();
	for (i = 0; i < n; i++)
		if (h2[i].nlen != h[i].nlen || h2[i].vlen != h[i].vlen ||
		    memcmp(h2[i].name, h[i].name, h[i].nlen) != 0 ||
		    memcmp(h2[i].val, h[i].val, h[i].vlen) != 0)
			abort();
	free(re);

	jo = malloc(size + 2 * MAXH + 1);
	for (i = 0; i < n; i++) {
		if (h[i].nlen == 0 || !hdr_name_eq(h[i].name, h[i].nlen, h[i].name, h[i].nlen))
			abort();
		/* the first match of this name is at or before i */
		from = 0;
		if (hdrs_find(h, n, h[i].name, h[i].nlen, &from) == NULL || from > i + 1)
			abort();
		/* join == every matching value and ", " between them */
		want = 0;
		k = 0;
		for (from = 0; hdrs_find(h, n, h[i].name, h[i].nlen, &from) != NULL; k++)
			want += h[from - 1].vlen;
		want += 2 * (size_t)(k - 1);
		if (hdrs_join(h, n, h[i].name, h[i].nlen, jo, size + 2 * MAXH + 1, &ol) != 1 ||
		    ol != want)
			abort();
		if (want > 0 && hdrs_join(h, n, h[i].name, h[i].nlen, jo, want - 1, &ol) != -1)
			abort();
		(void)hdr_value_safe(h[i].val, h[i].vlen);
		(void)hdr_name_valid(h[i].name, h[i].nlen);
		(void)hdrs_is_hop_by_hop(h[i].name, h[i].nlen);
		(void)hdr_token_in_list(h[i].val, h[i].vlen, h[i].name, h[i].nlen);
	}
	free(jo);
	return 0;
}
