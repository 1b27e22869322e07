/*
 * cachectl.c - see cachectl.h. Every input here was written by a client or
 * an origin; a misreading in the permissive direction stores or serves what
 * must not be, so malformed input resolves towards "do not cache". Must not
 * read past v + len, allocate, or consult the clock.
 */
#include "cachecontrol.h"
#include "hdrs.h"

#include <string.h>

void
cachectl_init(struct cachectl *cc)
{
	cc->flags = 0;
	cc->max_age = cc->s_maxage = cc->max_stale = cc->min_fresh = -1;
	cc->swr = cc->sie = -1;
}

static int
is_ows(int c)
{
	return c == ' ' || c == '\t';
}

static int
lc(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int
name_is(const char *s, size_t len, const char *lit)
{
	size_t i, n = strlen(lit);

	if (len != n)
		return 0;
	for (i = 0; i < n; i++)
		if (lc((unsigned char)s[i]) != lit[i])
			return 0;
	return 1;
}

/* Past the quoted-string starting at v[i] == '"', or 0 when it is not
 * terminated or holds a control byte. */
static size_t
skip_quoted(const char *v, size_t len, size_t i)
{
	unsigned char c;

	for (i++; i < len; i++) {
		c = (unsigned char)v[i];
		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (++i >= len)
				return 0;
			c = (unsigned char)v[i];
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 0;
}

/* Index of the next ',' outside quotes, or len. */
static size_t
skip_element(const char *v, size_t len, size_t i)
{
	size_t q;

	while (i < len && v[i] != ',') {
		if (v[i] == '"') {
			q = skip_quoted(v, len, i);
			if (q == 0)
				return len;
			i = q;
		} else {
			i++;
		}
	}
	return i;
}

/* delta-seconds: 1*DIGIT, clamped; -1 when not that. */
static int64_t
delta(const char *s, size_t len)
{
	int64_t v = 0;
	size_t i;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v < CC_DELTA_MAX)
			v = v * 10 + (s[i] - '0');
	}
	return v > CC_DELTA_MAX ? CC_DELTA_MAX : v;
}

static int
apply(struct cachectl *cc, const char *n, size_t nlen, const char *a, size_t alen,
    int has_arg, int bad)
{
	static const struct { const char *name; unsigned flag; } strict[] = {
		{ "no-store", CC_NO_STORE }, { "no-cache", CC_NO_CACHE },
		{ "private", CC_PRIVATE }, { "must-revalidate", CC_MUST_REVALIDATE },
		{ "proxy-revalidate", CC_PROXY_REVALIDATE },
		{ "only-if-cached", CC_ONLY_IF_CACHED }, { "no-transform", CC_NO_TRANSFORM },
	};
	int64_t d = (has_arg && !bad) ? delta(a, alen) : -1;
	int clean = !has_arg && !bad;
	size_t i;

	for (i = 0; i < sizeof(strict) / sizeof(strict[0]); i++) {
		if (name_is(n, nlen, strict[i].name)) {
			cc->flags |= strict[i].flag;
			return bad;
		}
	}
	if (name_is(n, nlen, "public")) {
		if (clean)
			cc->flags |= CC_PUBLIC;
		return !clean;
	}
	if (name_is(n, nlen, "immutable")) {
		if (clean)
			cc->flags |= CC_IMMUTABLE;
		return !clean;
	}
	if (name_is(n, nlen, "must-understand")) {
		/* it can lift no-store (RFC 9111 5.2.2.3): exact form only */
		if (clean)
			cc->flags |= CC_MUST_UNDERSTAND;
		return !clean;
	}
	if (name_is(n, nlen, "max-age")) {
		if (cc->max_age < 0)
			cc->max_age = d < 0 ? 0 : d;
		return d < 0;
	}
	if (name_is(n, nlen, "s-maxage")) {
		if (cc->s_maxage < 0)
			cc->s_maxage = d < 0 ? 0 : d;
		return d < 0;
	}
	if (name_is(n, nlen, "max-stale")) {
		if (cc->max_stale < 0 && !(cc->flags & CC_MAX_STALE_ANY)) {
			if (clean)
				cc->flags |= CC_MAX_STALE_ANY;
			else if (d >= 0)
				cc->max_stale = d;
		}
		return !clean && d < 0;
	}
	if (name_is(n, nlen, "min-fresh")) {
		if (cc->min_fresh < 0 && d >= 0)
			cc->min_fresh = d;
		return d < 0;
	}
	/* RFC 5861: permissive, so one without a valid number is ignored */
	if (name_is(n, nlen, "stale-while-revalidate")) {
		if (cc->swr < 0 && d >= 0)
			cc->swr = d;
		return d < 0;
	}
	if (name_is(n, nlen, "stale-if-error")) {
		if (cc->sie < 0 && d >= 0)
			cc->sie = d;
		return d < 0;
	}
	return bad;
}

int
cachectl_parse(const char *v, size_t len, struct cachectl *cc)
{
	size_t i = 0, ns, ne, as, ae, q;
	int has_arg, bad, malformed = 0;

	cc->flags |= CC_PRESENT;
	while (i < len) {
		if (v[i] == ',' || is_ows((unsigned char)v[i])) {
			i++;
			continue;
		}
		ns = i;
		while (i < len && hdr_is_tchar((unsigned char)v[i]))
			i++;
		ne = i;
		if (ne == ns) {
			malformed = 1;
			i = skip_element(v, len, i);
			continue;
		}
		has_arg = bad = 0;
		as = ae = i;
		while (i < len && is_ows((unsigned char)v[i]))
			i++;
		if (i < len && v[i] == '=') {
			/* BWS around '=' is tolerated: it is unambiguous */
			has_arg = 1;
			i++;
			while (i < len && is_ows((unsigned char)v[i]))
				i++;
			if (i < len && v[i] == '"') {
				q = skip_quoted(v, len, i);
				if (q == 0) {
					bad = 1;
					i = len;
				} else {
					as = i + 1;
					ae = q - 1;
					i = q;
				}
			} else {
				as = i;
				while (i < len && hdr_is_tchar((unsigned char)v[i]))
					i++;
				ae = i;
			}
			while (i < len && is_ows((unsigned char)v[i]))
				i++;
		}
		if (i < len && v[i] != ',') {
			bad = 1;
			i = skip_element(v, len, i);
		}
		if (apply(cc, v + ns, ne - ns, v + as, ae - as, has_arg, bad))
			malformed = 1;
	}
	return malformed ? CC_MALFORMED : 0;
}

/* ---- HTTP dates ---- */

static const char *const day_short[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const day_long[7] = { "Sunday", "Monday", "Tuesday", "Wednesday",
	"Thursday", "Friday", "Saturday" };
static const char *const month_name[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static int
digits(const char *s, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* RFC 9111 4.2: "a cache recipient SHOULD match the field value
 * case-insensitively", although the formats are case-sensitive. */
static int
ci_eq(const char *s, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lc((unsigned char)s[i]) != lc((unsigned char)lit[i]))
			return 0;
	return 1;
}

static int
month_of(const char *s)
{
	int m;

	for (m = 0; m < 12; m++)
		if (ci_eq(s, month_name[m], 3))
			return m + 1;
	return -1;
}

static int
short_day(const char *s)
{
	int d;

	for (d = 0; d < 7; d++)
		if (ci_eq(s, day_short[d], 3))
			return 1;
	return 0;
}

static int
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
mdays(int y, int m)
{
	static const int d[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* Days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* "HH:MM:SS" */
static int
hms(const char *s, int *h, int *mi, int *sec)
{
	if (s[2] != ':' || s[5] != ':')
		return -1;
	*h = digits(s, 2);
	*mi = digits(s + 3, 2);
	*sec = digits(s + 6, 2);
	if (*h < 0 || *h > 23 || *mi < 0 || *mi > 59 || *sec < 0 || *sec > 60)
		return -1;
	return 0;
}

static int
make_time(int y, int m, int d, int h, int mi, int sec, int64_t *t)
{
	if (y < 0 || m < 1 || d < 1 || d > mdays(y, m))
		return -1;
	*t = days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + sec;
	return 0;
}

int
http_date_parse(const char *s, size_t len, int64_t *t)
{
	int y, m, d, h, mi, sec, i;
	size_t dl;

	while (len && is_ows((unsigned char)s[0])) {
		s++;
		len--;
	}
	while (len && is_ows((unsigned char)s[len - 1]))
		len--;

	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	if (len == 29 && s[3] == ',') {
		if (!short_day(s) || memcmp(s + 3, ", ", 2) != 0 || s[7] != ' ' ||
		    s[11] != ' ' || s[16] != ' ' || !ci_eq(s + 25, " GMT", 4))
			return -1;
		d = digits(s + 5, 2);
		m = month_of(s + 8);
		y = digits(s + 12, 4);
		if (d < 0 || m < 0 || y < 0 || hms(s + 17, &h, &mi, &sec) < 0)
			return -1;
		return make_time(y, m, d, h, mi, sec, t);
	}
	/* asctime: "Sun Nov  6 08:49:37 1994" */
	if (len == 24 && s[3] == ' ') {
		if (!short_day(s) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ')
			return -1;
		m = month_of(s + 4);
		d = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2);
		y = digits(s + 20, 4);
		if (m < 0 || d < 0 || y < 0 || hms(s + 11, &h, &mi, &sec) < 0)
			return -1;
		return make_time(y, m, d, h, mi, sec, t);
	}
	/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
	for (i = 0; i < 7; i++) {
		dl = strlen(day_long[i]);
		if (len == dl + 24 && ci_eq(s, day_long[i], dl))
			break;
	}
	if (i == 7)
		return -1;
	s += dl;
	if (memcmp(s, ", ", 2) != 0 || s[4] != '-' || s[8] != '-' || s[11] != ' ' ||
	    !ci_eq(s + 20, " GMT", 4))
		return -1;
	d = digits(s + 2, 2);
	m = month_of(s + 5);
	y = digits(s + 9, 2);
	if (d < 0 || m < 0 || y < 0 || hms(s + 12, &h, &mi, &sec) < 0)
		return -1;
	y += y < 70 ? 2000 : 1900;
	return make_time(y, m, d, h, mi, sec, t);
}

int
http_date_format(int64_t t, char out[30])
{
	/* 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z */
	static const int64_t lo = -62167219200LL, hi = 253402300800LL;
	int64_t days, secs, y;
	int m, d, wd;

	if (t < lo || t >= hi)
		return -1;
	days = t / 86400;
	secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	wd = (int)(((days % 7) + 11) % 7);	/* 1970-01-01 was a Thursday (4) */
	memcpy(out, day_short[wd], 3);
	memcpy(out + 3, ", ", 2);
	out[5] = (char)('0' + d / 10);
	out[6] = (char)('0' + d % 10);
	out[7] = ' ';
	memcpy(out + 8, month_name[m - 1], 3);
	out[11] = ' ';
	out[12] = (char)('0' + y / 1000);
	out[13] = (char)('0' + y / 100 % 10);
	out[14] = (char)('0' + y / 10 % 10);
	out[15] = (char)('0' + y % 10);
	out[16] = ' ';
	out[17] = (char)('0' + secs / 36000);
	out[18] = (char)('0' + secs / 3600 % 10);
	out[19] = ':';
	out[20] = (char)('0' + secs % 3600 / 600);
	out[21] = (char)('0' + secs % 3600 / 60 % 10);
	out[22] = ':';
	out[23] = (char)('0' + secs % 60 / 10);
	out[24] = (char)('0' + secs % 10);
	memcpy(out + 25, " GMT", 5);	/* with the NUL */
	return 0;
}

/* ---- entity-tags ---- */

/* One entity-tag at s[0..len): bytes consumed and the opaque-tag (with its
 * quotes), or 0 when there is none. */
static size_t
etag_scan(const char *s, size_t len, const char **op, size_t *oplen)
{
	size_t i = 0, st;
	unsigned char c;

	if (len >= 2 && s[0] == 'W' && s[1] == '/')
		i = 2;
	if (i >= len || s[i] != '"')
		return 0;
	st = i;
	for (i++; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '"') {
			*op = s + st;
			*oplen = i + 1 - st;
			return i + 1;
		}
		if (c < 0x21 || c == 0x7f)
			return 0;
	}
	return 0;
}

static void
trim(const char **s, size_t *len)
{
	while (*len && is_ows((unsigned char)(*s)[0])) {
		(*s)++;
		(*len)--;
	}
	while (*len && is_ows((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

/* The opaque-tag of a whole field value that is exactly one entity-tag. */
static int
etag_whole(const char *s, size_t len, const char **op, size_t *oplen)
{
	trim(&s, &len);
	return len > 0 && etag_scan(s, len, op, oplen) == len ? 0 : -1;
}

int
etag_weak_match(const char *a, size_t alen, const char *b, size_t blen)
{
	const char *oa, *ob;
	size_t la, lb;

	if (etag_whole(a, alen, &oa, &la) < 0 || etag_whole(b, blen, &ob, &lb) < 0)
		return 0;
	return la == lb && memcmp(oa, ob, la) == 0;
}

int
if_none_match(const char *hdr, size_t len, const char *etag, size_t elen)
{
	const char *oe, *op;
	size_t le, lp, i = 0, n;
	int match = 0, any = 0;

	trim(&hdr, &len);
	if (len == 1 && hdr[0] == '*')
		return 1;
	if (etag_whole(etag, elen, &oe, &le) < 0)
		return 0;
	/* The whole list is validated before answering: a header that is not
	 * a list of entity-tags is ignored, not half-honoured. */
	while (i < len) {
		if (hdr[i] == ',' || is_ows((unsigned char)hdr[i])) {
			i++;
			continue;
		}
		n = etag_scan(hdr + i, len - i, &op, &lp);
		if (n == 0)
			return 0;
		any = 1;
		if (lp == le && memcmp(op, oe, le) == 0)
			match = 1;
		i += n;
		while (i < len && is_ows((unsigned char)hdr[i]))
			i++;
		if (i < len && hdr[i] != ',')
			return 0;
	}
	return any && match;
}

/* ---- targeted fields (RFC 9213): a Structured Fields Dictionary ---- */

/* One parsed member value: what a cache directive can be mapped to. */
enum sf_type { SF_BOOL, SF_INT, SF_OTHER };

struct sf_val {
	enum sf_type type;
	int64_t i;		/* SF_BOOL: 0 or 1; SF_INT: the integer */
};

struct sf_cur {
	const char *s;
	size_t len, i;
};

static int
sf_peek(const struct sf_cur *c)
{
	return c->i < c->len ? (unsigned char)c->s[c->i] : -1;
}

static int
sf_lcalpha(int c)
{
	return c >= 'a' && c <= 'z';
}

static int
sf_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
sf_alpha(int c)
{
	return sf_lcalpha(c) || (c >= 'A' && c <= 'Z');
}

static void
sf_sp(struct sf_cur *c)
{
	while (sf_peek(c) == ' ')
		c->i++;
}

static void
sf_ows(struct sf_cur *c)
{
	while (sf_peek(c) == ' ' || sf_peek(c) == '\t')
		c->i++;
}

/* key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ) */
static int
sf_key(struct sf_cur *c, const char **k, size_t *klen)
{
	size_t st = c->i;
	int ch = sf_peek(c);

	if (!sf_lcalpha(ch) && ch != '*')
		return -1;
	while ((ch = sf_peek(c)) != -1 && (sf_lcalpha(ch) || sf_digit(ch) || ch == '_' ||
	    ch == '-' || ch == '.' || ch == '*'))
		c->i++;
	*k = c->s + st;
	*klen = c->i - st;
	return 0;
}

/* sf-integer / sf-decimal (RFC 8941 4.2.4); integers clamp at CC_DELTA_MAX. */
static int
sf_number(struct sf_cur *c, struct sf_val *v)
{
	int neg = 0, dec = 0;
	size_t nd = 0, fd = 0;
	int64_t n = 0;

	if (sf_peek(c) == '-') {
		neg = 1;
		c->i++;
	}
	if (!sf_digit(sf_peek(c)))
		return -1;
	for (;;) {
		int ch = sf_peek(c);

		if (sf_digit(ch)) {
			if (dec) {
				fd++;
			} else {
				nd++;
				if (n < CC_DELTA_MAX)
					n = n * 10 + (ch - '0');
			}
			c->i++;
		} else if (ch == '.' && !dec) {
			if (nd > 12)
				return -1;
			dec = 1;
			c->i++;
		} else {
			break;
		}
		if ((!dec && nd > 15) || (dec && fd > 3))
			return -1;
	}
	if (dec && fd == 0)
		return -1;
	v->type = dec || neg ? SF_OTHER : SF_INT;	/* negative: no directive takes one */
	v->i = n > CC_DELTA_MAX ? CC_DELTA_MAX : n;
	return 0;
}

/* bare-item (RFC 8941 4.2.3.1) */
static int
sf_bare(struct sf_cur *c, struct sf_val *v)
{
	int ch = sf_peek(c);

	v->type = SF_OTHER;
	v->i = 0;
	if (ch == '-' || sf_digit(ch))
		return sf_number(c, v);
	if (ch == '"') {
		for (c->i++; (ch = sf_peek(c)) != -1; c->i++) {
			if (ch == '"') {
				c->i++;
				return 0;
			}
			if (ch == '\\') {
				c->i++;
				ch = sf_peek(c);
				if (ch != '"' && ch != '\\')
					return -1;
			} else if (ch < 0x20 || ch > 0x7e) {
				return -1;
			}
		}
		return -1;
	}
	if (sf_alpha(ch) || ch == '*') {
		while ((ch = sf_peek(c)) != -1 && (hdr_is_tchar(ch) || ch == ':' || ch == '/'))
			c->i++;
		return 0;
	}
	if (ch == ':') {
		for (c->i++; (ch = sf_peek(c)) != -1; c->i++) {
			if (ch == ':') {
				c->i++;
				return 0;
			}
			if (!sf_alpha(ch) && !sf_digit(ch) && ch != '+' && ch != '/' && ch != '=')
				return -1;
		}
		return -1;
	}
	if (ch == '?') {
		c->i++;
		ch = sf_peek(c);
		if (ch != '0' && ch != '1')
			return -1;
		c->i++;
		v->type = SF_BOOL;
		v->i = ch == '1';
		return 0;
	}
	return -1;
}

/* parameters (RFC 8941 4.2.3.2): parsed for syntax, their values unused. */
static int
sf_params(struct sf_cur *c)
{
	struct sf_val v;
	const char *k;
	size_t kl;

	while (sf_peek(c) == ';') {
		c->i++;
		sf_sp(c);
		if (sf_key(c, &k, &kl) < 0)
			return -1;
		if (sf_peek(c) == '=') {
			c->i++;
			if (sf_bare(c, &v) < 0)
				return -1;
		}
	}
	return 0;
}

/* sf-item or inner-list */
static int
sf_member(struct sf_cur *c, struct sf_val *v)
{
	struct sf_val item;

	if (sf_peek(c) != '(') {
		if (sf_bare(c, v) < 0)
			return -1;
		return sf_params(c);
	}
	c->i++;
	v->type = SF_OTHER;
	v->i = 0;
	for (;;) {
		int ch;

		sf_sp(c);
		if (sf_peek(c) == ')') {
			c->i++;
			return sf_params(c);
		}
		if (sf_bare(c, &item) < 0 || sf_params(c) < 0)
			return -1;
		ch = sf_peek(c);
		if (ch != ' ' && ch != ')')
			return -1;
	}
}

/* Apply one dictionary member as a cache directive. Later members win, as
 * in a Dictionary; a value of the wrong type leans as cachectl_parse()
 * does (max-age not an integer: 0; a restrictive flag with any value but
 * ?0 counts; public, immutable and must-understand only as ?1). */
static void
sf_apply(struct cachectl *cc, const char *k, size_t kl, const struct sf_val *v)
{
	static const struct { const char *name; unsigned flag; int strict; } fl[] = {
		{ "no-store", CC_NO_STORE, 1 }, { "no-cache", CC_NO_CACHE, 1 },
		{ "private", CC_PRIVATE, 1 }, { "must-revalidate", CC_MUST_REVALIDATE, 1 },
		{ "proxy-revalidate", CC_PROXY_REVALIDATE, 1 },
		{ "no-transform", CC_NO_TRANSFORM, 1 }, { "public", CC_PUBLIC, 0 },
		{ "immutable", CC_IMMUTABLE, 0 }, { "must-understand", CC_MUST_UNDERSTAND, 0 },
	};
	int on;

	if (name_is(k, kl, "max-age")) {
		cc->max_age = v->type == SF_INT ? v->i : 0;
		return;
	}
	if (name_is(k, kl, "s-maxage")) {
		cc->s_maxage = v->type == SF_INT ? v->i : 0;
		return;
	}
	for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++) {
		if (!name_is(k, kl, fl[i].name))
			continue;
		if (v->type == SF_BOOL)
			on = v->i != 0;
		else
			on = fl[i].strict;
		if (on)
			cc->flags |= fl[i].flag;
		else
			cc->flags &= ~fl[i].flag;
		return;
	}
}

int
cachectl_parse_targeted(const char *v, size_t len, struct cachectl *cc)
{
	struct sf_cur c = { v, len, 0 };
	struct cachectl t = *cc;

	/* RFC 8941 4.2: leading and trailing SP are discarded; an empty
	 * field is one RFC 9213 2.1 ignores too. */
	sf_sp(&c);
	while (c.len > c.i && c.s[c.len - 1] == ' ')
		c.len--;
	if (c.i == c.len)
		return -1;
	for (;;) {
		struct sf_val val = { SF_BOOL, 1 };
		const char *k;
		size_t kl;

		if (sf_key(&c, &k, &kl) < 0)
			return -1;
		if (sf_peek(&c) == '=') {
			c.i++;
			if (sf_member(&c, &val) < 0)
				return -1;
		} else if (sf_params(&c) < 0) {
			return -1;
		}
		sf_apply(&t, k, kl, &val);
		sf_ows(&c);
		if (c.i == c.len)
			break;
		if (sf_peek(&c) != ',')
			return -1;
		c.i++;
		sf_ows(&c);
		if (c.i == c.len)
			return -1;	/* a trailing comma */
	}
	t.flags |= CC_PRESENT;
	*cc = t;
	return 0;
}

/* ---- Range (RFC 9110 14.2) ---- */

/* 1*DIGIT at s[*i..len), clamped at HTTP_RANGE_MAX; -1 when there is none. */
static int64_t
range_num(const char *s, size_t len, size_t *i)
{
	int64_t v = 0;
	size_t st = *i;

	while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
		v = v <= (HTTP_RANGE_MAX - 9) / 10 ? v * 10 + (s[*i] - '0') : HTTP_RANGE_MAX;
		(*i)++;
	}
	if (*i == st)
		return -1;
	return v > HTTP_RANGE_MAX ? HTTP_RANGE_MAX : v;
}

int
http_range_parse(const char *s, size_t len, int64_t *first, int64_t *last)
{
	size_t i = 0;
	int64_t a = -1, b = -1;

	trim(&s, &len);
	if (len < 6 || !ci_eq(s, "bytes=", 6))
		return -1;
	i = 6;
	while (i < len && (is_ows((unsigned char)s[i]) || s[i] == ','))
		i++;	/* empty list elements are allowed (RFC 9110 5.6.1.2) */
	if (i < len && s[i] == '-') {
		i++;
		if ((b = range_num(s, len, &i)) < 0)
			return -1;
	} else {
		if ((a = range_num(s, len, &i)) < 0 || i >= len || s[i] != '-')
			return -1;
		i++;
		if (i < len && s[i] >= '0' && s[i] <= '9') {
			b = range_num(s, len, &i);
			if (b < a)
				return -1;	/* an invalid int-range */
		}
	}
	while (i < len && (is_ows((unsigned char)s[i]) || s[i] == ','))
		i++;
	if (i != len)
		return -1;	/* another range, or junk: not one we serve */
	*first = a;
	*last = b;
	return 0;
}

int
http_range_resolve(int64_t first, int64_t last, int64_t size, int64_t *off, int64_t *n)
{
	if (size <= 0)
		return 0;
	if (first < 0) {
		/* suffix-range: the last `last` bytes */
		if (last <= 0)
			return 0;
		*off = last >= size ? 0 : size - last;
		*n = size - *off;
		return 1;
	}
	if (first >= size)
		return 0;
	*off = first;
	*n = (last < 0 || last >= size ? size - 1 : last) - first + 1;
	return 1;
}
