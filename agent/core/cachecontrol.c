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

static int
month_of(const char *s)
{
	int m;

	for (m = 0; m < 12; m++)
		if (memcmp(s, month_name[m], 3) == 0)
			return m + 1;
	return -1;
}

static int
short_day(const char *s)
{
	int d;

	for (d = 0; d < 7; d++)
		if (memcmp(s, day_short[d], 3) == 0)
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
		    s[11] != ' ' || s[16] != ' ' || memcmp(s + 25, " GMT", 4) != 0)
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
		if (len == dl + 24 && memcmp(s, day_long[i], dl) == 0)
			break;
	}
	if (i == 7)
		return -1;
	s += dl;
	if (memcmp(s, ", ", 2) != 0 || s[4] != '-' || s[8] != '-' || s[11] != ' ' ||
	    memcmp(s + 20, " GMT", 4) != 0)
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
