/*
 * ketama_oracle.c - proves that ketama.c places keys where libmemcached
 * clients do (used by tests/wire/test_pool.py).
 *
 *   ketama_oracle ring [NKEYS]
 *	In-process, no network: rings with a host on port 11211 (which
 *	libmemcached names "host-N" instead of "host:port-N" on the ring),
 *	names, odd weights. ketama_pick() is compared with (a) a separate
 *	libmemcached instance built in reverse order with SORT_HOSTS, mapped
 *	back by name, and (b) a from-scratch weighted ketama written here from
 *	libmemcached's algorithm with OpenSSL MD5. Also counts socket(),
 *	connect() and getaddrinfo() calls while rings are built (must be 0).
 *	Prints "ring NAME: libmemcached A/N reference B/N" per ring.
 *
 *   ketama_oracle live NKEYS host:port:weight...
 *	Stores NKEYS keys through libmemcached's own I/O (weighted ketama,
 *	buffered noreply sets), then asks every shard for every key
 *	(multi-get per shard, one single-server client each) and checks that
 *	each key is on exactly the shard ketama_pick() predicts.
 *	Prints "live: K/N on the predicted shard, ..." and per-shard counts.
 *
 * Talks only to the hosts given on the command line (127.0.0.1 in tests).
 */
#include <dlfcn.h>
#include <math.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmemcached/memcached.h>
#include <openssl/evp.h>

#include "config.h"
#include "ketama.h"

/* ---- counting the calls that would mean network I/O ---------------------- */

static int io_calls;

int socket(int domain, int type, int protocol)
{
	int (*real)(int, int, int);

	*(void **)&real = dlsym(RTLD_NEXT, "socket");	/* POSIX's idiom for a function pointer */

	io_calls++;
	return real(domain, type, protocol);
}

/* glibc declares connect() with a transparent union under _GNU_SOURCE;
 * this interposer takes the plain pointer it passes. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	int (*real)(int, const struct sockaddr *, socklen_t);

	*(void **)&real = dlsym(RTLD_NEXT, "connect");

	io_calls++;
	return real(fd, sa, len);
}
#pragma GCC diagnostic pop

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

	*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");

	io_calls++;
	return real(node, service, hints, res);
}

/* ---- keys ------------------------------------------------------------------ */

static size_t make_key(char *buf, size_t cap, unsigned i)
{
	static const char pad[] = "abcdefghijklmnopqrstuvwxyz0123456789-_.:/";
	int n = snprintf(buf, cap, "%08x:%u:%.*s", i * 2654435761u, i, (int)(i % 41), pad);

	return n < 0 ? 0 : (size_t)n;
}

/* ---- an independent weighted ketama (libmemcached's algorithm) ----------- */

struct point {
	uint32_t value;
	uint32_t index;
};

struct ref_ring {
	struct point *pts;
	size_t n;
};

static void md5(const void *p, size_t n, unsigned char out[16])
{
	unsigned int len = 16;

	if (EVP_Digest(p, n, out, &len, EVP_md5(), NULL) != 1)
		abort();
}

static int point_cmp(const void *a, const void *b)
{
	const struct point *x = a, *y = b;

	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* naming_11211: 1 as libmemcached does it (no ":11211" on the ring), 0 to
 * show that the test would notice if the naming were wrong */
static void ref_build(struct ref_ring *r, const struct sc_host *h, size_t n, int naming_11211)
{
	uint64_t total = 0;
	size_t i, cnt = 0;

	for (i = 0; i < n; i++)
		total += h[i].weight;
	r->pts = calloc(n * 160 + 16, sizeof(*r->pts));
	if (r->pts == NULL)
		abort();
	for (i = 0; i < n; i++) {
		float pct = (float)h[i].weight / (float)total;
		uint32_t pps = (uint32_t)(floor((float)(pct * 160 / 4 * (float)n + 0.0000000001F)) * 4);
		uint32_t k, x;

		for (k = 1; k <= pps / 4; k++) {
			char name[1100];
			unsigned char d[16];
			int len;

			if (h[i].port == 11211 && naming_11211)
				len = snprintf(name, sizeof(name), "%s-%u", h[i].host, k - 1);
			else
				len = snprintf(name, sizeof(name), "%s:%u-%u", h[i].host,
					       (unsigned)h[i].port, k - 1);
			md5(name, (size_t)len, d);
			for (x = 0; x < 4; x++) {
				r->pts[cnt].value = (uint32_t)d[3 + x * 4] << 24 |
						    (uint32_t)d[2 + x * 4] << 16 |
						    (uint32_t)d[1 + x * 4] << 8 | d[x * 4];
				r->pts[cnt++].index = (uint32_t)i;
			}
		}
	}
	r->n = cnt;
	qsort(r->pts, cnt, sizeof(*r->pts), point_cmp);
}

static int ref_pick(const struct ref_ring *r, size_t nhosts, const char *key, size_t klen)
{
	unsigned char d[16];
	uint32_t hash;
	size_t lo = 0, hi = r->n;

	if (nhosts == 1)
		hash = 0;	/* libmemcached skips hashing for one server */
	else {
		md5(key, klen, d);
		hash = (uint32_t)d[3] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[1] << 8 | d[0];
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->pts[mid].value < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == r->n)
		lo = 0;
	return (int)r->pts[lo].index;
}

/* ---- ring mode --------------------------------------------------------------- */

static int by_name(const struct sc_host *h, size_t n, const char *name, unsigned port)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (h[i].port == port && strcmp(h[i].host, name) == 0)
			return (int)i;
	return -1;
}

static int ring_case(const char *label, struct sc_host *h, size_t n, unsigned nkeys)
{
	char err[256], key[128];
	struct ketama *k;
	memcached_st *mc;
	struct ref_ring ref, wrong;
	unsigned i, agree_lm = 0, agree_ref = 0, agree_wrong = 0, by_key = 0;
	size_t j;
	int has_11211 = 0, calls0 = io_calls;
	unsigned *per = calloc(n, sizeof(*per));

	k = ketama_new(h, n, err, sizeof(err));
	if (k == NULL || per == NULL) {
		fprintf(stderr, "ketama_new: %s\n", err);
		return 1;
	}
	/* the independent libmemcached ring: reversed and sorted by name,
	 * so its positions differ from ours and only names can map them */
	mc = memcached_create(NULL);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SORT_HOSTS, 1);
	for (j = n; j-- > 0;)
		if (memcached_server_add_with_weight(mc, h[j].host, h[j].port, h[j].weight) !=
		    MEMCACHED_SUCCESS)
			return 1;
	if (io_calls != calls0) {
		printf("ring %s: %d socket/connect/getaddrinfo calls while building\n", label,
		       io_calls - calls0);
		return 1;
	}
	for (j = 0; j < n; j++)
		has_11211 |= h[j].port == 11211;
	ref_build(&ref, h, n, 1);
	ref_build(&wrong, h, n, 0);

	for (i = 0; i < nkeys; i++) {
		size_t kl = make_key(key, sizeof(key), i);
		int ours = ketama_pick(k, key, kl);
		uint32_t pos = memcached_generate_hash(mc, key, kl);
		const memcached_instance_st *in = memcached_server_instance_by_position(mc, pos);
		int theirs = in ? by_name(h, n, memcached_server_name(in), memcached_server_port(in)) : -2;

		if (ours < 0 || (size_t)ours >= n)
			return 1;
		per[ours]++;
		agree_lm += ours == theirs;
		agree_ref += ours == ref_pick(&ref, n, key, kl);
		agree_wrong += ours == ref_pick(&wrong, n, key, kl);
		if (i % 100 == 0) {
			/* the public lookup a libmemcached user would call */
			memcached_return_t rc;
			const memcached_instance_st *bk = memcached_server_by_key(mc, key, kl, &rc);

			by_key += bk && by_name(h, n, memcached_server_name(bk),
						memcached_server_port(bk)) == ours;
		}
	}
	if (io_calls != calls0) {
		printf("ring %s: %d socket/connect/getaddrinfo calls while picking\n", label,
		       io_calls - calls0);
		return 1;
	}
	printf("ring %s: libmemcached %u/%u reference %u/%u server_by_key %u/%u", label,
	       agree_lm, nkeys, agree_ref, nkeys, by_key, (nkeys + 99) / 100);
	if (has_11211 && n > 1)
		printf(" (wrong 11211 naming would agree on only %u/%u)", agree_wrong, nkeys);
	printf(" per-shard");
	for (j = 0; j < n; j++)
		printf(" %s:%u(w%u)=%u", h[j].host, (unsigned)h[j].port, (unsigned)h[j].weight, per[j]);
	printf("\n");
	memcached_free(mc);
	ketama_free(k);
	free(ref.pts);
	free(wrong.pts);
	free(per);
	return agree_lm == nkeys && agree_ref == nkeys && by_key == (nkeys + 99) / 100 ? 0 : 1;
}

static int ring_mode(unsigned nkeys)
{
	struct sc_host mixed[] = {
		{ "127.0.0.1", 11211, 100, 0 },
		{ "127.0.0.1", 11212, 200, 0 },
		{ "10.1.2.3", 22122, 50, 0 },
		{ "memcached-d.invalid", 11211, 100, 0 },
	};
	struct sc_host one[] = { { "127.0.0.1", 11211, 100, 0 } };
	struct sc_host two[] = { { "127.0.0.2", 11211, 100, 0 }, { "127.0.0.1", 11211, 100, 0 } };
	struct sc_host many[12];
	char names[12][32];
	struct sc_host dup[] = { { "127.0.0.1", 11211, 100, 0 }, { "127.0.0.1", 11211, 50, 0 } };
	char err[256];
	int rc = 0, calls0;
	size_t i;

	for (i = 0; i < 12; i++) {
		snprintf(names[i], sizeof(names[i]), "cache-%02zu.example", 11 - i);
		many[i].host = names[i];
		many[i].port = (uint16_t)(i % 3 == 0 ? 11211 : 11300 + i);
		many[i].weight = (uint32_t)(1 + (i * 37) % 250);
		many[i].line = 0;
	}
	rc |= ring_case("mixed", mixed, 4, nkeys);
	rc |= ring_case("single-11211", one, 1, nkeys);
	rc |= ring_case("two-11211", two, 2, nkeys);
	rc |= ring_case("twelve-names", many, 12, nkeys);

	calls0 = io_calls;
	if (ketama_new(dup, 2, err, sizeof(err)) != NULL) {
		printf("ring dup: accepted the same host twice\n");
		rc = 1;
	} else {
		printf("ring dup: refused (%s)\n", err);
	}
	if (io_calls != calls0)
		rc = 1;
	printf("ring io calls: %d\n", io_calls);
	{
		/* the hook must see calls made from inside libraries, or the
		 * zero above proves nothing: libmemcached connecting does it */
		memcached_st *mc = memcached_create(NULL);
		int before = io_calls;

		memcached_server_add(mc, "127.0.0.1", 1);
		(void)memcached_flush(mc, 0);	/* port 1: refused, no traffic */
		memcached_free(mc);
		printf("ring io hook self-check: %d calls seen from libmemcached I/O\n",
		       io_calls - before);
		if (io_calls == before)
			rc = 1;
	}
	printf(rc ? "ring FAILED\n" : "ring ok\n");
	return rc;
}

/* ---- live mode ------------------------------------------------------------------ */

static int parse_host(const char *arg, struct sc_host *h)
{
	char *copy = strdup(arg), *c1, *c2, *end;
	unsigned long port, weight;

	if (copy == NULL || (c1 = strchr(copy, ':')) == NULL || (c2 = strchr(c1 + 1, ':')) == NULL)
		return -1;
	*c1 = *c2 = '\0';
	port = strtoul(c1 + 1, &end, 10);
	if (*end || port == 0 || port > 65535)
		return -1;
	weight = strtoul(c2 + 1, &end, 10);
	if (*end || weight == 0)
		return -1;
	h->host = copy;
	h->port = (uint16_t)port;
	h->weight = (uint32_t)weight;
	h->line = 0;
	return 0;
}

static int live_mode(unsigned nkeys, struct sc_host *h, size_t n)
{
	char err[256], key[128];
	struct ketama *k = ketama_new(h, n, err, sizeof(err));
	memcached_st *mc, **single;
	unsigned char *where;	/* bitmask: shards holding key i */
	unsigned i, good = 0, elsewhere = 0, missing = 0, dups = 0;
	unsigned *predicted = calloc(n, sizeof(unsigned)), *found = calloc(n, sizeof(unsigned));
	memcached_return_t rc;
	size_t j;
	const unsigned batch = 2000;

	if (k == NULL || n > 8 || predicted == NULL || found == NULL) {
		fprintf(stderr, "live: %s\n", k ? "at most 8 hosts" : err);
		return 2;
	}
	where = calloc(nkeys, 1);
	mc = memcached_create(NULL);
	if (where == NULL || mc == NULL)
		return 2;
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_NOREPLY, 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
	for (j = 0; j < n; j++)
		if (memcached_server_add_with_weight(mc, h[j].host, h[j].port, h[j].weight) !=
		    MEMCACHED_SUCCESS)
			return 2;
	for (i = 0; i < nkeys; i++) {
		size_t kl = make_key(key, sizeof(key), i);

		rc = memcached_set(mc, key, kl, key, kl, 0, 0);
		if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_BUFFERED) {
			fprintf(stderr, "live: set %s: %s\n", key, memcached_last_error_message(mc));
			return 2;
		}
	}
	rc = memcached_flush_buffers(mc);
	if (rc != MEMCACHED_SUCCESS) {
		fprintf(stderr, "live: flush: %s\n", memcached_last_error_message(mc));
		return 2;
	}
	memcached_free(mc);

	/* one plain client per shard: no ring involved in reading back */
	single = calloc(n, sizeof(*single));
	if (single == NULL)
		return 2;
	for (j = 0; j < n; j++) {
		single[j] = memcached_create(NULL);
		if (single[j] == NULL ||
		    memcached_server_add(single[j], h[j].host, h[j].port) != MEMCACHED_SUCCESS)
			return 2;
	}
	for (j = 0; j < n; j++) {
		unsigned start;

		for (start = 0; start < nkeys; start += batch) {
			unsigned cnt = nkeys - start < batch ? nkeys - start : batch, x;
			static char kbuf[2000][128];
			static const char *keys[2000];
			static size_t lens[2000];
			memcached_result_st *res;

			for (x = 0; x < cnt; x++) {
				lens[x] = make_key(kbuf[x], sizeof(kbuf[x]), start + x);
				keys[x] = kbuf[x];
			}
			rc = memcached_mget(single[j], keys, lens, cnt);
			if (rc != MEMCACHED_SUCCESS) {
				fprintf(stderr, "live: mget on %s:%u: %s\n", h[j].host,
					(unsigned)h[j].port, memcached_last_error_message(single[j]));
				return 2;
			}
			while ((res = memcached_fetch_result(single[j], NULL, &rc)) != NULL) {
				const char *rk = memcached_result_key_value(res);
				size_t rl = memcached_result_key_length(res);
				unsigned idx;
				char *endp;

				/* the key embeds its number after the first ':' */
				const char *c = memchr(rk, ':', rl);

				if (c == NULL)
					return 2;
				idx = (unsigned)strtoul(c + 1, &endp, 10);
				if (idx < nkeys && memcached_result_length(res) == rl &&
				    memcmp(memcached_result_value(res), rk, rl) == 0)
					where[idx] |= (unsigned char)(1u << j);
				memcached_result_free(res);
			}
		}
	}
	for (i = 0; i < nkeys; i++) {
		size_t kl = make_key(key, sizeof(key), i);
		int p = ketama_pick(k, key, kl);
		unsigned m = where[i];

		predicted[p]++;
		for (j = 0; j < n; j++)
			if (m & (1u << j))
				found[j]++;
		if (m == 0)
			missing++;
		else if (m == (1u << p))
			good++;
		else if (m & (m - 1))
			dups++;
		else
			elsewhere++;
	}
	printf("live: %u/%u on the predicted shard, %u on another shard, %u on several, %u missing\n",
	       good, nkeys, elsewhere, dups, missing);
	for (j = 0; j < n; j++)
		printf("live shard %s:%u weight %u: predicted %u found %u\n", h[j].host,
		       (unsigned)h[j].port, (unsigned)h[j].weight, predicted[j], found[j]);
	for (j = 0; j < n; j++)
		memcached_free(single[j]);
	free(single);
	free(where);
	free(predicted);
	free(found);
	ketama_free(k);
	return good == nkeys ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "ring") == 0) {
		unsigned n = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 100000;

		return ring_mode(n ? n : 100000);
	}
	if (argc >= 4 && strcmp(argv[1], "live") == 0) {
		unsigned n = (unsigned)strtoul(argv[2], NULL, 10);
		size_t nh = (size_t)argc - 3, j;
		struct sc_host *h = calloc(nh, sizeof(*h));

		if (h == NULL || n == 0)
			return 2;
		for (j = 0; j < nh; j++) {
			if (parse_host(argv[3 + j], &h[j]) < 0) {
				fprintf(stderr, "bad host %s (want host:port:weight)\n", argv[3 + j]);
				return 2;
			}
		}
		return live_mode(n, h, nh);
	}
	fprintf(stderr, "usage: %s ring [NKEYS] | live NKEYS host:port:weight...\n", argv[0]);
	return 2;
}
