/*
 * test_jsonf.c - the JSON field extractor: strict validation of the whole
 * body, decoding of the chosen top-level values (scalars decoded, objects
 * and arrays as canonical text), and hostile bodies.
 * Bodies are placed against a guard page so an over-read crashes.
 */
#include "jsonf.h"
#include "t.h"
#include "guard.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>


static const char *const NAMES[] = { "a", "b", "c", "d" };
static const size_t NLENS[] = { 1, 1, 1, 1 };

/* Extract a..d from the guarded body of length len; the values are
 * copied into vals[i] (NUL-terminated, up to 63 bytes) before unmapping. */
static int
ext(const char *body, size_t len, struct key_kv out[4], char vals[4][64])
{
	struct guard g;
	char scratch[256];
	size_t i;
	int r;

	r = jsonf_extract(guard_put(&g, body, len), len, NAMES, NLENS, 4, out, scratch,
	    sizeof(scratch));
	for (i = 0; i < 4 && r == 0; i++) {
		size_t l = out[i].vlen < 63 ? out[i].vlen : 63;
		memcpy(vals[i], out[i].val, l);
		vals[i][l] = 0;
		out[i].val = vals[i];
	}
	guard_free(&g);
	return r;
}

static int
valid(const char *body)
{
	struct key_kv out[4];
	char vals[4][64];

	return ext(body, strlen(body), out, vals) == 0;
}

static int
is(const struct key_kv *kv, int present, const char *v, size_t vlen)
{
	return kv->present == present && kv->vlen == vlen && memcmp(kv->val, v, vlen) == 0;
}

static void
test_scalars(void)
{
	static const char body[] = " \t\r\n{ \"a\" : \"x y\", \"b\":-1.5e+3 ,\"c\":true,\"d\":null } \n";
	struct key_kv out[4];
	char vals[4][64];

	memset(out, 0x5a, sizeof(out));	/* every field is written */
	CHECK(ext(body, sizeof(body) - 1, out, vals) == 0);
	CHECK(out[0].cont == 0 && out[1].cont == 0 && out[2].cont == 0 && out[3].cont == 0);
	CHECK(is(&out[0], JSONF_STRING, "x y", 3));
	CHECK(is(&out[1], JSONF_LITERAL, "-1.5e+3", 7));
	CHECK(is(&out[2], JSONF_LITERAL, "true", 4));
	CHECK(is(&out[3], JSONF_LITERAL, "null", 4));
	CHECK(out[0].name == NAMES[0] && out[0].nlen == 1);
}

static void
test_nested_and_missing(void)
{
	static const char body[] = "{\"a\":{\"b\":1},\"b\":[1,2],\"x\":{\"c\":\"deep\"},\"d\":false}";
	struct key_kv out[4];
	char vals[4][64];

	CHECK(ext(body, sizeof(body) - 1, out, vals) == 0);
	CHECK(is(&out[0], JSONF_JSON, "{\"b\":1}", 7));	/* object */
	CHECK(is(&out[1], JSONF_JSON, "[1,2]", 5));		/* array */
	CHECK(out[2].present == JSONF_ABSENT && out[2].vlen == 0);	/* only nested */
	CHECK(is(&out[3], JSONF_LITERAL, "false", 5));
	CHECK(ext("{}", 2, out, vals) == 0 && out[0].present == JSONF_ABSENT);
	CHECK(ext("{\"a\":{},\"b\":[]}", 15, out, vals) == 0);
	CHECK(is(&out[0], JSONF_JSON, "{}", 2) && is(&out[1], JSONF_JSON, "[]", 2));
}

/* The canonical text of an object or array value: two values share it
 * only when a JSON parser reads them alike. */
static int
canon_is(const char *body, const char *want)
{
	struct key_kv out[4];
	char vals[4][64];

	return ext(body, strlen(body), out, vals) == 0 && is(&out[0], JSONF_JSON, want, strlen(want));
}

static void
test_nested_canonical(void)
{
	/* insignificant whitespace goes, strings are re-escaped one way */
	CHECK(canon_is("{\"a\" : [ 1 , { \"k\" : \"v\" } ] }", "[1,{\"k\":\"v\"}]"));
	CHECK(canon_is("{\"a\":[\"\\u0041\\/\\u00e9\"]}", "[\"A/\xc3\xa9\"]"));
	CHECK(canon_is("{\"a\":[\"\xc3\xa9\"]}", "[\"\xc3\xa9\"]"));
	CHECK(canon_is("{\"a\":[\"\\u0022\\u005c\\u000a\\u0001\\u001F\\u007f\"]}",
	    "[\"\\\"\\\\\\n\\u0001\\u001f\x7f\"]"));
	CHECK(canon_is("{\"a\":[\"\\b\\f\\r\\t\\u0000\"]}", "[\"\\b\\f\\r\\t\\u0000\"]"));
	CHECK(canon_is("{\"a\":{\"\\u006b\" :1}}", "{\"k\":1}"));	/* names too */
	CHECK(canon_is("{\"a\":[\" x \"]}", "[\" x \"]"));		/* spaces inside kept */
	/* what a parser can tell apart stays apart */
	CHECK(canon_is("{\"a\":[1.0,1e0,-0]}", "[1.0,1e0,-0]"));	/* numbers as written */
	CHECK(canon_is("{\"a\":{\"y\":1,\"x\":2}}", "{\"y\":1,\"x\":2}"));	/* member order */
	CHECK(canon_is("{\"a\":{\"x\":1,\"x\":2}}", "{\"x\":1,\"x\":2}"));	/* repeated names */
	CHECK(canon_is("{\"a\":[[],{},null,true,false]}", "[[],{},null,true,false]"));
	/* deep nesting, within the limit */
	CHECK(canon_is("{\"a\":[[[[{\"b\":[ ]}]]]]}", "[[[[{\"b\":[]}]]]]"));
}

static void
test_escapes(void)
{
	static const char body[] =
	    "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"b\":\"\\u00e9\\u20AC\",\"c\":\"\\ud83d\\ude00\","
	    "\"d\":\"x\\u0000y\"}";
	struct key_kv out[4];
	char vals[4][64];

	CHECK(ext(body, sizeof(body) - 1, out, vals) == 0);
	CHECK(is(&out[0], JSONF_STRING, "\"\\/\b\f\n\r\t", 8));
	CHECK(is(&out[1], JSONF_STRING, "\xc3\xa9\xe2\x82\xac", 5));
	CHECK(is(&out[2], JSONF_STRING, "\xf0\x9f\x98\x80", 4));
	CHECK(is(&out[3], JSONF_STRING, "x\0y", 3));
	/* raw UTF-8 passes through */
	CHECK(ext("{\"a\":\"\xc3\xa9\xf0\x9f\x98\x80\"}", 14, out, vals) == 0);
	CHECK(is(&out[0], JSONF_STRING, "\xc3\xa9\xf0\x9f\x98\x80", 6));
}

static void
test_bad_strings(void)
{
	static const char *const bad[] = {
		"{\"a\":\"\\ud83d\"}", "{\"a\":\"\\ude00\"}", "{\"a\":\"\\ud83d\\u0041\"}",
		"{\"a\":\"\\ud83dx\"}", "{\"a\":\"\\x41\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12g4\"}",
		"{\"a\":\"\\\"}", "{\"a\":\"tab\there\"}", "{\"a\":\"nl\nx\"}", "{\"a\":\"abc}",
		"{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xe0\x80\x80\"}", "{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\":\"\xf5\x80\x80\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xc3\"}",
		"{\"a\":\"\x80\"}", "{\"a\":\"\xe2\x82\"}", "{\"a\":\"\xff\"}", "{\"\xc3\":1}",
		NULL };
	size_t i;

	for (i = 0; bad[i]; i++) {
		CHECK(!valid(bad[i]));
		if (valid(bad[i]))
			fprintf(stderr, "  accepted #%zu\n", i);
	}
}

static void
test_not_an_object(void)
{
	static const char *const bad[] = { "", " ", "[]", "\"a\"", "1", "null", "true",
		"\xef\xbb\xbf{}", "{", "}", "{\"a\":1", "{} x", "{}{}", "{},", "{\"a\"}",
		"{\"a\" 1}", "{a:1}", "{'a':1}", "{\"a\":1,}", "{\"a\":[1,]}", "{,\"a\":1}",
		"{\"a\":1 \"b\":2}", "{\"a\":[1 2]}", "{\"a\":]}", "{\"a\":[}", "{\"a\":[1}",
		"{\"a\":{]}", "{\"a\":1}}", "{\"a\":1} // c", "{/*c*/}", "{\"a\":\v1}",
		NULL };
	size_t i;

	for (i = 0; bad[i]; i++)
		if (valid(bad[i])) {
			CHECK(!"accepted");
			fprintf(stderr, "  accepted #%zu\n", i);
		}
	/* an embedded NUL after the object, given by length */
	{
		struct key_kv out[4];
		char vals[4][64];
		CHECK(ext("{}\0", 3, out, vals) == JSONF_ERR_INVALID);
		CHECK(ext(NULL, 0, out, vals) == JSONF_ERR_INVALID);
	}
}

static void
test_numbers_and_words(void)
{
	static const char *const good[] = { "{\"a\":0}", "{\"a\":-0}", "{\"a\":1.0}",
		"{\"a\":1E10}", "{\"a\":1e-10}", "{\"a\":123456789012345678901234567890}",
		"{\"a\":-0.0e+0}", NULL };
	static const char *const bad[] = { "{\"a\":01}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}",
		"{\"a\":1e}", "{\"a\":1e+}", "{\"a\":+1}", "{\"a\":NaN}", "{\"a\":Infinity}",
		"{\"a\":-Infinity}", "{\"a\":tru}", "{\"a\":truex}", "{\"a\":nul}", "{\"a\":True}",
		"{\"a\":0x10}", "{\"a\":1_000}", "{\"a\":--1}", "{\"a\":-01}", NULL };
	struct key_kv out[4];
	char vals[4][64];
	size_t i;

	for (i = 0; good[i]; i++)
		CHECK(valid(good[i]));
	for (i = 0; bad[i]; i++)
		if (valid(bad[i])) {
			CHECK(!"accepted");
			fprintf(stderr, "  accepted %s\n", bad[i]);
		}
	CHECK(ext("{\"a\":1.0,\"b\":1}", 15, out, vals) == 0);
	CHECK(is(&out[0], JSONF_LITERAL, "1.0", 3) && is(&out[1], JSONF_LITERAL, "1", 1));
	CHECK(ext("{\"a\":\"1\"}", 9, out, vals) == 0 && is(&out[0], JSONF_STRING, "1", 1));
}

static void
test_depth(void)
{
	char body[256];
	size_t i, o;
	int d;

	/* the top-level object plus d - 1 nested arrays */
	for (d = 31; d <= 33; d++) {
		o = 0;
		body[o++] = '{';
		memcpy(body + o, "\"x\":", 4);
		o += 4;
		for (i = 1; i < (size_t)d; i++)
			body[o++] = '[';
		for (i = 1; i < (size_t)d; i++)
			body[o++] = ']';
		body[o++] = '}';
		body[o] = 0;
		CHECK(valid(body) == (d <= JSONF_MAX_DEPTH));
	}
	/* objects too */
	o = 0;
	for (i = 0; i < 33; i++) {
		memcpy(body + o, "{\"k\":", 5);
		o += 5;
	}
	body[o++] = '1';
	for (i = 0; i < 33; i++)
		body[o++] = '}';
	body[o] = 0;
	CHECK(!valid(body));
}

static void
test_deep_hostile(void)
{
	size_t n = 200000, i;
	char *b = malloc(n + 8);
	struct key_kv out[4];
	char vals[4][64];

	b[0] = '{';
	memcpy(b + 1, "\"a\":", 4);
	for (i = 5; i < n; i++)
		b[i] = '[';
	CHECK(ext(b, n, out, vals) == JSONF_ERR_INVALID);
	free(b);
}

static void
test_duplicates_last_wins(void)
{
	static const char b1[] = "{\"a\":1,\"a\":\"two\"}";
	static const char b2[] = "{\"a\":\"one\",\"a\":{}}";
	static const char b3[] = "{\"a\":[],\"a\":3}";
	struct key_kv out[4];
	char vals[4][64];

	CHECK(ext(b1, sizeof(b1) - 1, out, vals) == 0 && is(&out[0], JSONF_STRING, "two", 3));
	CHECK(ext(b2, sizeof(b2) - 1, out, vals) == 0 && is(&out[0], JSONF_JSON, "{}", 2));
	CHECK(ext(b3, sizeof(b3) - 1, out, vals) == 0 && is(&out[0], JSONF_LITERAL, "3", 1));
}

static void
test_name_matching(void)
{
	static const char *const names[] = { "user_id", "ab", "", "caf\xc3\xa9" };
	static const size_t lens[] = { 7, 2, 0, 5 };
	static const char body[] =
	    "{\"user\":1,\"User_id\":2,\"user_idx\":3,\"\\u0061b\":4,\"\":5,\"caf\\u00e9\":6,"
	    "\"x\":{\"user_id\":7}}";
	struct key_kv out[4];
	char scratch[16];

	CHECK(jsonf_extract(body, sizeof(body) - 1, names, lens, 4, out, scratch,
	    sizeof(scratch)) == 0);
	CHECK(out[0].present == JSONF_ABSENT);	/* no prefix, case or nested match */
	CHECK(is(&out[1], JSONF_LITERAL, "4", 1));	/* matched after decoding */
	CHECK(is(&out[2], JSONF_LITERAL, "5", 1));
	CHECK(is(&out[3], JSONF_LITERAL, "6", 1));
	/* no names at all: validation only */
	CHECK(jsonf_extract("{\"a\":1}", 7, NULL, NULL, 0, NULL, NULL, 0) == 0);
	CHECK(jsonf_extract("{\"a\":1", 6, NULL, NULL, 0, NULL, NULL, 0) == JSONF_ERR_INVALID);
}

static void
test_scratch_space(void)
{
	static const char body[] = "{\"a\":\"hello\",\"b\":\"\\u00e9\",\"c\":12345}";
	struct key_kv out[4];
	char scratch[7];

	/* 5 + 2 bytes exactly; numbers take no scratch */
	CHECK(jsonf_extract(body, sizeof(body) - 1, NAMES, NLENS, 4, out, scratch, 7) == 0);
	CHECK(is(&out[0], JSONF_STRING, "hello", 5) && is(&out[1], JSONF_STRING, "\xc3\xa9", 2));
	CHECK(is(&out[2], JSONF_LITERAL, "12345", 5));
	CHECK(jsonf_extract(body, sizeof(body) - 1, NAMES, NLENS, 4, out, scratch, 6) ==
	    JSONF_ERR_NOSPACE);
	CHECK(jsonf_extract(body, sizeof(body) - 1, NAMES, NLENS, 4, out, NULL, 0) ==
	    JSONF_ERR_NOSPACE);
	/* validity is decided before space */
	CHECK(jsonf_extract("{\"a\":\"hello\",}", 13, NAMES, NLENS, 4, out, NULL, 0) ==
	    JSONF_ERR_INVALID);
	/* an empty string needs no scratch */
	CHECK(jsonf_extract("{\"a\":\"\"}", 8, NAMES, NLENS, 4, out, NULL, 0) == 0);
	CHECK(out[0].present == JSONF_STRING && out[0].vlen == 0);
	/* canonical objects and arrays take scratch too, after the strings */
	CHECK(jsonf_extract("{\"b\":[1, 2],\"a\":\"xy\"}", 21, NAMES, NLENS, 4, out, scratch, 7) == 0);
	CHECK(is(&out[0], JSONF_STRING, "xy", 2) && is(&out[1], JSONF_JSON, "[1,2]", 5));
	CHECK(jsonf_extract("{\"b\":[1, 2],\"a\":\"xy\"}", 21, NAMES, NLENS, 4, out, scratch, 6) ==
	    JSONF_ERR_NOSPACE);
	CHECK(jsonf_extract("{\"a\":[]}", 8, NAMES, NLENS, 4, out, NULL, 0) == JSONF_ERR_NOSPACE);
}

static void
test_big_body(void)
{
	size_t n = 1024 * 1024, o = 0, i;
	char *b = malloc(n + 100000), *scratch = malloc(70000);
	struct key_kv out[4];
	struct guard g;

	b[o++] = '{';
	for (i = 0; o < n; i++)
		o += (size_t)sprintf(b + o, "\"k%zu\":[%zu,{\"z\":\"v\"}],", i, i);
	memcpy(b + o, "\"a\":\"", 5);
	o += 5;
	memset(b + o, 'q', 65536);
	o += 65536;
	memcpy(b + o, "\"}", 2);
	o += 2;
	CHECK(jsonf_extract(guard_put(&g, b, o), o, NAMES, NLENS, 4, out, scratch, 70000) == 0);
	CHECK(out[0].present == JSONF_STRING && out[0].vlen == 65536);
	CHECK(out[1].present == JSONF_ABSENT);
	/* a large nested value: canonical text no longer than as written */
	b[0] = '{';
	memcpy(b + 1, "\"b\":[", 5);
	o = 6;
	for (i = 0; i < 15000; i++)
		o += (size_t)sprintf(b + o, "%s \"\\u0041\" ", i ? "," : "");
	memcpy(b + o, "]}", 2);
	o += 2;
	guard_free(&g);
	CHECK(jsonf_extract(guard_put(&g, b, o), o, NAMES, NLENS, 4, out, scratch, 70000) == 0);
	CHECK(out[1].present == JSONF_JSON && out[1].vlen == 2 + 15000 * 3 + 14999);
	CHECK(out[1].vlen < o && out[1].val[0] == '[' && memcmp(out[1].val + 1, "\"A\",", 4) == 0);
	guard_free(&g);
	free(b);
	free(scratch);
}

static void
test_junk_bytes(void)
{
	static const char alphabet[] = "{}[]\":,ab01-.e\\u \xc3\xa9tn";
	char buf[200];
	struct key_kv out[4];
	char vals[4][64];
	uint32_t x = 5;
	size_t i, len;
	int r, round;

	for (round = 0; round < 5000; round++) {
		len = (size_t)round % sizeof(buf);
		for (i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = alphabet[(x >> 16) % (sizeof(alphabet) - 1)];
		}
		if (len)
			buf[0] = '{';
		r = ext(buf, len, out, vals);
		CHECK(r == 0 || r == JSONF_ERR_INVALID || r == JSONF_ERR_NOSPACE);
	}
}

int
main(void)
{
	RUN(test_scalars);
	RUN(test_nested_and_missing);
	RUN(test_nested_canonical);
	RUN(test_escapes);
	RUN(test_bad_strings);
	RUN(test_not_an_object);
	RUN(test_numbers_and_words);
	RUN(test_depth);
	RUN(test_deep_hostile);
	RUN(test_duplicates_last_wins);
	RUN(test_name_matching);
	RUN(test_scratch_space);
	RUN(test_big_body);
	RUN(test_junk_bytes);
	return T_EXIT();
}
