/*
 * mcproto.h - the memcached protocol codec: request encoders and a reply
 * parser for the meta commands (mg/ms/md/mn) and the few classic commands
 * the pool and the CLI need (flush_all, version, stats).
 *
 * Pure: no allocation, no I/O, no global state; every function works only on
 * the buffers it is given, so it can be fuzzed and tested against a guard
 * page. It must not learn about connections, shards or timeouts (pool.c).
 */
#ifndef SC_MCPROTO_H
#define SC_MCPROTO_H

#include <stddef.h>
#include <stdint.h>

#define MC_MAX_KEY	250	/* memcached's own key limit */
#define MC_MAX_LINE	2048	/* longest reply line accepted, \r\n included */
#define MC_MAX_HDR	320	/* enough for any header the encoders write */

/* 1 when key may be sent as-is: 1..250 bytes of printable ASCII (0x21-0x7e),
 * so no space, control byte or UTF-8 can split or end a command line. */
int mc_key_valid(const char *key, size_t klen);

/*
 * Encoders write one command into buf[0..cap) and return its length, or -1
 * when the key is invalid or cap is too small (nothing useful is written
 * then). Opaques are decimal uint32 tokens ("O<n>") echoed by the server on
 * every meta reply except SERVER_ERROR/CLIENT_ERROR/ERROR.
 */
/* "mg <key> v f t O<opaque>\r\n": value, client flags, remaining TTL. */
int mc_enc_get(char *buf, size_t cap, const char *key, size_t klen, uint32_t opaque);
/* "ms <key> <vlen> T<ttl> O<opaque>\r\n": the header only; the caller sends
 * exactly vlen value bytes and "\r\n" after it. ttl 0 = no expiry; memcached
 * reads a ttl above 30 days as an absolute Unix time. */
int mc_enc_set(char *buf, size_t cap, const char *key, size_t klen, size_t vlen,
	       uint32_t ttl, uint32_t opaque);
/* "md <key> O<opaque>\r\n" */
int mc_enc_delete(char *buf, size_t cap, const char *key, size_t klen, uint32_t opaque);
/*
 * The meta flags the fleet coordinates with (collapsed forwarding and
 * stale serving, see cacheio.c):
 * "mg <key> v f t c [N<vivify>] O<opaque>\r\n": as mc_enc_get, plus the
 * CAS, and with vivify > 0 a miss creates an empty item living vivify
 * seconds and answers it with W (won) to this client alone; later readers
 * of that item get Z. An item marked stale (mc_enc_invalidate) is answered
 * with X, and W to its first reader.
 */
int mc_enc_get_meta(char *buf, size_t cap, const char *key, size_t klen, uint32_t vivify,
		    uint32_t opaque);
/* "mg <key> c O<opaque>\r\n": the CAS alone, answered "HD c<cas>" or EN. */
int mc_enc_check(char *buf, size_t cap, const char *key, size_t klen, uint32_t opaque);
/* "ms <key> <vlen> T<ttl> ME O<opaque>\r\n": store only when absent (NS
 * otherwise); the caller sends the value as for mc_enc_set. */
int mc_enc_add(char *buf, size_t cap, const char *key, size_t klen, size_t vlen,
	       uint32_t ttl, uint32_t opaque);
/* "md <key> I T<ttl> O<opaque>\r\n": mark stale instead of deleting, and
 * let the item live ttl more seconds. */
int mc_enc_invalidate(char *buf, size_t cap, const char *key, size_t klen, uint32_t ttl,
		      uint32_t opaque);
/* "mn\r\n": answered by "MN\r\n" after everything sent before it. */
int mc_enc_noop(char *buf, size_t cap);
/* "flush_all\r\n": answered by "OK\r\n". */
int mc_enc_flush_all(char *buf, size_t cap);
/* "stats\r\n": answered by "STAT <name> <value>\r\n"... "END\r\n". */
int mc_enc_stats(char *buf, size_t cap);

enum mc_rtype {
	MC_R_NONE = 0,
	MC_R_HD,		/* meta success, no value */
	MC_R_VA,		/* meta value follows */
	MC_R_EN,		/* mg miss */
	MC_R_NF,		/* md/ma not found */
	MC_R_NS,		/* ms not stored */
	MC_R_EX,		/* CAS mismatch */
	MC_R_MN,		/* mn */
	MC_R_OK,		/* flush_all */
	MC_R_VERSION,
	MC_R_STAT,		/* one stats line; END closes the block */
	MC_R_END,
	MC_R_SERVER_ERROR,	/* the command failed; the stream is still in sync */
	MC_R_CLIENT_ERROR,	/* memcached did not understand us */
	MC_R_ERROR,		/* unknown command */
};

#define MC_MF_WON	0x1u	/* W: this client is to recache the item */
#define MC_MF_LOST	0x2u	/* Z: another client already was told W */
#define MC_MF_STALE	0x4u	/* X: the item was marked stale */

/*
 * One parsed reply. Every pointer points into the buffer given to
 * mc_parse_reply() and is valid only while that buffer is.
 */
struct mc_reply {
	enum mc_rtype type;
	const uint8_t *val;	/* MC_R_VA: the value (vlen bytes, binary) */
	size_t vlen;
	const char *text;	/* VERSION: the version; STAT: "name value";
				 * *_ERROR: the message (may be empty); else NULL */
	size_t textlen;
	int has_opaque;		/* meta replies: O<n> flag seen */
	uint32_t opaque;
	int has_cflags;		/* f<n>: client flags */
	uint32_t cflags;
	int has_ttl;		/* t<n>: seconds left, -1 = never expires */
	int64_t ttl;
	int has_cas;		/* c<n> */
	uint64_t cas;
	unsigned mflags;	/* MC_MF_*: the W, Z and X flags of a meta reply */
	size_t need;		/* on "need more": total bytes the reply needs when
				 * already known (VA header seen), else 0 */
	const char *err;	/* on error: static text saying why */
};

/*
 * Parse one reply at the start of buf[0..len). Returns the number of bytes it
 * takes (line, and for VA the value and its "\r\n"), 0 when more bytes are
 * needed, -1 on a protocol error (r->err says which). max_vlen bounds a VA
 * size; it is checked as soon as the header line is complete, before the
 * value is waited for, and without any arithmetic that could overflow.
 * Garbage is refused as early as possible: a first token that cannot start a
 * known reply, a control byte, or MC_MAX_LINE bytes without a line end.
 * Opaques must be decimal uint32 (what the encoders send); anything else is
 * an error, as is a malformed f or t flag. Unknown meta flags are skipped.
 * The one error a caller may recover from: -1 with r->type == MC_R_VA and
 * r->need > 0 means a well-formed VA larger than max_vlen; r->vlen is its
 * declared size and r->need the bytes the whole reply takes, so the caller
 * can discard them and keep the stream (its flags were not parsed).
 */
int mc_parse_reply(const uint8_t *buf, size_t len, size_t max_vlen, struct mc_reply *r);

const char *mc_rtype_name(enum mc_rtype t);

#endif
