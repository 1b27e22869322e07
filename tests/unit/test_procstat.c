/*
 * test_procstat.c - procstat_parse() over /proc/PID/stat lines: the
 * fields it reads, a command name with spaces and parentheses, every
 * truncation of a line, and values that overflow. Inputs end at a guard
 * page. procstat.c is in agent/ops (it is no cache codec) but its parser
 * is as pure as one; this test links it alone.
 */
#include "procstat.h"
#include "guard.h"
#include "t.h"

#include <stdint.h>

/* A real line (cat's), utime 7 and stime 5 put in. */
#define LINE "18123 (cat) R 18120 18120 508 0 -1 4194304 97 0 0 0 7 5 0 0 20 0 1 0 " \
	"1447173 3133440 362 18446744073709551615 94371644362752 94371644382633 " \
	"140721049817440 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94371644398640 94371644400256 " \
	"94371726262272 140721049823868 140721049823888 140721049823888 140721049825259 0\n"

static int
parse(const char *s, size_t n, struct procstat *ps)
{
	struct guard g;
	int rc;

	memset(ps, 0, sizeof(*ps));
	rc = procstat_parse(guard_put(&g, s, n), n, ps);
	guard_free(&g);
	return rc;
}

static void
test_fields(void)
{
	struct procstat ps;

	CHECK(parse(LINE, strlen(LINE), &ps) == 0);
	CHECK(ps.cpu_ticks == 12);
	CHECK(ps.vsize_bytes == 3133440);
	CHECK(ps.rss_pages == 362);
}

static void
test_command_with_parentheses(void)
{
	static const char l[] = "42 (a) b) (c d) S 1 1 1 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 9 "
	    "8192 2 18446744073709551615 0\n";
	struct procstat ps;

	CHECK(parse(l, sizeof(l) - 1, &ps) == 0);
	CHECK(ps.cpu_ticks == 7);
	CHECK(ps.vsize_bytes == 8192);
	CHECK(ps.rss_pages == 2);
}

/* Cut anywhere before the space after rss, a line is refused, and never
 * read past its end. */
static void
test_truncated(void)
{
	const char *rss = strstr(LINE, " 362 ");
	size_t need = (size_t)(rss - LINE) + 5;
	struct procstat ps;

	for (size_t n = 0; n < need; n++)
		CHECK(parse(LINE, n, &ps) == -1);
	CHECK(parse(LINE, need, &ps) == 0);
	CHECK(ps.rss_pages == 362);
}

static void
test_refused(void)
{
	static const char *const bad[] = {
		"1 cat R 1 1 1 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 9 8192 2 0\n",	/* no ')' */
		"1 (cat) R 1 1 1 0 -1 0 0 0 0 0 x 4 0 0 20 0 1 0 9 8192 2 0\n",	/* utime */
		"1 (cat) R 1 1 1 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 9 -1 2 0\n",	/* vsize */
		"1 (cat) R 1 1 1 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 9 8192 2x 0\n",	/* rss */
		"1 (cat) R 1 1 1 0 -1 0 0 0 0 0 3  4 0 0 20 0 1 0 9 8192 2 0\n",	/* two spaces */
		"1 (cat) R 1 1 1 0 -1 0 0 0 0 0 18446744073709551616 4 0 0 20 0 1 0 9 8192 2 0\n",
		"1 (cat) R 1 1 1 0 -1 0 0 0 0 0 18446744073709551615 1 0 0 20 0 1 0 9 8192 2 0\n",
	};
	struct procstat ps;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(parse(bad[i], strlen(bad[i]), &ps) == -1);
}

static void
test_self(void)
{
	struct procstat ps;

	CHECK(procstat_self(&ps) == 0);
	CHECK(ps.rss_bytes > 0 && ps.vsize_bytes >= ps.rss_bytes);
	CHECK(ps.open_fds >= 3);	/* stdin, stdout, stderr */
	CHECK(ps.max_fds == -1 || ps.max_fds >= ps.open_fds);
	CHECK(ps.cpu_seconds >= 0);
}

int
main(void)
{
	RUN(test_fields);
	RUN(test_command_with_parentheses);
	RUN(test_truncated);
	RUN(test_refused);
	RUN(test_self);
	return T_EXIT();
}
