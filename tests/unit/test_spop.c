/*
 * test_spop.c - unit tests of the SPOP codec (agent/core/spop.c,
 * agent/core/varint.c), run under ASan+UBSan. What HAProxy sends and decodes
 * (HELLO, NOTIFY, DISCONNECT, the ACK decoder) comes from spop_peer.h.
 * Parsers are fed inputs that end exactly at a
 * PROT_NONE guard page (picohttpparser's trick), so reading one byte too far
 * crashes the test instead of passing by luck. Expected bytes are written
 * out by hand from SPOE.txt section 3 and HAProxy 2.6's encoders, not taken
 * from our own encoder.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "t.h"
#include "guard.h"
#include "spop.h"
#include "spop_peer.h"
#include "varint.h"

/* --------------------------------------------------------- guard pages */


/* ---------------------------------------------------------------- varint */

static void
test_varint_boundaries(void)
{
	static const struct { uint64_t v; int size; } c[] = {
		{ 0, 1 }, { 239, 1 }, { 240, 2 }, { 2287, 2 }, { 2288, 3 },
		{ 264431, 3 }, { 264432, 4 }, { 33818863, 4 }, { 33818864, 5 },
		{ 4294967295u, 5 }, { (uint64_t)1 << 63, 10 }, { UINT64_MAX, 10 },
	};
	size_t i;
	int k;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		uint8_t buf[16];
		uint64_t out = 0;
		struct guard g;
		const uint8_t *in;
		int n;

		memset(buf, 0xA5, sizeof(buf));
		CHECK(varint_size(c[i].v) == c[i].size);
		n = varint_encode(c[i].v, buf, buf + c[i].size);
		CHECK(n == c[i].size);
		CHECK(buf[c[i].size] == 0xA5);
		/* one byte short: refused, nothing written past the end */
		memset(buf, 0xA5, sizeof(buf));
		CHECK(varint_encode(c[i].v, buf, buf + c[i].size - 1) == 0);
		CHECK(buf[c[i].size - 1] == 0xA5);
		varint_encode(c[i].v, buf, buf + sizeof(buf));

		in = guard_put(&g, buf, (size_t)n);
		CHECK(varint_decode(in, in + n, &out) == n);
		CHECK(out == c[i].v);
		guard_free(&g);
		/* every truncation asks for more, and never reads past it */
		for (k = 0; k < n; k++) {
			in = guard_put(&g, buf, (size_t)k);
			CHECK(varint_decode(in, in + k, &out) == 0);
			guard_free(&g);
		}
	}
}

static void
test_varint_exact_bytes(void)
{
	/* 240 and 2288 computed from the 3.1 table; 16380 as HAProxy's own
	 * reg-test (spop health-check) spells it: FC F0 06. */
	static const uint8_t v240[] = { 0xF0, 0x00 };
	static const uint8_t v2288[] = { 0xF0, 0x80, 0x00 };
	static const uint8_t v16380[] = { 0xFC, 0xF0, 0x06 };
	uint8_t buf[16];

	CHECK(varint_encode(240, buf, buf + 16) == 2);
	CHECK_MEM(buf, v240, 2);
	CHECK(varint_encode(2288, buf, buf + 16) == 3);
	CHECK_MEM(buf, v2288, 3);
	CHECK(varint_encode(16380, buf, buf + 16) == 3);
	CHECK_MEM(buf, v16380, 3);
}

static void
test_varint_overflow(void)
{
	uint8_t ff[11];
	uint64_t out;
	struct guard g;
	const uint8_t *in;

	memset(ff, 0xFF, sizeof(ff));
	in = guard_put(&g, ff, sizeof(ff));
	CHECK(varint_decode(in, in + 11, &out) == -1);
	guard_free(&g);
}

/* ------------------------------------------------------------ typed data */

/* Encode d, decode it back from a guard-placed copy, compare. */
static void
roundtrip(const struct spop_data *d, size_t want_len)
{
	uint8_t buf[512], *w = buf;
	const uint8_t *in, *r;
	struct spop_data o;
	struct guard g;
	size_t n;

	CHECK(spop_enc_data(&w, buf + sizeof(buf), d) == 0);
	n = (size_t)(w - buf);
	CHECK(n == want_len);
	in = guard_put(&g, buf, n);
	r = in;
	memset(&o, 0x5A, sizeof(o));
	CHECK(spop_data_decode(&r, in + n, &o) == 0);
	CHECK(r == in + n);
	CHECK(o.type == d->type);
	switch (d->type) {
	case SPOP_T_BOOL:
		CHECK(o.v.b == d->v.b);
		break;
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		CHECK(o.v.i == d->v.i);
		break;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		CHECK(o.v.u == d->v.u);
		break;
	case SPOP_T_IPV4:
		CHECK_MEM(o.v.ip4, d->v.ip4, 4);
		break;
	case SPOP_T_IPV6:
		CHECK_MEM(o.v.ip6, d->v.ip6, 16);
		break;
	case SPOP_T_STR:
	case SPOP_T_BIN:
		CHECK(o.v.s.len == d->v.s.len);
		CHECK(o.v.s.p == in + n - d->v.s.len);	/* points into input */
		if (d->v.s.len)
			CHECK_MEM(o.v.s.p, d->v.s.p, d->v.s.len);
		break;
	}
	/* and every truncation of it is malformed, never an over-read */
	for (size_t k = 0; k < n; k++) {
		uint8_t *cut = (uint8_t *)guard_put(&g, buf, k);

		r = cut;
		CHECK(spop_data_decode(&r, cut + k, &o) == -SPOP_ST_INVALID);
		CHECK(r == cut);
		guard_free(&g);
	}
}

static void
test_data_roundtrip(void)
{
	struct spop_data d;
	uint8_t bin[256 + 4];
	int i;

	d.type = SPOP_T_NULL;
	roundtrip(&d, 1);
	d.type = SPOP_T_BOOL;
	d.v.b = 1;
	roundtrip(&d, 1);
	d.v.b = 0;
	roundtrip(&d, 1);

	d.type = SPOP_T_INT32;
	d.v.i = 0;
	roundtrip(&d, 2);
	d.v.i = -1;		/* varint of 0xFFFFFFFFFFFFFFFF: 10 bytes */
	roundtrip(&d, 11);
	d.v.i = INT32_MIN;
	roundtrip(&d, 11);
	d.v.i = INT32_MAX;
	roundtrip(&d, 6);
	d.type = SPOP_T_UINT32;
	d.v.u = 0;
	roundtrip(&d, 2);
	d.v.u = UINT32_MAX;
	roundtrip(&d, 6);
	d.type = SPOP_T_INT64;
	d.v.i = INT64_MIN;
	roundtrip(&d, 11);
	d.v.i = -2;
	roundtrip(&d, 11);
	d.v.i = INT64_MAX;
	roundtrip(&d, 11);
	d.v.i = 239;
	roundtrip(&d, 2);
	d.type = SPOP_T_UINT64;
	d.v.u = UINT64_MAX;
	roundtrip(&d, 11);
	d.v.u = 240;
	roundtrip(&d, 3);

	d.type = SPOP_T_IPV4;
	memcpy(d.v.ip4, "\x7f\x00\x00\x01", 4);
	roundtrip(&d, 5);
	d.type = SPOP_T_IPV6;
	memcpy(d.v.ip6, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	roundtrip(&d, 17);

	d.type = SPOP_T_STR;
	d.v.s.p = (const uint8_t *)"";
	d.v.s.len = 0;
	roundtrip(&d, 2);
	d.v.s.p = (const uint8_t *)"GET";
	d.v.s.len = 3;
	roundtrip(&d, 5);

	/* every byte value, NULs included, at both ends */
	for (i = 0; i < 256; i++)
		bin[i] = (uint8_t)i;
	memcpy(bin + 256, "\0\0\xff\0", 4);
	d.type = SPOP_T_BIN;
	d.v.s.p = bin;
	d.v.s.len = sizeof(bin);
	roundtrip(&d, 1 + 2 + sizeof(bin));
	d.type = SPOP_T_STR;	/* STR is bytes too: no NUL termination */
	roundtrip(&d, 1 + 2 + sizeof(bin));
}

static void
test_data_exact_bytes(void)
{
	static const uint8_t neg1[] = { 0x02, 0xFF, 0xF0, 0xFE, 0xFE, 0xFE,
					0xFE, 0xFE, 0xFE, 0xFE, 0x0E };
	uint8_t buf[32], *w;
	struct spop_data d;

	/* HAProxy sends a signed value as the varint of its uint64 cast, so
	 * -1 is the 10-byte varint of 2^64-1 (HAProxy's encode_varint run by
	 * hand: FF, then (v-240)>>4 seven bits at a time minus 128 each). */
	w = buf;
	d.type = SPOP_T_INT32;
	d.v.i = -1;
	CHECK(spop_enc_data(&w, buf + sizeof(buf), &d) == 0);
	CHECK(w - buf == 11);
	CHECK_MEM(buf, neg1, 11);

	w = buf;
	d.type = SPOP_T_BOOL;
	d.v.b = 1;
	CHECK(spop_enc_data(&w, buf + sizeof(buf), &d) == 0);
	CHECK(buf[0] == 0x11);
	w = buf;
	d.v.b = 0;
	CHECK(spop_enc_data(&w, buf + sizeof(buf), &d) == 0);
	CHECK(buf[0] == 0x01);
}

static void
test_data_flags_nibble(void)
{
	/* The type is the low nibble; flags other than BOOL's are ignored,
	 * as HAProxy does (type & 0x0F). */
	static const uint8_t t_true[] = { 0x11 }, t_false[] = { 0x01 },
		t_true2[] = { 0x31 }, t_str[] = { 0x28, 0x01, 'x' };
	struct spop_data d;
	const uint8_t *p;

	p = t_true;
	CHECK(spop_data_decode(&p, t_true + 1, &d) == 0 && d.type == SPOP_T_BOOL && d.v.b == 1);
	p = t_false;
	CHECK(spop_data_decode(&p, t_false + 1, &d) == 0 && d.v.b == 0);
	p = t_true2;
	CHECK(spop_data_decode(&p, t_true2 + 1, &d) == 0 && d.v.b == 1);
	p = t_str;
	CHECK(spop_data_decode(&p, t_str + 3, &d) == 0 && d.type == SPOP_T_STR &&
	      d.v.s.len == 1 && d.v.s.p[0] == 'x');
}

static void
test_data_invalid(void)
{
	uint8_t buf[32];
	const uint8_t *p;
	struct spop_data d;
	struct guard g;
	uint8_t *w;
	int t, n;

	/* reserved types 10..15, with and without flag bits */
	for (t = 10; t <= 15; t++) {
		uint8_t b[2] = { (uint8_t)t, 0 };
		const uint8_t *in = guard_put(&g, b, 2);

		p = in;
		CHECK(spop_data_decode(&p, in + 2, &d) == -SPOP_ST_INVALID);
		CHECK(p == in);
		b[0] |= 0xF0;
		guard_free(&g);
		in = guard_put(&g, b, 2);
		p = in;
		CHECK(spop_data_decode(&p, in + 2, &d) == -SPOP_ST_INVALID);
		guard_free(&g);
	}
	/* INT32 out of range either way, UINT32 above 2^32-1 */
	buf[0] = SPOP_T_INT32;
	n = varint_encode((uint64_t)INT32_MAX + 1, buf + 1, buf + sizeof(buf));
	p = buf;
	CHECK(spop_data_decode(&p, buf + 1 + n, &d) == -SPOP_ST_INVALID);
	n = varint_encode((uint64_t)((int64_t)INT32_MIN - 1), buf + 1, buf + sizeof(buf));
	p = buf;
	CHECK(spop_data_decode(&p, buf + 1 + n, &d) == -SPOP_ST_INVALID);
	buf[0] = SPOP_T_UINT32;
	n = varint_encode((uint64_t)UINT32_MAX + 1, buf + 1, buf + sizeof(buf));
	p = buf;
	CHECK(spop_data_decode(&p, buf + 1 + n, &d) == -SPOP_ST_INVALID);
	/* overflowing varint value */
	buf[0] = SPOP_T_UINT64;
	memset(buf + 1, 0xFF, 11);
	p = buf;
	CHECK(spop_data_decode(&p, buf + 12, &d) == -SPOP_ST_INVALID);
	/* string length beyond the end, and a 2^64-1 length */
	buf[0] = SPOP_T_STR;
	buf[1] = 5;
	memcpy(buf + 2, "abcd", 4);
	p = buf;
	CHECK(spop_data_decode(&p, buf + 6, &d) == -SPOP_ST_INVALID);
	n = varint_encode(UINT64_MAX, buf + 1, buf + sizeof(buf));
	p = buf;
	CHECK(spop_data_decode(&p, buf + 1 + n, &d) == -SPOP_ST_INVALID);
	/* empty input */
	p = buf;
	CHECK(spop_data_decode(&p, buf, &d) == -SPOP_ST_INVALID);

	/* the encoder refuses what the decoder would refuse */
	w = buf;
	d.type = SPOP_T_INT32;
	d.v.i = (int64_t)INT32_MAX + 1;
	CHECK(spop_enc_data(&w, buf + sizeof(buf), &d) == -1 && w == buf);
	d.type = SPOP_T_UINT32;
	d.v.u = (uint64_t)UINT32_MAX + 1;
	CHECK(spop_enc_data(&w, buf + sizeof(buf), &d) == -1 && w == buf);
	d.type = 10;
	CHECK(spop_enc_data(&w, buf + sizeof(buf), &d) == -1 && w == buf);
}

/* ---------------------------------------------------------------- frames */

static void
test_frame_len(void)
{
	static const uint8_t f7[] = { 0, 0, 0, 7 }, f6[] = { 0, 0, 0, 6 },
		f0[] = { 0, 0, 0, 0 }, big[] = { 0, 0, 0x40, 0x01 },
		max[] = { 0, 0, 0x40, 0x00 }, huge[] = { 0xFF, 0xFF, 0xFF, 0xFF };
	const uint8_t *in;
	struct guard g;
	uint32_t flen;
	size_t k;

	for (k = 0; k < 4; k++) {
		in = guard_put(&g, f7, k);
		CHECK(spop_frame_len(in, k, 16384, &flen) == 0);
		guard_free(&g);
	}
	in = guard_put(&g, f7, 4);
	CHECK(spop_frame_len(in, 4, 16384, &flen) == 4 && flen == 7);
	guard_free(&g);
	CHECK(spop_frame_len(f6, 4, 16384, &flen) == -SPOP_ST_INVALID);
	CHECK(spop_frame_len(f0, 4, 16384, &flen) == -SPOP_ST_INVALID);
	CHECK(spop_frame_len(max, 4, 16384, &flen) == 4 && flen == 16384);
	CHECK(spop_frame_len(big, 4, 16384, &flen) == -SPOP_ST_TOO_BIG &&
	      flen == 16385);
	CHECK(spop_frame_len(huge, 4, 16384, &flen) == -SPOP_ST_TOO_BIG);
	CHECK(spop_frame_len(huge, 4, UINT32_MAX, &flen) == 4);
}

static void
test_frame_parse(void)
{
	/* NOTIFY, flags FIN, stream-id 300 (FC 03), frame-id 5, then 3
	 * payload bytes */
	static const uint8_t fr[] = { 0x03, 0, 0, 0, 1, 0xFC, 0x03, 0x05,
				      'a', 'b', 'c' };
	struct spop_frame f;
	const uint8_t *in;
	struct guard g;
	size_t k;

	CHECK(varint_size(300) == 2);
	in = guard_put(&g, fr, sizeof(fr));
	CHECK(spop_frame_parse(in, sizeof(fr), &f) == 0);
	CHECK(f.type == SPOP_FRM_NOTIFY && f.flags == SPOP_FL_FIN);
	CHECK(f.stream_id == 300 && f.frame_id == 5);
	CHECK(f.plen == 3 && f.payload == in + 8);
	guard_free(&g);

	for (k = 0; k < sizeof(fr); k++) {
		int r;

		in = guard_put(&g, fr, k);
		r = spop_frame_parse(in, k, &f);
		if (k < 8) {	/* header incomplete */
			CHECK(r == -SPOP_ST_INVALID);
		} else {
			CHECK(r == 0 && f.plen == k - 8);
		}
		guard_free(&g);
	}

	/* flags are big-endian, reserved bits kept for the caller */
	{
		static const uint8_t fl[] = { 0x00, 0x80, 0, 0, 3, 0, 0 };

		CHECK(spop_frame_parse(fl, sizeof(fl), &f) == 0);
		CHECK(f.type == SPOP_FRM_UNSET);
		CHECK(f.flags == (0x80000000u | SPOP_FL_FIN | SPOP_FL_ABRT));
		CHECK(f.plen == 0);
	}
	/* overflowing stream-id varint */
	{
		uint8_t ov[5 + 11 + 1] = { 0x03, 0, 0, 0, 1 };

		memset(ov + 5, 0xFF, 11);
		ov[16] = 0;
		CHECK(spop_frame_parse(ov, sizeof(ov), &f) == -SPOP_ST_INVALID);
	}
}

/* A KV-LIST with one item of each type; bounds[] gets the offset where each
 * KV ends. */
static size_t
build_kvlist(uint8_t *buf, size_t cap, size_t *bounds, int *nkv)
{
	struct spop_fb fb;
	struct spop_data d;
	size_t hdr;
	int n = 0;

	spop_fb_begin(&fb, buf, cap, SPOP_FRM_HAPROXY_HELLO, SPOP_FL_FIN, 0, 0);
	hdr = (size_t)(fb.p - buf);
#define KV(name) do { spop_fb_kv(&fb, name, &d); \
	bounds[n++] = (size_t)(fb.p - buf) - hdr; } while (0)
	d.type = SPOP_T_NULL;			KV("null");
	d.type = SPOP_T_BOOL;  d.v.b = 1;	KV("b");
	d.type = SPOP_T_INT32; d.v.i = -7;	KV("i32");
	d.type = SPOP_T_UINT32; d.v.u = 70000;	KV("u32");
	d.type = SPOP_T_INT64; d.v.i = INT64_MIN; KV("i64");
	d.type = SPOP_T_UINT64; d.v.u = 1;	KV("u64");
	d.type = SPOP_T_IPV4; memcpy(d.v.ip4, "\x0a\0\0\x01", 4); KV("ip4");
	d.type = SPOP_T_IPV6; memset(d.v.ip6, 0xAB, 16); KV("ip6");
	d.type = SPOP_T_STR; d.v.s.p = (const uint8_t *)"v\0x"; d.v.s.len = 3;
	KV("s");
	d.type = SPOP_T_BIN; d.v.s.p = (const uint8_t *)""; d.v.s.len = 0;
	KV("");					/* empty name is legal */
#undef KV
	CHECK(spop_fb_end(&fb) > 0);
	*nkv = n;
	memmove(buf, buf + hdr, bounds[n - 1]);
	return bounds[n - 1];
}

static void
test_kv_list_truncation(void)
{
	uint8_t buf[512];
	size_t bounds[16], len, cut;
	int nkv;

	len = build_kvlist(buf, sizeof(buf), bounds, &nkv);
	CHECK(nkv == 10);
	for (cut = 0; cut <= len; cut++) {
		struct spop_str name;
		struct spop_data val;
		const uint8_t *in, *p;
		struct guard g;
		int r, got = 0, at_boundary = (cut == 0), i;

		for (i = 0; i < nkv; i++)
			if (bounds[i] == cut)
				at_boundary = 1;
		in = guard_put(&g, buf, cut);
		p = in;
		while ((r = spop_kv_next(&p, in + cut, &name, &val)) == 1)
			got++;
		if (at_boundary) {
			CHECK(r == 0);
			CHECK(p == in + cut);
		} else {
			CHECK(r == -SPOP_ST_INVALID);
			CHECK(got < nkv);
		}
		if (cut == len)
			CHECK(got == nkv);
		guard_free(&g);
	}
}

static void
test_kv_values(void)
{
	uint8_t buf[512];
	size_t bounds[16], len;
	struct spop_str name;
	struct spop_data val;
	const uint8_t *in, *p;
	struct guard g;
	int nkv;

	len = build_kvlist(buf, sizeof(buf), bounds, &nkv);
	in = guard_put(&g, buf, len);
	p = in;
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 1);
	CHECK(spop_str_eq(&name, "null") && val.type == SPOP_T_NULL);
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 1);
	CHECK(spop_str_eq(&name, "b") && val.type == SPOP_T_BOOL && val.v.b == 1);
	CHECK(!spop_str_eq(&name, "bb") && !spop_str_eq(&name, ""));
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 1);
	CHECK(val.type == SPOP_T_INT32 && val.v.i == -7);
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 1);
	CHECK(val.type == SPOP_T_UINT32 && val.v.u == 70000);
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 1);
	CHECK(val.type == SPOP_T_INT64 && val.v.i == INT64_MIN);
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 1);
	CHECK(val.type == SPOP_T_UINT64 && val.v.u == 1);
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 1);
	CHECK(val.type == SPOP_T_IPV4 && val.v.ip4[0] == 10 && val.v.ip4[3] == 1);
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 1);
	CHECK(val.type == SPOP_T_IPV6 && val.v.ip6[15] == 0xAB);
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 1);
	CHECK(val.type == SPOP_T_STR && val.v.s.len == 3 &&
	      memcmp(val.v.s.p, "v\0x", 3) == 0);
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 1);
	CHECK(name.len == 0 && spop_str_eq(&name, "") && val.type == SPOP_T_BIN &&
	      val.v.s.len == 0);
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 0);
	CHECK(spop_kv_next(&p, in + len, &name, &val) == 0);	/* stays at end */
	guard_free(&g);
}

/* ----------------------------------------------------------------- NOTIFY */

static int
build_notify(uint8_t *buf, size_t cap, int lie_nargs)
{
	struct peer_notify n;
	struct spop_data d;

	peer_notify_begin(&n, buf, cap, 7, 42);
	peer_notify_msg(&n, "cache-lookup", 12, lie_nargs ? 4 : 3);
	d.type = SPOP_T_STR; d.v.s.p = (const uint8_t *)"api"; d.v.s.len = 3;
	peer_notify_arg(&n, "policy", 6, &d);
	d.v.s.p = (const uint8_t *)"GET"; d.v.s.len = 3;
	peer_notify_arg(&n, "method", 6, &d);
	d.type = SPOP_T_BIN; d.v.s.p = (const uint8_t *)"\0\x01\x02"; d.v.s.len = 3;
	peer_notify_arg(&n, "hdrs", 4, &d);
	if (!lie_nargs) {
		peer_notify_msg(&n, "client", 6, 1);
		d.type = SPOP_T_IPV4; memcpy(d.v.ip4, "\xc0\xa8\x00\x01", 4);
		peer_notify_arg(&n, "", 0, &d);	/* HAProxy allows unnamed args */
	}
	return peer_notify_end(&n);
}

static void
test_notify_walk(void)
{
	uint8_t buf[256];
	struct spop_frame f;
	struct spop_str name;
	struct spop_data val;
	const uint8_t *in, *p, *end;
	struct guard g;
	uint32_t flen;
	size_t off, plen;
	int total, nargs, nmsgs = -1;

	total = build_notify(buf, sizeof(buf), 0);
	CHECK(total > 0);
	in = guard_put(&g, buf, (size_t)total);
	CHECK(spop_frame_len(in, (size_t)total, 16380, &flen) == 4);
	CHECK(flen + 4 == (uint32_t)total);
	CHECK(spop_frame_parse(in + 4, flen, &f) == 0);
	CHECK(f.type == SPOP_FRM_NOTIFY && f.flags == SPOP_FL_FIN);
	CHECK(f.stream_id == 7 && f.frame_id == 42);
	CHECK(spop_msgs_validate(f.payload, f.plen, &nmsgs) == 0 && nmsgs == 2);

	p = f.payload;
	end = f.payload + f.plen;
	CHECK(spop_msg_next(&p, end, &name, &nargs) == 1);
	CHECK(spop_str_eq(&name, "cache-lookup") && nargs == 3);
	CHECK(spop_arg_next(&p, end, &name, &val) == 0);
	CHECK(spop_str_eq(&name, "policy") && val.type == SPOP_T_STR &&
	      val.v.s.len == 3 && memcmp(val.v.s.p, "api", 3) == 0);
	CHECK(spop_arg_next(&p, end, &name, &val) == 0);
	CHECK(spop_str_eq(&name, "method"));
	CHECK(spop_arg_next(&p, end, &name, &val) == 0);
	CHECK(spop_str_eq(&name, "hdrs") && val.type == SPOP_T_BIN &&
	      val.v.s.len == 3 && val.v.s.p[0] == 0);
	CHECK(spop_msg_next(&p, end, &name, &nargs) == 1);
	CHECK(spop_str_eq(&name, "client") && nargs == 1);
	CHECK(spop_arg_next(&p, end, &name, &val) == 0);
	CHECK(name.len == 0 && val.type == SPOP_T_IPV4 && val.v.ip4[0] == 192);
	CHECK(spop_msg_next(&p, end, &name, &nargs) == 0);
	CHECK(spop_arg_next(&p, end, &name, &val) == -SPOP_ST_INVALID);
	off = (size_t)(f.payload - in);
	plen = f.plen;
	guard_free(&g);

	/* every truncation of the payload: never a crash; a cut can only be
	 * well formed where a message ends */
	for (size_t k = 0; k <= plen; k++) {
		const uint8_t *c;
		int r;

		in = guard_put(&g, buf + off, k);
		r = spop_msgs_validate(in, k, &nmsgs);
		CHECK(r == 0 || r == -SPOP_ST_INVALID);
		if (k == 0 || k == plen)
			CHECK(r == 0);
		c = in;
		while (spop_msg_next(&c, in + k, &name, &nargs) == 1)
			while (nargs-- > 0 && spop_arg_next(&c, in + k, &name, &val) == 0)
				;
		guard_free(&g);
	}
}

static void
test_notify_nargs_too_big(void)
{
	uint8_t buf[256];
	struct spop_frame f;
	struct spop_str name;
	struct spop_data val;
	const uint8_t *in, *p, *end;
	struct guard g;
	int total, nargs, i;

	total = build_notify(buf, sizeof(buf), 1);	/* says 4, has 3 */
	CHECK(total > 0);
	in = guard_put(&g, buf, (size_t)total);
	CHECK(spop_frame_parse(in + 4, (size_t)total - 4, &f) == 0);
	CHECK(spop_msgs_validate(f.payload, f.plen, NULL) == -SPOP_ST_INVALID);
	p = f.payload;
	end = f.payload + f.plen;
	CHECK(spop_msg_next(&p, end, &name, &nargs) == 1 && nargs == 4);
	for (i = 0; i < 3; i++)
		CHECK(spop_arg_next(&p, end, &name, &val) == 0);
	CHECK(spop_arg_next(&p, end, &name, &val) == -SPOP_ST_INVALID);
	guard_free(&g);

	/* a message name with its NB-ARGS byte missing */
	{
		static const uint8_t m[] = { 0x01, 'x' };

		in = guard_put(&g, m, sizeof(m));
		p = in;
		CHECK(spop_msg_next(&p, in + sizeof(m), &name, &nargs) == -SPOP_ST_INVALID);
		CHECK(p == in);
		guard_free(&g);
	}
	/* nargs above 255 cannot be encoded */
	{
		struct peer_notify n;

		peer_notify_begin(&n, buf, sizeof(buf), 1, 1);
		peer_notify_msg(&n, "m", 1, 256);
		CHECK(peer_notify_end(&n) == -1);
	}
}

/* ------------------------------------------------------------------ HELLO */

/* HAProxy 2.6's health-check HELLO, spelled out by hand from
 * spoe_prepare_healthcheck_request (no agent: empty capabilities, no
 * engine-id, max-frame-size MAX_FRAME_SIZE = 16384, then healthcheck=TRUE).
 * 82 bytes, which is what HAProxy's spop-check reg-test waits for. */
static const uint8_t hc_hello[] = {
	0x00, 0x00, 0x00, 0x4E,
	0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
	0x12, 's','u','p','p','o','r','t','e','d','-','v','e','r','s','i','o','n','s',
	0x08, 0x03, '2', '.', '0',
	0x0E, 'm','a','x','-','f','r','a','m','e','-','s','i','z','e',
	0x03, 0xF0, 0xF1, 0x06,
	0x0C, 'c','a','p','a','b','i','l','i','t','i','e','s',
	0x08, 0x00,
	0x0B, 'h','e','a','l','t','h','c','h','e','c','k',
	0x11,
};

#define ENGINE_ID "1f7b2b8e-5f8a-4d2c-9a51-0c7d3e2f4a6b"

static void
test_hello_real(void)
{
	/* A regular HAProxy 2.6 HELLO (bufsize 16384 -> max-frame-size
	 * 16380, "option pipelining" + async, engine-id), by hand. */
	static const uint8_t want_hdr[] = {
		0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x12, 's','u','p','p','o','r','t','e','d','-','v','e','r','s','i','o','n','s',
		0x08, 0x03, '2', '.', '0',
		0x0E, 'm','a','x','-','f','r','a','m','e','-','s','i','z','e',
		0x03, 0xFC, 0xF0, 0x06,
		0x0C, 'c','a','p','a','b','i','l','i','t','i','e','s',
		0x08, 0x10, 'p','i','p','e','l','i','n','i','n','g',',','a','s','y','n','c',
		0x09, 'e','n','g','i','n','e','-','i','d',
		0x08, 0x24,
	};
	uint8_t buf[256];
	struct spop_frame f;
	struct spop_hello h;
	const uint8_t *in;
	struct guard g;
	uint32_t flen;
	int n;

	n = peer_enc_hello(buf, sizeof(buf), "2.0", 16380,
				   "pipelining,async", -1, ENGINE_ID);
	CHECK(n == 4 + (int)sizeof(want_hdr) + 36);
	CHECK(buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == n - 4);
	CHECK_MEM(buf + 4, want_hdr, sizeof(want_hdr));
	CHECK_MEM(buf + 4 + sizeof(want_hdr), ENGINE_ID, 36);

	in = guard_put(&g, buf, (size_t)n);
	CHECK(spop_frame_len(in, (size_t)n, 16384, &flen) == 4);
	CHECK(spop_frame_parse(in + 4, flen, &f) == 0);
	CHECK(f.type == SPOP_FRM_HAPROXY_HELLO && f.flags == SPOP_FL_FIN);
	CHECK(f.stream_id == 0 && f.frame_id == 0);
	CHECK(spop_hello_parse(f.payload, f.plen, &h) == 0);
	CHECK(h.seen == (SPOP_HELLO_VERSIONS | SPOP_HELLO_MAX_FRAME |
			 SPOP_HELLO_CAPS | SPOP_HELLO_ENGINE_ID));
	CHECK(h.versions.len == 3 && memcmp(h.versions.p, "2.0", 3) == 0);
	CHECK(h.max_frame_size == 16380);
	CHECK(spop_has_cap((const char *)h.caps.p, h.caps.len, "pipelining"));
	CHECK(spop_has_cap((const char *)h.caps.p, h.caps.len, "async"));
	CHECK(!spop_has_cap((const char *)h.caps.p, h.caps.len, "fragmentation"));
	CHECK(h.healthcheck == 0);
	CHECK(h.engine_id.len == 36 && memcmp(h.engine_id.p, ENGINE_ID, 36) == 0);
	CHECK(spop_hello_check(&h) == 0);
	guard_free(&g);

	/* the stream cut anywhere: the prefix asks for more, then the frame
	 * length says more is due; nothing reads past the cut */
	for (int k = 0; k < n; k++) {
		int r;

		in = guard_put(&g, buf, (size_t)k);
		r = spop_frame_len(in, (size_t)k, 16384, &flen);
		CHECK(k < 4 ? r == 0 : (r == 4 && 4 + flen > (uint32_t)k));
		if (k > 4 + 7) {
			CHECK(spop_frame_parse(in + 4, (size_t)k - 4, &f) == 0);
			r = spop_hello_parse(f.payload, f.plen, &h);
			CHECK(r == 0 || r == -SPOP_ST_INVALID);
		}
		guard_free(&g);
	}
}

static void
test_hello_healthcheck(void)
{
	uint8_t buf[128];
	struct spop_frame f;
	struct spop_hello h;
	const uint8_t *in;
	struct guard g;
	uint32_t flen;
	int n;

	/* our encoder agrees with the hand-written bytes */
	n = peer_enc_hello(buf, sizeof(buf), "2.0", 16384, "", 1, NULL);
	CHECK(n == (int)sizeof(hc_hello));
	CHECK_MEM(buf, hc_hello, sizeof(hc_hello));

	in = guard_put(&g, hc_hello, sizeof(hc_hello));
	CHECK(spop_frame_len(in, sizeof(hc_hello), 16384, &flen) == 4);
	CHECK(flen == 78);
	CHECK(spop_frame_parse(in + 4, flen, &f) == 0);
	CHECK(f.type == SPOP_FRM_HAPROXY_HELLO);
	CHECK(spop_hello_parse(f.payload, f.plen, &h) == 0);
	CHECK(h.healthcheck == 1 && (h.seen & SPOP_HELLO_HEALTH));
	CHECK(!(h.seen & SPOP_HELLO_ENGINE_ID));
	CHECK((h.seen & SPOP_HELLO_CAPS) && h.caps.len == 0);
	CHECK(h.max_frame_size == 16384);
	CHECK(spop_hello_check(&h) == 0);
	CHECK(!spop_has_cap((const char *)h.caps.p, h.caps.len, "pipelining"));
	guard_free(&g);
}

/* Build a HELLO payload from raw KV items and run parse + check. */
static int
hello_status(const char *key, const struct spop_data *val, int with_std,
	     int *check)
{
	uint8_t buf[256];
	struct spop_fb fb;
	struct spop_hello h;
	struct spop_data d;
	struct spop_frame f;
	int n, r;

	spop_fb_begin(&fb, buf, sizeof(buf), SPOP_FRM_HAPROXY_HELLO, SPOP_FL_FIN, 0, 0);
	if (with_std & 1) {
		d.type = SPOP_T_STR; d.v.s.p = (const uint8_t *)"2.0"; d.v.s.len = 3;
		spop_fb_kv(&fb, "supported-versions", &d);
	}
	if (with_std & 2) {
		d.type = SPOP_T_UINT32; d.v.u = 16380;
		spop_fb_kv(&fb, "max-frame-size", &d);
	}
	if (with_std & 4) {
		d.type = SPOP_T_STR; d.v.s.p = (const uint8_t *)""; d.v.s.len = 0;
		spop_fb_kv(&fb, "capabilities", &d);
	}
	if (key)
		spop_fb_kv(&fb, key, val);	/* last one wins */
	n = spop_fb_end(&fb);
	CHECK(n > 0);
	CHECK(spop_frame_parse(buf + 4, (size_t)n - 4, &f) == 0);
	r = spop_hello_parse(f.payload, f.plen, &h);
	*check = r == 0 ? spop_hello_check(&h) : 1;
	return r;
}

static void
test_hello_check(void)
{
	struct spop_data d;
	int c;

	CHECK(hello_status(NULL, NULL, 7, &c) == 0 && c == 0);
	CHECK(hello_status(NULL, NULL, 6, &c) == 0 && c == -SPOP_ST_NO_VSN);
	CHECK(hello_status(NULL, NULL, 5, &c) == 0 && c == -SPOP_ST_NO_FRAME_SIZE);
	CHECK(hello_status(NULL, NULL, 3, &c) == 0 && c == -SPOP_ST_NO_CAP);
	CHECK(hello_status(NULL, NULL, 0, &c) == 0 && c == -SPOP_ST_NO_VSN);

	d.type = SPOP_T_STR; d.v.s.p = (const uint8_t *)"1.0"; d.v.s.len = 3;
	CHECK(hello_status("supported-versions", &d, 7, &c) == 0 && c == -SPOP_ST_BAD_VSN);
	d.v.s.p = (const uint8_t *)"1.5, 2.3"; d.v.s.len = 8;
	CHECK(hello_status("supported-versions", &d, 7, &c) == 0 && c == 0);
	d.type = SPOP_T_BIN;
	CHECK(hello_status("supported-versions", &d, 7, &c) == -SPOP_ST_INVALID);

	/* max-frame-size: any integer type within uint32, at least 256 */
	d.type = SPOP_T_INT64; d.v.i = 4096;
	CHECK(hello_status("max-frame-size", &d, 7, &c) == 0 && c == 0);
	d.type = SPOP_T_INT32; d.v.i = 256;
	CHECK(hello_status("max-frame-size", &d, 7, &c) == 0 && c == 0);
	d.type = SPOP_T_UINT64; d.v.u = 255;
	CHECK(hello_status("max-frame-size", &d, 7, &c) == 0 &&
	      c == -SPOP_ST_BAD_FRAME_SIZE);
	d.type = SPOP_T_UINT64; d.v.u = (uint64_t)UINT32_MAX + 1;
	CHECK(hello_status("max-frame-size", &d, 7, &c) == -SPOP_ST_BAD_FRAME_SIZE);
	d.type = SPOP_T_INT32; d.v.i = -1;
	CHECK(hello_status("max-frame-size", &d, 7, &c) == -SPOP_ST_BAD_FRAME_SIZE);
	d.type = SPOP_T_STR; d.v.s.p = (const uint8_t *)"16380"; d.v.s.len = 5;
	CHECK(hello_status("max-frame-size", &d, 7, &c) == -SPOP_ST_INVALID);

	d.type = SPOP_T_INT32; d.v.i = 1;
	CHECK(hello_status("healthcheck", &d, 7, &c) == -SPOP_ST_INVALID);
	CHECK(hello_status("capabilities", &d, 7, &c) == -SPOP_ST_INVALID);
	CHECK(hello_status("engine-id", &d, 7, &c) == -SPOP_ST_INVALID);
	/* unknown keys, and keys that merely start like known ones, skipped */
	CHECK(hello_status("future-item", &d, 7, &c) == 0 && c == 0);
	CHECK(hello_status("max-frame-sizeX", &d, 7, &c) == 0 && c == 0);
	CHECK(hello_status("max-frame-siz", &d, 5, &c) == 0 &&
	      c == -SPOP_ST_NO_FRAME_SIZE);
}

static void
test_version_supported(void)
{
#define VS(s) spop_version_supported(s, strlen(s))
	CHECK(VS("2.0"));
	CHECK(VS("2.0, 1.5"));
	CHECK(VS(" 1.5 ,2.1 "));
	CHECK(VS("3.0,2.0"));
	CHECK(VS(",,2.0"));
	CHECK(VS("2.10"));
	CHECK(!VS("1.0"));
	CHECK(!VS("20.0"));
	CHECK(!VS("12.0"));
	CHECK(!VS("2"));
	CHECK(!VS("2."));
	CHECK(!VS(".0"));
	CHECK(!VS("2.0x"));
	CHECK(!VS("v2.0"));
	CHECK(!VS(""));
	CHECK(!VS("99999999999999999999.0"));
	CHECK(!spop_version_supported("2.0", 2));	/* length is honoured */
#undef VS
}

static void
test_has_cap(void)
{
#define HC(l, c) spop_has_cap(l, strlen(l), c)
	CHECK(HC("pipelining,async", "pipelining"));
	CHECK(HC("pipelining,async", "async"));
	CHECK(HC(" pipelining , async ", "async"));
	CHECK(HC("fragmentation,pipelining", "pipelining"));
	CHECK(!HC("pipeliningX", "pipelining"));
	CHECK(!HC("pipelining", "pipe"));
	CHECK(!HC("xasync,pipelininga", "async"));
	CHECK(!HC("pipelining", "pipeliningX"));
	CHECK(!HC("", "async"));
	CHECK(!HC(",,", "async"));
	CHECK(!HC("async", ""));
	CHECK(!spop_has_cap("async", 4, "async"));	/* length is honoured */
	/* an absent item (found by the fuzzer: NULL + 0 is UB) */
	CHECK(!spop_has_cap(NULL, 0, "async"));
	CHECK(!spop_version_supported(NULL, 0));
	{
		static const uint8_t nocaps[] = { 0x0E, 'm','a','x','-','f','r','a','m','e','-','s','i','z','e', 0x03, 0x10 };
		struct spop_hello h;

		CHECK(spop_hello_parse(nocaps, sizeof(nocaps), &h) == 0);
		CHECK(!spop_has_cap((const char *)h.caps.p, h.caps.len, "async"));
		CHECK(spop_hello_check(&h) == -SPOP_ST_NO_VSN);
		CHECK(spop_hello_parse(NULL, 0, &h) == 0 && h.seen == 0);
		CHECK(spop_msgs_validate(NULL, 0, NULL) == 0);
	}
#undef HC
}

/* ------------------------------------------------------------- DISCONNECT */

static void
test_disconnect_parse(void)
{
	uint8_t buf[128];
	struct spop_frame f;
	struct spop_disconnect d;
	const uint8_t *in;
	struct guard g;
	int n;

	n = peer_enc_disconnect(buf, sizeof(buf), SPOP_ST_TIMEOUT,
					"a timeout occurred");
	CHECK(n > 0);
	in = guard_put(&g, buf, (size_t)n);
	CHECK(spop_frame_parse(in + 4, (size_t)n - 4, &f) == 0);
	CHECK(f.type == SPOP_FRM_HAPROXY_DISCON);
	CHECK(spop_disconnect_parse(f.payload, f.plen, &d) == 0);
	CHECK(d.seen == (SPOP_DISCON_STATUS | SPOP_DISCON_MESSAGE));
	CHECK(d.status == SPOP_ST_TIMEOUT);
	CHECK(d.message.len == 18 && memcmp(d.message.p, "a timeout occurred", 18) == 0);
	guard_free(&g);

	/* status as a string is malformed; a truncated list too */
	{
		struct spop_fb fb;
		struct spop_data v;

		spop_fb_begin(&fb, buf, sizeof(buf), SPOP_FRM_HAPROXY_DISCON, SPOP_FL_FIN, 0, 0);
		v.type = SPOP_T_STR; v.v.s.p = (const uint8_t *)"4"; v.v.s.len = 1;
		spop_fb_kv(&fb, "status-code", &v);
		n = spop_fb_end(&fb);
		CHECK(spop_frame_parse(buf + 4, (size_t)n - 4, &f) == 0);
		CHECK(spop_disconnect_parse(f.payload, f.plen, &d) == -SPOP_ST_INVALID);
		CHECK(spop_disconnect_parse(f.payload, f.plen - 1, &d) == -SPOP_ST_INVALID);
	}
}

/* ------------------------------------------------------------ agent side */

static void
test_agent_hello_bytes(void)
{
	/* HAProxy's spop-check reg-test answers with exactly this frame */
	static const uint8_t vtest[] = {
		0x00, 0x00, 0x00, 0x36, 0x65, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x07, 'v','e','r','s','i','o','n', 0x08, 0x03, '2', '.', '0',
		0x0E, 'm','a','x','-','f','r','a','m','e','-','s','i','z','e',
		0x03, 0xFC, 0xF0, 0x06,
		0x0C, 'c','a','p','a','b','i','l','i','t','i','e','s', 0x08, 0x00,
	};
	static const uint8_t caps[] = {
		0x00, 0x00, 0x00, 0x46, 0x65, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x07, 'v','e','r','s','i','o','n', 0x08, 0x03, '2', '.', '0',
		0x0E, 'm','a','x','-','f','r','a','m','e','-','s','i','z','e',
		0x03, 0xFC, 0xF0, 0x06,
		0x0C, 'c','a','p','a','b','i','l','i','t','i','e','s',
		0x08, 0x10, 'p','i','p','e','l','i','n','i','n','g',',','a','s','y','n','c',
	};
	uint8_t buf[128];
	int n, cap;

	CHECK(spop_enc_agent_hello(buf, sizeof(buf), 16380, "") == (int)sizeof(vtest));
	CHECK_MEM(buf, vtest, sizeof(vtest));
	CHECK(spop_enc_agent_hello(buf, sizeof(buf), 16380, NULL) == (int)sizeof(vtest));
	CHECK_MEM(buf, vtest, sizeof(vtest));
	n = spop_enc_agent_hello(buf, sizeof(buf), 16380, "pipelining,async");
	CHECK(n == (int)sizeof(caps));
	CHECK_MEM(buf, caps, sizeof(caps));

	/* every capacity short of the frame fails without touching buf[cap] */
	for (cap = 0; cap < n; cap++) {
		memset(buf, 0xA5, sizeof(buf));
		CHECK(spop_enc_agent_hello(buf, (size_t)cap, 16380,
					   "pipelining,async") == -1);
		CHECK(buf[cap] == 0xA5);
	}
	CHECK(spop_enc_agent_hello(buf, (size_t)n, 16380, "pipelining,async") == n);
}

static void
test_agent_disconnect_bytes(void)
{
	static const uint8_t want[] = {
		0x00, 0x00, 0x00, 0x22, 0x66, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x0B, 's','t','a','t','u','s','-','c','o','d','e', 0x03, 0x04,
		0x07, 'm','e','s','s','a','g','e', 0x08, 0x03, 'b','a','d',
	};
	uint8_t buf[64];
	struct spop_disconnect d;
	struct spop_frame f;
	int n, cap;

	n = spop_enc_agent_disconnect(buf, sizeof(buf), SPOP_ST_INVALID, "bad");
	CHECK(n == (int)sizeof(want));
	CHECK_MEM(buf, want, sizeof(want));
	CHECK(spop_frame_parse(buf + 4, (size_t)n - 4, &f) == 0);
	CHECK(f.type == SPOP_FRM_AGENT_DISCON);
	CHECK(spop_disconnect_parse(f.payload, f.plen, &d) == 0 && d.status == 4);
	for (cap = 0; cap < n; cap++) {
		memset(buf, 0xA5, sizeof(buf));
		CHECK(spop_enc_agent_disconnect(buf, (size_t)cap, 4, "bad") == -1);
		CHECK(buf[cap] == 0xA5);
	}
}

static void
test_ack_exact_bytes(void)
{
	/* ACK sid=1 fid=2: set-var(txn, "k") = "v"; unset-var(req, "u").
	 * By hand from 3.2 and 3.4:
	 *   67 | 00000001 | 01 | 02
	 *   01 03 02 01'k' 08 01'v'    SET-VAR, 3 args, TXN, name, STR
	 *   02 02 03 01'u'             UNSET-VAR, 2 args, REQ, name
	 * payload 13, frame 20 = 0x14. */
	static const uint8_t want[] = {
		0x00, 0x00, 0x00, 0x14,
		0x67, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02,
		0x01, 0x03, 0x02, 0x01, 'k', 0x08, 0x01, 'v',
		0x02, 0x02, 0x03, 0x01, 'u',
	};
	uint8_t buf[64];
	struct spop_ack a;
	int n, cap;

	spop_ack_begin(&a, buf, sizeof(buf), 1, 2);
	peer_ack_set_str(&a, SPOP_SCOPE_TXN, "k", 1, "v", 1);
	peer_ack_unset(&a, SPOP_SCOPE_REQ, "u", 1);
	n = spop_ack_end(&a);
	CHECK(n == (int)sizeof(want));
	CHECK_MEM(buf, want, sizeof(want));

	/* too small by one, and by anything: -1, nothing past cap */
	for (cap = 0; cap < n; cap++) {
		memset(buf, 0xA5, sizeof(buf));
		spop_ack_begin(&a, buf, (size_t)cap, 1, 2);
		peer_ack_set_str(&a, SPOP_SCOPE_TXN, "k", 1, "v", 1);
		peer_ack_unset(&a, SPOP_SCOPE_REQ, "u", 1);
		CHECK(spop_ack_end(&a) == -1);
		CHECK(buf[cap] == 0xA5);
	}
	/* overflow is sticky: a small action after a failed big one does
	 * not make the frame look good */
	spop_ack_begin(&a, buf, 30, 1, 2);
	peer_ack_set_str(&a, SPOP_SCOPE_TXN, "k", 1,
			 "0123456789012345678901234567890123456789", 40);
	peer_ack_unset(&a, SPOP_SCOPE_REQ, "u", 1);
	CHECK(spop_ack_end(&a) == -1);
	/* bad scope */
	spop_ack_begin(&a, buf, sizeof(buf), 1, 2);
	peer_ack_set_null(&a, 5, "k", 1);
	CHECK(spop_ack_end(&a) == -1);
	/* set-var without a value: refused, never an action with NB-ARGS 2 */
	spop_ack_begin(&a, buf, sizeof(buf), 1, 2);
	spop_ack_set(&a, SPOP_SCOPE_TXN, "k", 1, NULL);
	CHECK(spop_ack_end(&a) == -1);
	/* an ACK with no action is a valid, empty LIST-OF-ACTIONS */
	spop_ack_begin(&a, buf, sizeof(buf), 1, 2);
	CHECK(spop_ack_end(&a) == 11);
}

static void
test_ack_all_scopes_types(void)
{
	uint8_t buf[1024], bin[3] = { 0, 0xFF, 0 };
	struct spop_ack a;
	struct spop_frame f;
	struct peer_act act;
	struct spop_data ip;
	const uint8_t *in, *p, *end;
	struct guard g;
	int n, scope, i;

	ip.type = SPOP_T_IPV6;
	memset(ip.v.ip6, 0x11, 16);
	spop_ack_begin(&a, buf, sizeof(buf), 123456, 654321);
	for (scope = SPOP_SCOPE_PROC; scope <= SPOP_SCOPE_RES; scope++) {
		peer_ack_set_str(&a, scope, "s", 1, "hit", 3);
		peer_ack_set_bin(&a, scope, "b", 1, bin, 3);
		peer_ack_set_int(&a, scope, "i", 1, -42);
		peer_ack_set_uint(&a, scope, "u", 1, UINT64_MAX);
		peer_ack_set_bool(&a, scope, "t", 1, 7);
		peer_ack_set_null(&a, scope, "n", 1);
		spop_ack_set(&a, scope, "ip", 2, &ip);
		peer_ack_unset(&a, scope, "x", 1);
	}
	n = spop_ack_end(&a);
	CHECK(n > 0);

	in = guard_put(&g, buf, (size_t)n);
	CHECK(spop_frame_parse(in + 4, (size_t)n - 4, &f) == 0);
	CHECK(f.type == SPOP_FRM_ACK && f.flags == SPOP_FL_FIN);
	CHECK(f.stream_id == 123456 && f.frame_id == 654321);
	p = f.payload;
	end = f.payload + f.plen;
	for (scope = SPOP_SCOPE_PROC; scope <= SPOP_SCOPE_RES; scope++) {
		for (i = 0; i < 8; i++) {
			CHECK(peer_act_next(&p, end, &act) == 1);
			CHECK(act.scope == scope);
			CHECK(act.type == (i == 7 ? SPOP_ACT_UNSET_VAR : SPOP_ACT_SET_VAR));
		}
	}
	CHECK(peer_act_next(&p, end, &act) == 0);
	/* spot-check values of the last scope */
	p = f.payload + (f.plen / 5) * 4;
	CHECK(peer_act_next(&p, end, &act) == 1 && spop_str_eq(&act.name, "s") &&
	      act.val.type == SPOP_T_STR && act.val.v.s.len == 3);
	CHECK(peer_act_next(&p, end, &act) == 1 && act.val.type == SPOP_T_BIN &&
	      act.val.v.s.len == 3 && act.val.v.s.p[1] == 0xFF);
	CHECK(peer_act_next(&p, end, &act) == 1 && act.val.type == SPOP_T_INT64 &&
	      act.val.v.i == -42);
	CHECK(peer_act_next(&p, end, &act) == 1 && act.val.type == SPOP_T_UINT64 &&
	      act.val.v.u == UINT64_MAX);
	CHECK(peer_act_next(&p, end, &act) == 1 && act.val.type == SPOP_T_BOOL &&
	      act.val.v.b == 1);
	CHECK(peer_act_next(&p, end, &act) == 1 && act.val.type == SPOP_T_NULL);
	CHECK(peer_act_next(&p, end, &act) == 1 && act.val.type == SPOP_T_IPV6 &&
	      act.val.v.ip6[0] == 0x11 && spop_str_eq(&act.name, "ip"));
	CHECK(peer_act_next(&p, end, &act) == 1 && spop_str_eq(&act.name, "x") &&
	      act.type == SPOP_ACT_UNSET_VAR);
	guard_free(&g);

	/* one byte short of that big frame: -1, canary intact */
	memset(buf, 0xA5, sizeof(buf));
	spop_ack_begin(&a, buf, (size_t)n - 1, 123456, 654321);
	for (scope = SPOP_SCOPE_PROC; scope <= SPOP_SCOPE_RES; scope++) {
		peer_ack_set_str(&a, scope, "s", 1, "hit", 3);
		peer_ack_set_bin(&a, scope, "b", 1, bin, 3);
		peer_ack_set_int(&a, scope, "i", 1, -42);
		peer_ack_set_uint(&a, scope, "u", 1, UINT64_MAX);
		peer_ack_set_bool(&a, scope, "t", 1, 7);
		peer_ack_set_null(&a, scope, "n", 1);
		spop_ack_set(&a, scope, "ip", 2, &ip);
		peer_ack_unset(&a, scope, "x", 1);
	}
	CHECK(spop_ack_end(&a) == -1);
	CHECK(buf[n - 1] == 0xA5);
}

static void
test_act_invalid(void)
{
	static const uint8_t bad_nargs[] = { 0x01, 0x02, 0x02, 0x01, 'k' };
	static const uint8_t bad_type[] = { 0x03, 0x02, 0x02, 0x01, 'k' };
	static const uint8_t bad_scope[] = { 0x02, 0x02, 0x05, 0x01, 'k' };
	static const uint8_t short_[] = { 0x01, 0x03 };
	static const uint8_t no_val[] = { 0x01, 0x03, 0x02, 0x01, 'k' };
	static const uint8_t *cases[] = { bad_nargs, bad_type, bad_scope, short_, no_val };
	static const size_t lens[] = { 5, 5, 5, 2, 5 };
	struct peer_act act;
	struct guard g;
	size_t i;

	for (i = 0; i < 5; i++) {
		const uint8_t *in = guard_put(&g, cases[i], lens[i]), *p = in;

		CHECK(peer_act_next(&p, in + lens[i], &act) == -SPOP_ST_INVALID);
		CHECK(p == in);
		guard_free(&g);
	}
}

static void
test_status_str(void)
{
	int codes[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 99 };
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		CHECK(strcmp(spop_status_str(codes[i]), "unknown status") != 0);
	CHECK(strcmp(spop_status_str(14), "unknown status") == 0);
	CHECK(strcmp(spop_status_str(-SPOP_ST_INVALID), "invalid frame received") == 0);
}

int
main(void)
{
	RUN(test_varint_boundaries);
	RUN(test_varint_exact_bytes);
	RUN(test_varint_overflow);
	RUN(test_data_roundtrip);
	RUN(test_data_exact_bytes);
	RUN(test_data_flags_nibble);
	RUN(test_data_invalid);
	RUN(test_frame_len);
	RUN(test_frame_parse);
	RUN(test_kv_list_truncation);
	RUN(test_kv_values);
	RUN(test_notify_walk);
	RUN(test_notify_nargs_too_big);
	RUN(test_hello_real);
	RUN(test_hello_healthcheck);
	RUN(test_hello_check);
	RUN(test_version_supported);
	RUN(test_has_cap);
	RUN(test_disconnect_parse);
	RUN(test_agent_hello_bytes);
	RUN(test_agent_disconnect_bytes);
	RUN(test_ack_exact_bytes);
	RUN(test_ack_all_scopes_types);
	RUN(test_act_invalid);
	RUN(test_status_str);
	return T_EXIT();
}
