/*
 * test_cachectl.c - Cache-Control parsing, HTTP dates and entity-tags,
 * including the malformed input that must resolve towards not caching.
 * Inputs are placed against a guard page so an over-read crashes.
 */
#include "cachecontrol.h"
#include "t.h"
#include "guard.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>


/* Parse S (NUL-terminated, guarded) into a fresh struct. */
static int
cc_of(const char *s, struct cachectl *cc)
{
	struct guard g;
	size_t n = strlen(s);
	int r;

	cachectl_init(cc);
	r = cachectl_parse(guard_put(&g, s, n), n, cc);
	guard_free(&g);
	return r;
}

static int
date_of(const char *s, int64_t *t)
{
	struct guard g;
	size_t n = strlen(s);
	int r = http_date_parse(guard_put(&g, s, n), n, t);

	guard_free(&g);
	return r;
}

static void
test_init(void)
{
	struct cachectl cc;

	memset(&cc, 0x5a, sizeof(cc));
	cachectl_init(&cc);
	CHECK(cc.flags == 0 && cc.max_age == -1 && cc.s_maxage == -1);
	CHECK(cc.max_stale == -1 && cc.min_fresh == -1);
	CHECK(cc_of("", &cc) == 0 && cc.flags == CC_PRESENT);
}

static void
test_flags(void)
{
	struct cachectl cc;

	CHECK(cc_of("No-Store, NO-CACHE,private , Public,must-revalidate", &cc) == 0);
	CHECK(cc.flags == (CC_PRESENT | CC_NO_STORE | CC_NO_CACHE | CC_PRIVATE | CC_PUBLIC |
	    CC_MUST_REVALIDATE));
	CHECK(cc_of("proxy-revalidate,only-if-cached,no-transform,immutable", &cc) == 0);
	CHECK(cc.flags == (CC_PRESENT | CC_PROXY_REVALIDATE | CC_ONLY_IF_CACHED |
	    CC_NO_TRANSFORM | CC_IMMUTABLE));
	/* names are whole tokens, not prefixes */
	CHECK(cc_of("no-stores, no-cach, privateer, publi", &cc) == 0);
	CHECK(cc.flags == CC_PRESENT);
}

static void
test_numbers(void)
{
	struct cachectl cc;

	CHECK(cc_of("max-age=60, s-maxage=30, max-stale=5, min-fresh=7", &cc) == 0);
	CHECK(cc.max_age == 60 && cc.s_maxage == 30 && cc.max_stale == 5 && cc.min_fresh == 7);
	CHECK(!(cc.flags & CC_MAX_STALE_ANY));
	CHECK(cc_of("MAX-AGE=0", &cc) == 0 && cc.max_age == 0);
	CHECK(cc_of("max-age=007", &cc) == 0 && cc.max_age == 7);
	CHECK(cc_of("max-age = 9", &cc) == 0 && cc.max_age == 9);
	/* RFC 5861: the first valid one counts, an invalid one is ignored */
	CHECK(cc_of("max-age=1, stale-while-revalidate=30, stale-if-error=\"600\"", &cc) == 0);
	CHECK(cc.swr == 30 && cc.sie == 600);
	CHECK(cc_of("stale-while-revalidate=5, stale-while-revalidate=9", &cc) == 0 && cc.swr == 5);
	CHECK(cc_of("stale-while-revalidate, stale-if-error=x", &cc) == CC_MALFORMED);
	CHECK(cc.swr == -1 && cc.sie == -1);
}

static void
test_clamp(void)
{
	struct cachectl cc;

	CHECK(cc_of("max-age=2147483647", &cc) == 0 && cc.max_age == 2147483647LL);
	CHECK(cc_of("max-age=2147483648", &cc) == 0 && cc.max_age == CC_DELTA_MAX);
	CHECK(cc_of("max-age=2147483649", &cc) == 0 && cc.max_age == CC_DELTA_MAX);
	CHECK(cc_of("s-maxage=99999999999999999999999999999999999999", &cc) == 0);
	CHECK(cc.s_maxage == CC_DELTA_MAX);
	CHECK(cc_of("min-fresh=18446744073709551617", &cc) == 0 && cc.min_fresh == CC_DELTA_MAX);
}

static void
test_quoted(void)
{
	struct cachectl cc;

	CHECK(cc_of("max-age=\"5\"", &cc) == 0 && cc.max_age == 5);
	CHECK(cc_of("private=\"set-cookie\"", &cc) == 0 && (cc.flags & CC_PRIVATE));
	CHECK(cc_of("no-cache=\"x\"", &cc) == 0 && (cc.flags & CC_NO_CACHE));
	/* a comma inside quotes does not start a directive */
	CHECK(cc_of("no-cache=\"max-age=0, public\", max-age=10", &cc) == 0);
	CHECK(cc.max_age == 10 && !(cc.flags & CC_PUBLIC) && (cc.flags & CC_NO_CACHE));
	CHECK(cc_of("ext=\"a\\\"b, public\", max-age=3", &cc) == 0);
	CHECK(cc.max_age == 3 && !(cc.flags & CC_PUBLIC));
	/* unterminated: the rest is swallowed, the strict flag still counts */
	CHECK(cc_of("private=\"set-cookie, public", &cc) == CC_MALFORMED);
	CHECK((cc.flags & CC_PRIVATE) && !(cc.flags & CC_PUBLIC));
	CHECK(cc_of("max-age=\"5", &cc) == CC_MALFORMED && cc.max_age == 0);
	CHECK(cc_of("max-age=\"5\\", &cc) == CC_MALFORMED && cc.max_age == 0);
}

static void
test_malformed_max_age_is_stale(void)
{
	static const char *const bad[] = { "max-age", "max-age=", "max-age=-1", "max-age=1.5",
		"max-age=abc", "max-age=5 6", "max-age=\"\"", "max-age=\"5 \"", "max-age=0x10",
		"max-age=+5", "max-age==5", NULL };
	struct cachectl cc;
	size_t i;

	for (i = 0; bad[i]; i++) {
		CHECK(cc_of(bad[i], &cc) == CC_MALFORMED);
		CHECK(cc.max_age == 0);
	}
	CHECK(cc_of("s-maxage=soon", &cc) == CC_MALFORMED && cc.s_maxage == 0);
	/* the first occurrence wins, even a malformed one */
	CHECK(cc_of("max-age=x, max-age=100", &cc) == CC_MALFORMED && cc.max_age == 0);
}

static void
test_duplicates_and_lines(void)
{
	struct cachectl cc;

	CHECK(cc_of("max-age=10, max-age=20", &cc) == 0 && cc.max_age == 10);
	cachectl_init(&cc);
	CHECK(cachectl_parse("max-age=30", 10, &cc) == 0);
	CHECK(cachectl_parse("max-age=5, no-store", 19, &cc) == 0);
	CHECK(cc.max_age == 30 && (cc.flags & CC_NO_STORE));
	CHECK(cachectl_parse("private", 7, &cc) == 0 && (cc.flags & CC_PRIVATE));
}

static void
test_max_stale(void)
{
	struct cachectl cc;

	CHECK(cc_of("max-stale", &cc) == 0 && (cc.flags & CC_MAX_STALE_ANY) && cc.max_stale == -1);
	CHECK(cc_of("max-stale=0", &cc) == 0 && !(cc.flags & CC_MAX_STALE_ANY) && cc.max_stale == 0);
	CHECK(cc_of("max-stale, max-stale=5", &cc) == 0);
	CHECK((cc.flags & CC_MAX_STALE_ANY) && cc.max_stale == -1);
	CHECK(cc_of("max-stale=5, max-stale", &cc) == 0);
	CHECK(!(cc.flags & CC_MAX_STALE_ANY) && cc.max_stale == 5);
	/* a broken value allows nothing stale */
	CHECK(cc_of("max-stale=lots", &cc) == CC_MALFORMED);
	CHECK(!(cc.flags & CC_MAX_STALE_ANY) && cc.max_stale == -1);
	CHECK(cc_of("max-stale junk", &cc) == CC_MALFORMED);
	CHECK(!(cc.flags & CC_MAX_STALE_ANY) && cc.max_stale == -1);
	CHECK(cc_of("min-fresh=x", &cc) == CC_MALFORMED && cc.min_fresh == -1);
}

static void
test_permissive_need_exact_form(void)
{
	struct cachectl cc;

	CHECK(cc_of("public=\"yes\"", &cc) == CC_MALFORMED && !(cc.flags & CC_PUBLIC));
	CHECK(cc_of("public junk", &cc) == CC_MALFORMED && !(cc.flags & CC_PUBLIC));
	CHECK(cc_of("immutable=1", &cc) == CC_MALFORMED && !(cc.flags & CC_IMMUTABLE));
	CHECK(cc_of("no-store=1", &cc) == 0 && (cc.flags & CC_NO_STORE));
	CHECK(cc_of("no-store junk", &cc) == CC_MALFORMED && (cc.flags & CC_NO_STORE));
}

static void
test_unknown_and_junk(void)
{
	struct cachectl cc;

	CHECK(cc_of("stale-while-revalidate=30, foo=bar, max-age=4", &cc) == 0);
	CHECK(cc.max_age == 4 && cc.flags == CC_PRESENT);
	CHECK(cc_of(",,, , ,", &cc) == 0 && cc.flags == CC_PRESENT);
	CHECK(cc_of("=5, \"x\", max-age=8", &cc) == CC_MALFORMED && cc.max_age == 8);
	CHECK(cc_of("\x01\x02, no-store", &cc) == CC_MALFORMED && (cc.flags & CC_NO_STORE));
	CHECK(cc_of("max-age=1\r\nx", &cc) == CC_MALFORMED && cc.max_age == 0);
}

static void
test_hostile_sizes(void)
{
	size_t n = 64 * 1024, i;
	char *v = malloc(n + 1);
	struct cachectl cc;
	uint32_t x = 3;
	int round;

	memset(v, '9', n);
	memcpy(v, "max-age=", 8);
	v[n] = 0;
	CHECK(cc_of(v, &cc) == 0 && cc.max_age == CC_DELTA_MAX);
	memset(v, ',', n);
	memcpy(v + n - 8, "no-store", 8);
	CHECK(cc_of(v, &cc) == 0 && cc.flags == (CC_PRESENT | CC_NO_STORE));
	v[0] = '"';
	CHECK(cc_of(v, &cc) == CC_MALFORMED);	/* everything after an open quote is one element */
	for (round = 0; round < 2000; round++) {
		size_t len = (size_t)round % 200;
		for (i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			v[i] = "a=\",\\ -09mxgno"[(x >> 16) % 14];
		}
		v[len] = 0;
		cc_of(v, &cc);
		CHECK(cc.max_age >= -1 && cc.max_age <= CC_DELTA_MAX);
	}
	free(v);
}

static void
test_date_formats(void)
{
	int64_t t;

	CHECK(date_of("Sun, 06 Nov 1994 08:49:37 GMT", &t) == 0 && t == 784111777);
	CHECK(date_of("Sunday, 06-Nov-94 08:49:37 GMT", &t) == 0 && t == 784111777);
	CHECK(date_of("Sun Nov  6 08:49:37 1994", &t) == 0 && t == 784111777);
	CHECK(date_of("Sun Nov 06 08:49:37 1994", &t) == 0 && t == 784111777);
	CHECK(date_of("  Thu, 01 Jan 1970 00:00:00 GMT\t", &t) == 0 && t == 0);
	CHECK(date_of("Wed, 31 Dec 1969 23:59:59 GMT", &t) == 0 && t == -1);
	CHECK(date_of("Tue, 19 Jan 2038 03:14:08 GMT", &t) == 0 && t == 2147483648LL);
	CHECK(date_of("Friday, 31-Dec-99 23:59:59 GMT", &t) == 0 && t == 946684799);
	CHECK(date_of("Saturday, 01-Jan-00 00:00:00 GMT", &t) == 0 && t == 946684800);
	CHECK(date_of("Thu, 29 Feb 1996 12:00:00 GMT", &t) == 0);
	CHECK(date_of("Tue, 29 Feb 2000 12:00:00 GMT", &t) == 0);
	CHECK(date_of("Fri, 31 Dec 9999 23:59:59 GMT", &t) == 0 && t == 253402300799LL);
	CHECK(date_of("Sat, 31 Dec 2016 23:59:60 GMT", &t) == 0 && t == 1483228800);
}

/* RFC 9111 4.2: a cache matches HTTP-dates case-insensitively. */
static void
test_date_letter_case(void)
{
	int64_t t;

	CHECK(date_of("sun, 06 nov 1994 08:49:37 gmt", &t) == 0 && t == 784111777);
	CHECK(date_of("SUN, 06 NOV 1994 08:49:37 GMT", &t) == 0 && t == 784111777);
	CHECK(date_of("sUnDaY, 06-nOv-94 08:49:37 gMt", &t) == 0 && t == 784111777);
	CHECK(date_of("SUN NOV  6 08:49:37 1994", &t) == 0 && t == 784111777);
	/* case is all it forgives */
	CHECK(date_of("sun, 06 nov 1994 08:49:37 utc", &t) == -1);
	CHECK(date_of("SUNDAY, 06 NOV 1994 08:49:37 GMT", &t) == -1);
}

static void
test_date_invalid(void)
{
	static const char *const bad[] = {
		"", "0", "1994-11-06T08:49:37Z", "784111777",
		"Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 94 08:49:37 GMT", "Sun, 06 Nov 1994 8:49:37 GMT",
		"Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:60:00 GMT",
		"Sun, 06 Nov 1994 08:49:61 GMT", "Sun, 00 Nov 1994 08:49:37 GMT",
		"Sun, 31 Nov 1994 08:49:37 GMT", "Mon, 29 Feb 1900 00:00:00 GMT",
		"Fri, 29 Feb 1995 00:00:00 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT",
		"Sun,  06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMTX",
		"Sun, 06 Nov 1994 08:49:37 GMT ,", "Sun, 06 Nov 1994 08-49-37 GMT",
		"Sun, +6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:3  GMT",
		"Sunday, 06-Nov-1994 08:49:37 GMT", "Sun, 06-Nov-94 08:49:37 GMT",
		"Funday, 06-Nov-94 08:49:37 GMT", "Sunday 06-Nov-94 08:49:37 GMT",
		"Sun Nov 6 08:49:37 1994", "Sun Nov  6 08:49:37 94", "Sun Nov  0 08:49:37 1994",
		"Sun, 06 Nov 1994 08:49:37 GMT\r\n", "Sun, 06 Nov 1994\0008:49:37 GMT",
		NULL };
	int64_t t;
	size_t i;

	for (i = 0; bad[i]; i++)
		if (date_of(bad[i], &t) != -1) {
			CHECK(!"accepted");
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		}
	/* by length: a NUL where a space belongs, and a valid date cut short */
	CHECK(http_date_parse("Sun, 06 Nov 1994\00008:49:37 GMT", 29, &t) == -1);
	CHECK(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 28, &t) == -1);
	CHECK(http_date_parse(NULL, 0, &t) == -1);
}

static void
test_date_format(void)
{
	char out[30];
	int64_t t, back;

	CHECK(http_date_format(784111777, out) == 0);
	CHECK(strcmp(out, "Sun, 06 Nov 1994 08:49:37 GMT") == 0);
	CHECK(http_date_format(0, out) == 0 && strcmp(out, "Thu, 01 Jan 1970 00:00:00 GMT") == 0);
	CHECK(http_date_format(-1, out) == 0 && strcmp(out, "Wed, 31 Dec 1969 23:59:59 GMT") == 0);
	CHECK(http_date_format(951782400, out) == 0 && strcmp(out, "Tue, 29 Feb 2000 00:00:00 GMT") == 0);
	CHECK(http_date_format(-62167219200LL, out) == 0);
	CHECK(strcmp(out, "Sat, 01 Jan 0000 00:00:00 GMT") == 0);
	CHECK(http_date_format(-62167219201LL, out) == -1);
	CHECK(http_date_format(253402300800LL, out) == -1);
	CHECK(http_date_format(INT64_MIN, out) == -1);
	CHECK(http_date_format(INT64_MAX, out) == -1);
	/* round trip, including negative times, every ~11.6 days for 4 centuries */
	for (t = -2208988800LL; t < 10413792000LL; t += 1000003) {
		CHECK(http_date_format(t, out) == 0 && strlen(out) == 29);
		CHECK(http_date_parse(out, 29, &back) == 0 && back == t);
	}
}

static void
test_etag_weak_match(void)
{
	CHECK(etag_weak_match("\"abc\"", 5, "\"abc\"", 5));
	CHECK(etag_weak_match("W/\"abc\"", 7, "\"abc\"", 5));
	CHECK(etag_weak_match("W/\"abc\"", 7, " W/\"abc\" ", 9));
	CHECK(!etag_weak_match("\"abc\"", 5, "\"abd\"", 5));
	CHECK(!etag_weak_match("\"abc\"", 5, "\"ab\"", 4));
	CHECK(!etag_weak_match("abc", 3, "abc", 3));		/* not entity-tags */
	CHECK(!etag_weak_match("w/\"a\"", 5, "\"a\"", 3));	/* W/ is case-sensitive */
	CHECK(!etag_weak_match("\"a", 2, "\"a", 2));
	CHECK(!etag_weak_match("\"a\"x", 4, "\"a\"x", 4));
	CHECK(!etag_weak_match("\"a b\"", 5, "\"a b\"", 5));
	CHECK(etag_weak_match("\"\"", 2, "W/\"\"", 4));
	CHECK(!etag_weak_match("", 0, "", 0));
}

static void
test_if_none_match(void)
{
#define INM(h, e) if_none_match((h), strlen(h), (e), strlen(e))
	CHECK(INM("*", "\"x\"") == 1);
	CHECK(INM(" * ", "") == 1);
	CHECK(INM("\"x\"", "\"x\"") == 1);
	CHECK(INM("W/\"x\"", "\"x\"") == 1);
	CHECK(INM("\"x\"", "W/\"x\"") == 1);
	CHECK(INM("\"a\", \"b\" ,W/\"x\"", "\"x\"") == 1);
	CHECK(INM("\"a\", \"b\"", "\"x\"") == 0);
	CHECK(INM("\"a,b\"", "\"a,b\"") == 1);	/* ',' is a valid etagc */
	CHECK(INM("\"a,b\"", "\"a\"") == 0);
	CHECK(INM("\"x\"", "") == 0);		/* stored response without ETag */
	CHECK(INM("", "\"x\"") == 0);
	CHECK(INM(",", "\"x\"") == 0);
	CHECK(INM("\"x\", *", "\"x\"") == 0);	/* malformed: ignored */
	CHECK(INM("x", "x") == 0);
	CHECK(INM("\"x\" \"y\"", "\"x\"") == 0);
	CHECK(INM("\"x\", junk", "\"x\"") == 0);
	CHECK(INM("\"x", "\"x\"") == 0);
#undef INM
}

/* must-understand lifts no-store for a status the cache implements
 * (RFC 9111 5.2.2.3): like public, only its exact form counts. */
static void
test_must_understand(void)
{
	struct cachectl cc;

	CHECK(cc_of("must-understand, no-store", &cc) == 0);
	CHECK(cc.flags == (CC_PRESENT | CC_MUST_UNDERSTAND | CC_NO_STORE));
	CHECK(cc_of("Must-Understand", &cc) == 0 && (cc.flags & CC_MUST_UNDERSTAND));
	CHECK(cc_of("must-understand=1, no-store", &cc) == CC_MALFORMED);
	CHECK(!(cc.flags & CC_MUST_UNDERSTAND) && (cc.flags & CC_NO_STORE));
	CHECK(cc_of("must-understands", &cc) == 0 && cc.flags == CC_PRESENT);
}

/* One targeted field line (RFC 9213, a Structured Fields Dictionary), or
 * -1; cc starts fresh. */
static int
tcc_of(const char *s, struct cachectl *cc)
{
	struct guard g;
	size_t n = strlen(s);
	int r;

	cachectl_init(cc);
	r = cachectl_parse_targeted(guard_put(&g, s, n), n, cc);
	guard_free(&g);
	return r;
}

static void
test_targeted_valid(void)
{
	struct cachectl cc;

	CHECK(tcc_of("max-age=60", &cc) == 0 && cc.max_age == 60 && cc.flags == CC_PRESENT);
	CHECK(tcc_of("no-store", &cc) == 0 && cc.flags == (CC_PRESENT | CC_NO_STORE));
	CHECK(tcc_of("max-age=0", &cc) == 0 && cc.max_age == 0);
	CHECK(tcc_of("  s-maxage=10,  max-age=5 , public  ", &cc) == 0);
	CHECK(cc.s_maxage == 10 && cc.max_age == 5 && (cc.flags & CC_PUBLIC));
	CHECK(tcc_of("private=\"set-cookie\", must-revalidate", &cc) == 0);
	CHECK(cc.flags == (CC_PRESENT | CC_PRIVATE | CC_MUST_REVALIDATE));
	CHECK(tcc_of("no-cache=\"a, b\", max-age=3", &cc) == 0);
	CHECK((cc.flags & CC_NO_CACHE) && cc.max_age == 3);
	/* a later member replaces an earlier one, flags included */
	CHECK(tcc_of("max-age=10, max-age=20", &cc) == 0 && cc.max_age == 20);
	CHECK(tcc_of("no-store, no-store=?0", &cc) == 0 && !(cc.flags & CC_NO_STORE));
	CHECK(tcc_of("public=?1, immutable", &cc) == 0 &&
	    cc.flags == (CC_PRESENT | CC_PUBLIC | CC_IMMUTABLE));
	/* parameters, inner lists, tokens, decimals, binary and unknown keys parse */
	CHECK(tcc_of("max-age=60;a=1;b, x=(1 2 \"s\");q=?0, y=tok/en:1, z=1.5, w=:aGk=:, *k", &cc) ==
	    0 && cc.max_age == 60 && cc.flags == CC_PRESENT);
	/* values of the wrong type lean as Cache-Control does */
	CHECK(tcc_of("max-age=\"60\"", &cc) == 0 && cc.max_age == 0);
	CHECK(tcc_of("max-age=-5", &cc) == 0 && cc.max_age == 0);
	CHECK(tcc_of("max-age=1.5", &cc) == 0 && cc.max_age == 0);
	CHECK(tcc_of("max-age", &cc) == 0 && cc.max_age == 0);
	CHECK(tcc_of("no-store=1", &cc) == 0 && (cc.flags & CC_NO_STORE));
	CHECK(tcc_of("public=1", &cc) == 0 && !(cc.flags & CC_PUBLIC));
	CHECK(tcc_of("must-understand=\"x\"", &cc) == 0 && !(cc.flags & CC_MUST_UNDERSTAND));
	CHECK(tcc_of("max-age=999999999999999", &cc) == 0 && cc.max_age == CC_DELTA_MAX);
	/* line by line is the same as the lines joined */
	cachectl_init(&cc);
	CHECK(cachectl_parse_targeted("max-age=5", 9, &cc) == 0);
	CHECK(cachectl_parse_targeted("no-store", 8, &cc) == 0);
	CHECK(cc.max_age == 5 && (cc.flags & CC_NO_STORE));
}

static void
test_targeted_invalid(void)
{
	static const char *const bad[] = {
		"", "   ", "Max-Age=60", "max-age=60,", ",max-age=60", "max-age=60,,no-store",
		"max-age=60 no-store", "max-age==60", "max-age=60;", "max-age=\"60", "x=\"\\a\"",
		"x=?2", "x=1.", "x=1.2345", "x=1234567890123456", "x=(1", "x=(1,2)", "x=:a b:",
		"x=\"\x01\"", "x=\xc3\xa9", "\tmax-age=60", "9x", "x=1 ;a",
		"no-store, max-age=60;A=1", NULL };
	struct cachectl cc;

	for (size_t i = 0; bad[i] != NULL; i++) {
		cachectl_init(&cc);
		cc.max_age = 7;
		if (cachectl_parse_targeted(bad[i], strlen(bad[i]), &cc) != -1 || cc.max_age != 7 ||
		    cc.flags != 0) {
			CHECK(!"accepted");
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		}
	}
	/* OWS after a member is allowed, and around commas */
	CHECK(tcc_of("max-age=60 ,\tno-store", &cc) == 0 && (cc.flags & CC_NO_STORE));
	CHECK(tcc_of("max-age=60\t", &cc) == 0 && cc.max_age == 60);
}

static int
range_of(const char *s, int64_t *a, int64_t *b)
{
	struct guard g;
	size_t n = strlen(s);
	int r = http_range_parse(guard_put(&g, s, n), n, a, b);

	guard_free(&g);
	return r;
}

/* RFC 9110 14.1.1: one byte range is served from storage; anything else
 * (several, another unit, bad syntax) is not. */
static void
test_range_parse(void)
{
	static const char *const bad[] = {
		"", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=5-2", "bytes=0-1,2-3",
		"bytes=0-1, -5", "items=0-1", "bytes 0-1", "bytes=0-1x", "bytes=+1-2", "bytes=1--2",
		"bytes=0 -1", NULL };
	int64_t a, b, off, n;

	CHECK(range_of("bytes=0-99", &a, &b) == 0 && a == 0 && b == 99);
	CHECK(range_of("bytes=100-", &a, &b) == 0 && a == 100 && b == -1);
	CHECK(range_of("bytes=-20", &a, &b) == 0 && a == -1 && b == 20);
	CHECK(range_of(" Bytes=5-5 ", &a, &b) == 0 && a == 5 && b == 5);
	CHECK(range_of("bytes=, 1-2 ,", &a, &b) == 0 && a == 1 && b == 2);
	CHECK(range_of("bytes=0-99999999999999999999999", &a, &b) == 0 && b == HTTP_RANGE_MAX);
	for (size_t i = 0; bad[i] != NULL; i++)
		if (range_of(bad[i], &a, &b) != -1) {
			CHECK(!"accepted");
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		}
	/* resolved against a length (RFC 9110 14.1.2) */
	CHECK(http_range_resolve(0, 3, 10, &off, &n) == 1 && off == 0 && n == 4);
	CHECK(http_range_resolve(5, -1, 10, &off, &n) == 1 && off == 5 && n == 5);
	CHECK(http_range_resolve(5, 1000, 10, &off, &n) == 1 && off == 5 && n == 5);
	CHECK(http_range_resolve(9, 9, 10, &off, &n) == 1 && off == 9 && n == 1);
	CHECK(http_range_resolve(10, 20, 10, &off, &n) == 0);
	CHECK(http_range_resolve(-1, 3, 10, &off, &n) == 1 && off == 7 && n == 3);
	CHECK(http_range_resolve(-1, 30, 10, &off, &n) == 1 && off == 0 && n == 10);
	CHECK(http_range_resolve(-1, 0, 10, &off, &n) == 0);
	CHECK(http_range_resolve(0, 0, 0, &off, &n) == 0);
	CHECK(http_range_resolve(-1, 5, 0, &off, &n) == 0);
	CHECK(http_range_resolve(HTTP_RANGE_MAX, HTTP_RANGE_MAX, 10, &off, &n) == 0);
}

int
main(void)
{
	RUN(test_init);
	RUN(test_flags);
	RUN(test_numbers);
	RUN(test_clamp);
	RUN(test_quoted);
	RUN(test_malformed_max_age_is_stale);
	RUN(test_duplicates_and_lines);
	RUN(test_max_stale);
	RUN(test_permissive_need_exact_form);
	RUN(test_unknown_and_junk);
	RUN(test_hostile_sizes);
	RUN(test_date_formats);
	RUN(test_date_letter_case);
	RUN(test_date_invalid);
	RUN(test_date_format);
	RUN(test_etag_weak_match);
	RUN(test_if_none_match);
	RUN(test_must_understand);
	RUN(test_targeted_valid);
	RUN(test_targeted_invalid);
	RUN(test_range_parse);
	return T_EXIT();
}
