/*
 * ketama.c - the weighted ketama ring, computed by libmemcached itself so
 * that placement can never drift from what libmemcached clients do.
 *
 * Must not do I/O: the memcached_st built here is never used to talk to a
 * server (libmemcached blocks and has no TLS; pool.c does the I/O), and
 * memcached_server_add_with_weight() only records the name (checked by the
 * ketama_oracle tool, which counts socket/connect/getaddrinfo calls while
 * rings are built).
 */
#include "ketama.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmemcached/memcached.h>

struct ketama {
	memcached_st *mc;
	size_t n;
	int *ours;	/* libmemcached server position -> index in the config */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

struct ketama *ketama_new(const struct sc_host *hosts, size_t n, char *err, size_t errlen)
{
	struct ketama *k = NULL;
	unsigned char *used = NULL;
	size_t i, j;
	memcached_return_t rc;

	if (hosts == NULL || n == 0 || n > 65536) {
		seterr(err, errlen, "pool: need 1 to 65536 hosts");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		const struct sc_host *h = &hosts[i];
		size_t hl = h->host ? strlen(h->host) : 0;

		if (hl == 0 || hl >= MEMCACHED_NI_MAXHOST) {
			seterr(err, errlen, "pool: host %zu: empty or too long host name", i + 1);
			return NULL;
		}
		if (h->port == 0 || h->weight == 0) {
			seterr(err, errlen, "pool: host %s: port and weight must be at least 1", h->host);
			return NULL;
		}
		for (j = 0; j < i; j++) {
			if (hosts[j].port == h->port && strcmp(hosts[j].host, h->host) == 0) {
				seterr(err, errlen, "pool: host %s:%u listed twice", h->host,
				       (unsigned)h->port);
				return NULL;
			}
		}
	}

	k = calloc(1, sizeof(*k));
	if (k == NULL)
		goto oom;
	k->n = n;
	k->ours = calloc(n, sizeof(*k->ours));
	used = calloc(n, 1);
	if (k->ours == NULL || used == NULL)
		goto oom;
	k->mc = memcached_create(NULL);
	if (k->mc == NULL)
		goto oom;
	rc = memcached_behavior_set(k->mc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
	if (rc != MEMCACHED_SUCCESS) {
		seterr(err, errlen, "pool: libmemcached: %s", memcached_strerror(k->mc, rc));
		goto fail;
	}
	for (i = 0; i < n; i++) {
		rc = memcached_server_add_with_weight(k->mc, hosts[i].host, hosts[i].port,
						      hosts[i].weight);
		if (rc != MEMCACHED_SUCCESS) {
			seterr(err, errlen, "pool: host %s:%u: libmemcached: %s", hosts[i].host,
			       (unsigned)hosts[i].port, memcached_last_error_message(k->mc));
			goto fail;
		}
	}
	if (memcached_server_count(k->mc) != n) {
		seterr(err, errlen, "pool: libmemcached holds %u servers, expected %zu",
		       memcached_server_count(k->mc), n);
		goto fail;
	}
	/*
	 * libmemcached may keep its servers in another order than ours (it
	 * sorts them with MEMCACHED_BEHAVIOR_SORT_HOSTS, and nothing promises
	 * it never will otherwise); the ring hashes names, not positions, so
	 * map back by name and port, which ketama_new() made unique.
	 */
	for (i = 0; i < n; i++) {
		const memcached_instance_st *in =
			memcached_server_instance_by_position(k->mc, (uint32_t)i);
		const char *name = in ? memcached_server_name(in) : NULL;
		in_port_t port = in ? memcached_server_port(in) : 0;

		for (j = 0; j < n; j++)
			if (!used[j] && name && hosts[j].port == port &&
			    strcmp(hosts[j].host, name) == 0)
				break;
		if (j == n) {
			seterr(err, errlen, "pool: libmemcached server %zu (%s) is not in the config",
			       i, name ? name : "?");
			goto fail;
		}
		used[j] = 1;
		k->ours[i] = (int)j;
	}
	free(used);
	return k;
oom:
	seterr(err, errlen, "pool: out of memory building the ketama ring");
fail:
	free(used);
	ketama_free(k);
	return NULL;
}

void ketama_free(struct ketama *k)
{
	if (k == NULL)
		return;
	if (k->mc)
		memcached_free(k->mc);
	k->mc = NULL;
	free(k->ours);
	k->ours = NULL;
	free(k);
}

int ketama_pick(const struct ketama *k, const char *key, size_t klen)
{
	uint32_t pos;

	if (k == NULL || k->mc == NULL)
		return -1;
	pos = memcached_generate_hash(k->mc, key, klen);
	if (pos >= k->n)
		return -1;
	return k->ours[pos];
}

