/*
 * pool_bench.c - lookups per second of one struct pool on one event loop
 * (one agent worker thread), against real memcached shards: keeps DEPTH
 * gets in flight for SECONDS, over KEYS keys stored first.
 *
 *   pool_bench SECONDS DEPTH KEYS VALUE_SIZE host:port...
 *
 * Prints "lookups N seconds S rate R hits H errors E". A benchmark tool:
 * it talks only to the hosts it is given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "pool.h"

static struct pool *pool;
static struct event_base *base;
static unsigned long long done_n, hits, errors;
static int nkeys, stopping, inflight;
static double t_end;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void issue(void);

static void
on_get(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	(void)arg;
	(void)val;
	(void)vlen;
	inflight--;
	done_n++;
	if (st == MC_OK)
		hits++;
	else if (st != MC_NOTFOUND)
		errors++;
	if ((done_n & 1023) == 0 && now() >= t_end)
		stopping = 1;
	if (!stopping)
		issue();
	else if (inflight == 0)
		event_base_loopexit(base, NULL);
}

static void
issue(void)
{
	char key[32];
	int n = snprintf(key, sizeof(key), "bench-%d", rand() % nkeys);

	if (pool_get(pool, key, (size_t)n, on_get, NULL) == 0)
		inflight++;
}

static int stored;
static void
on_set(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	(void)arg;
	(void)val;
	(void)vlen;
	if (st != MC_OK)
		errors++;
	if (++stored == nkeys)
		event_base_loopexit(base, NULL);
}

int
main(int argc, char **argv)
{
	struct sc_pool_conf conf;
	char err[256];
	double seconds, t0;
	int depth, vsize;
	char *val;

	if (argc < 6) {
		fprintf(stderr, "usage: pool_bench SECONDS DEPTH KEYS VALUE_SIZE host:port...\n");
		return 2;
	}
	seconds = atof(argv[1]);
	depth = atoi(argv[2]);
	nkeys = atoi(argv[3]);
	vsize = atoi(argv[4]);
	memset(&conf, 0, sizeof(conf));
	conf.nhosts = (size_t)(argc - 5);
	conf.hosts = calloc(conf.nhosts, sizeof(struct sc_host));
	for (size_t i = 0; i < conf.nhosts; i++) {
		char *h = argv[5 + i], *c = strrchr(h, ':');

		*c = '\0';
		conf.hosts[i].host = h;
		conf.hosts[i].port = (uint16_t)atoi(c + 1);
		conf.hosts[i].weight = 100;
	}
	conf.timeout_ms = 2000;
	conf.keepalive_timeout_ms = 60000;
	conf.keepalive_pool_size = 2;
	conf.fail_threshold = 2;
	conf.retry_interval_ms = 1000;
	conf.max_item_size = 1 << 20;
	log_init("pool_bench", LOG_ERR, 0);
	base = event_base_new();
	pool = pool_new(base, &conf, NULL, err, sizeof(err));
	if (pool == NULL) {
		fprintf(stderr, "pool_bench: %s\n", err);
		return 1;
	}
	val = malloc((size_t)vsize + 1);
	memset(val, 'v', (size_t)vsize);
	for (int i = 0; i < nkeys; i++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "bench-%d", i);

		pool_set(pool, key, (size_t)n, val, (size_t)vsize, 600, on_set, NULL);
	}
	event_base_dispatch(base);
	t0 = now();
	t_end = t0 + seconds;
	for (int i = 0; i < depth; i++)
		issue();
	event_base_dispatch(base);
	seconds = now() - t0;
	printf("lookups %llu seconds %.2f rate %.0f hits %llu errors %llu\n", done_n, seconds,
	    (double)done_n / seconds, hits, errors);
	pool_free(pool);
	event_base_free(base);
	free(val);
	free(conf.hosts);
	return errors ? 1 : 0;
}
