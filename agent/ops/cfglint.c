/*
 * cfglint.c - see cfglint.h. A small lexer over a configuration's text: it
 * skips strings and comments, follows @include (or refuses it), remembers
 * the setting a value belongs to (for the message), and leaves floats and
 * 64-bit literals (L) alone: those are typed and range-checked after
 * parsing. It reads no file but the ones an accepted @include names.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfglint.h"

static int
is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	    ch == '_' || ch == '-' || ch == '*';
}

/* What lex() checks. */
#define LX_INTS		0x1u	/* integer literals fit in 32 bits (follows @include) */
#define LX_NO_INCLUDE	0x2u	/* an @include is an error */

static int lex(const char *name, const char *t, size_t n, int depth, unsigned what,
    char *err, size_t errlen);

/* Where the lexer is: the groups and lists it is inside, for messages. */
struct lexpath {
	struct { char name[64]; int list, idx; } f[16];
	int depth;		/* frames in use (beyond 16: tracked, not named) */
	char pending[64];	/* "name =" seen, value not yet */
};

/* Dotted path of the value at hand: "memcached.hosts[1].port". */
static void
lexpath_str(const struct lexpath *lp, char *out, size_t cap)
{
	size_t off = 0;
	int d = lp->depth < 16 ? lp->depth : 16;

	out[0] = '\0';
	for (int k = 0; k <= d && off < cap; k++) {
		const char *nm = k < d ? lp->f[k].name : lp->pending;
		int w;

		if (k == d && nm[0] == '\0' && d > 0 && lp->f[d - 1].list)
			w = snprintf(out + off, cap - off, "[%d]", lp->f[d - 1].idx);
		else if (nm[0] == '\0')
			continue;
		else
			w = snprintf(out + off, cap - off, "%s%s", off && nm[0] != '[' ? "." : "", nm);
		if (w < 0)
			break;
		off += (size_t)w;
	}
}

static void
lexpath_open(struct lexpath *lp, int list)
{
	if (lp->depth < 16) {
		char *nm = lp->f[lp->depth].name;

		if (lp->pending[0] != '\0')
			snprintf(nm, sizeof(lp->f[0].name), "%s", lp->pending);
		else if (lp->depth > 0 && lp->f[lp->depth - 1].list)
			snprintf(nm, sizeof(lp->f[0].name), "[%d]", lp->f[lp->depth - 1].idx);
		else
			nm[0] = '\0';
		lp->f[lp->depth].list = list;
		lp->f[lp->depth].idx = 0;
	}
	lp->depth++;
	lp->pending[0] = '\0';
}

static int
check_literal(char *err, size_t errlen, const char *path, int line, const char *name, const char *t, size_t len)
{
	char buf[64];
	const char *d;
	char *end;
	int hex;

	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, t, len);
	buf[len] = '\0';
	d = buf + (buf[0] == '-' || buf[0] == '+');
	hex = d[0] == '0' && (d[1] == 'x' || d[1] == 'X');
	if (buf[len - 1] == 'L' || buf[len - 1] == 'l')
		return 0;
	if (!hex && strpbrk(buf, ".eE") != NULL)
		return 0;
	errno = 0;
	if (hex) {
		unsigned long long v = strtoull(d + 2, &end, 16);

		if (*end == '\0' && errno == 0 && v <= 0x7fffffffULL && d == buf)
			return 0;
	} else {
		long long v = strtoll(buf, &end, 10);

		if (*end != '\0' || (errno == 0 && v >= -2147483648LL && v <= 2147483647LL))
			return 0;	/* not an integer: libconfig's parser said so already */
	}
	snprintf(err, errlen, "%s:%d: %s: %s is out of range (an integer without the L "
	    "suffix must fit in 32 bits)", path, line, name[0] ? name : "(value)", buf);
	return -1;
}

/* Largest file an @include may name: what libconfig would read anyway,
 * bounded so a mistake (an @include of a device) cannot eat memory. */
#define INCLUDE_MAX	(64u << 20)

static int
check_file(const char *path, int depth, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *t = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (f == NULL)
		return 0;	/* libconfig read it; nothing more to say */
	for (;;) {
		size_t got;

		if (n == cap) {
			char *nt = cap < INCLUDE_MAX ? realloc(t, cap ? cap * 2 : 8192) : NULL;

			if (nt == NULL) {
				fclose(f);
				free(t);
				snprintf(err, errlen, "%s: out of memory or too large", path);
				return -1;
			}
			t = nt;
			cap = cap ? cap * 2 : 8192;
		}
		got = fread(t + n, 1, cap - n, f);
		if (got == 0)
			break;
		n += got;
	}
	fclose(f);
	rc = lex(path, t, n, depth, LX_INTS, err, errlen);
	free(t);
	return rc;
}

static int
lex(const char *path, const char *t, size_t n, int depth, unsigned what, char *err, size_t errlen)
{
	char name[256];
	struct lexpath lp;
	size_t i = 0;
	int line = 1, rc = 0;

	memset(&lp, 0, sizeof(lp));
	while (i < n && rc == 0) {
		char ch = t[i];

		if (ch == '\n') {
			line++;
			i++;
		} else if (ch == '#' || (ch == '/' && i + 1 < n && t[i + 1] == '/')) {
			while (i < n && t[i] != '\n')
				i++;
		} else if (ch == '/' && i + 1 < n && t[i + 1] == '*') {
			for (i += 2; i < n && !(t[i] == '*' && i + 1 < n && t[i + 1] == '/'); i++)
				if (t[i] == '\n')
					line++;
			i += 2;
		} else if (ch == '"') {
			for (i++; i < n && t[i] != '"'; i++) {
				if (t[i] == '\\')
					i++;
				else if (t[i] == '\n')
					line++;
			}
			i++;
		} else if (ch == '@' && n - i >= 8 && memcmp(t + i, "@include", 8) == 0) {
			size_t a, b;
			char inc[4096];

			/* libconfig takes "@include" only at the start of a
			 * line; refusing it anywhere outside a string or a
			 * comment refuses at least every one it would follow. */
			if (what & LX_NO_INCLUDE) {
				snprintf(err, errlen, "%s:%d: @include: not allowed in a configuration "
				    "that is not read from a file", path, line);
				return -1;
			}
			if (!(what & LX_INTS)) {
				i += 8;
				continue;
			}
			for (i += 8; i < n && (t[i] == ' ' || t[i] == '\t'); i++)
				;
			if (i >= n || t[i] != '"')
				continue;
			for (a = b = ++i; b < n && t[b] != '"' && t[b] != '\n'; b++)
				;
			i = b + 1;
			if (b - a < sizeof(inc) && depth < 10) {
				memcpy(inc, t + a, b - a);
				inc[b - a] = '\0';
				rc = check_file(inc, depth + 1, err, errlen);
			}
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '*') {
			size_t a = i, j;

			while (i < n && is_name_char(t[i]))
				i++;
			for (j = i; j < n && (t[j] == ' ' || t[j] == '\t'); j++)
				;
			if (j < n && (t[j] == '=' || t[j] == ':') && i - a < sizeof(lp.pending)) {
				memcpy(lp.pending, t + a, i - a);
				lp.pending[i - a] = '\0';
			} else {
				lp.pending[0] = '\0';	/* true, false */
			}
		} else if (ch == '{' || ch == '(' || ch == '[') {
			lexpath_open(&lp, ch != '{');
			i++;
		} else if (ch == '}' || ch == ')' || ch == ']') {
			if (lp.depth > 0)
				lp.depth--;
			lp.pending[0] = '\0';
			i++;
		} else if (ch == ',' || ch == ';') {
			if (ch == ',' && lp.depth > 0 && lp.depth <= 16 && lp.f[lp.depth - 1].list)
				lp.f[lp.depth - 1].idx++;
			lp.pending[0] = '\0';
			i++;
		} else if ((ch >= '0' && ch <= '9') || ((ch == '-' || ch == '+') && i + 1 < n &&
		    t[i + 1] >= '0' && t[i + 1] <= '9')) {
			size_t a = i++;

			while (i < n && (is_name_char(t[i]) || t[i] == '.' ||
			    ((t[i] == '+' || t[i] == '-') && (t[i - 1] == 'e' || t[i - 1] == 'E'))))
				i++;
			if (what & LX_INTS) {
				lexpath_str(&lp, name, sizeof(name));
				rc = check_literal(err, errlen, path, line, name, t + a, i - a);
			}
		} else {
			i++;
		}
	}
	return rc;
}

int
cfglint_int_literals(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
	return lex(name, text, len, 0, LX_INTS, err, errlen);
}

int
cfglint_no_include(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
	return lex(name, text, len, 0, LX_NO_INCLUDE, err, errlen);
}
