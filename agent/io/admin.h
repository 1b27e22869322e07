/*
 * admin.h - the agent's local admin and metrics endpoint (evhttp, on the
 * main thread, with its own memcached pool so it never touches a worker's):
 *   GET /healthz, GET /metrics (Prometheus text: the counters, build info,
 *   the standard process_* metrics, the configuration generation every
 *   thread has taken (spoe_cache_config_generation) and how reloads went),
 *   GET /cache/KEY, DELETE /cache/KEY, DELETE /cache (flush every shard),
 *   GET /l1/feed?since=N (the L1 copies HAProxy must stop answering,
 *   cacheio.h's struct l1feed).
 * An optional bearer token guards everything but /healthz (config.c requires
 * one off loopback). Request sizes, the time a request may take to arrive
 * and the connections open are bounded (admin.c).
 */
#ifndef SC_ADMIN_H
#define SC_ADMIN_H

#include <stddef.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"

struct admin;
struct generation;
struct l1feed;
struct metrics;
struct proc_metrics;
struct worker;

/* NULL with err set on failure, or NULL with err empty when disabled
 * (agent.admin.listen = ""). g (see worker.h) is borrowed, like every
 * generation given to admin_reload(): agent.c frees one only once
 * admin_taken() has passed it. accept_m, pm and feed are the main
 * thread's, borrowed for as long as the endpoint lives. */
struct admin *admin_new(struct event_base *base, const struct generation *g, SSL_CTX *tls,
    struct worker *workers, int nworkers, const struct metrics *accept_m,
    const struct proc_metrics *pm, struct l1feed *feed, char *err, size_t errlen);
/* Take g, the agent's newest generation (the older ones it still holds
 * hang from g->older, for /metrics). 0, or -1 when the admin endpoint
 * could not build its pool and keeps its older generation. */
int admin_reload(struct admin *a, const struct generation *g);
/* The generation the endpoint uses; ULONG_MAX when a is NULL (disabled),
 * so that it never holds one back. */
unsigned long admin_taken(const struct admin *a);
void admin_free(struct admin *a);

#endif
