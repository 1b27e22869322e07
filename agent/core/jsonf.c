/*
 * jsonf.c - see jsonf.h. The body is the client's: the parser is an
 * explicit state machine with a fixed-size container stack, reads nothing
 * past buf + len, and rejects rather than repairs (a body the origin might
 * read differently must not produce a key). Must not allocate or recurse.
 */
#include "jsonf.h"

#include <stdint.h>
#include <string.h>

/*
 * String iterator over the bytes a JSON string decodes to. Positioned just
 * after the opening quote; yields bytes, IT_END after the closing quote
 * (p then points past it) or IT_ERR. Validation and decoding share it, so
 * they cannot disagree.
 */
#define IT_END	(-1)
#define IT_ERR	(-2)

struct sit {
	const unsigned char *p, *end;
	unsigned char q[4];
	int qi, qn;
};

static void
sit_init(struct sit *s, const char *after_quote, const char *end)
{
	s->p = (const unsigned char *)after_quote;
	s->end = (const unsigned char *)end;
	s->qi = s->qn = 0;
}

static int
hex4(const unsigned char *p, const unsigned char *end, unsigned *v)
{
	int i, c;

	if (end - p < 4)
		return -1;
	*v = 0;
	for (i = 0; i < 4; i++) {
		c = p[i];
		if (c >= '0' && c <= '9')
			c -= '0';
		else if (c >= 'a' && c <= 'f')
			c -= 'a' - 10;
		else if (c >= 'A' && c <= 'F')
			c -= 'A' - 10;
		else
			return -1;
		*v = *v << 4 | (unsigned)c;
	}
	return 0;
}

static int
sit_utf8(struct sit *s, unsigned cp)
{
	if (cp < 0x80)
		return (int)cp;
	if (cp < 0x800) {
		s->q[0] = (unsigned char)(0x80 | (cp & 0x3f));
		s->qn = 1;
		s->qi = 0;
		return (int)(0xc0 | cp >> 6);
	}
	if (cp < 0x10000) {
		s->q[0] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		s->q[1] = (unsigned char)(0x80 | (cp & 0x3f));
		s->qn = 2;
		s->qi = 0;
		return (int)(0xe0 | cp >> 12);
	}
	s->q[0] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	s->q[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	s->q[2] = (unsigned char)(0x80 | (cp & 0x3f));
	s->qn = 3;
	s->qi = 0;
	return (int)(0xf0 | cp >> 18);
}

static int
sit_escape(struct sit *s)
{
	unsigned cp, lo;
	int e;

	if (s->p >= s->end)
		return IT_ERR;
	e = *s->p++;
	switch (e) {
	case '"': case '\\': case '/':
		return e;
	case 'b': return '\b';
	case 'f': return '\f';
	case 'n': return '\n';
	case 'r': return '\r';
	case 't': return '\t';
	case 'u':
		break;
	default:
		return IT_ERR;
	}
	if (hex4(s->p, s->end, &cp) < 0)
		return IT_ERR;
	s->p += 4;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return IT_ERR;	/* a lone low surrogate is no character */
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
		    hex4(s->p + 2, s->end, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
			return IT_ERR;
		s->p += 6;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	return sit_utf8(s, cp);
}

/* A raw UTF-8 sequence starting with lead byte c (RFC 3629 table). */
static int
sit_raw(struct sit *s, int c)
{
	unsigned char lo = 0x80, hi = 0xbf;
	int n, i;

	if (c >= 0xc2 && c <= 0xdf)
		n = 1;
	else if (c >= 0xe0 && c <= 0xef)
		n = 2;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 3;
	else
		return IT_ERR;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s->end - s->p < n)
		return IT_ERR;
	for (i = 0; i < n; i++) {
		if (s->p[i] < lo || s->p[i] > hi)
			return IT_ERR;
		s->q[i] = s->p[i];
		lo = 0x80;
		hi = 0xbf;
	}
	s->p += n;
	s->qi = 0;
	s->qn = n;
	return c;
}

static int
sit_next(struct sit *s)
{
	int c;

	if (s->qi < s->qn)
		return s->q[s->qi++];
	s->qi = s->qn = 0;
	if (s->p >= s->end)
		return IT_ERR;
	c = *s->p++;
	if (c == '"')
		return IT_END;
	if (c == '\\')
		return sit_escape(s);
	if (c < 0x20)
		return IT_ERR;
	if (c < 0x80)
		return c;
	return sit_raw(s, c);
}

/* Validate the string at p (on its opening quote); past it, or NULL. */
static const char *
scan_string(const char *p, const char *end)
{
	struct sit s;
	int c;

	sit_init(&s, p + 1, end);
	while ((c = sit_next(&s)) >= 0)
		;
	return c == IT_END ? (const char *)s.p : NULL;
}

/* 1 when the already-validated string at p decodes to exactly name. */
static int
string_is(const char *p, const char *end, const char *name, size_t nlen)
{
	struct sit s;
	size_t i = 0;
	int c;

	sit_init(&s, p + 1, end);
	while ((c = sit_next(&s)) >= 0) {
		if (i >= nlen || (unsigned char)name[i] != c)
			return 0;
		i++;
	}
	return i == nlen;
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static const char *
scan_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p >= end)
		return NULL;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < end && is_digit(*p))
			p++;
	} else {
		return NULL;
	}
	if (p < end && *p == '.') {
		p++;
		if (p >= end || !is_digit(*p))
			return NULL;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit(*p))
			return NULL;
		while (p < end && is_digit(*p))
			p++;
	}
	return p;
}

static const char *
scan_word(const char *p, const char *end)
{
	static const char *const w[3] = { "true", "false", "null" };
	size_t i, l;

	for (i = 0; i < 3; i++) {
		l = strlen(w[i]);
		if ((size_t)(end - p) >= l && memcmp(p, w[i], l) == 0)
			return p + l;
	}
	return NULL;
}

static const char *
ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* While parsing, out[i] holds the raw span of the last match and a kind. */
#define K_NONE		0
#define K_STRING	1	/* span includes the quotes */
#define K_LITERAL	2
#define K_NESTED	3	/* span of the whole object or array */

static void
record(const char *key, const char *end, const char *const *names, const size_t *name_lens,
    size_t n, struct key_kv *out, int kind, const char *v, size_t vlen)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (string_is(key, end, names[i], name_lens[i])) {
			out[i].present = kind;
			out[i].val = v;
			out[i].vlen = vlen;
		}
	}
}

enum jstate { S_OBJ_OPEN, S_ARR_OPEN, S_KEY, S_VALUE, S_AFTER, S_CLOSE };

static int
validate(const char *buf, size_t len, const char *const *names, const size_t *name_lens,
    size_t n, struct key_kv *out)
{
	const char *p = buf, *end = buf + len, *key = NULL, *nested = NULL, *v;
	char stk[JSONF_MAX_DEPTH];
	int depth = 0, kind;
	enum jstate st;

	p = ws(p, end);
	if (p >= end || *p != '{')
		return JSONF_ERR_INVALID;
	stk[depth++] = '{';
	p++;
	st = S_OBJ_OPEN;
	for (;;) {
		switch (st) {
		case S_OBJ_OPEN:
		case S_ARR_OPEN:
			p = ws(p, end);
			if (p < end && *p == (st == S_OBJ_OPEN ? '}' : ']')) {
				p++;
				st = S_CLOSE;
			} else {
				st = st == S_OBJ_OPEN ? S_KEY : S_VALUE;
			}
			break;
		case S_KEY:
			p = ws(p, end);
			if (p >= end || *p != '"')
				return JSONF_ERR_INVALID;
			if (depth == 1)
				key = p;
			if ((p = scan_string(p, end)) == NULL)
				return JSONF_ERR_INVALID;
			p = ws(p, end);
			if (p >= end || *p != ':')
				return JSONF_ERR_INVALID;
			p++;
			st = S_VALUE;
			break;
		case S_VALUE:
			p = ws(p, end);
			if (p >= end)
				return JSONF_ERR_INVALID;
			v = p;
			if (*p == '{' || *p == '[') {
				if (depth == JSONF_MAX_DEPTH)
					return JSONF_ERR_INVALID;
				if (depth == 1)
					nested = p;	/* recorded once it closes */
				stk[depth++] = *p;
				st = *p == '{' ? S_OBJ_OPEN : S_ARR_OPEN;
				p++;
				break;
			}
			if (*p == '"') {
				p = scan_string(p, end);
				kind = K_STRING;
			} else if (*p == '-' || is_digit(*p)) {
				p = scan_number(p, end);
				kind = K_LITERAL;
			} else {
				p = scan_word(p, end);
				kind = K_LITERAL;
			}
			if (p == NULL)
				return JSONF_ERR_INVALID;
			if (depth == 1)
				record(key, end, names, name_lens, n, out, kind, v, (size_t)(p - v));
			st = S_AFTER;
			break;
		case S_AFTER:
			p = ws(p, end);
			if (p >= end)
				return JSONF_ERR_INVALID;
			if (*p == ',') {
				p++;
				st = stk[depth - 1] == '{' ? S_KEY : S_VALUE;
			} else if (*p == (stk[depth - 1] == '{' ? '}' : ']')) {
				p++;
				st = S_CLOSE;
			} else {
				return JSONF_ERR_INVALID;
			}
			break;
		case S_CLOSE:
			if (--depth == 0)
				return ws(p, end) == end ? 0 : JSONF_ERR_INVALID;
			if (depth == 1)
				record(key, end, names, name_lens, n, out, K_NESTED, nested,
				    (size_t)(p - nested));
			st = S_AFTER;
			break;
		}
	}
}

/* Scratch being filled; full once a byte did not fit. */
struct sbuf {
	char *p;
	size_t cap, used;
	int full;
};

static void
sb_put(struct sbuf *b, int c)
{
	if (b->used >= b->cap)
		b->full = 1;
	else
		b->p[b->used++] = (char)c;
}

/* One decoded byte of a string, escaped the canonical way (jsonf.h). */
static void
sb_escaped(struct sbuf *b, int c)
{
	static const char hex[] = "0123456789abcdef";
	const char *sh = NULL;

	switch (c) {
	case '"': sh = "\\\""; break;
	case '\\': sh = "\\\\"; break;
	case '\b': sh = "\\b"; break;
	case '\f': sh = "\\f"; break;
	case '\n': sh = "\\n"; break;
	case '\r': sh = "\\r"; break;
	case '\t': sh = "\\t"; break;
	}
	if (sh != NULL) {
		sb_put(b, sh[0]);
		sb_put(b, sh[1]);
	} else if (c < 0x20) {
		sb_put(b, '\\');
		sb_put(b, 'u');
		sb_put(b, '0');
		sb_put(b, '0');
		sb_put(b, hex[c >> 4]);
		sb_put(b, hex[c & 15]);
	} else {
		sb_put(b, c);
	}
}

/* The canonical text of the already-validated object or array [p, end):
 * whitespace outside strings dropped, strings re-escaped, every other byte
 * (structure, numbers, true/false/null) copied. Each escape it writes is
 * at most as long as the input that produced it, so it never grows. */
static void
canon_nested(const char *p, const char *end, struct sbuf *b)
{
	struct sit s;
	int c;

	while (p < end) {
		c = (unsigned char)*p;
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			p++;
			continue;
		}
		if (c != '"') {
			sb_put(b, c);
			p++;
			continue;
		}
		sb_put(b, '"');
		sit_init(&s, p + 1, end);
		while ((c = sit_next(&s)) >= 0)
			sb_escaped(b, c);
		sb_put(b, '"');
		p = (const char *)s.p;
	}
}

int
jsonf_extract(const char *buf, size_t len, const char *const *names, const size_t *name_lens,
    size_t n, struct key_kv *out, char *scratch, size_t scratch_cap)
{
	struct sit s;
	size_t i, used = 0, start;
	int r, c;

	if (buf == NULL || (n && (names == NULL || name_lens == NULL || out == NULL)))
		return JSONF_ERR_INVALID;
	for (i = 0; i < n; i++) {
		out[i].name = names[i];
		out[i].nlen = name_lens[i];
		out[i].val = "";
		out[i].vlen = 0;
		out[i].present = K_NONE;
		out[i].cont = 0;
	}
	r = validate(buf, len, names, name_lens, n, out);
	if (r != 0)
		return r;
	for (i = 0; i < n; i++) {
		switch (out[i].present) {
		case K_STRING:
			start = used;
			sit_init(&s, out[i].val + 1, out[i].val + out[i].vlen);
			while ((c = sit_next(&s)) >= 0) {
				if (used >= scratch_cap)
					return JSONF_ERR_NOSPACE;
				scratch[used++] = (char)c;
			}
			out[i].val = scratch ? scratch + start : "";
			out[i].vlen = used - start;
			out[i].present = JSONF_STRING;
			break;
		case K_LITERAL:
			out[i].present = JSONF_LITERAL;
			break;
		case K_NESTED: {
			struct sbuf sb = { scratch, scratch != NULL ? scratch_cap : 0, used, 0 };

			canon_nested(out[i].val, out[i].val + out[i].vlen, &sb);
			if (sb.full)
				return JSONF_ERR_NOSPACE;
			out[i].val = scratch + used;
			out[i].vlen = sb.used - used;
			out[i].present = JSONF_JSON;
			used = sb.used;
			break;
		}
		default:
			out[i].val = "";
			out[i].vlen = 0;
			out[i].present = JSONF_ABSENT;
			break;
		}
	}
	return 0;
}
