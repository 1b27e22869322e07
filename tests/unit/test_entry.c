/*
 * test_entry.c - the stored entry format: exact round trips of any bytes,
 * and detection of every flip, truncation and crafted length. Decoder
 * inputs end exactly at a PROT_NONE page so any over-read crashes.
 */
#include "entry.h"
#include "t.h"
#include "guard.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>


/* Outcome only: the decoded pointers die with the mapping. */
static int
decode_guarded(const uint8_t *buf, size_t len)
{
	struct guard g;
	struct entry e;
	int r = entry_decode(guard_put(&g, buf, len), len, &e);

	guard_free(&g);
	return r;
}

static struct entry
sample(void)
{
	static const char hdrs[] = "Content-Type: text/plain\r\nETag: \"x\"\r\n";
	static const uint8_t vary[] = { 1, 2, 3, 0, 4 };
	static const uint8_t body[] = "hello\0world";
	struct entry e;

	memset(&e, 0, sizeof(e));
	e.stored_at = 1700000000;
	e.lifetime = 300;
	e.age0 = 17;
	e.status = 200;
	e.flags = 0xA5000001u;
	e.hdrs = hdrs;
	e.hlen = sizeof(hdrs) - 1;
	e.vary = vary;
	e.vlen = sizeof(vary);
	e.body = body;
	e.blen = sizeof(body);
	return e;
}

static int
same(const struct entry *a, const struct entry *b)
{
	return a->stored_at == b->stored_at && a->lifetime == b->lifetime &&
	    a->age0 == b->age0 && a->status == b->status && a->flags == b->flags &&
	    a->hlen == b->hlen && (a->hlen == 0 || memcmp(a->hdrs, b->hdrs, a->hlen) == 0) &&
	    a->vlen == b->vlen && (a->vlen == 0 || memcmp(a->vary, b->vary, a->vlen) == 0) &&
	    a->blen == b->blen && (a->blen == 0 || memcmp(a->body, b->body, a->blen) == 0);
}

static void
test_crc32c_vector(void)
{
	CHECK(entry_crc32c((const uint8_t *)"123456789", 9) == 0xE3069283u);
	CHECK(entry_crc32c((const uint8_t *)"", 0) == 0);
}

static void
test_round_trip(void)
{
	struct entry e = sample(), d;
	struct guard g;
	uint8_t buf[256], *gp;
	int n;

	n = entry_encode(&e, buf, sizeof(buf));
	CHECK(n > 0 && (size_t)n == entry_size(&e));
	CHECK((size_t)n == ENTRY_OVERHEAD + e.hlen + e.vlen + e.blen);
	CHECK(memcmp(buf, "SCE\x01", 4) == 0);
	gp = guard_put(&g, buf, (size_t)n);
	CHECK(entry_decode(gp, (size_t)n, &d) == 0);
	CHECK(same(&e, &d));
	CHECK(d.body >= gp && d.body + d.blen <= gp + n);	/* points into buf */
	guard_free(&g);
}

static void
test_extreme_fields(void)
{
	struct entry e = sample(), d;
	uint8_t buf[256];
	int n;

	e.stored_at = INT64_MIN;
	e.lifetime = INT64_MAX;
	e.age0 = 0;
	e.status = 999;
	e.flags = UINT32_MAX;
	n = entry_encode(&e, buf, sizeof(buf));
	CHECK(n > 0 && entry_decode(buf, (size_t)n, &d) == 0 && same(&e, &d));
	e.status = 100;
	e.stored_at = -1;
	n = entry_encode(&e, buf, sizeof(buf));
	CHECK(n > 0 && entry_decode(buf, (size_t)n, &d) == 0 && same(&e, &d));
}

static void
test_all_byte_values(void)
{
	uint8_t body[256 * 3], vary[256], buf[2048];
	char hdrs[256];
	struct entry e = sample(), d;
	size_t i;
	int n;

	for (i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i % 256);
	body[0] = body[1] = 0;
	for (i = 0; i < 256; i++) {
		vary[i] = (uint8_t)(255 - i);
		hdrs[i] = (char)i;
	}
	e.body = body;
	e.blen = sizeof(body);
	e.vary = vary;
	e.vlen = sizeof(vary);
	e.hdrs = hdrs;
	e.hlen = sizeof(hdrs);
	n = entry_encode(&e, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK(decode_guarded(buf, (size_t)n) == 0);
	CHECK(entry_decode(buf, (size_t)n, &d) == 0 && same(&e, &d));
}

static void
test_empty_blocks(void)
{
	struct entry e, d;
	uint8_t buf[ENTRY_OVERHEAD];
	struct guard g;

	memset(&e, 0, sizeof(e));
	e.status = 204;
	CHECK(entry_size(&e) == ENTRY_OVERHEAD);
	CHECK(entry_encode(&e, buf, sizeof(buf)) == ENTRY_OVERHEAD);
	CHECK(entry_decode(guard_put(&g, buf, sizeof(buf)), sizeof(buf), &d) == 0);
	CHECK(d.hlen == 0 && d.vlen == 0 && d.blen == 0 && d.status == 204);
	guard_free(&g);
}

static void
test_one_mib_body(void)
{
	size_t bl = 1024 * 1024, cap = bl + 1024;
	uint8_t *body = malloc(bl), *buf = malloc(cap);
	struct entry e = sample(), d;
	uint32_t x = 7;
	size_t i;
	int n;

	for (i = 0; i < bl; i++) {
		x = x * 1664525u + 1013904223u;
		body[i] = (uint8_t)(x >> 24);
	}
	e.body = body;
	e.blen = bl;
	n = entry_encode(&e, buf, cap);
	CHECK(n > 0 && (size_t)n == entry_size(&e));
	CHECK(decode_guarded(buf, (size_t)n) == 0);
	CHECK(entry_decode(buf, (size_t)n, &d) == 0 && same(&e, &d));
	buf[n / 2] ^= 0x10;
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
	free(body);
	free(buf);
}

static void
test_every_byte_flip(void)
{
	struct entry e = sample(), d;
	uint8_t buf[256];
	size_t i;
	int n, v, r, bad = 0;

	n = entry_encode(&e, buf, sizeof(buf));
	CHECK(n > 0);
	for (i = 0; i < (size_t)n; i++) {
		for (v = 1; v < 256; v++) {
			buf[i] ^= (uint8_t)v;
			r = entry_decode(buf, (size_t)n, &d);
			if (!(r == ENTRY_ERR_CORRUPT || (i == 3 && r == ENTRY_ERR_VERSION)))
				bad++;
			buf[i] ^= (uint8_t)v;
		}
	}
	CHECK(bad == 0);
	CHECK(entry_decode(buf, (size_t)n, &d) == 0);
	/* the guard-page pass, one flip per byte */
	for (i = 0; i < (size_t)n; i++) {
		buf[i] ^= 0x80;
		r = decode_guarded(buf, (size_t)n);
		CHECK(r == ENTRY_ERR_CORRUPT || (i == 3 && r == ENTRY_ERR_VERSION));
		buf[i] ^= 0x80;
	}
}

static void
test_every_truncation(void)
{
	struct entry e = sample();
	uint8_t buf[256];
	size_t i;
	int n;

	n = entry_encode(&e, buf, sizeof(buf) - 1);
	CHECK(n > 0);
	for (i = 0; i < (size_t)n; i++)
		CHECK(decode_guarded(buf, i) == ENTRY_ERR_CORRUPT);
	buf[n] = 0;	/* a trailing byte is corruption too */
	CHECK(decode_guarded(buf, (size_t)n + 1) == ENTRY_ERR_CORRUPT);
	CHECK(decode_guarded(buf, (size_t)n) == 0);
}

static void
test_version_and_magic(void)
{
	struct entry e = sample();
	uint8_t buf[256];
	int n;

	n = entry_encode(&e, buf, sizeof(buf));
	buf[3] = 2;
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_VERSION);
	CHECK(decode_guarded(buf, 4) == ENTRY_ERR_VERSION);	/* the layout is unknown */
	buf[3] = 0;
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_VERSION);
	buf[3] = 1;
	buf[0] = 's';
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
	CHECK(decode_guarded((const uint8_t *)"SC", 2) == ENTRY_ERR_CORRUPT);
	CHECK(decode_guarded((const uint8_t *)"VALUE", 5) == ENTRY_ERR_CORRUPT);
}

/* Lengths and fields that lie, with a checksum that matches: the length
 * checks alone must catch them. */
static void
test_crafted_lengths(void)
{
	struct entry e = sample();
	uint8_t buf[256];
	size_t hoff = 34, voff;
	uint32_t c;
	int n, i;
	static const uint32_t lies[] = { 0xFFFFFFFFu, 0x80000000u, 0x7FFFFFFFu, 1000 };

	n = entry_encode(&e, buf, sizeof(buf));
	voff = hoff + 4 + e.hlen;
#define RESEAL() do { c = entry_crc32c(buf, (size_t)n - 4); \
	buf[n - 4] = (uint8_t)(c >> 24); buf[n - 3] = (uint8_t)(c >> 16); \
	buf[n - 2] = (uint8_t)(c >> 8); buf[n - 1] = (uint8_t)c; } while (0)
#define PUT32(off, v) do { buf[(off)] = (uint8_t)((v) >> 24); buf[(off) + 1] = (uint8_t)((v) >> 16); \
	buf[(off) + 2] = (uint8_t)((v) >> 8); buf[(off) + 3] = (uint8_t)(v); } while (0)
	for (i = 0; i < 4; i++) {
		PUT32(hoff, lies[i]);
		RESEAL();
		CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
		PUT32(hoff, (uint32_t)e.hlen);
		PUT32(voff, lies[i]);
		RESEAL();
		CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
		PUT32(voff, (uint32_t)e.vlen);
	}
	/* headers one byte longer: the body then runs one byte past the end */
	PUT32(hoff, (uint32_t)e.hlen + 1);
	RESEAL();
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
	PUT32(hoff, (uint32_t)e.hlen);
	RESEAL();
	CHECK(decode_guarded(buf, (size_t)n) == 0);
	/* status 0 and a negative lifetime */
	buf[28] = 0;
	buf[29] = 0;
	RESEAL();
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
	buf[29] = 200;
	buf[12] = 0x80;
	RESEAL();
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
#undef RESEAL
#undef PUT32
}

static void
test_encode_bounds(void)
{
	struct entry e = sample();
	struct guard g;
	uint8_t *p;
	size_t size = entry_size(&e), cap;

	/* never a byte past cap: the buffer ends at the guard page */
	for (cap = 0; cap < size; cap++) {
		p = guard_put(&g, NULL, cap);
		CHECK(entry_encode(&e, p, cap) == -1);
		guard_free(&g);
	}
	p = guard_put(&g, NULL, size);
	CHECK(entry_encode(&e, p, size) == (int)size);
	guard_free(&g);

	e.status = 99;
	CHECK(entry_encode(&e, NULL, 0) == -1);
	e = sample();
	e.status = 1000;
	CHECK(entry_encode(&e, NULL, 0) == -1);
	e = sample();
	e.lifetime = -1;
	CHECK(entry_encode(&e, NULL, 0) == -1);
	e = sample();
	e.age0 = -5;
	CHECK(entry_encode(&e, NULL, 0) == -1);
	e = sample();
	e.body = NULL;
	CHECK(entry_encode(&e, NULL, 0) == -1);
	e = sample();
	e.blen = SIZE_MAX;
	CHECK(entry_size(&e) == SIZE_MAX);
	CHECK(entry_encode(&e, NULL, 0) == -1);
	e = sample();
	e.blen = (size_t)UINT32_MAX + 1;
	CHECK(entry_encode(&e, NULL, SIZE_MAX) == -1);
}

static void
test_junk_bytes(void)
{
	uint8_t buf[300];
	uint32_t x = 99, c;
	size_t i, len;
	int r, round;

	for (round = 0; round < 3000; round++) {
		len = (size_t)round % sizeof(buf);
		for (i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (uint8_t)(x >> 16);
		}
		/* half the rounds get a valid magic, version and checksum so the
		 * length checks are what is exercised */
		if ((round & 1) && len >= ENTRY_OVERHEAD) {
			memcpy(buf, "SCE\x01", 4);
			c = entry_crc32c(buf, len - 4);
			buf[len - 4] = (uint8_t)(c >> 24);
			buf[len - 3] = (uint8_t)(c >> 16);
			buf[len - 2] = (uint8_t)(c >> 8);
			buf[len - 1] = (uint8_t)c;
		}
		r = decode_guarded(buf, len);
		CHECK(r == 0 || r == ENTRY_ERR_CORRUPT || r == ENTRY_ERR_VERSION);
	}
}

int
main(void)
{
	RUN(test_crc32c_vector);
	RUN(test_round_trip);
	RUN(test_extreme_fields);
	RUN(test_all_byte_values);
	RUN(test_empty_blocks);
	RUN(test_one_mib_body);
	RUN(test_every_byte_flip);
	RUN(test_every_truncation);
	RUN(test_version_and_magic);
	RUN(test_crafted_lengths);
	RUN(test_encode_bounds);
	RUN(test_junk_bytes);
	return T_EXIT();
}
