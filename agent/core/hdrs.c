/*
 * hdrs.c - see hdrs.h. The block comes from HAProxy, but its bytes were
 * chosen by the client or the origin: every varint length is checked
 * against what is left before anything is read. Must not allocate, must
 * not read past buf + len, must not compare names as prefixes.
 */
#include "hdrs.h"
#include "varint.h"

#include <string.h>

static int
lc(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

int
hdr_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		return 0;
	for (i = 0; i < alen; i++)
		if (lc((unsigned char)a[i]) != lc((unsigned char)b[i]))
			return 0;
	return 1;
}

/* One <varint len><bytes> string; 0, or -1 when it does not fit. */
static int
get_str(const uint8_t **pp, const uint8_t *end, const char **s, size_t *slen)
{
	uint64_t v;
	int r;

	r = varint_decode(*pp, end, &v);
	if (r <= 0)
		return -1;	/* need-more is malformed: the block is complete */
	*pp += r;
	if (v > (uint64_t)(end - *pp))
		return -1;
	*s = (const char *)*pp;
	*slen = (size_t)v;
	*pp += v;
	return 0;
}

int
hdrs_parse(const uint8_t *buf, size_t len, struct hdr *out, size_t max, size_t *n)
{
	const uint8_t *p = buf, *end = buf + len;
	const char *name, *val;
	size_t nlen, vlen, count = 0;

	*n = 0;
	if (buf == NULL)
		return HDRS_ERR_MALFORMED;
	for (;;) {
		if (get_str(&p, end, &name, &nlen) < 0 || get_str(&p, end, &val, &vlen) < 0)
			return HDRS_ERR_MALFORMED;
		if (nlen == 0) {
			/* A nameless header cannot be a real field: treat a
			 * "terminator" with a value as corruption, not as
			 * the end, so trailing data is never silently lost. */
			if (vlen != 0 || p != end)
				return HDRS_ERR_MALFORMED;
			*n = count;
			return 0;
		}
		if (count == max)
			return HDRS_ERR_TOO_MANY;
		out[count].name = name;
		out[count].nlen = nlen;
		out[count].val = val;
		out[count].vlen = vlen;
		count++;
	}
}

const struct hdr *
hdrs_find(const struct hdr *h, size_t n, const char *name, size_t nlen, size_t *from)
{
	size_t i = from ? *from : 0;

	for (; i < n; i++) {
		if (hdr_name_eq(h[i].name, h[i].nlen, name, nlen)) {
			if (from)
				*from = i + 1;
			return &h[i];
		}
	}
	if (from)
		*from = n;
	return NULL;
}

int
hdrs_join(const struct hdr *h, size_t n, const char *name, size_t nlen,
    char *out, size_t cap, size_t *outlen)
{
	const struct hdr *f;
	size_t from = 0, len = 0;
	int found = 0;

	*outlen = 0;
	while ((f = hdrs_find(h, n, name, nlen, &from)) != NULL) {
		if (found) {
			if (cap - len < 2)
				return -1;
			out[len++] = ',';
			out[len++] = ' ';
		}
		if (cap - len < f->vlen)
			return -1;
		if (f->vlen)
			memcpy(out + len, f->val, f->vlen);
		len += f->vlen;
		found = 1;
	}
	*outlen = len;
	return found;
}

static int
is_ows(int c)
{
	return c == ' ' || c == '\t';
}

int
hdr_token_in_list(const char *list, size_t len, const char *tok, size_t toklen)
{
	size_t i = 0, s, e;

	if (toklen == 0)
		return 0;
	while (i < len) {
		s = i;
		while (i < len && list[i] != ',')
			i++;
		e = i;
		while (s < e && is_ows((unsigned char)list[s]))
			s++;
		while (e > s && is_ows((unsigned char)list[e - 1]))
			e--;
		if (hdr_name_eq(list + s, e - s, tok, toklen))
			return 1;
		i++;	/* skip the comma */
	}
	return 0;
}

int
hdrs_is_hop_by_hop(const char *name, size_t nlen)
{
	static const struct { const char *s; size_t n; } hop[] = {
		{ "connection", 10 },
		{ "keep-alive", 10 },
		{ "proxy-authenticate", 18 },
		{ "proxy-authorization", 19 },
		{ "proxy-connection", 16 },
		{ "te", 2 },
		{ "trailer", 7 },
		{ "transfer-encoding", 17 },
		{ "upgrade", 7 },
	};
	size_t i;

	for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (hdr_name_eq(name, nlen, hop[i].s, hop[i].n))
			return 1;
	return 0;
}

int
hdr_is_tchar(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
	case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return 1;
	}
	return 0;
}

int
hdr_name_valid(const char *name, size_t nlen)
{
	size_t i;

	if (nlen == 0)
		return 0;
	for (i = 0; i < nlen; i++)
		if (!hdr_is_tchar((unsigned char)name[i]))
			return 0;
	return 1;
}

int
hdr_value_safe(const char *v, size_t len)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)v[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}
