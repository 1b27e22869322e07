/*
 * ketama.h - which shard a key lives on: libmemcached's weighted ketama ring
 * (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED) over the configured hosts, so a key
 * lands where every libmemcached client with the same host list puts it.
 *
 * Placement only: it never connects, never resolves a name (libmemcached
 * hashes the host string as written, "host:port", or just "host" for port
 * 11211), and never moves a key to another shard when one is down.
 */
#ifndef SC_KETAMA_H
#define SC_KETAMA_H

#include <stddef.h>

#include <stdint.h>

/* One memcached server as configured (config.c fills these). */
struct sc_host {
	char *host;		/* name or address, as written */
	uint16_t port;		/* default 11211 */
	uint32_t weight;	/* default 100 */
	int line;		/* config line, for messages */
};

/*
 * A built ring. After ketama_new() returns nothing in it is written again:
 * ketama_pick() only calls libmemcached's const memcached_generate_hash(),
 * which (libmemcached 1.x, consistent distribution, auto-eject off as here)
 * is an MD5 of the key and a binary search over the continuum, with no write
 * to the memcached_st. One ring may therefore be read by several threads at
 * once; the pool still builds one per pool (so one per thread) and shares
 * nothing. ketama_free() must not race with ketama_pick().
 */
struct ketama;

/*
 * Build the ring for hosts[0..n) in config order. Refuses (NULL, message in
 * err) an empty list, an empty or over-long host name, port 0, weight 0
 * (libmemcached would silently read 0 as 1), and the same host string and
 * port listed twice (both would hash to the same ring points, so the two
 * shards could not be told apart).
 */
struct ketama *ketama_new(const struct sc_host *hosts, size_t n, char *err, size_t errlen);
void ketama_free(struct ketama *k);

/* Index into the hosts array given to ketama_new() (not libmemcached's own
 * server order, which may differ), or -1 for a NULL ring. Any bytes are
 * hashed; whether a key is sendable is mc_key_valid()'s business. */
int ketama_pick(const struct ketama *k, const char *key, size_t klen);

#endif
