/*
 * log.c - see log.h. One formatted line per call, written with a single
 * write(2) so lines from several threads never interleave.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static atomic_int cur_level = LOG_NOTICE;
static int to_syslog;
static int to_journal;
static const char *log_ident = "spoe-cache";

static const char *const level_names[] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"
};

/* systemd connects stderr to the journal and says so in JOURNAL_STREAM
 * ("device:inode" of that stream): then each line carries its priority as
 * a "<N>" prefix and no timestamp, ident or pid (the journal adds them). */
static int
stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
log_init(const char *ident, int level, int use_syslog)
{
	log_ident = ident;
	atomic_store(&cur_level, level);
	to_syslog = use_syslog;
	to_journal = !use_syslog && stderr_is_journal();
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(int level)
{
	atomic_store(&cur_level, level);
}

int
log_level(void)
{
	return atomic_load_explicit(&cur_level, memory_order_relaxed);
}

int
log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(name, "error") == 0)
		return LOG_ERR;
	if (strcasecmp(name, "warn") == 0)
		return LOG_WARNING;
	return -1;
}

void
log_msg(int level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	if (level > log_level())
		return;
	va_start(ap, fmt);
	if (to_syslog) {
		vsyslog(level, fmt, ap);
		va_end(ap);
		return;
	}
	if (to_journal) {
		n = snprintf(line, sizeof(line), "<%d>", level & 7);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_ident,
		    (int)getpid(), level_names[level & 7]);
	}
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	{
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
		if (m < 0)
			m = 0;
		n += m;
		if ((size_t)n > sizeof(line) - 2)
			n = (int)sizeof(line) - 2;
	}
	va_end(ap);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

int
log_ratelimit(atomic_llong *slot, int sec)
{
	long long now = (long long)time(NULL), prev = atomic_load_explicit(slot, memory_order_relaxed);

	if (prev != 0 && now - prev < sec)
		return 0;
	return atomic_compare_exchange_strong(slot, &prev, now);
}
