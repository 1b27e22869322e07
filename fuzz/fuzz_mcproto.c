/*
 * fuzz_mcproto.c - libFuzzer target for the memcached reply parser and the
 * key check / encoders (mcproto.c). The input is a reply stream: parsed
 * reply after reply as the pool does, with the invariants the pool relies
 * on checked after each one.
 *
 * Must not do I/O or keep state between inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the first byte picks the value limit, so "above the max" is reached */
	size_t max = size ? (size_t)data[0] * 4 : 0, off = 0;
	char hdr[MC_MAX_HDR];
	struct mc_reply r;

	while (off < size) {
		int n = mc_parse_reply(data + off, size - off, max, &r);

		if (n < 0) {
			if (r.err == NULL)
				abort();
			if (r.type == MC_R_VA && r.need) {
				/* the pool skips such a value: the sizes must agree */
				if (r.vlen <= max || r.need < r.vlen + 4)
					abort();
			}
			break;
		}
		if (n == 0) {
			if (r.need && r.need <= size - off)
				abort();	/* said "need more" while it had it all */
			break;
		}
		if ((size_t)n > size - off)
			abort();
		if (r.type == MC_R_NONE)
			abort();
		if (r.type == MC_R_VA) {
			if (r.vlen > max || r.val < data + off ||
			    r.val + r.vlen + 2 > data + off + (size_t)n)
				abort();
		}
		if (r.text && (r.text < (const char *)data + off ||
			       r.text + r.textlen > (const char *)data + off + (size_t)n))
			abort();
		off += (size_t)n;
	}

	/* the input as a key: a valid key must encode, an invalid one never */
	if (size <= 300) {
		const char *k = (const char *)data;
		int ok = mc_key_valid(k, size);
		int g = mc_enc_get(hdr, sizeof(hdr), k, size, 1);
		int s = mc_enc_set(hdr, sizeof(hdr), k, size, size, 0, 2);
		int d = mc_enc_delete(hdr, sizeof(hdr), k, size, 3);

		if (ok != (g > 0) || ok != (s > 0) || ok != (d > 0))
			abort();
		if (ok && (memchr(hdr, '\n', (size_t)d - 1) || hdr[d - 1] != '\n'))
			abort();
	}
	return 0;
}
