/*
 * test_entry.c - the stored entry format: exact round trips of any bytes,
 * detection of every flip, truncation and crafted length, the key an entry
 * is bound to, its signature, and every reason a decoded entry is refused
 * before replay (MISSION 4.5 and 5). Decoder inputs end exactly at a
 * PROT_NONE page so any over-read crashes.
 */
#include "entry.h"
#include "hdrs.h"
#include "t.h"
#include "guard.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define KEY	"5f0c3b1e9a7d4c2b8e6f1a0d3c5b7e9f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e1b"
#define KEY2	"6f0c3b1e9a7d4c2b8e6f1a0d3c5b7e9f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e1b"
#define SECRET	"correct horse battery staple"
#define OFF_KEYLEN	43
#define HOFF	(OFF_KEYLEN + 1 + 64)	/* the header block's length, with KEY */

/* Outcome only: the decoded pointers die with the mapping. */
static int
decode_as(const uint8_t *buf, size_t len, const char *key, const struct entry_auth *a)
{
	struct guard g;
	struct entry e;
	int r = entry_decode(guard_put(&g, buf, len), len, key, key ? strlen(key) : 0, a, &e);

	guard_free(&g);
	return r;
}

static int
decode_guarded(const uint8_t *buf, size_t len)
{
	return decode_as(buf, len, KEY, NULL);
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
	e.swr = 60;
	e.sie = UINT32_MAX;
	e.key = KEY;
	e.klen = 64;
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
	    a->swr == b->swr && a->sie == b->sie &&
	    a->klen == b->klen && (a->klen == 0 || memcmp(a->key, b->key, a->klen) == 0) &&
	    a->hlen == b->hlen && (a->hlen == 0 || memcmp(a->hdrs, b->hdrs, a->hlen) == 0) &&
	    a->vlen == b->vlen && (a->vlen == 0 || memcmp(a->vary, b->vary, a->vlen) == 0) &&
	    a->blen == b->blen && (a->blen == 0 || memcmp(a->body, b->body, a->blen) == 0);
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A valid CRC-32C over buf[0..n-4) again, after a test changed a byte. */
static void
reseal(uint8_t *buf, size_t n)
{
	put32(buf + n - 4, entry_crc32c(buf, n - 4));
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

	n = entry_encode(&e, NULL, buf, sizeof(buf));
	CHECK(n > 0 && (size_t)n == entry_size(&e, NULL));
	CHECK((size_t)n == ENTRY_OVERHEAD + e.klen + e.hlen + e.vlen + e.blen);
	CHECK(memcmp(buf, "SCE\x03\x00", 5) == 0);
	CHECK(buf[OFF_KEYLEN] == 64 && memcmp(buf + OFF_KEYLEN + 1, KEY, 64) == 0);
	gp = guard_put(&g, buf, (size_t)n);
	CHECK(entry_decode(gp, (size_t)n, KEY, 64, NULL, &d) == 0);
	CHECK(same(&e, &d));
	CHECK(d.body >= gp && d.body + d.blen <= gp + n);	/* points into buf */
	CHECK(d.key == (const char *)gp + OFF_KEYLEN + 1);
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
	n = entry_encode(&e, NULL, buf, sizeof(buf));
	CHECK(n > 0 && entry_decode(buf, (size_t)n, KEY, 64, NULL, &d) == 0 && same(&e, &d));
	e.status = 100;
	e.stored_at = -1;
	n = entry_encode(&e, NULL, buf, sizeof(buf));
	CHECK(n > 0 && entry_decode(buf, (size_t)n, KEY, 64, NULL, &d) == 0 && same(&e, &d));
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
	n = entry_encode(&e, NULL, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK(decode_guarded(buf, (size_t)n) == 0);
	CHECK(entry_decode(buf, (size_t)n, KEY, 64, NULL, &d) == 0 && same(&e, &d));
}

static void
test_empty_blocks(void)
{
	struct entry e, d;
	uint8_t buf[ENTRY_OVERHEAD];
	struct guard g;

	memset(&e, 0, sizeof(e));
	e.status = 204;
	CHECK(entry_size(&e, NULL) == ENTRY_OVERHEAD);
	CHECK(entry_encode(&e, NULL, buf, sizeof(buf)) == ENTRY_OVERHEAD);
	CHECK(entry_decode(guard_put(&g, buf, sizeof(buf)), sizeof(buf), "", 0, NULL, &d) == 0);
	CHECK(d.klen == 0 && d.hlen == 0 && d.vlen == 0 && d.blen == 0 && d.status == 204);
	guard_free(&g);
	/* an empty key binds too */
	CHECK(decode_as(buf, sizeof(buf), KEY, NULL) == ENTRY_ERR_KEY);
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
	n = entry_encode(&e, NULL, buf, cap);
	CHECK(n > 0 && (size_t)n == entry_size(&e, NULL));
	CHECK(decode_guarded(buf, (size_t)n) == 0);
	CHECK(entry_decode(buf, (size_t)n, KEY, 64, NULL, &d) == 0 && same(&e, &d));
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

	n = entry_encode(&e, NULL, buf, sizeof(buf));
	CHECK(n > 0);
	for (i = 0; i < (size_t)n; i++) {
		for (v = 1; v < 256; v++) {
			buf[i] ^= (uint8_t)v;
			r = entry_decode(buf, (size_t)n, KEY, 64, NULL, &d);
			/* the version and the tag kind are read before the tag */
			if (!(r == ENTRY_ERR_CORRUPT || (i == 3 && r == ENTRY_ERR_VERSION) ||
			    (i == 4 && r == ENTRY_ERR_SIGNATURE && buf[4] == ENTRY_TAG_HMAC)))
				bad++;
			buf[i] ^= (uint8_t)v;
		}
	}
	CHECK(bad == 0);
	CHECK(entry_decode(buf, (size_t)n, KEY, 64, NULL, &d) == 0);
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

	n = entry_encode(&e, NULL, buf, sizeof(buf) - 1);
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

	n = entry_encode(&e, NULL, buf, sizeof(buf));
	buf[3] = 1;	/* the format before entries were bound to their key */
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_VERSION);
	CHECK(decode_guarded(buf, 4) == ENTRY_ERR_VERSION);	/* the layout is unknown */
	buf[3] = 0;
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_VERSION);
	buf[3] = 2;	/* the format before stale windows */
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_VERSION);
	buf[3] = 4;
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_VERSION);
	buf[3] = ENTRY_VERSION;
	CHECK(decode_guarded(buf, (size_t)n) == 0);
	buf[4] = 2;	/* no such tag */
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
	buf[4] = ENTRY_TAG_CRC32C;
	CHECK(decode_guarded(buf, 4) == ENTRY_ERR_CORRUPT);
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
	size_t hoff = HOFF, voff;
	int n, i;
	static const uint32_t lies[] = { 0xFFFFFFFFu, 0x80000000u, 0x7FFFFFFFu, 1000 };

	n = entry_encode(&e, NULL, buf, sizeof(buf));
	voff = hoff + 4 + e.hlen;
	for (i = 0; i < 4; i++) {
		put32(buf + hoff, lies[i]);
		reseal(buf, (size_t)n);
		CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
		put32(buf + hoff, (uint32_t)e.hlen);
		put32(buf + voff, lies[i]);
		reseal(buf, (size_t)n);
		CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
		put32(buf + voff, (uint32_t)e.vlen);
	}
	/* headers one byte longer: the body then runs one byte past the end */
	put32(buf + hoff, (uint32_t)e.hlen + 1);
	reseal(buf, (size_t)n);
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
	put32(buf + hoff, (uint32_t)e.hlen);
	reseal(buf, (size_t)n);
	CHECK(decode_guarded(buf, (size_t)n) == 0);
	/* a key length past the end, and one that shifts every block */
	buf[OFF_KEYLEN] = 255;
	reseal(buf, (size_t)n);
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
	CHECK(decode_guarded(buf, OFF_KEYLEN + 1 + 12 + 4) == ENTRY_ERR_CORRUPT);
	buf[OFF_KEYLEN] = 63;
	reseal(buf, (size_t)n);
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
	buf[OFF_KEYLEN] = 64;
	reseal(buf, (size_t)n);
	/* status 0 and a negative lifetime */
	buf[29] = 0;
	buf[30] = 0;
	reseal(buf, (size_t)n);
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
	buf[30] = 200;
	buf[13] = 0x80;
	reseal(buf, (size_t)n);
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
	buf[13] = 0;
	buf[21] = 0x80;	/* and a negative age0 */
	reseal(buf, (size_t)n);
	CHECK(decode_guarded(buf, (size_t)n) == ENTRY_ERR_CORRUPT);
	buf[21] = 0;
	reseal(buf, (size_t)n);
	CHECK(decode_guarded(buf, (size_t)n) == 0);
}

static void
test_encode_bounds(void)
{
	struct entry e = sample();
	struct guard g;
	uint8_t *p;
	size_t size = entry_size(&e, NULL), cap;

	/* never a byte past cap: the buffer ends at the guard page */
	for (cap = 0; cap < size; cap++) {
		p = guard_put(&g, NULL, cap);
		CHECK(entry_encode(&e, NULL, p, cap) == -1);
		guard_free(&g);
	}
	p = guard_put(&g, NULL, size);
	CHECK(entry_encode(&e, NULL, p, size) == (int)size);
	guard_free(&g);

	e.status = 99;
	CHECK(entry_encode(&e, NULL, NULL, 0) == -1);
	e = sample();
	e.status = 1000;
	CHECK(entry_encode(&e, NULL, NULL, 0) == -1);
	e = sample();
	e.lifetime = -1;
	CHECK(entry_encode(&e, NULL, NULL, 0) == -1);
	e = sample();
	e.age0 = -5;
	CHECK(entry_encode(&e, NULL, NULL, 0) == -1);
	e = sample();
	e.body = NULL;
	CHECK(entry_encode(&e, NULL, NULL, 0) == -1);
	e = sample();
	e.key = NULL;
	CHECK(entry_encode(&e, NULL, NULL, 0) == -1);
	e = sample();
	e.klen = ENTRY_KEY_MAX + 1;
	CHECK(entry_encode(&e, NULL, NULL, SIZE_MAX) == -1);
	e = sample();
	e.blen = SIZE_MAX;
	CHECK(entry_size(&e, NULL) == SIZE_MAX);
	CHECK(entry_encode(&e, NULL, NULL, 0) == -1);
	e = sample();
	e.blen = (size_t)UINT32_MAX + 1;
	CHECK(entry_encode(&e, NULL, NULL, SIZE_MAX) == -1);
}

static void
test_junk_bytes(void)
{
	uint8_t buf[300];
	uint32_t x = 99;
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
			memcpy(buf, "SCE\x03\x00", 5);
			if (round & 2) {
				buf[OFF_KEYLEN] = (uint8_t)(len - ENTRY_OVERHEAD);
				if (buf[OFF_KEYLEN] > 64)
					buf[OFF_KEYLEN] = 64;
				memcpy(buf + OFF_KEYLEN + 1, KEY, buf[OFF_KEYLEN]);
			}
			reseal(buf, len);
		}
		r = decode_guarded(buf, len);
		CHECK(r == 0 || r == ENTRY_ERR_CORRUPT || r == ENTRY_ERR_VERSION ||
		    r == ENTRY_ERR_SIGNATURE || r == ENTRY_ERR_KEY);
	}
}

/* An entry answers for the key it was stored under only. */
static void
test_key_binding(void)
{
	struct entry e = sample(), d;
	uint8_t buf[256];
	int n;

	n = entry_encode(&e, NULL, buf, sizeof(buf));
	CHECK(n > 0 && decode_as(buf, (size_t)n, KEY, NULL) == 0);
	CHECK(decode_as(buf, (size_t)n, KEY2, NULL) == ENTRY_ERR_KEY);
	CHECK(decode_as(buf, (size_t)n, "5f0c", NULL) == ENTRY_ERR_KEY);	/* a prefix */
	CHECK(decode_as(buf, (size_t)n, KEY "0", NULL) == ENTRY_ERR_KEY);
	CHECK(decode_as(buf, (size_t)n, "", NULL) == ENTRY_ERR_KEY);
	CHECK(entry_decode(buf, (size_t)n, NULL, 0, NULL, &d) == 0 && same(&e, &d));
	/* an entry rewritten for another key, with a checksum anyone can
	 * compute: it is still not the one that was read */
	memcpy(buf + OFF_KEYLEN + 1, KEY2, 64);
	reseal(buf, (size_t)n);
	CHECK(decode_as(buf, (size_t)n, KEY, NULL) == ENTRY_ERR_KEY);
	CHECK(decode_as(buf, (size_t)n, KEY2, NULL) == 0);
}

/* The HMAC-SHA-256 a third party computes over the same bytes. */
static int
tag_is_hmac(const uint8_t *buf, size_t n, const char *secret)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), buf, n - ENTRY_HMAC_LEN, md, &mdlen) == NULL)
		return 0;
	return mdlen == ENTRY_HMAC_LEN && memcmp(md, buf + n - ENTRY_HMAC_LEN, ENTRY_HMAC_LEN) == 0;
}

static void
test_signed(void)
{
	struct entry_auth *a = entry_auth_new(SECRET, strlen(SECRET));
	struct entry_auth *other = entry_auth_new(SECRET "!", strlen(SECRET) + 1);
	struct entry e = sample(), d;
	uint8_t buf[512], plain[256];
	int n, np, r, bad = 0;
	size_t i;

	CHECK(a != NULL && other != NULL);
	CHECK(entry_auth_new(SECRET, ENTRY_SECRET_MIN - 1) == NULL);
	CHECK(entry_auth_new(NULL, 32) == NULL);
	if (a == NULL || other == NULL)
		return;
	n = entry_encode(&e, a, buf, sizeof(buf));
	CHECK(n > 0 && (size_t)n == entry_size(&e, a));
	CHECK((size_t)n == entry_size(&e, NULL) - ENTRY_CRC_LEN + ENTRY_HMAC_LEN);
	CHECK(buf[4] == ENTRY_TAG_HMAC);
	CHECK(tag_is_hmac(buf, (size_t)n, SECRET));	/* RFC 2104 HMAC-SHA-256, key included */
	CHECK(decode_as(buf, (size_t)n, KEY, a) == 0);
	CHECK(entry_decode(buf, (size_t)n, KEY, 64, a, &d) == 0 && same(&e, &d));
	CHECK(entry_encode(&e, a, buf, (size_t)n - 1) == -1);
	/* another secret, no secret, an unsigned entry, a copy under another key */
	CHECK(decode_as(buf, (size_t)n, KEY, other) == ENTRY_ERR_SIGNATURE);
	CHECK(decode_as(buf, (size_t)n, KEY, NULL) == ENTRY_ERR_SIGNATURE);
	np = entry_encode(&e, NULL, plain, sizeof(plain));
	CHECK(np > 0 && decode_as(plain, (size_t)np, KEY, a) == ENTRY_ERR_UNSIGNED);
	CHECK(decode_as(buf, (size_t)n, KEY2, a) == ENTRY_ERR_KEY);
	/* a forger who knows the format but not the secret: every change of
	 * a signed byte, the tag's included, is caught */
	for (i = 0; i < (size_t)n; i++) {
		for (int v = 1; v < 256; v += 7) {
			buf[i] ^= (uint8_t)v;
			r = decode_as(buf, (size_t)n, KEY, a);
			if (!(r == ENTRY_ERR_SIGNATURE || (i < 3 && r == ENTRY_ERR_CORRUPT) ||
			    (i == 3 && r == ENTRY_ERR_VERSION) ||
			    (i == 4 && (r == ENTRY_ERR_UNSIGNED || r == ENTRY_ERR_CORRUPT))))
				bad++;
			buf[i] ^= (uint8_t)v;
		}
	}
	CHECK(bad == 0);
	for (i = 0; i < (size_t)n; i++) {
		r = decode_as(buf, i, KEY, a);
		CHECK(r == ENTRY_ERR_CORRUPT || r == ENTRY_ERR_SIGNATURE);
	}
	/* a forged key with the CRC tag of an unsigned entry */
	memcpy(plain + OFF_KEYLEN + 1, KEY2, 64);
	reseal(plain, (size_t)np);
	CHECK(decode_as(plain, (size_t)np, KEY2, a) == ENTRY_ERR_UNSIGNED);
	entry_auth_free(a);
	entry_auth_free(other);
	entry_auth_free(NULL);
}

/* sample() with these status and headers, checked for replay. */
static int
replay(unsigned status, const char *hdrs, size_t blen)
{
	struct entry e = sample();

	e.status = (uint16_t)status;
	e.hdrs = hdrs;
	e.hlen = strlen(hdrs);
	e.blen = blen < e.blen ? blen : e.blen;
	return entry_check_replay(&e, 10);
}

/* Header blocks as bytes, NULs included. */
static int
replay_bytes(const char *hdrs, size_t hlen)
{
	struct entry e = sample();
	struct guard g;
	int r;

	e.hdrs = guard_put(&g, hdrs, hlen);
	e.hlen = hlen;
	r = entry_check_replay(&e, 10);
	guard_free(&g);
	return r;
}

#define OK_HDRS	"Content-Type: text/plain\r\n"

static void
test_replay_status(void)
{
	static const unsigned bad[] = { 100, 101, 103, 150, 199, 600, 700, 999 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(replay(bad[i], OK_HDRS, 100) == ENTRY_ERR_STATUS);
	CHECK(replay(200, OK_HDRS, 100) == 0);
	CHECK(replay(599, OK_HDRS, 100) == 0);
	CHECK(replay(404, "", 0) == 0);
	/* no body where the status has none */
	CHECK(replay(204, OK_HDRS, 1) == ENTRY_ERR_FRAMING);
	CHECK(replay(304, OK_HDRS, 1) == ENTRY_ERR_FRAMING);
	CHECK(replay(204, OK_HDRS, 0) == 0);
}

static void
test_replay_header_lines(void)
{
	CHECK(replay_bytes(OK_HDRS "ETag: \"x\"\r\n", 37) == 0);
	CHECK(replay_bytes("X-Empty: \r\n", 11) == 0);
	CHECK(replay_bytes("X-Tab: a\tb\r\n", 12) == 0);
	CHECK(replay_bytes("X-Obs: caf\xc3\xa9\r\n", 14) == 0);
	CHECK(replay_bytes("!#$%&'*+-.^_`|~09azAZ: v\r\n", 26) == 0);
	/* names: CR, LF, NUL, space, colon first, a non-token byte */
	CHECK(replay_bytes("X-A\rB: v\r\n", 10) == ENTRY_ERR_HDR_NAME);
	CHECK(replay_bytes("X-A\nB: v\r\n", 10) == ENTRY_ERR_HDR_NAME);
	CHECK(replay_bytes("X-A\0B: v\r\n", 10) == ENTRY_ERR_HDR_NAME);
	CHECK(replay_bytes("X A: v\r\n", 8) == ENTRY_ERR_HDR_NAME);
	CHECK(replay_bytes(": v\r\n", 5) == ENTRY_ERR_HDR_NAME);
	CHECK(replay_bytes("X(A): v\r\n", 9) == ENTRY_ERR_HDR_NAME);
	CHECK(replay_bytes("X-\xc3\xa9: v\r\n", 9) == ENTRY_ERR_HDR_NAME);
	/* values: CR, LF, NUL, other controls, DEL */
	CHECK(replay_bytes("X-A: a\rb\r\n", 10) == ENTRY_ERR_HDR_VALUE);
	CHECK(replay_bytes("X-A: a\nb\r\n", 10) == ENTRY_ERR_HDR_VALUE);
	CHECK(replay_bytes("X-A: a\0b\r\n", 10) == ENTRY_ERR_HDR_VALUE);
	CHECK(replay_bytes("X-A: a\x01" "b\r\n", 10) == ENTRY_ERR_HDR_VALUE);
	CHECK(replay_bytes("X-A: a\x7f" "b\r\n", 10) == ENTRY_ERR_HDR_VALUE);
	CHECK(replay_bytes("X-A: v\n", 7) == ENTRY_ERR_HDR_VALUE);	/* bare LF */
	/* response splitting, the whole attack */
	CHECK(replay_bytes("X-A: v\r\n\r\nHTTP/1.1 200 OK\r\n", 27) == ENTRY_ERR_HDR_NAME);
	/* lines that are not "name: value\r\n" */
	CHECK(replay_bytes("X-A:v\r\n", 7) == ENTRY_ERR_HDR_LINE);
	CHECK(replay_bytes("X-A: v", 6) == ENTRY_ERR_HDR_LINE);
	CHECK(replay_bytes("X-A: v\r", 7) == ENTRY_ERR_HDR_VALUE);
	CHECK(replay_bytes("X-A", 3) == ENTRY_ERR_HDR_LINE);
	CHECK(replay_bytes("X-A:", 4) == ENTRY_ERR_HDR_LINE);
	CHECK(replay_bytes(OK_HDRS "X", 27) == ENTRY_ERR_HDR_LINE);
	/* at most max_lines */
	{
		char many[12 * 8 + 1];

		for (int i = 0; i < 12; i++)
			memcpy(many + 8 * i, "X-A: v\r\n", 8);
		CHECK(replay_bytes(many, 8 * 10) == 0);
		CHECK(replay_bytes(many, 8 * 11) == ENTRY_ERR_HDR_LINE);
	}
}

static void
test_replay_header_names(void)
{
	static const char *const hop[] = { "Connection: close", "Keep-Alive: timeout=5",
		"Proxy-Connection: keep-alive", "TE: trailers", "Trailer: X-A", "Upgrade: h2c",
		"connection: X-Secret", "Proxy-Authenticate: Basic", "Proxy-Authorization: x" };
	static const char *const framing[] = { "Transfer-Encoding: chunked",
		"transfer-encoding: identity", "Content-Length: 11", "CONTENT-LENGTH: 0" };
	static const char *const forbidden[] = { "Set-Cookie: a=b", "set-cookie2: a=b",
		"Age: 0", "X-Cache-Status: Hit", "x-cache-key: 00", "X-Cache-Tier: L1" };
	char line[128];

#define EACH(list, want) for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) { \
	snprintf(line, sizeof(line), OK_HDRS "%s\r\n", list[i]); \
	CHECK(replay(200, line, 100) == (want)); }
	EACH(hop, ENTRY_ERR_HOP_BY_HOP);
	EACH(framing, ENTRY_ERR_FRAMING);
	EACH(forbidden, ENTRY_ERR_FORBIDDEN);
#undef EACH
	/* Transfer-Encoding beside Content-Length: refused at the first */
	CHECK(replay(200, "Transfer-Encoding: chunked\r\nContent-Length: 11\r\n", 100) ==
	    ENTRY_ERR_FRAMING);
	/* names are compared whole, not as prefixes */
	CHECK(replay(200, "Content-Lengthy: 1\r\nAges: 2\r\nTEA: 3\r\nX-Connection: 4\r\n", 100) == 0);
}

/* entry.c's byte table says what hdr_is_tchar() and hdr_value_safe() say,
 * for every byte, in a name and in a value. */
static void
test_byte_classes(void)
{
	int bad = 0;

	for (int c = 0; c < 256; c++) {
		char name[] = "X?Y: v\r\n", val[] = "X: a?b\r\n";
		int rn, rv;

		name[1] = (char)c;
		val[4] = (char)c;
		rn = replay_bytes(name, 8);
		rv = replay_bytes(val, 8);
		/* a colon ends the name "X", and "Y: v" is not ": v" */
		if ((rn == 0) != (hdr_is_tchar(c) != 0) ||
		    (rn != 0 && rn != (c == ':' ? ENTRY_ERR_HDR_LINE : ENTRY_ERR_HDR_NAME)))
			bad++;
		if ((rv == 0) != (hdr_value_safe(&val[4], 1) != 0) ||
		    (rv != 0 && rv != ENTRY_ERR_HDR_VALUE))
			bad++;
	}
	CHECK(bad == 0);
}

/* Whatever stored_at and age0 say, the age is in [age0, INT64_MAX]. */
static void
test_age_saturates(void)
{
	struct entry e = sample();

	e.stored_at = 1000;
	e.age0 = 5;
	CHECK(entry_age(&e, 1010) == 15);
	CHECK(entry_age(&e, 900) == 5);		/* stored in the future */
	e.stored_at = INT64_MIN;
	CHECK(entry_age(&e, INT64_MAX) == INT64_MAX);
	CHECK(entry_age(&e, 0) == INT64_MAX);
	e.stored_at = INT64_MAX;
	CHECK(entry_age(&e, INT64_MIN) == 5);
	e.stored_at = 0;
	e.age0 = INT64_MAX;
	CHECK(entry_age(&e, 1) == INT64_MAX);
	e.age0 = INT64_MAX - 1;
	CHECK(entry_age(&e, 1) == INT64_MAX);
	e.age0 = -1;				/* never decoded, but never negative */
	CHECK(entry_age(&e, 1) == INT64_MAX);
}

/* One distinct metric label and one sentence per error. */
static void
test_err_names(void)
{
	for (int a = -1; a >= -ENTRY_NERR; a--) {
		CHECK(ENTRY_ERR_INDEX(a) < ENTRY_NERR);
		CHECK(strcmp(entry_err_name(a), "none") != 0 && strlen(entry_err_str(a)) > 3);
		for (int b = a - 1; b >= -ENTRY_NERR; b--)
			CHECK(strcmp(entry_err_name(a), entry_err_name(b)) != 0);
	}
	CHECK(strcmp(entry_err_name(0), "none") == 0);
	CHECK(strcmp(entry_err_name(-ENTRY_NERR - 1), "none") == 0);
	CHECK(strcmp(entry_err_name(ENTRY_ERR_HDR_VALUE), "header_value") == 0);
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
	RUN(test_key_binding);
	RUN(test_signed);
	RUN(test_replay_status);
	RUN(test_replay_header_lines);
	RUN(test_replay_header_names);
	RUN(test_byte_classes);
	RUN(test_age_saturates);
	RUN(test_err_names);
	return T_EXIT();
}
