/*
 * pool.h - the per-thread memcached pool: one struct pool per worker thread,
 * on that thread's event_base, holding up to keepalive_pool_size persistent
 * connections (plain or TLS) to every shard, pipelining requests on them and
 * matching replies in order.
 *
 * It must never block its event loop (non-blocking connect, no DNS in
 * pool_new_at() or after), never move a key to another shard, and never be
 * touched by any thread but the one that runs its event_base.
 */
#ifndef SC_POOL_H
#define SC_POOL_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"

enum mc_status {
	MC_OK,		/* get: hit (val, vlen); set: stored; delete: deleted;
			 * flush: done; stats: val = the raw "STAT ...\r\n" lines */
	MC_NOTFOUND,	/* get: miss; delete: nothing to delete */
	MC_NOTSTORED,	/* set: memcached declined (NS) */
	MC_ERROR,	/* I/O error, timeout, shard down, TLS failure, protocol
			 * error, SERVER_ERROR, value above max_item_size read back */
	MC_TOOBIG,	/* set: value above max_item_size, nothing was sent */
};

const char *mc_status_name(enum mc_status st);

/* val/vlen only for MC_OK on get and stats, else NULL/0; val is valid only
 * during the call (it points into the connection's input buffer). */
typedef void (*pool_cb)(void *arg, enum mc_status st, const uint8_t *val, size_t vlen);

/*
 * The TLS context every pool of the process shares (read-only after this
 * returns; SSL_new() on it is thread-safe). Built once, before the worker
 * threads start, from conf: tls_verify -> SSL_VERIFY_PEER (the peer name is
 * checked per connection, against tls_server_name or else the host),
 * tls_ca_file (else the system default paths), tls_cert_file/tls_key_file as
 * a client certificate. TLS 1.2 at least. NULL with a message in err on
 * failure. Free with SSL_CTX_free() after every pool using it is freed.
 */
SSL_CTX *pool_tls_ctx_new(const struct sc_pool_conf *conf, char *err, size_t errlen);

/*
 * Ownership:
 * - conf and tls are borrowed: both must outlive the pool and stay unchanged.
 *   The pool copies what it needs of the host list (names, addresses).
 * - Names are resolved apart from pools: pool_addrs_resolve() looks up every
 *   host ONCE, with a blocking getaddrinfo() (numeric addresses never touch
 *   DNS), and keeps the first address of each; pool_new_at() copies those
 *   addresses and looks up nothing, so it may run on a loop serving
 *   requests. No request ever resolves. A name whose address changes needs
 *   new addresses and a new pool (the agent does both on SIGHUP: resolved
 *   once on its main thread, the pools made on every worker from that).
 *   pool_new() is both in one call, for a program with one pool (the CLI,
 *   the test tools). No pool connects anything when made: connections open
 *   on first use.
 * - The process must ignore SIGPIPE: libevent writes with writev() and
 *   SSL_write(), so a shard closing under a write would otherwise kill it.
 * - Request records are allocated by pool_get & co. and freed by the pool
 *   right after their callback returns. The caller owns key and val only for
 *   the duration of the call (both are copied into the connection's output).
 * - pool_free() closes every connection and calls every pending callback
 *   (in-flight requests and fast failures not yet delivered) with MC_ERROR
 *   before it returns: the one case where a callback runs inside a pool call.
 *   A request made from such a callback is refused (-1). pool_free() must be
 *   called on the pool's thread, and not from inside a pool callback (it
 *   aborts with a message if it is). Afterwards no callback of this pool will
 *   ever run again, so the caller may free whatever arg pointed to.
 * - A caller that goes away before its reply (an HAProxy connection closing)
 *   must not free arg: there is no cancel; let the callback see a flag in arg
 *   (or a refcount) and drop the result. The callback always comes, within
 *   about timeout_ms.
 */
struct pool;

/*
 * The addresses of conf's hosts, in their order. Blocks for name lookups:
 * call it where that is allowed. Read-only once made (any thread may read
 * it); pools copy what they need, so it may be freed once they are made.
 * NULL with err filled ("pool: host NAME: why") when a host does not resolve.
 */
struct pool_addrs;
struct pool_addrs *pool_addrs_resolve(const struct sc_pool_conf *conf, char *err, size_t errlen);
void pool_addrs_free(struct pool_addrs *a);

/* A pool of conf's hosts at addrs (from pool_addrs_resolve() on the same
 * host list); does no name lookup. */
struct pool *pool_new_at(struct event_base *base, const struct sc_pool_conf *conf,
			 const struct pool_addrs *addrs, SSL_CTX *tls /* NULL if !conf->tls */,
			 char *err, size_t errlen);
/* pool_addrs_resolve() then pool_new_at(): blocks for name lookups. */
struct pool *pool_new(struct event_base *base, const struct sc_pool_conf *conf,
		      SSL_CTX *tls /* NULL if !conf->tls */, char *err, size_t errlen);
void pool_free(struct pool *p);

int pool_nshards(const struct pool *p);
/* The shard ketama puts key on, or -1 for an invalid key (see mc_key_valid). */
int pool_shard_of(const struct pool *p, const char *key, size_t klen);
/* "host:port" as configured ("[v6]:port" for an IPv6 literal). */
const char *pool_shard_name(const struct pool *p, int shard);

/*
 * memcached refuses an item whose value plus its own header exceeds its -I
 * (default 1 MiB): with max_item_size = 1 MiB, run memcached with -I 2m, or a
 * value near 1 MiB comes back as MC_ERROR (SERVER_ERROR, counted in
 * server_errors) and is simply not stored.
 *
 * Requests. Return 0 when accepted: cb will then be called exactly once, on
 * the pool's thread, always from the event loop (never from inside the call
 * that made the request; a shard that is down, a value above max_item_size,
 * a failed connect all answer through a deferred event), within about
 * timeout_ms. Return -1, and never call cb, only for caller errors: an
 * invalid key (1..250 printable ASCII bytes, no space), a shard index out of
 * range, cb == NULL, a pool being freed, or out of memory.
 * ttl: seconds, 0 = no expiry (above 30 days memcached reads a Unix time).
 */
int pool_get(struct pool *p, const char *key, size_t klen, pool_cb cb, void *arg);
int pool_set(struct pool *p, const char *key, size_t klen, const void *val, size_t vlen,
	     uint32_t ttl, pool_cb cb, void *arg);
/*
 * pool_set(), but val (from malloc()) is handed over instead of copied: it
 * goes into the connection's output as it is and is freed once written, or
 * when the request fails. The pool owns val from the call on, whatever the
 * call returns (-1 included). For a large entry, one copy less.
 *
 * sent(arg) tells when the set has left the agent: its last byte written to
 * the socket (TLS: to the SSL object), so that any request made after sent
 * reaches memcached after it, on whatever connection. When 0 is returned it
 * is called exactly once, before cb: on the write, or, for a set that is
 * never written (shard down, connection lost, pool freed), right before cb.
 * Never from inside this call (but, when memory runs out, maybe from inside
 * another request call that has to close the connection); it may come from
 * inside libevent's drain of the output buffer, so it must not make a
 * request on this pool.
 */
typedef void (*pool_sent_cb)(void *arg);
int pool_set_take(struct pool *p, const char *key, size_t klen, void *val, size_t vlen,
		  uint32_t ttl, pool_cb cb, pool_sent_cb sent, void *arg);
int pool_delete(struct pool *p, const char *key, size_t klen, pool_cb cb, void *arg);

/*
 * The meta protocol's coordination (memcached is the fleet's only shared
 * state, see cacheio.c). Same contract as the requests above.
 *
 * pool_get_meta: a get that also reports the reply's W/Z/X flags (MC_MF_*
 * of mcproto.h) and CAS in *m (zeroed when the get failed); vivify > 0
 * makes a miss create an empty item living vivify seconds, answered MC_OK
 * with vlen 0 and MC_MF_WON to this caller alone.
 * pool_add: store only when the key is absent: MC_OK, or MC_NOTSTORED.
 * pool_invalidate: mark the item stale (its readers see MC_MF_STALE, the
 * first of them MC_MF_WON) and let it live ttl more seconds: MC_OK, or
 * MC_NOTFOUND.
 */
struct pool_meta {
	unsigned flags;		/* MC_MF_* */
	uint64_t cas;
	int64_t ttl;		/* seconds left, -1 = never expires */
};
typedef void (*pool_meta_cb)(void *arg, enum mc_status st, const struct pool_meta *m,
			     const uint8_t *val, size_t vlen);
int pool_get_meta(struct pool *p, const char *key, size_t klen, uint32_t vivify,
		  pool_meta_cb cb, void *arg);
/* pool_check: the item's CAS and nothing else (no value): MC_OK with
 * m->cas, or MC_NOTFOUND. */
int pool_check(struct pool *p, const char *key, size_t klen, pool_meta_cb cb, void *arg);
int pool_add(struct pool *p, const char *key, size_t klen, const void *val, size_t vlen,
	     uint32_t ttl, pool_cb cb, void *arg);
int pool_invalidate(struct pool *p, const char *key, size_t klen, uint32_t ttl,
		    pool_cb cb, void *arg);
/* flush_all on one shard (the CLI and admin fan it out). */
int pool_flush_shard(struct pool *p, int shard, pool_cb cb, void *arg);
/* stats on one shard: val = the STAT lines as sent, without the END line. */
int pool_stats_shard(struct pool *p, int shard, pool_cb cb, void *arg);

/* Latency histogram bucket upper bounds, microseconds; the last bucket of
 * lat_hist (index POOL_LAT_NBOUNDS) counts everything slower. */
#define POOL_LAT_NBOUNDS 13
extern const uint32_t pool_lat_bounds_us[POOL_LAT_NBOUNDS];

/*
 * Per-shard counters, written only by the pool's thread; read them from that
 * thread (the metrics module sums the pools of all threads, e.g. by asking
 * each thread for a copy). Counters only grow.
 */
struct pool_shard_stats {
	uint64_t requests;	/* accepted requests, whatever became of them */
	uint64_t hits;		/* get -> MC_OK */
	uint64_t misses;	/* get -> MC_NOTFOUND */
	uint64_t stored;	/* set -> MC_OK */
	uint64_t not_stored;	/* set -> MC_NOTSTORED */
	uint64_t errors;	/* anything -> MC_ERROR (includes the three below) */
	uint64_t timeouts;	/* MC_ERROR because a deadline passed */
	uint64_t fast_fails;	/* MC_ERROR because the shard was down */
	uint64_t server_errors;	/* MC_ERROR from a SERVER_ERROR reply */
	uint64_t too_big;	/* set -> MC_TOOBIG (not counted in errors) */
	uint64_t conn_opened;	/* connections established (TLS: handshake done) */
	uint64_t conn_failures;	/* connect/TLS/protocol/timeout/EOF-with-requests events */
	uint64_t went_down;	/* up -> down transitions */
	int up;			/* 1 up, 0 down (failing fast, being probed) */
	uint64_t lat_count;	/* requests answered by the shard */
	uint64_t lat_sum_us;	/* their request-to-reply time */
	uint64_t lat_hist[POOL_LAT_NBOUNDS + 1];	/* not cumulative */
};
const struct pool_shard_stats *pool_shard_stats(const struct pool *p, int shard);

#endif
