/*
 * procstat.c - see procstat.h. The field numbers are proc(5)'s:
 * 14 utime, 15 stime, 23 vsize, 24 rss, counting the pid as 1 and the
 * command as 2.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include "procstat.h"

#define STAT_MAX	4096	/* the line is about 300 bytes; the command at most 64 */

/* The unsigned decimal at *p (below end), then the space after it. */
static int
field_u64(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;
	uint64_t n = 0;

	if (s >= end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	*p = s;
	return 0;
}

/* Past one field of any text and the space that ends it. */
static int
skip_field(const char **p, const char *end)
{
	const char *s = *p;

	if (s >= end || *s == ' ')
		return -1;
	while (s < end && *s != ' ' && *s != '\n')
		s++;
	*p = s;
	return 0;
}

int
procstat_parse(const char *buf, size_t len, struct procstat *out)
{
	const char *end = buf + len, *p = NULL;
	uint64_t utime = 0, stime = 0;

	for (const char *s = buf; s < end; s++)
		if (*s == ')')
			p = s;
	if (p == NULL)
		return -1;
	p++;
	/* fields 3 (state) to 24 (rss), each after one space */
	for (int f = 3; f <= 24; f++) {
		uint64_t v;

		if (p >= end || *p != ' ')
			return -1;
		p++;
		if (f == 14 || f == 15 || f == 23 || f == 24) {
			if (field_u64(&p, end, &v) < 0)
				return -1;
			if (f == 14)
				utime = v;
			else if (f == 15)
				stime = v;
			else if (f == 23)
				out->vsize_bytes = v;
			else
				out->rss_pages = v;
		} else if (skip_field(&p, end) < 0) {
			return -1;
		}
	}
	/* rss must be whole: more fields follow it on every kernel */
	if (p >= end || (*p != ' ' && *p != '\n'))
		return -1;
	if (utime > UINT64_MAX - stime)
		return -1;
	out->cpu_ticks = utime + stime;
	return 0;
}

/* Entries of /proc/self/fd but the one reading it; -1 on error. */
static long
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;
	int self;

	if (d == NULL)
		return -1;
	self = dirfd(d);
	while ((e = readdir(d)) != NULL) {
		char *end;
		long fd;

		if (e->d_name[0] == '.')
			continue;
		errno = 0;
		fd = strtol(e->d_name, &end, 10);
		if (errno == 0 && *end == '\0' && fd != self)
			n++;
	}
	closedir(d);
	return n;
}

int
procstat_self(struct procstat *out)
{
	char buf[STAT_MAX];
	struct rlimit rl;
	long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	ssize_t n;
	int fd;

	memset(out, 0, sizeof(*out));
	out->open_fds = count_fds();
	out->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur <= LONG_MAX ? (long)rl.rlim_cur : -1;
	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	do
		n = read(fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0 || procstat_parse(buf, (size_t)n, out) < 0 || tck <= 0 || page <= 0)
		return -1;
	out->cpu_seconds = (double)out->cpu_ticks / (double)tck;
	out->rss_bytes = out->rss_pages * (uint64_t)page;
	return 0;
}
