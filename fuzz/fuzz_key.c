/*
 * fuzz_key.c - libFuzzer target for query canonicalisation and the key.
 * The canonical form must be a fixed point, must give the same key as the
 * raw query, and the filtered form must equal filtering the canonical one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
key_of(const char *q, size_t qlen, const char *const *only, size_t n_only, char hex[65])
{
	struct key_input in;

	memset(&in, 0, sizeof(in));
	in.policy = "p";
	in.policy_len = 1;
	in.method = "GET";
	in.method_len = 3;
	in.scheme = "http";
	in.scheme_len = 4;
	in.host = "h";
	in.host_len = 1;
	in.path = "/";
	in.path_len = 1;
	in.query = q;
	in.query_len = qlen;
	in.only_params = only;
	in.n_only_params = n_only;
	in.max_params = KEY_MAX_PARAMS;
	return key_compute(&in, hex);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const only[] = { "a", "%62", "c=d" };
	const char *q = (const char *)data;
	char *c1 = malloc(size + 1), *c2 = malloc(size + 1);
	char h1[65], h2[65];
	size_t l1, l2;
	int r, rk;

	r = key_canon_query(q, size, NULL, 0, KEY_MAX_PARAMS, c1, size, &l1);
	rk = key_of(q, size, NULL, 0, h1);
	if (r != rk || r == KEY_ERR_NOSPACE)	/* normalising never grows */
		abort();
	if (r == 0) {
		if (l1 > size)
			abort();
		if (key_canon_query(c1, l1, NULL, 0, KEY_MAX_PARAMS, c2, size, &l2) != 0 ||
		    l2 != l1 || memcmp(c1, c2, l1) != 0)
			abort();
		if (key_of(c1, l1, NULL, 0, h2) != 0 || strcmp(h1, h2) != 0)
			abort();
		/* filtering commutes with canonicalisation */
		if (key_canon_query(q, size, only, 3, KEY_MAX_PARAMS, c2, size, &l2) != 0)
			abort();
		if (key_of(q, size, only, 3, h1) != 0 || key_of(c1, l1, only, 3, h2) != 0 ||
		    strcmp(h1, h2) != 0)
			abort();
	} else if (r != KEY_ERR_BAD_INPUT && r != KEY_ERR_TOO_MANY) {
		abort();
	}
	free(c1);
	free(c2);
	return 0;
}
