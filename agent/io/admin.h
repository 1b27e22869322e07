/*
 * admin.h - the agent's local admin and metrics endpoint (evhttp, on the
 * main thread, with its own memcached pool so it never touches a worker's):
 *   GET /healthz, GET /metrics (Prometheus text),
 *   GET /cache/KEY, DELETE /cache/KEY, DELETE /cache (flush every shard).
 * An optional bearer token guards everything but /healthz.
 */
#ifndef SC_ADMIN_H
#define SC_ADMIN_H

#include <stddef.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"

struct admin;
struct worker;

/* NULL with err set on failure, or NULL with err empty when disabled
 * (agent.admin.listen = ""). */
struct admin *admin_new(struct event_base *base, const struct sc_config *cf, SSL_CTX *tls,
    struct worker *workers, int nworkers, char *err, size_t errlen);
void admin_reload(struct admin *a, const struct sc_config *cf);
void admin_free(struct admin *a);

#endif
