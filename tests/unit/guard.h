/*
 * guard.h - picohttpparser's trick for the unit tests: a copy of an input
 * whose last byte sits just before a PROT_NONE page, so a parser that reads
 * one byte too far crashes instead of passing.
 */
#ifndef SC_GUARD_H
#define SC_GUARD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct guard {
	void *map;
	size_t maplen;
};

/* The copy of data[0..n) (n zero bytes when data is NULL); its end is the
 * first guarded byte. */
static inline void *
guard_put(struct guard *g, const void *data, size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t pages = (n + pg - 1) / pg + 1;
	uint8_t *p;

	g->maplen = (pages + 1) * pg;
	g->map = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->map == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	if (mprotect((uint8_t *)g->map + pages * pg, pg, PROT_NONE) != 0) {
		perror("mprotect");
		exit(2);
	}
	p = (uint8_t *)g->map + pages * pg - n;
	if (n && data)
		memcpy(p, data, n);
	return p;
}

static inline void
guard_free(struct guard *g)
{
	munmap(g->map, g->maplen);
	g->map = NULL;
}

#endif
