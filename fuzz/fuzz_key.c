/*
 * fuzz_key.c - libFuzzer target for query canonicalisation and the key.
 * The canonical form must be a fixed point, must give the same key as the
 * raw query, and the filtered form must equal filtering the canonical one.
 * The input is also a header value: split at ',' into field lines it never
 * keys as the one line (vary or routing header), and a routing header
 * never keys as the vary header of the same value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* GET http://h/ under policy p: what each probe below varies from. */
static void
base_input(struct key_input *in)
{
	memset(in, 0, sizeof(*in));
	in->policy = "p";
	in->policy_len = 1;
	in->method = "GET";
	in->method_len = 3;
	in->scheme = "http";
	in->scheme_len = 4;
	in->host = "h";
	in->host_len = 1;
	in->path = "/";
	in->path_len = 1;
}

static int
key_of(const char *q, size_t qlen, const char *const *only, size_t n_only, char hex[65])
{
	struct key_input in;

	base_input(&in);
	in.query = q;
	in.query_len = qlen;
	in.only_params = only;
	in.n_only_params = n_only;
	in.max_params = KEY_MAX_PARAMS;
	return key_compute(&in, hex);
}

#define MAX_LINES 8

static int
key_hdrs(const struct key_kv *vary, size_t nv, const struct key_kv *route, size_t nr,
    char hex[65])
{
	struct key_input in;

	base_input(&in);
	in.vary_hdrs = vary;
	in.n_vary_hdrs = nv;
	in.route_hdrs = route;
	in.n_route_hdrs = nr;
	return key_compute(&in, hex);
}

static void
field_lines(const char *v, size_t len)
{
	struct key_kv one = { "X-A", 3, v, len, 1, 0 }, lines[MAX_LINES];
	char h1[65], h2[65];
	size_t n = 0, s = 0, i;
	int r1, r2;

	for (i = 0; i <= len && n < MAX_LINES; i++) {
		if (i == len || v[i] == ',') {
			lines[n] = (struct key_kv){ "X-A", 3, v + s, i - s, 1, n > 0 };
			n++;
			s = i + 1;
		}
	}
	if (s <= len && n == MAX_LINES)
		return;		/* more commas than lines: not a split of v */
	r1 = key_hdrs(&one, 1, NULL, 0, h1);
	r2 = key_hdrs(lines, n, NULL, 0, h2);
	if (r1 != r2 || (r1 != 0 && r1 != KEY_ERR_BAD_INPUT))
		abort();
	if (r1 == 0 && n > 1 && strcmp(h1, h2) == 0)
		abort();
	for (i = 0; i < n; i++)
		lines[i].cont = 0;
	r2 = key_hdrs(NULL, 0, lines, n, h2);
	if (r1 == 0 && (r2 != 0 || (n > 1 && key_hdrs(NULL, 0, &one, 1, h1) == 0 &&
	    strcmp(h1, h2) == 0)))
		abort();
	/* routing and vary never share a key */
	if (r1 == 0 && (key_hdrs(NULL, 0, &one, 1, h1) != 0 || key_hdrs(&one, 1, NULL, 0, h2) != 0 ||
	    strcmp(h1, h2) == 0))
		abort();
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
	field_lines(q, size);
	return 0;
}
