/*
 * mcproto.c - memcached meta-protocol encoders and reply parser (see
 * mcproto.h for the contract).
 *
 * Must not allocate, do I/O, or read a byte outside [buf, buf+len): every
 * index is compared against len before it is used, and peer-controlled
 * numbers are compared against their limit while they are being parsed.
 */
#include "mcproto.h"

#include <string.h>

/* ---- encoders ------------------------------------------------------- */

struct wr {
	char *p;
	size_t cap;
	size_t n;
	int bad;
};

static void wr_mem(struct wr *w, const void *s, size_t n)
{
	if (w->bad || n > w->cap - w->n) {
		w->bad = 1;
		return;
	}
	memcpy(w->p + w->n, s, n);
	w->n += n;
}

static void wr_str(struct wr *w, const char *s)
{
	wr_mem(w, s, strlen(s));
}

static void wr_u64(struct wr *w, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	wr_mem(w, tmp + i, sizeof(tmp) - i);
}

static int wr_end(struct wr *w)
{
	if (w->bad || w->n > (size_t)INT32_MAX)
		return -1;
	return (int)w->n;
}

int mc_key_valid(const char *key, size_t klen)
{
	size_t i;

	if (key == NULL || klen == 0 || klen > MC_MAX_KEY)
		return 0;
	for (i = 0; i < klen; i++) {
		unsigned char c = (unsigned char)key[i];

		if (c <= 0x20 || c >= 0x7f)
			return 0;
	}
	return 1;
}

static int enc_keyed(char *buf, size_t cap, const char *cmd, const char *key, size_t klen)
{
	struct wr w = { buf, cap, 0, 0 };

	if (buf == NULL || !mc_key_valid(key, klen))
		return -1;
	wr_str(&w, cmd);
	wr_mem(&w, key, klen);
	return w.bad ? -1 : (int)w.n;
}

/* "mg <key> v f t[ c[ N<vivify>]] O<opaque>\r\n" */
static int enc_mg(char *buf, size_t cap, const char *key, size_t klen, int cas,
		  uint32_t vivify, uint32_t opaque)
{
	int n = enc_keyed(buf, cap, "mg ", key, klen);
	struct wr w = { buf, cap, 0, 0 };

	if (n < 0)
		return -1;
	w.n = (size_t)n;
	wr_str(&w, cas ? " v f t c" : " v f t");
	if (vivify > 0) {
		wr_str(&w, " N");
		wr_u64(&w, vivify);
	}
	wr_str(&w, " O");
	wr_u64(&w, opaque);
	wr_str(&w, "\r\n");
	return wr_end(&w);
}

/* "ms <key> <vlen> T<ttl>[ ME] O<opaque>\r\n" */
static int enc_ms(char *buf, size_t cap, const char *key, size_t klen, size_t vlen,
		  uint32_t ttl, int add, uint32_t opaque)
{
	int n = enc_keyed(buf, cap, "ms ", key, klen);
	struct wr w = { buf, cap, 0, 0 };

	if (n < 0)
		return -1;
	w.n = (size_t)n;
	wr_str(&w, " ");
	wr_u64(&w, vlen);
	wr_str(&w, " T");
	wr_u64(&w, ttl);
	wr_str(&w, add ? " ME O" : " O");
	wr_u64(&w, opaque);
	wr_str(&w, "\r\n");
	return wr_end(&w);
}

/* "md <key>[ I T<ttl>] O<opaque>\r\n" */
static int enc_md(char *buf, size_t cap, const char *key, size_t klen, int invalidate,
		  uint32_t ttl, uint32_t opaque)
{
	int n = enc_keyed(buf, cap, "md ", key, klen);
	struct wr w = { buf, cap, 0, 0 };

	if (n < 0)
		return -1;
	w.n = (size_t)n;
	if (invalidate) {
		wr_str(&w, " I T");
		wr_u64(&w, ttl);
	}
	wr_str(&w, " O");
	wr_u64(&w, opaque);
	wr_str(&w, "\r\n");
	return wr_end(&w);
}

int mc_enc_get(char *buf, size_t cap, const char *key, size_t klen, uint32_t opaque)
{
	return enc_mg(buf, cap, key, klen, 0, 0, opaque);
}

int mc_enc_get_meta(char *buf, size_t cap, const char *key, size_t klen, uint32_t vivify,
		    uint32_t opaque)
{
	return enc_mg(buf, cap, key, klen, 1, vivify, opaque);
}

int mc_enc_check(char *buf, size_t cap, const char *key, size_t klen, uint32_t opaque)
{
	int n = enc_keyed(buf, cap, "mg ", key, klen);
	struct wr w = { buf, cap, 0, 0 };

	if (n < 0)
		return -1;
	w.n = (size_t)n;
	wr_str(&w, " c O");
	wr_u64(&w, opaque);
	wr_str(&w, "\r\n");
	return wr_end(&w);
}

int mc_enc_set(char *buf, size_t cap, const char *key, size_t klen, size_t vlen,
	       uint32_t ttl, uint32_t opaque)
{
	return enc_ms(buf, cap, key, klen, vlen, ttl, 0, opaque);
}

int mc_enc_add(char *buf, size_t cap, const char *key, size_t klen, size_t vlen,
	       uint32_t ttl, uint32_t opaque)
{
	return enc_ms(buf, cap, key, klen, vlen, ttl, 1, opaque);
}

int mc_enc_delete(char *buf, size_t cap, const char *key, size_t klen, uint32_t opaque)
{
	return enc_md(buf, cap, key, klen, 0, 0, opaque);
}

int mc_enc_invalidate(char *buf, size_t cap, const char *key, size_t klen, uint32_t ttl,
		      uint32_t opaque)
{
	return enc_md(buf, cap, key, klen, 1, ttl, opaque);
}

static int enc_lit(char *buf, size_t cap, const char *s)
{
	struct wr w = { buf, cap, 0, 0 };

	if (buf == NULL)
		return -1;
	wr_str(&w, s);
	return wr_end(&w);
}

int mc_enc_noop(char *buf, size_t cap)
{
	return enc_lit(buf, cap, "mn\r\n");
}

int mc_enc_flush_all(char *buf, size_t cap)
{
	return enc_lit(buf, cap, "flush_all\r\n");
}

int mc_enc_stats(char *buf, size_t cap)
{
	return enc_lit(buf, cap, "stats\r\n");
}

/* ---- reply parser --------------------------------------------------- */

/* Which tail a reply name takes: meta flags, a free text, or nothing. */
enum tail { T_NONE, T_META, T_TEXT, T_TEXT_OPT, T_VA };

static const struct rname {
	const char *name;
	size_t len;
	enum mc_rtype type;
	enum tail tail;
} rnames[] = {
	{ "HD", 2, MC_R_HD, T_META },
	{ "VA", 2, MC_R_VA, T_VA },
	{ "EN", 2, MC_R_EN, T_META },
	{ "NF", 2, MC_R_NF, T_META },
	{ "NS", 2, MC_R_NS, T_META },
	{ "EX", 2, MC_R_EX, T_META },
	{ "MN", 2, MC_R_MN, T_META },
	{ "OK", 2, MC_R_OK, T_NONE },
	{ "END", 3, MC_R_END, T_NONE },
	{ "STAT", 4, MC_R_STAT, T_TEXT },
	{ "VERSION", 7, MC_R_VERSION, T_TEXT },
	{ "ERROR", 5, MC_R_ERROR, T_TEXT_OPT },
	{ "SERVER_ERROR", 12, MC_R_SERVER_ERROR, T_TEXT_OPT },
	{ "CLIENT_ERROR", 12, MC_R_CLIENT_ERROR, T_TEXT_OPT },
};
#define NRNAMES (sizeof(rnames) / sizeof(rnames[0]))

const char *mc_rtype_name(enum mc_rtype t)
{
	size_t i;

	for (i = 0; i < NRNAMES; i++)
		if (rnames[i].type == t)
			return rnames[i].name;
	return "NONE";
}

static int fail(struct mc_reply *r, const char *why)
{
	r->err = why;
	return -1;
}

static int is_ctl(uint8_t c)
{
	return c < 0x20 || c == 0x7f;
}

/*
 * Is buf[0..n) (no line end in it) the start of some valid reply line? Lets
 * the caller drop a connection that sends garbage without a newline instead
 * of waiting for its deadline.
 */
static int partial_ok(const uint8_t *buf, size_t n)
{
	size_t tok = 0, i;

	while (tok < n && buf[tok] != ' ')
		tok++;
	for (i = 0; i < n; i++)
		if (is_ctl(buf[i]) && !(buf[i] == '\r' && i == n - 1))
			return 0;
	if (tok > 0 && buf[tok - 1] == '\r')
		tok--;
	for (i = 0; i < NRNAMES; i++) {
		if (tok < n) {
			/* the first token is complete: it must be a name */
			if (tok == rnames[i].len && memcmp(buf, rnames[i].name, tok) == 0)
				return 1;
		} else if (tok <= rnames[i].len && memcmp(buf, rnames[i].name, tok) == 0) {
			return 1;
		}
	}
	return 0;
}

/* Decimal uint32 in s[0..n); 0 on success. */
static int parse_u32(const uint8_t *s, size_t n, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 10)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* Meta flags: space-separated tokens, each a flag letter and its value. */
static int parse_meta_flags(const uint8_t *s, size_t n, struct mc_reply *r)
{
	size_t i = 0;

	while (i < n) {
		size_t b, e;

		while (i < n && s[i] == ' ')
			i++;
		if (i == n)
			break;
		b = i;
		while (i < n && s[i] != ' ')
			i++;
		e = i;
		switch (s[b]) {
		case 'O':
			if (r->has_opaque)
				return fail(r, "opaque flag repeated");
			if (parse_u32(s + b + 1, e - b - 1, &r->opaque) < 0)
				return fail(r, "opaque is not a decimal uint32");
			r->has_opaque = 1;
			break;
		case 'f':
			if (parse_u32(s + b + 1, e - b - 1, &r->cflags) < 0)
				return fail(r, "bad client flags");
			r->has_cflags = 1;
			break;
		case 't':
			if (e - b == 3 && s[b + 1] == '-' && s[b + 2] == '1') {
				r->ttl = -1;
			} else {
				uint32_t t;

				if (parse_u32(s + b + 1, e - b - 1, &t) < 0)
					return fail(r, "bad ttl flag");
				r->ttl = t;
			}
			r->has_ttl = 1;
			break;
		case 'c': {
			uint64_t v = 0;

			if (e - b < 2 || e - b > 21)
				return fail(r, "bad cas flag");
			for (size_t k = b + 1; k < e; k++) {
				if (s[k] < '0' || s[k] > '9' ||
				    v > (UINT64_MAX - (uint64_t)(s[k] - '0')) / 10)
					return fail(r, "bad cas flag");
				v = v * 10 + (uint64_t)(s[k] - '0');
			}
			r->cas = v;
			r->has_cas = 1;
			break;
		}
		case 'W': case 'Z': case 'X':
			if (e - b != 1)
				return fail(r, "W, Z and X take no token");
			r->mflags |= s[b] == 'W' ? MC_MF_WON : s[b] == 'Z' ? MC_MF_LOST : MC_MF_STALE;
			break;
		default:
			/* s (size), k (key), ... are not ours to judge */
			if ((s[b] < 'a' || s[b] > 'z') && (s[b] < 'A' || s[b] > 'Z'))
				return fail(r, "meta flag is not a letter");
			break;
		}
	}
	return 0;
}

int mc_parse_reply(const uint8_t *buf, size_t len, size_t max_vlen, struct mc_reply *r)
{
	size_t scan, nl, linelen, i, tok, rest;
	const struct rname *rn = NULL;

	memset(r, 0, sizeof(*r));
	if (buf == NULL)
		return len ? fail(r, "no buffer") : 0;

	scan = len < MC_MAX_LINE ? len : MC_MAX_LINE;
	for (nl = 0; nl < scan; nl++)
		if (buf[nl] == '\n')
			break;
	if (nl == scan) {
		if (!partial_ok(buf, scan))
			return fail(r, "garbage before the end of a line");
		if (len >= MC_MAX_LINE)
			return fail(r, "reply line too long");
		return 0;
	}
	if (nl == 0 || buf[nl - 1] != '\r')
		return fail(r, "line not ended by \\r\\n");
	linelen = nl - 1;	/* without \r\n */
	for (i = 0; i < linelen; i++)
		if (is_ctl(buf[i]))
			return fail(r, "control byte in a reply line");

	for (tok = 0; tok < linelen && buf[tok] != ' '; tok++)
		;
	for (i = 0; i < NRNAMES; i++) {
		if (tok == rnames[i].len && memcmp(buf, rnames[i].name, tok) == 0) {
			rn = &rnames[i];
			break;
		}
	}
	if (rn == NULL)
		return fail(r, "unknown reply");
	r->type = rn->type;
	rest = tok < linelen ? tok + 1 : linelen;	/* after the one space */

	switch (rn->tail) {
	case T_NONE:
		if (tok != linelen)
			return fail(r, "unexpected text after the reply");
		break;
	case T_TEXT:
		if (tok == linelen || rest == linelen)
			return fail(r, "reply text missing");
		/* fall through */
	case T_TEXT_OPT:
		r->text = (const char *)buf + rest;
		r->textlen = linelen - rest;
		break;
	case T_META:
		if (parse_meta_flags(buf + tok, linelen - tok, r) < 0)
			return -1;
		break;
	case T_VA: {
		size_t d, vlen = 0, total;
		uint64_t declared = 0;
		int over = 0, sat = 0;

		if (tok == linelen)
			return fail(r, "VA without a size");
		for (d = rest; d < linelen && buf[d] != ' '; d++) {
			size_t digit;

			if (buf[d] < '0' || buf[d] > '9')
				return fail(r, "VA size is not a number");
			digit = (size_t)(buf[d] - '0');
			/* vlen*10+digit > max_vlen, decided without overflow */
			if (!over && (digit > max_vlen || vlen > (max_vlen - digit) / 10))
				over = 1;
			if (!over)
				vlen = vlen * 10 + digit;
			/* the declared size, only to let a caller skip it */
			if (declared > (UINT64_MAX - digit) / 10)
				sat = 1;
			else
				declared = declared * 10 + digit;
		}
		if (d == rest)
			return fail(r, "VA without a size");
		if (over) {
			/* type VA + need > 0 on this error: the stream is intact and
			 * the caller may discard need bytes instead of closing */
			r->type = MC_R_VA;
			if (!sat && declared <= SIZE_MAX - (nl + 1) - 2) {
				r->vlen = (size_t)declared;
				r->need = nl + 1 + (size_t)declared + 2;
			}
			return fail(r, "VA size above the maximum");
		}
		if (parse_meta_flags(buf + d, linelen - d, r) < 0)
			return -1;
		/* nl+1 <= MC_MAX_LINE and vlen <= max_vlen: compare without
		 * forming a sum that could wrap */
		if (len - (nl + 1) < vlen || len - (nl + 1) - vlen < 2) {
			if (vlen <= SIZE_MAX - (nl + 1) - 2)
				r->need = nl + 1 + vlen + 2;
			r->type = MC_R_NONE;
			return 0;
		}
		total = nl + 1 + vlen;
		if (buf[total] != '\r' || buf[total + 1] != '\n')
			return fail(r, "value not followed by \\r\\n");
		r->val = buf + nl + 1;
		r->vlen = vlen;
		if (total + 2 > (size_t)INT32_MAX)
			return fail(r, "reply too large to report");
		return (int)(total + 2);
	}
	}
	return (int)(nl + 1);
}
