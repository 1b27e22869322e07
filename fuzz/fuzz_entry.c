/*
 * fuzz_entry.c - libFuzzer target for the stored entry format. Whatever
 * decodes must re-encode to the very same bytes (the format is canonical),
 * and an entry built from the input must round-trip exactly. The input is
 * also decoded once more with a valid header and checksum forced on it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same(const struct entry *a, const struct entry *b)
{
	return a->stored_at == b->stored_at && a->lifetime == b->lifetime &&
	    a->age0 == b->age0 && a->status == b->status && a->flags == b->flags &&
	    a->hlen == b->hlen && (a->hlen == 0 || memcmp(a->hdrs, b->hdrs, a->hlen) == 0) &&
	    a->vlen == b->vlen && (a->vlen == 0 || memcmp(a->vary, b->vary, a->vlen) == 0) &&
	    a->blen == b->blen && (a->blen == 0 || memcmp(a->body, b->body, a->blen) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct entry e, d;
	uint8_t *buf;
	size_t a, b;
	int r, n;

	r = entry_decode(data, size, &e);
	if (r == 0) {
		if (entry_size(&e) != size)
			abort();
		buf = malloc(size);
		if (entry_encode(&e, buf, size) != (int)size || memcmp(buf, data, size) != 0)
			abort();
		free(buf);
	} else if (r != ENTRY_ERR_CORRUPT && r != ENTRY_ERR_VERSION) {
		abort();
	}

	/* the same bytes with the magic, version and checksum made right, so
	 * the fuzzer reaches the length checks instead of the CRC */
	if (size >= ENTRY_OVERHEAD) {
		uint32_t c;

		buf = malloc(size);
		memcpy(buf, data, size);
		memcpy(buf, "SCE", 3);
		buf[3] = ENTRY_VERSION;
		c = entry_crc32c(buf, size - 4);
		buf[size - 4] = (uint8_t)(c >> 24);
		buf[size - 3] = (uint8_t)(c >> 16);
		buf[size - 2] = (uint8_t)(c >> 8);
		buf[size - 1] = (uint8_t)c;
		r = entry_decode(buf, size, &d);
		if (r == 0) {
			uint8_t *re = malloc(size);

			if (entry_size(&d) != size || entry_encode(&d, re, size) != (int)size ||
			    memcmp(re, buf, size) != 0)
				abort();
			free(re);
		} else if (r != ENTRY_ERR_CORRUPT) {
			abort();
		}
		free(buf);
	}

	/* build one from the input: three blocks cut at input-chosen places */
	memset(&e, 0, sizeof(e));
	if (size >= 2) {
		a = data[0] % size;
		b = data[1] % size;
		if (a > b) {
			size_t t = a;
			a = b;
			b = t;
		}
		e.hdrs = (const char *)data;
		e.hlen = a;
		e.vary = data + a;
		e.vlen = b - a;
		e.body = data + b;
		e.blen = size - b;
		e.stored_at = (int64_t)size * 1000003 - 7;
		e.lifetime = data[0];
		e.age0 = data[1];
		e.status = (uint16_t)(100 + (data[0] * 7 + data[1]) % 900);
		e.flags = (uint32_t)data[0] << 24 | data[1];
	} else {
		e.status = 200;
	}
	buf = malloc(entry_size(&e));
	n = entry_encode(&e, buf, entry_size(&e));
	if (n < 0 || (size_t)n != entry_size(&e))
		abort();
	if (entry_decode(buf, (size_t)n, &d) != 0 || !same(&e, &d))
		abort();
	if (n > 0 && entry_decode(buf, (size_t)n - 1, &d) != ENTRY_ERR_CORRUPT)
		abort();
	free(buf);
	return 0;
}
