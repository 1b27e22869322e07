/*
 * fuzz_jsonf.c - libFuzzer target for the JSON field extractor. Validity
 * must not depend on which names are asked for or on the scratch size, and
 * every value must lie where the contract says (scratch or the body), and
 * the canonical text of an object or array is a fixed point.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "a", "b", "id", "", "\xc3\xa9" };
	static const size_t lens[] = { 1, 1, 2, 0, 2 };
	const char *b = (const char *)data;
	struct key_kv out[5], out2[5];
	char *scratch = malloc(size + 1), small[4], again[4096];
	size_t i;
	int r, r0, r2;

	r = jsonf_extract(b, size, names, lens, 5, out, scratch, size + 1);
	r0 = jsonf_extract(b, size, NULL, NULL, 0, NULL, NULL, 0);
	r2 = jsonf_extract(b, size, names, lens, 5, out2, small, sizeof(small));
	if (r == JSONF_ERR_NOSPACE)		/* decoding never grows a string */
		abort();
	if ((r == 0) != (r0 == 0) || (r2 == JSONF_ERR_INVALID) != (r == JSONF_ERR_INVALID))
		abort();
	for (i = 0; r == 0 && i < 5; i++) {
		switch (out[i].present) {
		case JSONF_ABSENT:
			if (out[i].vlen != 0)
				abort();
			break;
		case JSONF_STRING:
			if (out[i].vlen && (out[i].val < scratch || out[i].val + out[i].vlen > scratch + size + 1))
				abort();
			if (r2 == 0 && (out2[i].vlen != out[i].vlen ||
			    memcmp(out2[i].val, out[i].val, out[i].vlen) != 0))
				abort();
			break;
		case JSONF_LITERAL:
			if (out[i].vlen == 0 || out[i].val < b || out[i].val + out[i].vlen > b + size)
				abort();
			break;
		case JSONF_JSON:
			/* canonical text: in scratch, an object or array, no longer
			 * than the body, and what a small scratch yields too */
			if (out[i].vlen < 2 || out[i].val < scratch ||
			    out[i].val + out[i].vlen > scratch + size + 1 || out[i].vlen > size)
				abort();
			if (!((out[i].val[0] == '{' && out[i].val[out[i].vlen - 1] == '}') ||
			    (out[i].val[0] == '[' && out[i].val[out[i].vlen - 1] == ']')))
				abort();
			if (r2 == 0 && (out2[i].present != JSONF_JSON || out2[i].vlen != out[i].vlen ||
			    memcmp(out2[i].val, out[i].val, out[i].vlen) != 0))
				abort();
			/* a fixed point: {"a":<canonical>} canonicalises to itself */
			if (out[i].vlen + 6 <= sizeof(again)) {
				struct key_kv o3[1];
				char s3[sizeof(again)];
				static const char *const na[] = { "a" };
				static const size_t la[] = { 1 };

				memcpy(again, "{\"a\":", 5);
				memcpy(again + 5, out[i].val, out[i].vlen);
				again[5 + out[i].vlen] = '}';
				if (jsonf_extract(again, out[i].vlen + 6, na, la, 1, o3, s3, sizeof(s3)) != 0 ||
				    o3[0].present != JSONF_JSON || o3[0].vlen != out[i].vlen ||
				    memcmp(o3[0].val, out[i].val, out[i].vlen) != 0)
					abort();
			}
			break;
		default:
			abort();
		}
		if (out[i].name != names[i] || out[i].nlen != lens[i])
			abort();
	}
	free(scratch);
	return 0;
}
