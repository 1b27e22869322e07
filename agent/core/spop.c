/*
 * spop.c - the SPOP 2.0 codec; see spop.h for the contract.
 *
 * Every byte the peer controls is reached through a cursor compared against
 * an end pointer first; every length read off the wire is compared with what
 * is left before it is used. Must stay pure: no allocation, no I/O, no
 * globals, no logging, so that it can be fuzzed and unit-tested in isolation.
 */
#include <string.h>

#include "spop.h"
#include "varint.h"

const char *
spop_status_str(int status)
{
	/* Decoders return -status: accept either sign so callers can log a
	 * return value directly. */
	if (status < 0)
		status = -status;
	switch (status) {
	case SPOP_ST_NORMAL:             return "normal";
	case SPOP_ST_IO:                 return "I/O error";
	case SPOP_ST_TIMEOUT:            return "a timeout occurred";
	case SPOP_ST_TOO_BIG:            return "frame is too big";
	case SPOP_ST_INVALID:            return "invalid frame received";
	case SPOP_ST_NO_VSN:             return "version value not found";
	case SPOP_ST_NO_FRAME_SIZE:      return "max-frame-size value not found";
	case SPOP_ST_NO_CAP:             return "capabilities value not found";
	case SPOP_ST_BAD_VSN:            return "unsupported version";
	case SPOP_ST_BAD_FRAME_SIZE:     return "max-frame-size too big or too small";
	case SPOP_ST_FRAG_NOT_SUPPORTED: return "payload fragmentation is not supported";
	case SPOP_ST_INTERLACED:         return "invalid interlaced frames";
	case SPOP_ST_FRAMEID_NOTFOUND:   return "frame-id not found";
	case SPOP_ST_RES:                return "resource allocation error";
	case SPOP_ST_UNKNOWN:            return "an unknown error occurred";
	}
	return "unknown status";
}

static uint32_t
rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
wr_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* HAProxy sends a signed value as the varint of its two's-complement uint64;
 * convert back without relying on implementation-defined casts. */
static int64_t
u2i(uint64_t u)
{
	if (u <= (uint64_t)INT64_MAX)
		return (int64_t)u;
	return -(int64_t)(UINT64_MAX - u) - 1;
}

/* ---------------------------------------------------------------- decode */

int
spop_frame_len(const uint8_t *buf, size_t len, uint32_t max, uint32_t *flen)
{
	uint32_t n;

	if (len < SPOP_LEN_PREFIX)
		return 0;
	n = rd_be32(buf);
	*flen = n;
	if (n > max)
		return -SPOP_ST_TOO_BIG;
	if (n < SPOP_MIN_FRAME_LEN)
		return -SPOP_ST_INVALID;
	return SPOP_LEN_PREFIX;
}

int
spop_frame_parse(const uint8_t *frame, size_t flen, struct spop_frame *f)
{
	const uint8_t *p, *end;
	int n;

	if (flen < SPOP_MIN_FRAME_LEN)
		return -SPOP_ST_INVALID;
	p = frame;
	end = frame + flen;
	f->type = p[0];
	f->flags = rd_be32(p + 1);
	p += 5;
	/* varint_decode's "need more" (0) is malformed here: the frame is whole. */
	n = varint_decode(p, end, &f->stream_id);
	if (n <= 0)
		return -SPOP_ST_INVALID;
	p += n;
	n = varint_decode(p, end, &f->frame_id);
	if (n <= 0)
		return -SPOP_ST_INVALID;
	p += n;
	f->payload = p;
	f->plen = (size_t)(end - p);
	return 0;
}

int
spop_str_decode(const uint8_t **p, const uint8_t *end, struct spop_str *s)
{
	const uint8_t *q = *p;
	uint64_t len;
	int n;

	n = varint_decode(q, end, &len);
	if (n <= 0)
		return -SPOP_ST_INVALID;
	q += n;
	if (len > (uint64_t)(end - q))
		return -SPOP_ST_INVALID;
	s->p = q;
	s->len = (size_t)len;
	*p = q + len;
	return 0;
}

int
spop_data_decode(const uint8_t **p, const uint8_t *end, struct spop_data *d)
{
	const uint8_t *q = *p;
	uint64_t u;
	int64_t i;
	uint8_t t;
	int n;

	if (q >= end)
		return -SPOP_ST_INVALID;
	t = *q++;
	d->type = t & SPOP_T_MASK;
	switch (d->type) {
	case SPOP_T_NULL:
		break;
	case SPOP_T_BOOL:
		d->v.b = (t & SPOP_T_FL_TRUE) != 0;
		break;
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		n = varint_decode(q, end, &u);
		if (n <= 0)
			return -SPOP_ST_INVALID;
		q += n;
		i = u2i(u);
		if (d->type == SPOP_T_INT32 && (i < INT32_MIN || i > INT32_MAX))
			return -SPOP_ST_INVALID;
		d->v.i = i;
		break;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		n = varint_decode(q, end, &u);
		if (n <= 0)
			return -SPOP_ST_INVALID;
		q += n;
		if (d->type == SPOP_T_UINT32 && u > UINT32_MAX)
			return -SPOP_ST_INVALID;
		d->v.u = u;
		break;
	case SPOP_T_IPV4:
		if (end - q < 4)
			return -SPOP_ST_INVALID;
		memcpy(d->v.ip4, q, 4);
		q += 4;
		break;
	case SPOP_T_IPV6:
		if (end - q < 16)
			return -SPOP_ST_INVALID;
		memcpy(d->v.ip6, q, 16);
		q += 16;
		break;
	case SPOP_T_STR:
	case SPOP_T_BIN:
		if (spop_str_decode(&q, end, &d->v.s) < 0)
			return -SPOP_ST_INVALID;
		break;
	default:		/* 10-15 are reserved */
		return -SPOP_ST_INVALID;
	}
	*p = q;
	return 0;
}

int
spop_arg_next(const uint8_t **p, const uint8_t *end,
	      struct spop_str *name, struct spop_data *val)
{
	const uint8_t *q = *p;

	if (spop_str_decode(&q, end, name) < 0 ||
	    spop_data_decode(&q, end, val) < 0)
		return -SPOP_ST_INVALID;
	*p = q;
	return 0;
}

int
spop_kv_next(const uint8_t **p, const uint8_t *end,
	     struct spop_str *name, struct spop_data *val)
{
	if (*p >= end)
		return 0;
	if (spop_arg_next(p, end, name, val) < 0)
		return -SPOP_ST_INVALID;
	return 1;
}

int
spop_msg_next(const uint8_t **p, const uint8_t *end,
	      struct spop_str *name, int *nargs)
{
	const uint8_t *q = *p;

	if (q >= end)
		return 0;
	if (spop_str_decode(&q, end, name) < 0 || q >= end)
		return -SPOP_ST_INVALID;
	*nargs = *q++;
	*p = q;
	return 1;
}

int
spop_msgs_validate(const uint8_t *payload, size_t len, int *nmsgs)
{
	const uint8_t *p = payload, *end = len ? payload + len : payload;
	struct spop_str name;
	struct spop_data val;
	int r, nargs, count = 0;

	while ((r = spop_msg_next(&p, end, &name, &nargs)) == 1) {
		count++;
		while (nargs-- > 0)
			if (spop_arg_next(&p, end, &name, &val) < 0)
				return -SPOP_ST_INVALID;
	}
	if (r < 0)
		return r;
	if (nmsgs)
		*nmsgs = count;
	return 0;
}

int
spop_str_eq(const struct spop_str *s, const char *cstr)
{
	size_t n = strlen(cstr);

	return s->len == n && (n == 0 || memcmp(s->p, cstr, n) == 0);
}

/* Integer of any SPOP integer type as a uint32: 0, -1 when d is not an
 * integer, -2 when it is one but out of range (negative or > 2^32-1). */
static int
data_to_u32(const struct spop_data *d, uint32_t *out)
{
	switch (d->type) {
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		if (d->v.i < 0 || d->v.i > (int64_t)UINT32_MAX)
			return -2;
		*out = (uint32_t)d->v.i;
		return 0;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		if (d->v.u > UINT32_MAX)
			return -2;
		*out = (uint32_t)d->v.u;
		return 0;
	}
	return -1;
}

int
spop_hello_parse(const uint8_t *payload, size_t len, struct spop_hello *h)
{
	const uint8_t *p = payload, *end = len ? payload + len : payload;
	struct spop_str name;
	struct spop_data val;
	int r;

	memset(h, 0, sizeof(*h));
	while ((r = spop_kv_next(&p, end, &name, &val)) == 1) {
		if (spop_str_eq(&name, "supported-versions")) {
			if (val.type != SPOP_T_STR)
				return -SPOP_ST_INVALID;
			h->versions = val.v.s;
			h->seen |= SPOP_HELLO_VERSIONS;
		} else if (spop_str_eq(&name, "max-frame-size")) {
			r = data_to_u32(&val, &h->max_frame_size);
			if (r == -1)
				return -SPOP_ST_INVALID;
			if (r == -2)
				return -SPOP_ST_BAD_FRAME_SIZE;
			h->seen |= SPOP_HELLO_MAX_FRAME;
		} else if (spop_str_eq(&name, "capabilities")) {
			if (val.type != SPOP_T_STR)
				return -SPOP_ST_INVALID;
			h->caps = val.v.s;
			h->seen |= SPOP_HELLO_CAPS;
		} else if (spop_str_eq(&name, "healthcheck")) {
			if (val.type != SPOP_T_BOOL)
				return -SPOP_ST_INVALID;
			h->healthcheck = val.v.b;
			h->seen |= SPOP_HELLO_HEALTH;
		} else if (spop_str_eq(&name, "engine-id")) {
			if (val.type != SPOP_T_STR)
				return -SPOP_ST_INVALID;
			h->engine_id = val.v.s;
			h->seen |= SPOP_HELLO_ENGINE_ID;
		}
		/* unknown items: skipped, a newer HAProxy may add some */
	}
	return r < 0 ? r : 0;
}

int
spop_hello_check(const struct spop_hello *h)
{
	if (!(h->seen & SPOP_HELLO_VERSIONS))
		return -SPOP_ST_NO_VSN;
	if (!(h->seen & SPOP_HELLO_MAX_FRAME))
		return -SPOP_ST_NO_FRAME_SIZE;
	if (!(h->seen & SPOP_HELLO_CAPS))
		return -SPOP_ST_NO_CAP;
	if (!spop_version_supported((const char *)h->versions.p, h->versions.len))
		return -SPOP_ST_BAD_VSN;
	if (h->max_frame_size < SPOP_MIN_FRAME_SIZE)
		return -SPOP_ST_BAD_FRAME_SIZE;
	return 0;
}

static int
is_sp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Next comma-separated token of [*s, end), surrounding spaces trimmed (the
 * spec says spaces are ignored). 1 with the token set, 0 at the end. */
static int
next_token(const char **s, const char *end, const char **tok, size_t *tlen)
{
	const char *b = *s, *e;

	if (b >= end)
		return 0;
	e = b;
	while (e < end && *e != ',')
		e++;
	*s = e < end ? e + 1 : e;
	while (b < e && is_sp(*b))
		b++;
	while (e > b && is_sp(e[-1]))
		e--;
	*tok = b;
	*tlen = (size_t)(e - b);
	return 1;
}

int
spop_version_supported(const char *list, size_t len)
{
	const char *s = list, *end, *t;
	size_t tlen, i, j;
	unsigned major;

	/* An absent item is a NULL string: no pointer arithmetic on it. */
	if (list == NULL)
		return 0;
	end = list + len;
	while (next_token(&s, end, &t, &tlen)) {
		/* "Major.Minor", both decimal; anything else is skipped. The
		 * digit cap keeps major from overflowing. */
		major = 0;
		for (i = 0; i < tlen && i < 9 && t[i] >= '0' && t[i] <= '9'; i++)
			major = major * 10 + (unsigned)(t[i] - '0');
		if (i == 0 || i >= tlen || t[i] != '.')
			continue;
		for (j = i + 1; j < tlen && t[j] >= '0' && t[j] <= '9'; j++)
			;
		if (j == i + 1 || j != tlen)
			continue;
		if (major == 2)
			return 1;
	}
	return 0;
}

int
spop_has_cap(const char *list, size_t len, const char *cap)
{
	const char *s = list, *end, *t;
	size_t tlen, clen = strlen(cap);

	if (list == NULL || clen == 0)
		return 0;
	end = list + len;
	while (next_token(&s, end, &t, &tlen))
		if (tlen == clen && memcmp(t, cap, clen) == 0)
			return 1;
	return 0;
}

int
spop_disconnect_parse(const uint8_t *payload, size_t len,
		      struct spop_disconnect *d)
{
	const uint8_t *p = payload, *end = len ? payload + len : payload;
	struct spop_str name;
	struct spop_data val;
	int r;

	memset(d, 0, sizeof(*d));
	while ((r = spop_kv_next(&p, end, &name, &val)) == 1) {
		if (spop_str_eq(&name, "status-code")) {
			if (data_to_u32(&val, &d->status) < 0)
				return -SPOP_ST_INVALID;
			d->seen |= SPOP_DISCON_STATUS;
		} else if (spop_str_eq(&name, "message")) {
			if (val.type != SPOP_T_STR)
				return -SPOP_ST_INVALID;
			d->message = val.v.s;
			d->seen |= SPOP_DISCON_MESSAGE;
		}
	}
	return r < 0 ? r : 0;
}

/* ---------------------------------------------------------------- encode */

int
spop_enc_str(uint8_t **p, const uint8_t *end, const void *s, size_t len)
{
	uint8_t *q = *p;
	size_t room = (size_t)(end - q);
	int n;

	/* Check the whole item fits before writing any of it. */
	if (len > room || (size_t)varint_size(len) > room - len)
		return -1;
	n = varint_encode(len, q, end);
	if (n <= 0)
		return -1;
	q += n;
	if (len)
		memcpy(q, s, len);
	*p = q + len;
	return 0;
}

static int
enc_byte(uint8_t **p, const uint8_t *end, uint8_t b)
{
	if (*p >= end)
		return -1;
	*(*p)++ = b;
	return 0;
}

static int
enc_varint(uint8_t **p, const uint8_t *end, uint64_t v)
{
	int n = varint_encode(v, *p, end);

	if (n <= 0)
		return -1;
	*p += n;
	return 0;
}

int
spop_enc_data(uint8_t **p, const uint8_t *end, const struct spop_data *d)
{
	uint8_t *q = *p;
	int r;

	switch (d->type) {
	case SPOP_T_NULL:
		r = enc_byte(&q, end, SPOP_T_NULL);
		break;
	case SPOP_T_BOOL:
		r = enc_byte(&q, end, SPOP_T_BOOL | (d->v.b ? SPOP_T_FL_TRUE : 0));
		break;
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		if (d->type == SPOP_T_INT32 &&
		    (d->v.i < INT32_MIN || d->v.i > INT32_MAX))
			return -1;
		r = enc_byte(&q, end, d->type);
		if (r == 0)
			r = enc_varint(&q, end, (uint64_t)d->v.i);
		break;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		if (d->type == SPOP_T_UINT32 && d->v.u > UINT32_MAX)
			return -1;
		r = enc_byte(&q, end, d->type);
		if (r == 0)
			r = enc_varint(&q, end, d->v.u);
		break;
	case SPOP_T_IPV4:
	case SPOP_T_IPV6: {
		size_t n = d->type == SPOP_T_IPV4 ? 4 : 16;

		if ((size_t)(end - q) < 1 + n)
			return -1;
		*q++ = d->type;
		memcpy(q, d->type == SPOP_T_IPV4 ? d->v.ip4 : d->v.ip6, n);
		q += n;
		r = 0;
		break;
	}
	case SPOP_T_STR:
	case SPOP_T_BIN:
		r = enc_byte(&q, end, d->type);
		if (r == 0)
			r = spop_enc_str(&q, end, d->v.s.p, d->v.s.len);
		break;
	default:
		return -1;
	}
	if (r < 0)
		return -1;
	*p = q;
	return 0;
}

void
spop_fb_begin(struct spop_fb *fb, uint8_t *buf, size_t cap, uint8_t type,
	      uint32_t flags, uint64_t stream_id, uint64_t frame_id)
{
	uint8_t *q;

	fb->buf = fb->p = fb->end = buf;
	fb->err = 0;
	if (buf == NULL || cap < SPOP_LEN_PREFIX + 5) {
		fb->err = 1;
		return;
	}
	fb->end = buf + cap;
	q = buf + SPOP_LEN_PREFIX;	/* the prefix is written by _end */
	*q++ = type;
	wr_be32(q, flags);
	q += 4;
	if (enc_varint(&q, fb->end, stream_id) < 0 ||
	    enc_varint(&q, fb->end, frame_id) < 0) {
		fb->err = 1;
		return;
	}
	fb->p = q;
}

void
spop_fb_str(struct spop_fb *fb, const void *s, size_t len)
{
	if (!fb->err && spop_enc_str(&fb->p, fb->end, s, len) < 0)
		fb->err = 1;
}

void
spop_fb_kv(struct spop_fb *fb, const char *name, const struct spop_data *d)
{
	spop_fb_str(fb, name, strlen(name));
	if (!fb->err && spop_enc_data(&fb->p, fb->end, d) < 0)
		fb->err = 1;
}

int
spop_fb_end(struct spop_fb *fb)
{
	size_t total;

	if (fb->err)
		return -1;
	total = (size_t)(fb->p - fb->buf);
	if (total > INT32_MAX)
		return -1;
	wr_be32(fb->buf, (uint32_t)(total - SPOP_LEN_PREFIX));
	return (int)total;
}

static struct spop_data
mk_str(uint8_t type, const void *s, size_t len)
{
	struct spop_data d;

	d.type = type;
	d.v.s.p = s;
	d.v.s.len = len;
	return d;
}

static struct spop_data
mk_u32(uint32_t v)
{
	struct spop_data d;

	d.type = SPOP_T_UINT32;
	d.v.u = v;
	return d;
}

static struct spop_data
mk_cstr(const char *s)
{
	return mk_str(SPOP_T_STR, s, s ? strlen(s) : 0);
}

int
spop_enc_agent_hello(uint8_t *buf, size_t cap, uint32_t max_frame_size,
		     const char *caps)
{
	struct spop_fb fb;
	struct spop_data d;

	spop_fb_begin(&fb, buf, cap, SPOP_FRM_AGENT_HELLO, SPOP_FL_FIN, 0, 0);
	d = mk_cstr(SPOP_VERSION);
	spop_fb_kv(&fb, "version", &d);
	d = mk_u32(max_frame_size);
	spop_fb_kv(&fb, "max-frame-size", &d);
	d = mk_cstr(caps ? caps : "");
	spop_fb_kv(&fb, "capabilities", &d);
	return spop_fb_end(&fb);
}

static int
enc_disconnect(uint8_t *buf, size_t cap, uint8_t type, uint32_t status,
	       const char *msg)
{
	struct spop_fb fb;
	struct spop_data d;

	spop_fb_begin(&fb, buf, cap, type, SPOP_FL_FIN, 0, 0);
	d = mk_u32(status);
	spop_fb_kv(&fb, "status-code", &d);
	d = mk_cstr(msg ? msg : "");
	spop_fb_kv(&fb, "message", &d);
	return spop_fb_end(&fb);
}

int
spop_enc_agent_disconnect(uint8_t *buf, size_t cap, uint32_t status,
			  const char *msg)
{
	return enc_disconnect(buf, cap, SPOP_FRM_AGENT_DISCON, status, msg);
}

/* ------------------------------------------------------------ ACK builder */

void
spop_ack_begin(struct spop_ack *a, uint8_t *buf, size_t cap,
	       uint64_t stream_id, uint64_t frame_id)
{
	spop_fb_begin(&a->fb, buf, cap, SPOP_FRM_ACK, SPOP_FL_FIN,
		      stream_id, frame_id);
}

/* <SET-VAR><NB-ARGS:3><VAR-SCOPE><VAR-NAME><VAR-VALUE>, all or nothing. */
void
spop_ack_set(struct spop_ack *a, int scope, const char *name, size_t namelen,
	     const struct spop_data *val)
{
	struct spop_fb *fb = &a->fb;
	uint8_t *q = fb->p;

	if (fb->err)
		return;
	if (val == NULL || scope < SPOP_SCOPE_PROC || scope > SPOP_SCOPE_RES ||
	    fb->end - q < 3) {
		fb->err = 1;
		return;
	}
	*q++ = SPOP_ACT_SET_VAR;
	*q++ = 3;
	*q++ = (uint8_t)scope;
	if (spop_enc_str(&q, fb->end, name, namelen) < 0 ||
	    spop_enc_data(&q, fb->end, val) < 0) {
		fb->err = 1;
		return;
	}
	fb->p = q;
}

int
spop_ack_end(struct spop_ack *a)
{
	return spop_fb_end(&a->fb);
}

