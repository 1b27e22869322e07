/*
 * key.c - see key.h. Two requests the origin can tell apart must never
 * share a key (that would serve one client's response to another), so
 * this file must not decode anything beyond RFC 3986 6.2.2 equivalence,
 * must not truncate, and must not let one component's bytes be read as
 * another's: everything is tagged and length-prefixed.
 *
 * The query parameters are kept as spans of the raw query and normalised
 * on the fly while comparing and hashing, so no copy of the query is
 * needed; the span array is on the stack, bounded by KEY_MAX_PARAMS.
 * There is one canonicaliser (canon_query): the key hashes what it
 * yields and key_canon_query() writes the same thing out as text.
 */
#include "key.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <openssl/evp.h>

#define KEY_FORMAT "spoe-cache-key/1"

struct kparam {
	const char *n, *v;
	uint32_t nlen, vlen;
	uint32_t pos;		/* position in the query: ties keep the client's order */
	uint8_t eq;
};

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
unreserved(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == '~';
}

static int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Request-target bytes: printable ASCII without space, every '%' followed
 * by two hex digits. Raw UTF-8 is refused rather than guessed at. */
static int
url_ok(const char *s, size_t len)
{
	size_t i;
	unsigned char c;

	if (s == NULL)
		return len == 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f)
			return 0;
		if (c == '%') {
			if (len - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				return 0;
			i += 2;
		}
	}
	return 1;
}

static int
bytes_ok(const char *s, size_t len)
{
	if (s == NULL)
		return len == 0;
	return memchr(s, 0, len) == NULL;
}

static int
method_ok(const char *s, size_t len)
{
	size_t i;
	unsigned char c;

	if (s == NULL || len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		if (c == 0 || !strchr("!#$%&'*+-.^_`|~", c))
			return 0;
	}
	return 1;
}

static int
scheme_ok(const char *s, size_t len)
{
	size_t i;
	unsigned char c;

	if (s == NULL)
		return len == 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			continue;
		if (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
			continue;
		return 0;
	}
	return 1;
}

/*
 * Normalising reader: yields the bytes of a span with %XX of an unreserved
 * character decoded and other %XX hex uppercased. A '%' not followed by two
 * hex digits (only possible in config-supplied names) is a literal byte.
 */
struct nrd {
	const char *p, *end;
	char pend[2];
	int npend;
};

static void
nrd_init(struct nrd *r, const char *p, size_t len)
{
	r->p = p;
	r->end = p + len;
	r->npend = 0;
}

static int
nrd_next(struct nrd *r)
{
	int c, hi, lo, v;

	if (r->npend) {
		c = (unsigned char)r->pend[2 - r->npend];
		r->npend--;
		return c;
	}
	if (r->p >= r->end)
		return -1;
	c = (unsigned char)*r->p++;
	if (c != '%' || r->end - r->p < 2)
		return c;
	hi = hexval(r->p[0]);
	lo = hexval(r->p[1]);
	if (hi < 0 || lo < 0)
		return c;
	v = hi * 16 + lo;
	if (unreserved(v)) {
		r->p += 2;
		return v;
	}
	r->pend[0] = (char)(r->p[0] >= 'a' ? r->p[0] - ('a' - 'A') : r->p[0]);
	r->pend[1] = (char)(r->p[1] >= 'a' ? r->p[1] - ('a' - 'A') : r->p[1]);
	r->p += 2;
	r->npend = 2;
	return '%';
}

static size_t
norm_len(const char *p, size_t len)
{
	struct nrd r;
	size_t n = 0;

	nrd_init(&r, p, len);
	while (nrd_next(&r) >= 0)
		n++;
	return n;
}

static int
norm_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	struct nrd ra, rb;
	int ca, cb;

	nrd_init(&ra, a, alen);
	nrd_init(&rb, b, blen);
	for (;;) {
		ca = nrd_next(&ra);
		cb = nrd_next(&rb);
		if (ca != cb)
			return ca < cb ? -1 : 1;	/* end (-1) sorts first */
		if (ca < 0)
			return 0;
	}
}

/* Canonical order: by normalised name, then as the client sent them.
 * Parameters with one name are not reordered: an origin may read the
 * first, the last or all of them, so ?a=1&a=2 and ?a=2&a=1 differ. */
static int
param_cmp(const void *pa, const void *pb)
{
	const struct kparam *a = pa, *b = pb;
	int r;

	r = norm_cmp(a->n, a->nlen, b->n, b->nlen);
	if (r == 0)
		r = a->pos < b->pos ? -1 : a->pos > b->pos;
	return r;
}

static size_t
clamp_max(size_t max)
{
	return (max == 0 || max > KEY_MAX_PARAMS) ? KEY_MAX_PARAMS : max;
}

/* Split, filter and order; out must hold KEY_MAX_PARAMS entries. */
static int
parse_query(const char *q, size_t qlen, const char *const *only, size_t n_only,
    size_t max, struct kparam *out, size_t *n)
{
	size_t i = 0, s, e, eq, j, count = 0, kept = 0;
	int keep;

	*n = 0;
	if (!url_ok(q, qlen))
		return KEY_ERR_BAD_INPUT;
	if (qlen > UINT32_MAX)
		return KEY_ERR_BAD_INPUT;
	if (n_only && only == NULL)
		return KEY_ERR_BAD_INPUT;
	max = clamp_max(max);
	while (i < qlen) {
		s = i;
		while (i < qlen && q[i] != '&')
			i++;
		e = i++;
		if (e == s)
			continue;
		if (++count > max)
			return KEY_ERR_TOO_MANY;
		for (eq = s; eq < e && q[eq] != '='; eq++)
			;
		keep = n_only == 0;
		for (j = 0; j < n_only && !keep; j++)
			if (only[j] && norm_cmp(q + s, eq - s, only[j], strlen(only[j])) == 0)
				keep = 1;
		if (!keep)
			continue;
		out[kept].n = q + s;
		out[kept].nlen = (uint32_t)(eq - s);
		out[kept].eq = eq < e;
		out[kept].v = eq < e ? q + eq + 1 : q + e;
		out[kept].vlen = eq < e ? (uint32_t)(e - eq - 1) : 0;
		out[kept].pos = (uint32_t)kept;
		kept++;
	}
	if (kept > 1)
		qsort(out, kept, sizeof(out[0]), param_cmp);
	*n = kept;
	return 0;
}

/* Buffered digest input: one EVP call per 256 bytes, not per byte. */
struct hsh {
	EVP_MD_CTX *ctx;
	size_t n;
	int err;
	unsigned char buf[256];
};

static void
h_flush(struct hsh *h)
{
	if (h->n && EVP_DigestUpdate(h->ctx, h->buf, h->n) != 1)
		h->err = 1;
	h->n = 0;
}

static void
h_byte(struct hsh *h, int c)
{
	if (h->n == sizeof(h->buf))
		h_flush(h);
	h->buf[h->n++] = (unsigned char)c;
}

static void
h_head(struct hsh *h, char tag, uint64_t len)
{
	int i;

	h_byte(h, tag);
	for (i = 56; i >= 0; i -= 8)
		h_byte(h, (int)(len >> i) & 0xff);
}

static void
h_comp(struct hsh *h, char tag, const char *p, size_t len)
{
	size_t i;

	h_head(h, tag, len);
	if (len > sizeof(h->buf)) {
		h_flush(h);
		if (EVP_DigestUpdate(h->ctx, p, len) != 1)
			h->err = 1;
		return;
	}
	for (i = 0; i < len; i++)
		h_byte(h, (unsigned char)p[i]);
}

static void
h_lower(struct hsh *h, char tag, const char *p, size_t len)
{
	size_t i;

	h_head(h, tag, len);
	for (i = 0; i < len; i++)
		h_byte(h, lower((unsigned char)p[i]));
}

static void
h_norm(struct hsh *h, char tag, const char *p, size_t len)
{
	struct nrd r;
	int c;

	h_head(h, tag, norm_len(p, len));
	nrd_init(&r, p, len);
	while ((c = nrd_next(&r)) >= 0)
		h_byte(h, c);
}

static void
h_flag(struct hsh *h, char tag, int v)
{
	h_head(h, tag, 1);
	h_byte(h, v <= 0 ? 0 : v > 255 ? 255 : v);
}

/*
 * The one query canonicaliser: split, filter and order (parse_query), then
 * each kept parameter's normalised name, '=' flag and normalised value go
 * to one output, the digest (key_compute) or text (key_canon_query). Both
 * read the same bytes through the same nrd reader, so the text form is
 * exactly what is hashed.
 */
struct qout {
	struct hsh *h;		/* non-NULL: hash as 'Q' 'E' 'R' components */
	char *buf;		/* else: "name=value&..." into buf[0..cap) */
	size_t cap, len;
	int full;
};

static void
qo_byte(struct qout *o, int c)
{
	if (o->len >= o->cap)
		o->full = 1;
	else
		o->buf[o->len++] = (char)c;
}

static void
qo_norm(struct qout *o, const char *p, size_t len)
{
	struct nrd r;
	int c;

	nrd_init(&r, p, len);
	while ((c = nrd_next(&r)) >= 0)
		qo_byte(o, c);
}

static void
qo_param(struct qout *o, const struct kparam *k, int first)
{
	if (o->h != NULL) {
		h_norm(o->h, 'Q', k->n, k->nlen);
		h_flag(o->h, 'E', k->eq);
		h_norm(o->h, 'R', k->v, k->vlen);
		return;
	}
	if (!first)
		qo_byte(o, '&');
	qo_norm(o, k->n, k->nlen);
	if (k->eq)
		qo_byte(o, '=');
	qo_norm(o, k->v, k->vlen);
}

static int
canon_query(const char *q, size_t qlen, const char *const *only, size_t n_only,
    size_t max_params, struct qout *o)
{
	struct kparam p[KEY_MAX_PARAMS];
	size_t n, i;
	int r;

	r = parse_query(q, qlen, only, n_only, max_params, p, &n);
	if (r != 0)
		return r;
	for (i = 0; i < n; i++)
		qo_param(o, &p[i], i == 0);
	return o->full ? KEY_ERR_NOSPACE : 0;
}

int
key_canon_query(const char *q, size_t qlen, const char *const *only, size_t n_only,
    size_t max_params, char *out, size_t cap, size_t *outlen)
{
	struct qout o = { NULL, out, out != NULL ? cap : 0, 0, 0 };
	int r;

	*outlen = 0;
	r = canon_query(q, qlen, only, n_only, max_params, &o);
	if (r == 0)
		*outlen = o.len;
	return r;
}

/* vary: 1 when entries may be further field lines (cont). A cont entry
 * needs a present entry before it; the name of a cont entry is not read. */
static int
kv_ok(const struct key_kv *kv, size_t n, int vary)
{
	size_t i;

	if (n && kv == NULL)
		return 0;
	for (i = 0; i < n; i++) {
		if (kv[i].cont) {
			if (!vary || i == 0 || (!kv[i - 1].cont && !kv[i - 1].present))
				return 0;
			if (!bytes_ok(kv[i].val, kv[i].vlen))
				return 0;
			continue;
		}
		if (!bytes_ok(kv[i].name, kv[i].nlen))
			return 0;
		if (kv[i].present && !bytes_ok(kv[i].val, kv[i].vlen))
			return 0;
	}
	return 1;
}

static void
h_kv(struct hsh *h, const struct key_kv *kv, size_t n, char tn, char tp, char tv, int lc_name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (kv[i].cont) {
			h_comp(h, tv, kv[i].val, kv[i].vlen);
			continue;
		}
		if (lc_name)
			h_lower(h, tn, kv[i].name, kv[i].nlen);
		else
			h_comp(h, tn, kv[i].name, kv[i].nlen);
		h_flag(h, tp, kv[i].present);
		if (kv[i].present)
			h_comp(h, tv, kv[i].val, kv[i].vlen);
		else
			h_comp(h, tv, "", 0);
	}
}

/* Routing headers: only the field lines the request carries. */
static void
h_route(struct hsh *h, const struct key_kv *kv, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h_lower(h, 'O', kv[i].name, kv[i].nlen);
		h_comp(h, 'Y', kv[i].val, kv[i].vlen);
	}
}

/* OpenSSL 3 looks a digest up in its provider tables on every
 * EVP_DigestInit_ex(EVP_sha256()): fetch it once for the process. The
 * fetched EVP_MD is immutable and shared by every thread; it lives until
 * exit (one object, not a leak that grows). */
static EVP_MD *sha256_md;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *
sha256(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, sha256_fetch);
	return sha256_md != NULL ? sha256_md : EVP_sha256();
}

int
key_compute(const struct key_input *in, char hex[KEY_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	struct hsh h;
	struct qout qo;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t i;
	int r;

	if (!bytes_ok(in->policy, in->policy_len) || !method_ok(in->method, in->method_len) ||
	    !scheme_ok(in->scheme, in->scheme_len) || !url_ok(in->host, in->host_len) ||
	    !url_ok(in->path, in->path_len) || !bytes_ok(in->consumer, in->consumer_len) ||
	    !kv_ok(in->vary_hdrs, in->n_vary_hdrs, 1) || !kv_ok(in->json, in->n_json, 0) ||
	    !kv_ok(in->route_hdrs, in->n_route_hdrs, 0))
		return KEY_ERR_BAD_INPUT;

	h.n = 0;
	h.err = 0;
	h.ctx = EVP_MD_CTX_new();
	if (h.ctx == NULL)
		return KEY_ERR_CRYPTO;
	if (EVP_DigestInit_ex(h.ctx, sha256(), NULL) != 1) {
		r = KEY_ERR_CRYPTO;
		goto out;
	}
	h_comp(&h, 'K', KEY_FORMAT, sizeof(KEY_FORMAT) - 1);
	h_comp(&h, 'P', in->policy, in->policy_len);
	h_comp(&h, 'M', in->method, in->method_len);
	h_lower(&h, 'S', in->scheme, in->scheme_len);
	h_lower(&h, 'H', in->host, in->host_len);
	h_comp(&h, 'U', in->path, in->path_len);
	memset(&qo, 0, sizeof(qo));
	qo.h = &h;
	r = canon_query(in->query, in->query_len, in->only_params, in->n_only_params,
	    in->max_params, &qo);
	if (r != 0)
		goto out;
	h_kv(&h, in->vary_hdrs, in->n_vary_hdrs, 'V', 'F', 'W', 1);
	h_route(&h, in->route_hdrs, in->n_route_hdrs);
	h_kv(&h, in->json, in->n_json, 'J', 'G', 'X', 0);
	h_comp(&h, 'C', in->consumer, in->consumer_len);
	h_flush(&h);
	if (h.err || EVP_DigestFinal_ex(h.ctx, md, &mdlen) != 1 || mdlen != KEY_HEX_LEN / 2) {
		r = KEY_ERR_CRYPTO;
		goto out;
	}
	for (i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[KEY_HEX_LEN] = '\0';
	r = 0;
out:
	EVP_MD_CTX_free(h.ctx);
	return r;
}
