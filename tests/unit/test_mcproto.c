/*
 * test_mcproto.c - unit tests of the memcached protocol codec (mcproto.c),
 * built with ASan/UBSan: exact encoder bytes, every reply kind, every split
 * point, size limits, garbage, and inputs that end on a guard page so any
 * read past the end crashes.
 *
 * Must not need a memcached or any network: the codec is pure.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "t.h"
#include "mcproto.h"

#define S(x) (const uint8_t *)(x), (sizeof(x) - 1)

static uint8_t *guard_base;
static size_t guard_page;

/* Copy len bytes so that they end exactly where the PROT_NONE page starts. */
static const uint8_t *at_guard(const void *p, size_t len)
{
	uint8_t *dst;

	if (len > guard_page)
		abort();
	dst = guard_base + guard_page - len;
	memcpy(dst, p, len);
	return dst;
}

static int parse_g(const void *p, size_t len, size_t max, struct mc_reply *r)
{
	return mc_parse_reply(at_guard(p, len), len, max, r);
}

static void t_enc_get(void)
{
	char b[MC_MAX_HDR];
	const char want[] = "mg abc v f t O42\r\n";
	size_t i;
	int n = mc_enc_get(b, sizeof(b), "abc", 3, 42);

	CHECK(n == (int)sizeof(want) - 1);
	CHECK_MEM(b, want, sizeof(want) - 1);
	/* every capacity short of the full command is refused */
	for (i = 0; i < sizeof(want) - 1; i++)
		CHECK(mc_enc_get(b, i, "abc", 3, 42) == -1);
	CHECK(mc_enc_get(b, sizeof(want) - 1, "abc", 3, 42) == (int)sizeof(want) - 1);
	n = mc_enc_get(b, sizeof(b), "k", 1, UINT32_MAX);
	CHECK(n == (int)strlen("mg k v f t O4294967295\r\n"));
	CHECK_MEM(b, "mg k v f t O4294967295\r\n", (size_t)n);
	n = mc_enc_get(b, sizeof(b), "k", 1, 0);
	CHECK(n == (int)strlen("mg k v f t O0\r\n"));
	CHECK_MEM(b, "mg k v f t O0\r\n", (size_t)n);
}

static void t_enc_set(void)
{
	char b[MC_MAX_HDR];
	const char want[] = "ms key1 1048576 T300 O7\r\n";
	size_t i;
	int n = mc_enc_set(b, sizeof(b), "key1", 4, 1048576, 300, 7);

	CHECK(n == (int)sizeof(want) - 1);
	CHECK_MEM(b, want, sizeof(want) - 1);
	for (i = 0; i < sizeof(want) - 1; i++)
		CHECK(mc_enc_set(b, i, "key1", 4, 1048576, 300, 7) == -1);
	n = mc_enc_set(b, sizeof(b), "z", 1, 0, 0, 1);
	CHECK(n == (int)strlen("ms z 0 T0 O1\r\n"));
	CHECK_MEM(b, "ms z 0 T0 O1\r\n", (size_t)n);
}

static void t_enc_other(void)
{
	char b[64];
	int n;

	n = mc_enc_delete(b, sizeof(b), "abc", 3, 9);
	CHECK(n == 11);
	CHECK_MEM(b, "md abc O9\r\n", 11);
	CHECK(mc_enc_delete(b, 10, "abc", 3, 9) == -1);
	n = mc_enc_noop(b, sizeof(b));
	CHECK(n == 4);
	CHECK_MEM(b, "mn\r\n", 4);
	CHECK(mc_enc_noop(b, 3) == -1);
	n = mc_enc_flush_all(b, sizeof(b));
	CHECK(n == 11);
	CHECK_MEM(b, "flush_all\r\n", 11);
	n = mc_enc_stats(b, sizeof(b));
	CHECK(n == 7);
	CHECK_MEM(b, "stats\r\n", 7);
	CHECK(mc_enc_stats(NULL, 100) == -1);
}

/* The meta flags the fleet coordinates with: vivify, add, invalidate, and
 * the W/Z/X flags and CAS of the replies (memcached 1.6 answers, as seen). */
static void t_meta_coordination(void)
{
	char b[MC_MAX_HDR];
	struct mc_reply r;
	int n;

	n = mc_enc_get_meta(b, sizeof(b), "k", 1, 3, 7);
	CHECK(n == (int)strlen("mg k v f t c N3 O7\r\n"));
	CHECK_MEM(b, "mg k v f t c N3 O7\r\n", (size_t)n);
	n = mc_enc_get_meta(b, sizeof(b), "k", 1, 0, 7);
	CHECK(n == (int)strlen("mg k v f t c O7\r\n"));
	CHECK_MEM(b, "mg k v f t c O7\r\n", (size_t)n);
	for (size_t i = 0; i < strlen("mg k v f t c N3 O7\r\n"); i++)
		CHECK(mc_enc_get_meta(b, i, "k", 1, 3, 7) == -1);
	n = mc_enc_add(b, sizeof(b), "k", 1, 0, 2, 9);
	CHECK(n == (int)strlen("ms k 0 T2 ME O9\r\n"));
	CHECK_MEM(b, "ms k 0 T2 ME O9\r\n", (size_t)n);
	n = mc_enc_invalidate(b, sizeof(b), "k", 1, 30, 9);
	CHECK(n == (int)strlen("md k I T30 O9\r\n"));
	CHECK_MEM(b, "md k I T30 O9\r\n", (size_t)n);
	CHECK(mc_enc_invalidate(b, sizeof(b), "a b", 3, 30, 9) == -1);
	/* an L1 grant's check: the CAS, no value */
	n = mc_enc_check(b, sizeof(b), "k", 1, 4);
	CHECK(n == (int)strlen("mg k c O4\r\n"));
	CHECK_MEM(b, "mg k c O4\r\n", (size_t)n);
	for (size_t i = 0; i < strlen("mg k c O4\r\n"); i++)
		CHECK(mc_enc_check(b, i, "k", 1, 4) == -1);
	CHECK(mc_enc_check(b, sizeof(b), "a b", 3, 4) == -1);
	CHECK(parse_g(S("HD c42 O4\r\n"), 100, &r) == 11);
	CHECK(r.type == MC_R_HD && r.has_cas && r.cas == 42 && r.opaque == 4);

	CHECK(parse_g(S("VA 0 t-1 c1 W O7\r\n\r\n"), 100, &r) == 20);
	CHECK(r.type == MC_R_VA && r.vlen == 0 && r.mflags == MC_MF_WON && r.has_cas && r.cas == 1);
	CHECK(parse_g(S("VA 3 t30 c3 Z X O7\r\nabc\r\n"), 100, &r) > 0);
	CHECK(r.mflags == (MC_MF_LOST | MC_MF_STALE) && r.cas == 3 && r.ttl == 30);
	CHECK(parse_g(S("VA 3 c18446744073709551615 O7\r\nabc\r\n"), 100, &r) > 0);
	CHECK(r.cas == UINT64_MAX);
	CHECK(parse_g(S("VA 3 c18446744073709551616 O7\r\nabc\r\n"), 100, &r) == -1);
	CHECK(parse_g(S("VA 3 c O7\r\nabc\r\n"), 100, &r) == -1);
	CHECK(parse_g(S("VA 3 cx O7\r\nabc\r\n"), 100, &r) == -1);
	CHECK(parse_g(S("VA 3 W1 O7\r\nabc\r\n"), 100, &r) == -1);
	CHECK(parse_g(S("HD O7\r\n"), 100, &r) == 7 && r.mflags == 0 && !r.has_cas);
	CHECK(parse_g(S("NS O7\r\n"), 100, &r) == 7 && r.type == MC_R_NS);
}

static void t_keys(void)
{
	char k[300], b[MC_MAX_HDR];
	const char *bad[] = { "a b", "a\rb", "a\nb", "a\tb", "\x7f", "caf\xc3\xa9" };
	size_t i;

	memset(k, 'k', sizeof(k));
	CHECK(mc_key_valid(k, 1));
	CHECK(mc_key_valid(k, 250));
	CHECK(!mc_key_valid(k, 251));
	CHECK(!mc_key_valid(k, 0));
	CHECK(!mc_key_valid(NULL, 3));
	CHECK(!mc_key_valid("a\0b", 3));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!mc_key_valid(bad[i], strlen(bad[i])));
		CHECK(mc_enc_get(b, sizeof(b), bad[i], strlen(bad[i]), 1) == -1);
		CHECK(mc_enc_set(b, sizeof(b), bad[i], strlen(bad[i]), 1, 1, 1) == -1);
		CHECK(mc_enc_delete(b, sizeof(b), bad[i], strlen(bad[i]), 1) == -1);
	}
	/* a 250-byte key with the largest numbers still fits MC_MAX_HDR */
	CHECK(mc_enc_set(b, sizeof(b), k, 250, SIZE_MAX, UINT32_MAX, UINT32_MAX) > 0);
	CHECK(mc_enc_get(b, sizeof(b), k, 250, UINT32_MAX) > 0);
	CHECK(mc_enc_set(b, sizeof(b), k, 251, 1, 1, 1) == -1);
	for (i = 0x21; i < 0x7f; i++) {
		char c = (char)i;

		CHECK(mc_key_valid(&c, 1));
	}
}

static void t_reply_kinds(void)
{
	struct mc_reply r;

	CHECK(parse_g(S("HD O5\r\n"), 100, &r) == 7);
	CHECK(r.type == MC_R_HD && r.has_opaque && r.opaque == 5);
	CHECK(parse_g(S("HD\r\n"), 100, &r) == 4);
	CHECK(r.type == MC_R_HD && !r.has_opaque);
	CHECK(parse_g(S("EN O7\r\n"), 100, &r) == 7);
	CHECK(r.type == MC_R_EN && r.opaque == 7);
	CHECK(parse_g(S("NF O4294967295\r\n"), 100, &r) == 16);
	CHECK(r.type == MC_R_NF && r.opaque == UINT32_MAX);
	CHECK(parse_g(S("NS O1\r\n"), 100, &r) == 7 && r.type == MC_R_NS);
	CHECK(parse_g(S("EX O1\r\n"), 100, &r) == 7 && r.type == MC_R_EX);
	CHECK(parse_g(S("MN\r\n"), 100, &r) == 4 && r.type == MC_R_MN);
	CHECK(parse_g(S("OK\r\n"), 100, &r) == 4 && r.type == MC_R_OK);
	CHECK(parse_g(S("END\r\n"), 100, &r) == 5 && r.type == MC_R_END);
	CHECK(parse_g(S("ERROR\r\n"), 100, &r) == 7 && r.type == MC_R_ERROR);
	CHECK(parse_g(S("VERSION 1.6.18\r\n"), 100, &r) == 16);
	CHECK(r.type == MC_R_VERSION && r.textlen == 6 && memcmp(r.text, "1.6.18", 6) == 0);
	CHECK(parse_g(S("STAT curr_items 12\r\n"), 100, &r) == 20);
	CHECK(r.type == MC_R_STAT && r.textlen == 13 && memcmp(r.text, "curr_items 12", 13) == 0);
	CHECK(parse_g(S("SERVER_ERROR object too large for cache\r\n"), 100, &r) == 41);
	CHECK(r.type == MC_R_SERVER_ERROR && r.textlen == 26);
	CHECK(memcmp(r.text, "object too large for cache", 26) == 0);
	CHECK(parse_g(S("CLIENT_ERROR bad command line format\r\n"), 100, &r) == 38);
	CHECK(r.type == MC_R_CLIENT_ERROR && r.textlen == 23);
	CHECK(parse_g(S("SERVER_ERROR\r\n"), 100, &r) == 14);
	CHECK(r.type == MC_R_SERVER_ERROR && r.textlen == 0);

	CHECK(parse_g(S("VA 3 f0 t-1 O9\r\nabc\r\n"), 100, &r) == 21);
	CHECK(r.type == MC_R_VA && r.vlen == 3 && memcmp(r.val, "abc", 3) == 0);
	CHECK(r.has_opaque && r.opaque == 9 && r.has_cflags && r.cflags == 0);
	CHECK(r.has_ttl && r.ttl == -1);
	CHECK(parse_g(S("VA 0 t300 f4294967295 O1\r\n\r\n"), 0, &r) == 28);
	CHECK(r.type == MC_R_VA && r.vlen == 0 && r.ttl == 300 && r.cflags == UINT32_MAX);
	/* unknown meta flags are skipped */
	CHECK(parse_g(S("HD c123 s5 kfoo O3\r\n"), 100, &r) == 20 && r.opaque == 3);
	/* a reply followed by the next: only the first is taken */
	CHECK(parse_g(S("HD O1\r\nHD O2\r\n"), 100, &r) == 7 && r.opaque == 1);
}

static void t_binary_value(void)
{
	uint8_t in[300 + 30], val[256];
	struct mc_reply r;
	int i, h, n;

	for (i = 0; i < 256; i++)
		val[i] = (uint8_t)i;	/* NUL, \r, \n and all the rest */
	h = snprintf((char *)in, sizeof(in), "VA 256 O77\r\n");
	memcpy(in + h, val, 256);
	memcpy(in + h + 256, "\r\n", 2);
	n = parse_g(in, (size_t)h + 258, 256, &r);
	CHECK(n == h + 258);
	CHECK(r.type == MC_R_VA && r.vlen == 256 && r.opaque == 77);
	CHECK_MEM(r.val, val, 256);
	/* the value is exactly at max: accepted; one byte less max: refused */
	CHECK(parse_g(in, (size_t)h + 258, 255, &r) == -1);
	CHECK(r.type == MC_R_VA && r.need == (size_t)h + 258 && r.vlen == 256);
}

static void t_split_everywhere(void)
{
	static const char *replies[] = {
		"HD O5\r\n", "EN O7\r\n", "NF O1\r\n", "NS O1\r\n", "EX O1\r\n", "MN\r\n",
		"OK\r\n", "END\r\n", "ERROR\r\n", "VERSION 1.6.18\r\n", "STAT pid 1\r\n",
		"SERVER_ERROR out of memory\r\n", "CLIENT_ERROR bad data chunk\r\n",
		"VA 5 f0 t-1 O2\r\nab\r\nc\r\n", "VA 0 O3\r\n\r\n",
	};
	size_t i, cut;

	for (i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		size_t len = strlen(replies[i]);
		struct mc_reply r;

		for (cut = 0; cut < len; cut++) {
			int n = parse_g(replies[i], cut, 1024, &r);

			if (n != 0)
				fprintf(stderr, "reply %zu cut at %zu: %d (%s)\n", i, cut, n,
					r.err ? r.err : "");
			CHECK(n == 0);
		}
		CHECK(parse_g(replies[i], len, 1024, &r) == (int)len);
		CHECK(r.type != MC_R_NONE);
	}
	/* once the VA header is complete the total is announced */
	{
		struct mc_reply r;

		CHECK(parse_g(S("VA 5 O2\r\nab"), 1024, &r) == 0);
		CHECK(r.need == 9 + 5 + 2);
		CHECK(parse_g(S("VA 5 O2\r\nab"), 1024, &r) == 0 && r.type == MC_R_NONE);
	}
}

static void t_va_max(void)
{
	struct mc_reply r;

	/* refused on the header alone, without waiting for the value */
	CHECK(parse_g(S("VA 11 O1\r\n"), 10, &r) == -1);
	CHECK(r.type == MC_R_VA && r.vlen == 11 && r.need == 10 + 11 + 2);
	CHECK(parse_g(S("VA 10 O1\r\n"), 10, &r) == 0 && r.need == 10 + 10 + 2);
	CHECK(parse_g(S("VA 1 O1\r\n"), 0, &r) == -1);
	CHECK(parse_g(S("VA 0 O1\r\n\r\n"), 0, &r) == 11);
	/* sizes that would overflow any integer */
	CHECK(parse_g(S("VA 99999999999999999999999999999999 O1\r\n"), SIZE_MAX, &r) == -1);
	CHECK(r.type == MC_R_VA && r.need == 0);
	CHECK(parse_g(S("VA 18446744073709551615 O1\r\n"), SIZE_MAX - 1, &r) == -1);
	CHECK(parse_g(S("VA 18446744073709551616 O1\r\n"), SIZE_MAX, &r) == -1);
	CHECK(parse_g(S("VA 1844674407370955161 O1\r\n"), 1000, &r) == -1);
	/* a size just under SIZE_MAX is within max but cannot be buffered:
	 * need more, never an overflowed need */
	CHECK(parse_g(S("VA 18446744073709551614 O1\r\nab"), SIZE_MAX, &r) == 0);
	CHECK(r.need == 0);
}

static void t_garbage(void)
{
	static const char *bad[] = {
		"HELLO\r\n", "hd\r\n", "HD\n", "\n", "\r\n", "HD O\r\n", "HD Ox1\r\n",
		"HD O4294967296\r\n", "HD O1 O2\r\n", "VA\r\n", "VA \r\n", "VA x O1\r\n",
		"VA -1 O1\r\n", "VA 3 O1\r\nabcXY", "VA 3 O1\r\nabc\rX", "OK extra\r\n",
		"END x\r\n", "STAT\r\n", "STAT \r\n", "VERSION\r\n", "HD f-1\r\n",
		"HD t-2\r\n", "HD 1\r\n", "MN\tx\r\n",
		"HD\rX\r\n", "VA 3 t\r\nabc\r\n",
	};
	static const char *early[] = {	/* refused before any line end */
		"X", "\x00", "HX", "HDD", "HD\t", "VALUE", "SERVER_X", "SERVER_ERRORX",
		"OK\x01", "\x16\x03\x01",
	};
	static const char *wait[] = { "H", "HD", "HD O1", "SERVER_", "VA 1", "HD O1\r" };
	size_t i;
	struct mc_reply r;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i]);

		if (parse_g(bad[i], len, 100, &r) != -1)
			fprintf(stderr, "accepted garbage %zu\n", i);
		CHECK(parse_g(bad[i], len, 100, &r) == -1);
		CHECK(r.err != NULL);
	}
	for (i = 0; i < sizeof(early) / sizeof(early[0]); i++) {
		size_t len = strlen(early[i]);

		if (len == 0)
			len = 1;
		if (parse_g(early[i], len, 100, &r) != -1)
			fprintf(stderr, "waited on garbage %zu\n", i);
		CHECK(parse_g(early[i], len, 100, &r) == -1);
	}
	for (i = 0; i < sizeof(wait) / sizeof(wait[0]); i++)
		CHECK(parse_g(wait[i], strlen(wait[i]), 100, &r) == 0);
	/* a NUL or DEL inside a line */
	CHECK(parse_g(S("HD O1\0\r\n"), 100, &r) == -1);
	CHECK(parse_g(S("HD O1\x7f\r\n"), 100, &r) == -1);
	CHECK(parse_g(S("VERSION 1\0\r\n"), 100, &r) == -1);
	CHECK(mc_parse_reply(NULL, 0, 100, &r) == 0);
	CHECK(mc_parse_reply(NULL, 1, 100, &r) == -1);
}

static void t_long_lines(void)
{
	static uint8_t b[MC_MAX_LINE + 64];
	struct mc_reply r;
	size_t i;

	/* the longest line accepted: MC_MAX_LINE bytes including \r\n */
	memcpy(b, "STAT ", 5);
	memset(b + 5, 'a', MC_MAX_LINE - 7);
	memcpy(b + MC_MAX_LINE - 2, "\r\n", 2);
	CHECK(parse_g(b, MC_MAX_LINE, 100, &r) == MC_MAX_LINE);
	CHECK(r.type == MC_R_STAT && r.textlen == MC_MAX_LINE - 7);
	/* one more byte: refused, with or without its line end */
	memset(b + 5, 'a', MC_MAX_LINE - 6);
	memcpy(b + MC_MAX_LINE - 1, "\r\n", 2);
	CHECK(parse_g(b, MC_MAX_LINE + 1, 100, &r) == -1);
	CHECK(parse_g(b, MC_MAX_LINE, 100, &r) == -1);
	/* no line end at all: need more until the limit, then refused */
	memset(b + 5, 'a', sizeof(b) - 5);
	for (i = 0; i < MC_MAX_LINE; i += 97)
		CHECK(parse_g(b, i, 100, &r) == 0);
	CHECK(parse_g(b, MC_MAX_LINE - 1, 100, &r) == 0);
	CHECK(parse_g(b, MC_MAX_LINE, 100, &r) == -1);
	CHECK(parse_g(b, sizeof(b), 100, &r) == -1);
	/* a long VA header with many flags */
	memcpy(b, "VA 2 ", 5);
	for (i = 5; i + 3 + 4 <= MC_MAX_LINE; i += 3)
		memcpy(b + i, "c1 ", 3);
	memcpy(b + i, "O1\r\nxy\r\n", 8);
	CHECK(parse_g(b, i + 8, 100, &r) == (int)(i + 8));
	CHECK(r.type == MC_R_VA && r.opaque == 1 && r.vlen == 2);
}

/* every prefix of every sample, ending on the guard page */
static void t_guard_prefixes(void)
{
	static const char *samples[] = {
		"VA 5 f0 t-1 O2\r\nab\r\nc\r\n", "HD O12345\r\n", "STAT x y\r\n",
		"SERVER_ERROR x\r\n", "VA 4294967295 O1\r\n", "HD O99999999999",
		"VA 1 t-1", "VA 1 t-", "HD O", "VERSION 1.6.18\r\n",
	};
	size_t i, cut;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		size_t len = strlen(samples[i]);

		for (cut = 0; cut <= len; cut++) {
			struct mc_reply r;
			int n = parse_g(samples[i], cut, 1000, &r);

			CHECK(n >= -1 && n <= (int)cut);
		}
	}
}

int main(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *m;

	guard_page = pg > 0 ? (size_t)pg : 4096;
	while (guard_page < MC_MAX_LINE + 64)
		guard_page *= 2;
	m = mmap(NULL, 2 * guard_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || mprotect((uint8_t *)m + guard_page, guard_page, PROT_NONE) != 0) {
		perror("mmap");
		return 2;
	}
	guard_base = m;

	RUN(t_enc_get);
	RUN(t_enc_set);
	RUN(t_enc_other);
	RUN(t_meta_coordination);
	RUN(t_keys);
	RUN(t_reply_kinds);
	RUN(t_binary_value);
	RUN(t_split_everywhere);
	RUN(t_va_max);
	RUN(t_garbage);
	RUN(t_long_lines);
	RUN(t_guard_prefixes);
	munmap(m, 2 * guard_page);
	return T_EXIT();
}
