/*
 * entry.h - the stored cache entry: the bytes kept in memcached under a
 * key (MISSION 4.5), and the checks an entry passes before it is replayed
 * (MISSION 5: a stored entry is as untrusted as the network). Versioned,
 * bound to its key, checksummed or signed, binary-safe.
 *
 *   off  size  field
 *     0     3  magic "SCE"
 *     3     1  version (ENTRY_VERSION)
 *     4     1  tag kind: ENTRY_TAG_CRC32C or ENTRY_TAG_HMAC
 *     5     8  stored_at   int64 BE, unix seconds
 *    13     8  lifetime    int64 BE, freshness lifetime in seconds (>= 0)
 *    21     8  age0        int64 BE, upstream Age at store time (>= 0)
 *    29     2  status      uint16 BE, 100..999
 *    31     4  flags       uint32 BE, opaque to this module
 *    35     4  swr         uint32 BE, seconds past freshness it may be served
 *                          while one request refreshes it (RFC 5861)
 *    39     4  sie         uint32 BE, seconds past freshness it may stand
 *                          in for an origin error (RFC 5861)
 *    43   1+k  key         u8 length + the key the entry is stored under
 *       4+h  headers     uint32 BE length + replay text "Name: value\r\n"...
 *       4+v  vary        uint32 BE length + opaque blob built by the caller
 *       4+b  body        uint32 BE length + any bytes
 *    end-t t  tag over every byte before it (the key included): CRC-32C BE
 *             (t = 4), or HMAC-SHA-256 keyed with the entry secret (t = 32)
 *
 * The buffer must be exactly one entry: trailing bytes are corruption. An
 * agent with an entry secret writes and accepts only entries signed with
 * it; one without writes and accepts only CRC-32C ones. Every error is a
 * Miss, and the entry is overwritten by the response to it.
 *
 * Pure: no I/O, no globals, no allocation but OpenSSL's MAC context while
 * an entry is signed or verified. Decoded pointers point into the caller's
 * buffer.
 */
#ifndef SC_ENTRY_H
#define SC_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#define ENTRY_VERSION		3
#define ENTRY_TAG_CRC32C	0
#define ENTRY_TAG_HMAC		1
#define ENTRY_CRC_LEN		4
#define ENTRY_HMAC_LEN		32
#define ENTRY_KEY_MAX		255
/* Fixed fields, the key's and three block lengths, a CRC-32C. */
#define ENTRY_OVERHEAD		(43 + 1 + 12 + ENTRY_CRC_LEN)
#define ENTRY_SECRET_MIN	16	/* bytes of a usable entry secret */

/* What entry_decode() and entry_check_replay() refuse an entry for. */
#define ENTRY_ERR_CORRUPT	(-1)	/* bad magic, checksum, length or field */
#define ENTRY_ERR_VERSION	(-2)	/* another format version */
#define ENTRY_ERR_KEY		(-3)	/* bound to another key than the one read */
#define ENTRY_ERR_UNSIGNED	(-4)	/* not signed, and a secret is configured */
#define ENTRY_ERR_SIGNATURE	(-5)	/* signed, but not verifiably with our secret */
#define ENTRY_ERR_STATUS	(-6)	/* status outside 200..599 */
#define ENTRY_ERR_HDR_LINE	(-7)	/* header block not "name: value\r\n" lines, or too many */
#define ENTRY_ERR_HDR_NAME	(-8)	/* a header name that is not an RFC 9110 token */
#define ENTRY_ERR_HDR_VALUE	(-9)	/* CR, LF, NUL or another control byte in a value */
#define ENTRY_ERR_HOP_BY_HOP	(-10)	/* Connection, Keep-Alive, TE, Upgrade, ... */
#define ENTRY_ERR_FRAMING	(-11)	/* Transfer-Encoding, Content-Length, a body on 204/304 */
#define ENTRY_ERR_FORBIDDEN	(-12)	/* what the agent never stores: Set-Cookie, Age, X-Cache-* */
#define ENTRY_NERR		12

/* The metric label of an ENTRY_ERR_* ("corrupt", "header_name", ...), and
 * a sentence for logs; index of err in a table of ENTRY_NERR counters. */
const char *entry_err_name(int err);
const char *entry_err_str(int err);
#define ENTRY_ERR_INDEX(err)	((size_t)(-(err) - 1))

struct entry {
	int64_t stored_at, lifetime, age0;
	uint16_t status;
	uint32_t flags;
	uint32_t swr, sie;		/* stale windows, seconds */
	const char *key;		/* the key it is stored under, bound into it */
	size_t klen;			/* 0..ENTRY_KEY_MAX */
	const char *hdrs;		/* NULL allowed when hlen == 0 */
	size_t hlen;
	const uint8_t *vary;
	size_t vlen;
	const uint8_t *body;
	size_t blen;
};

/* An entry secret made ready for HMAC-SHA-256 (OpenSSL), once: immutable,
 * read by every thread at once. NULL when len < ENTRY_SECRET_MIN or OpenSSL
 * fails. */
struct entry_auth;
struct entry_auth *entry_auth_new(const void *secret, size_t len);
void entry_auth_free(struct entry_auth *a);

/* Encoded size (CRC-32C when auth is NULL, else signed), or SIZE_MAX when
 * it cannot be represented. */
size_t entry_size(const struct entry *e, const struct entry_auth *auth);

/* Bytes written to buf[0..cap), entry_size(e, auth), or -1: does not fit,
 * a key longer than ENTRY_KEY_MAX, a block longer than 4 GiB - 1, a total
 * over INT_MAX, status outside 100..999, a negative lifetime or age0, or
 * OpenSSL failed. auth NULL: a CRC-32C tag; else signed with auth. */
int entry_encode(const struct entry *e, const struct entry_auth *auth, uint8_t *buf, size_t cap);

/* 0 or an ENTRY_ERR_* up to ENTRY_ERR_SIGNATURE; on error *e is
 * unspecified. key (klen bytes) is the key buf was read under: an entry
 * bound to another is ENTRY_ERR_KEY. key NULL skips that comparison, for
 * tools that inspect bytes of unknown origin: never for an entry that is
 * then replayed. */
int entry_decode(const uint8_t *buf, size_t len, const char *key, size_t klen,
    const struct entry_auth *auth, struct entry *e);

/* Whether a decoded entry can be replayed as it is (MISSION 5): status
 * 200..599, a header block of at most max_lines "name: value\r\n" lines
 * whose names are tokens and whose values are safe on one line, none of
 * them hop-by-hop (so none named by a Connection field either: Connection
 * itself is refused), no Transfer-Encoding or Content-Length (the agent
 * sets that from the body), nothing the agent adds at hit time or never
 * stores, and no body on a 204 or 304. 0 or an ENTRY_ERR_*. */
int entry_check_replay(const struct entry *e, size_t max_lines);

/* The same, allowing what ALLOW names: ENTRY_ALLOW_SET_COOKIE lets
 * Set-Cookie and Set-Cookie2 through, for a policy that stores them
 * (set_cookie = "store"). */
#define ENTRY_ALLOW_SET_COOKIE	0x1u
int entry_check_replay_allow(const struct entry *e, size_t max_lines, unsigned allow);

/* Current age of e at now (RFC 9111 4.2.3 without the network delay
 * terms): age0 plus the time since stored_at, saturating at INT64_MAX,
 * since every field may have been forged. */
int64_t entry_age(const struct entry *e, int64_t now);

/* CRC-32C of buf (the checksum the format uses; exposed for tests). */
uint32_t entry_crc32c(const uint8_t *buf, size_t len);

#endif
