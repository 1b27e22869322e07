/*
 * test_hdrs.c - hdrs_bin parsing and the header helpers. Parser inputs end
 * exactly at a PROT_NONE page so any read past the block crashes.
 */
#include "hdrs.h"
#include "varint.h"
#include "t.h"
#include "guard.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>


/* Only for outcomes: the struct hdr pointers die with the mapping. */
static int
parse_guarded(const void *data, size_t len, struct hdr *out, size_t max, size_t *n)
{
	struct guard g;
	int r = hdrs_parse(guard_put(&g, data, len), len, out, max, n);

	guard_free(&g);
	return r;
}

/* Builds an hdrs_bin block; pairs of NUL-terminated strings, NULL-ended. */
static size_t
build(uint8_t *buf, size_t cap, const char *const *kv)
{
	uint8_t *p = buf, *end = buf + cap;
	size_t l;
	int r;

	for (; *kv; kv++) {
		l = strlen(*kv);
		r = varint_encode(l, p, end);
		if (r == 0 || (size_t)(end - p - r) < l)
			abort();
		p += r;
		memcpy(p, *kv, l);
		p += l;
	}
	*p++ = 0;
	*p++ = 0;
	return (size_t)(p - buf);
}

static void
test_parse_basic(void)
{
	static const char *const kv[] = { "host", "example.com", "Accept", "*/*",
		"x-empty", "", NULL };
	uint8_t buf[256];
	struct hdr h[8];
	struct guard g;
	size_t n = 99, len = build(buf, sizeof(buf), kv);

	CHECK(hdrs_parse(guard_put(&g, buf, len), len, h, 8, &n) == 0);
	CHECK(n == 3);
	CHECK(h[0].nlen == 4 && memcmp(h[0].name, "host", 4) == 0);
	CHECK(h[0].vlen == 11 && memcmp(h[0].val, "example.com", 11) == 0);
	CHECK(h[1].nlen == 6 && h[1].vlen == 3);
	CHECK(h[2].nlen == 7 && h[2].vlen == 0);
	guard_free(&g);
}

static void
test_empty_block(void)
{
	static const uint8_t term[2] = { 0, 0 };
	struct hdr h[1];
	size_t n = 99;

	CHECK(parse_guarded(term, 2, h, 1, &n) == 0 && n == 0);
	CHECK(parse_guarded(term, 2, h, 0, &n) == 0 && n == 0);
	CHECK(parse_guarded(term, 0, h, 1, &n) == HDRS_ERR_MALFORMED);
	CHECK(parse_guarded(term, 1, h, 1, &n) == HDRS_ERR_MALFORMED);
}

static void
test_every_truncation(void)
{
	static const char *const kv[] = { "a", "1", "content-type", "text/plain", NULL };
	uint8_t buf[64];
	struct hdr h[4];
	size_t n, i, len = build(buf, sizeof(buf), kv);

	for (i = 0; i < len; i++)
		CHECK(parse_guarded(buf, i, h, 4, &n) == HDRS_ERR_MALFORMED);
	CHECK(parse_guarded(buf, len, h, 4, &n) == 0 && n == 2);
}

static void
test_truncated_varint(void)
{
	/* 0xF0 announces a multi-byte varint, then the block ends. */
	static const uint8_t a[] = { 0xF0 };
	static const uint8_t b[] = { 0x01, 'x', 0xF5, 0x80 };
	static const uint8_t c[] = { 0x01, 'x', 0x01, 'y', 0xFF };
	struct hdr h[4];
	size_t n;

	CHECK(parse_guarded(a, sizeof(a), h, 4, &n) == HDRS_ERR_MALFORMED);
	CHECK(parse_guarded(b, sizeof(b), h, 4, &n) == HDRS_ERR_MALFORMED);
	CHECK(parse_guarded(c, sizeof(c), h, 4, &n) == HDRS_ERR_MALFORMED);
}

static void
test_length_past_end(void)
{
	uint8_t buf[32], *p = buf;
	struct hdr h[4];
	size_t n;

	/* name length 5 with 3 bytes left */
	static const uint8_t a[] = { 0x05, 'a', 'b', 'c' };
	CHECK(parse_guarded(a, sizeof(a), h, 4, &n) == HDRS_ERR_MALFORMED);

	/* value length near 2^64: must not wrap the pointer arithmetic */
	*p++ = 1;
	*p++ = 'x';
	p += varint_encode(UINT64_MAX - 1, p, buf + sizeof(buf));
	*p++ = 0;
	*p++ = 0;
	CHECK(parse_guarded(buf, (size_t)(p - buf), h, 4, &n) == HDRS_ERR_MALFORMED);

	/* value length exactly one past the end */
	static const uint8_t b[] = { 0x01, 'x', 0x03, 'y', 0, 0 };
	CHECK(parse_guarded(b, sizeof(b), h, 4, &n) == HDRS_ERR_MALFORMED);
}

static void
test_varint_overflow(void)
{
	static const uint8_t a[] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
		0xFF, 0xFF, 0xFF, 0x7F, 0, 0 };
	struct hdr h[4];
	size_t n;

	CHECK(parse_guarded(a, sizeof(a), h, 4, &n) == HDRS_ERR_MALFORMED);
}

static void
test_terminator_rules(void)
{
	/* junk after the terminator, a nameless header with a value, and a
	 * half terminator */
	static const uint8_t a[] = { 0x01, 'a', 0x01, 'b', 0, 0, 'x' };
	static const uint8_t b[] = { 0x00, 0x01, 'v', 0, 0 };
	static const uint8_t c[] = { 0x01, 'a', 0x01, 'b', 0 };
	static const uint8_t d[] = { 0x01, 'a', 0x01, 'b', 0, 0, 0, 0 };
	struct hdr h[4];
	size_t n;

	CHECK(parse_guarded(a, sizeof(a), h, 4, &n) == HDRS_ERR_MALFORMED);
	CHECK(parse_guarded(b, sizeof(b), h, 4, &n) == HDRS_ERR_MALFORMED);
	CHECK(parse_guarded(c, sizeof(c), h, 4, &n) == HDRS_ERR_MALFORMED);
	CHECK(parse_guarded(d, sizeof(d), h, 4, &n) == HDRS_ERR_MALFORMED);
}

static void
test_too_many(void)
{
	static const char *const kv[] = { "a", "1", "b", "2", "c", "3", NULL };
	uint8_t buf[64];
	struct hdr h[3];
	size_t n, len = build(buf, sizeof(buf), kv);

	CHECK(parse_guarded(buf, len, h, 2, &n) == HDRS_ERR_TOO_MANY);
	CHECK(parse_guarded(buf, len, h, 3, &n) == 0 && n == 3);
	CHECK(parse_guarded(buf, len, h, 0, &n) == HDRS_ERR_TOO_MANY);
}

static void
test_big_value(void)
{
	size_t vl = 64 * 1024, len, n;
	char *v = malloc(vl + 1);
	uint8_t *buf = malloc(vl + 64);
	const char *kv[] = { "x-big", NULL, NULL };
	struct hdr h[2];

	memset(v, 'v', vl);
	v[vl] = 0;
	kv[1] = v;
	len = build(buf, vl + 64, kv);
	CHECK(parse_guarded(buf, len, h, 2, &n) == 0 && n == 1);
	CHECK(h[0].vlen == vl);
	/* and one byte short */
	CHECK(parse_guarded(buf, len - 3, h, 2, &n) == HDRS_ERR_MALFORMED);
	free(v);
	free(buf);
}

static void
test_junk_bytes(void)
{
	uint8_t buf[512];
	struct hdr h[16];
	uint32_t x = 12345;
	size_t n, i, len;
	int r, round;

	/* A deterministic LCG: any outcome is fine, reading past the guard
	 * page or returning garbage counts is not. */
	for (round = 0; round < 2000; round++) {
		len = (size_t)round % sizeof(buf);
		for (i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (uint8_t)(x >> 16);
		}
		r = parse_guarded(buf, len, h, 16, &n);
		CHECK(r == 0 || r == HDRS_ERR_MALFORMED || r == HDRS_ERR_TOO_MANY);
		if (r == 0)
			CHECK(n <= 16);
	}
}

static void
test_find(void)
{
	static const char *const kv[] = { "Content-Type", "a", "content", "b",
		"CONTENT-TYPE", "c", "Content-Type-X", "d", NULL };
	uint8_t buf[128];
	struct hdr h[8];
	const struct hdr *f;
	size_t n, from = 0, len = build(buf, sizeof(buf), kv);

	CHECK(hdrs_parse(buf, len, h, 8, &n) == 0 && n == 4);
	f = hdrs_find(h, n, "content-type", 12, &from);
	CHECK(f == &h[0] && from == 1);
	f = hdrs_find(h, n, "content-type", 12, &from);
	CHECK(f == &h[2] && from == 3);
	CHECK(hdrs_find(h, n, "content-type", 12, &from) == NULL);
	CHECK(hdrs_find(h, n, "content-typ", 11, NULL) == NULL);	/* no prefixes */
	CHECK(hdrs_find(h, n, "Content", 7, NULL) == &h[1]);
	CHECK(hdrs_find(h, n, "", 0, NULL) == NULL);
	CHECK(hdrs_find(h, 0, "content", 7, NULL) == NULL);
}

static void
test_join(void)
{
	static const char *const kv[] = { "Cache-Control", "max-age=5", "x", "y",
		"cache-control", "", "CACHE-CONTROL", "public", NULL };
	uint8_t buf[128];
	struct hdr h[8];
	char out[64];
	size_t n, ol, len = build(buf, sizeof(buf), kv);
	static const char want[] = "max-age=5, , public";

	CHECK(hdrs_parse(buf, len, h, 8, &n) == 0);
	CHECK(hdrs_join(h, n, "cache-control", 13, out, sizeof(out), &ol) == 1);
	CHECK(ol == sizeof(want) - 1 && memcmp(out, want, ol) == 0);
	/* exactly enough room, then one byte short */
	CHECK(hdrs_join(h, n, "cache-control", 13, out, sizeof(want) - 1, &ol) == 1);
	CHECK(hdrs_join(h, n, "cache-control", 13, out, sizeof(want) - 2, &ol) == -1);
	CHECK(hdrs_join(h, n, "pragma", 6, out, sizeof(out), &ol) == 0 && ol == 0);
	/* present but empty differs from absent */
	CHECK(hdrs_join(h, n, "x", 1, out, 0, &ol) == -1);
	CHECK(hdrs_join(h, n, "x", 1, out, 1, &ol) == 1 && ol == 1 && out[0] == 'y');
}

static void
test_token_list(void)
{
	CHECK(hdr_token_in_list("keep-alive, Upgrade", 19, "upgrade", 7));
	CHECK(hdr_token_in_list(" \tX-Foo\t ,", 10, "x-foo", 5));
	CHECK(!hdr_token_in_list("x-foobar", 8, "x-foo", 5));
	CHECK(!hdr_token_in_list("x-fo", 4, "x-foo", 5));
	CHECK(!hdr_token_in_list(",,, ,", 5, "", 0));
	CHECK(!hdr_token_in_list("", 0, "a", 1));
	CHECK(hdr_token_in_list("a,,b", 4, "b", 1));
	CHECK(hdr_token_in_list("*", 1, "*", 1));
	CHECK(!hdr_token_in_list("a b", 3, "a", 1));
}

static void
test_hop_by_hop(void)
{
	CHECK(hdrs_is_hop_by_hop("Connection", 10));
	CHECK(hdrs_is_hop_by_hop("KEEP-ALIVE", 10));
	CHECK(hdrs_is_hop_by_hop("te", 2));
	CHECK(hdrs_is_hop_by_hop("Transfer-Encoding", 17));
	CHECK(hdrs_is_hop_by_hop("proxy-connection", 16));
	CHECK(hdrs_is_hop_by_hop("Proxy-Authorization", 19));
	CHECK(hdrs_is_hop_by_hop("Proxy-Authenticate", 18));
	CHECK(hdrs_is_hop_by_hop("Trailer", 7));
	CHECK(hdrs_is_hop_by_hop("upgrade", 7));
	CHECK(!hdrs_is_hop_by_hop("tex", 3));
	CHECK(!hdrs_is_hop_by_hop("t", 1));
	CHECK(!hdrs_is_hop_by_hop("Trailers", 8));
	CHECK(!hdrs_is_hop_by_hop("content-type", 12));
	CHECK(!hdrs_is_hop_by_hop("", 0));
}

static void
test_value_and_name_safety(void)
{
	CHECK(hdr_value_safe("text/html; charset=\"x\"", 22));
	CHECK(hdr_value_safe("a\tb", 3));
	CHECK(hdr_value_safe("caf\xc3\xa9", 5));
	CHECK(hdr_value_safe("", 0));
	CHECK(!hdr_value_safe("a\r\nSet-Cookie: x", 16));
	CHECK(!hdr_value_safe("a\nb", 3));
	CHECK(!hdr_value_safe("a\0b", 3));
	CHECK(!hdr_value_safe("a\x7f", 2));
	CHECK(!hdr_value_safe("\x1b[0m", 4));
	CHECK(hdr_name_valid("X-Cache_Key.1~", 14));
	CHECK(!hdr_name_valid("", 0));
	CHECK(!hdr_name_valid("a b", 3));
	CHECK(!hdr_name_valid("a:", 2));
	CHECK(!hdr_name_valid("a\r", 2));
	CHECK(!hdr_name_valid("\xc3\xa9", 2));
}

int
main(void)
{
	RUN(test_parse_basic);
	RUN(test_empty_block);
	RUN(test_every_truncation);
	RUN(test_truncated_varint);
	RUN(test_length_past_end);
	RUN(test_varint_overflow);
	RUN(test_terminator_rules);
	RUN(test_too_many);
	RUN(test_big_value);
	RUN(test_junk_bytes);
	RUN(test_find);
	RUN(test_join);
	RUN(test_token_list);
	RUN(test_hop_by_hop);
	RUN(test_value_and_name_safety);
	return T_EXIT();
}
