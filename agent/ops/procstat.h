/*
 * procstat.h - what Prometheus's standard process collector reports about
 * a process, read from Linux's /proc/self (CPU time, memory, file
 * descriptors), for /metrics. The parser is pure over (buf, len); only
 * procstat_self() does I/O, and it is not on any request path (admin.c
 * calls it once per scrape).
 */
#ifndef SC_PROCSTAT_H
#define SC_PROCSTAT_H

#include <stddef.h>
#include <stdint.h>

struct procstat {
	uint64_t cpu_ticks;		/* utime + stime, in clock ticks */
	uint64_t vsize_bytes;
	uint64_t rss_pages;
	/* procstat_self() only */
	double cpu_seconds;		/* cpu_ticks / sysconf(_SC_CLK_TCK) */
	uint64_t rss_bytes;		/* rss_pages * the page size */
	long open_fds;			/* -1 when /proc/self/fd cannot be read */
	long max_fds;			/* RLIMIT_NOFILE's soft limit; -1: unlimited or unknown */
};

/* Parse the one line of /proc/PID/stat in buf[0..len): 0, or -1 when it
 * is not one. The command name (field 2) may hold spaces and parentheses:
 * the fields are counted from its last ')'. A line cut before the space
 * after rss (field 24) is refused. Sets cpu_ticks, vsize_bytes and
 * rss_pages only. */
int procstat_parse(const char *buf, size_t len, struct procstat *out);

/* The calling process's: 0, or -1 when /proc/self/stat cannot be read or
 * parsed (open_fds and max_fds may still be -1 on success). */
int procstat_self(struct procstat *out);

#endif
