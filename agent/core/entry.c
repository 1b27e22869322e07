/*
 * entry.c - see entry.h. The bytes come back from memcached, which another
 * version of the agent, a bug, a bit flip or anyone who can write to a
 * shard may have written: decoding checks the tag (checksum or signature),
 * the key and every length against what is left, and must not read outside
 * buf[0..len); entry_check_replay() then holds what would reach a client
 * to the rules the agent applies to an origin's response before storing
 * it. Must not copy the body.
 */
#include "entry.h"

#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "hdrs.h"

#define OFF_TAGKIND	4
#define OFF_STORED	5
#define OFF_LIFETIME	13
#define OFF_AGE0	21
#define OFF_STATUS	29
#define OFF_FLAGS	31
#define OFF_SWR		35
#define OFF_SIE		39
#define OFF_KEY		43
#define FIXED_LEN	(ENTRY_OVERHEAD - ENTRY_CRC_LEN)	/* everything but the tag */

static const struct { const char *name, *str; } errs[ENTRY_NERR] = {
	{ "corrupt", "corrupt" },
	{ "version", "another format version" },
	{ "key", "stored for another key" },
	{ "unsigned", "not signed, and an entry secret is configured" },
	{ "signature", "a signature that does not verify with the entry secret" },
	{ "status", "status outside 200-599" },
	{ "header_line", "a header block that is not \"name: value\" lines" },
	{ "header_name", "a header name that is not a token" },
	{ "header_value", "a control byte in a header value" },
	{ "hop_by_hop", "a hop-by-hop header" },
	{ "framing", "Transfer-Encoding, Content-Length or a body the status forbids" },
	{ "forbidden", "a header the agent never stores" },
};

const char *
entry_err_name(int err)
{
	return err < 0 && err >= -ENTRY_NERR ? errs[ENTRY_ERR_INDEX(err)].name : "none";
}

const char *
entry_err_str(int err)
{
	return err < 0 && err >= -ENTRY_NERR ? errs[ENTRY_ERR_INDEX(err)].str : "no error";
}

/* CRC-32C, reflected polynomial 0x82F63B78: a fixed read-only table beats
 * rebuilding it per call, and CRC-32C detects every burst of up to 32 bits,
 * so every single-byte corruption is caught. */
static const uint32_t crc32c_tab[256] = {
	0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c,
	0x26a1e7e8, 0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
	0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c,
	0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
	0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc,
	0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
	0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
	0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
	0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad,
	0x1642ae59, 0xe4292d5a, 0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
	0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595, 0x417b1dbc, 0xb3109ebf,
	0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
	0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f,
	0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
	0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f,
	0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
	0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e,
	0x4767748a, 0xb50cf789, 0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
	0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46, 0x7198540d, 0x83f3d70e,
	0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
	0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
	0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
	0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4,
	0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
	0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b,
	0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
	0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6, 0x502036a5,
	0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
	0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975,
	0x0e330a81, 0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
	0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905,
	0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
	0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8,
	0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
	0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
	0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
	0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78,
	0x7fab5e8c, 0x8dc0dd8f, 0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
	0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1, 0x69e9f0d5, 0x9b8273d6,
	0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
	0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69,
	0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
	0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

#if defined(__x86_64__) && defined(__GNUC__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(const uint8_t *buf, size_t len)
{
	uint64_t c = 0xffffffffu;

	for (; len >= 8; buf += 8, len -= 8) {
		uint64_t v;

		memcpy(&v, buf, 8);	/* unaligned, little-endian: what crc32q wants */
		c = _mm_crc32_u64(c, v);
	}
	for (; len > 0; buf++, len--)
		c = _mm_crc32_u8((uint32_t)c, *buf);
	return (uint32_t)c ^ 0xffffffffu;
}
#endif

uint32_t
entry_crc32c(const uint8_t *buf, size_t len)
{
	uint32_t c = 0xffffffffu;
	size_t i = 0;

#if defined(__x86_64__) && defined(__GNUC__)
	/* Every hit checks the whole entry: the SSE4.2 crc32 instruction
	 * computes this very CRC (Castagnoli, reflected) 8 bytes at a time,
	 * an order of magnitude faster than the table. Every worker thread
	 * comes here: the flag is an atomic, read and written relaxed. Two
	 * threads that both find it unset both detect and store the same
	 * value, so the race that remains is benign and no lock or
	 * pthread_once is needed (the core does not link pthread). */
	static atomic_int hw = -1;
	int h = atomic_load_explicit(&hw, memory_order_relaxed);

	if (h < 0) {
		h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
		atomic_store_explicit(&hw, h, memory_order_relaxed);
	}
	if (h)
		return crc32c_sse42(buf, len);
#endif
	for (; i < len; i++)
		c = crc32c_tab[(c ^ buf[i]) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static void
put_be(uint8_t *p, uint64_t v, int n)
{
	while (n-- > 0) {
		p[n] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- the entry secret ---- */

struct entry_auth {
	/* HMAC-SHA-256 keyed with the secret and never fed: each entry gets a
	 * copy (EVP_MAC_CTX_dup reads it only, so threads share it), which
	 * costs half of keying a new context and a quarter of HMAC(). */
	EVP_MAC_CTX *keyed;
};

struct entry_auth *
entry_auth_new(const void *secret, size_t len)
{
	struct entry_auth *a;
	EVP_MAC *mac;
	OSSL_PARAM params[2];

	if (secret == NULL || len < ENTRY_SECRET_MIN)
		return NULL;
	if ((a = OPENSSL_zalloc(sizeof(*a))) == NULL)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac == NULL || (a->keyed = EVP_MAC_CTX_new(mac)) == NULL ||
	    EVP_MAC_init(a->keyed, secret, len, params) != 1) {
		EVP_MAC_free(mac);
		entry_auth_free(a);
		return NULL;
	}
	EVP_MAC_free(mac);	/* the context holds its own reference */
	return a;
}

void
entry_auth_free(struct entry_auth *a)
{
	if (a == NULL)
		return;
	EVP_MAC_CTX_free(a->keyed);
	OPENSSL_free(a);
}

/* HMAC-SHA-256 of buf[0..len) into mac; -1 when OpenSSL fails. */
static int
sign(const struct entry_auth *a, const uint8_t *buf, size_t len, uint8_t mac[ENTRY_HMAC_LEN])
{
	EVP_MAC_CTX *c = EVP_MAC_CTX_dup(a->keyed);
	size_t got = 0;
	int ok;

	ok = c != NULL && EVP_MAC_update(c, buf, len) == 1 &&
	    EVP_MAC_final(c, mac, &got, ENTRY_HMAC_LEN) == 1 && got == ENTRY_HMAC_LEN;
	EVP_MAC_CTX_free(c);
	return ok ? 0 : -1;
}

/* ---- the format ---- */

static int
fields_ok(int64_t lifetime, int64_t age0, unsigned status)
{
	return lifetime >= 0 && age0 >= 0 && status >= 100 && status <= 999;
}

static size_t
tag_len(const struct entry_auth *auth)
{
	return auth != NULL ? ENTRY_HMAC_LEN : ENTRY_CRC_LEN;
}

size_t
entry_size(const struct entry *e, const struct entry_auth *auth)
{
	size_t s = FIXED_LEN + tag_len(auth);

	if (e->klen > SIZE_MAX - s)
		return SIZE_MAX;
	s += e->klen;
	if (e->hlen > SIZE_MAX - s)
		return SIZE_MAX;
	s += e->hlen;
	if (e->vlen > SIZE_MAX - s)
		return SIZE_MAX;
	s += e->vlen;
	if (e->blen > SIZE_MAX - s)
		return SIZE_MAX;
	return s + e->blen;
}

static uint8_t *
put_block(uint8_t *p, const void *data, size_t len)
{
	put_be(p, len, 4);
	if (len)
		memcpy(p + 4, data, len);
	return p + 4 + len;
}

int
entry_encode(const struct entry *e, const struct entry_auth *auth, uint8_t *buf, size_t cap)
{
	size_t size = entry_size(e, auth);
	uint8_t *p;

	if (e->klen > ENTRY_KEY_MAX || e->hlen > UINT32_MAX || e->vlen > UINT32_MAX ||
	    e->blen > UINT32_MAX)
		return -1;
	if (size > INT_MAX || size > cap || !fields_ok(e->lifetime, e->age0, e->status))
		return -1;
	if ((e->klen && !e->key) || (e->hlen && !e->hdrs) || (e->vlen && !e->vary) ||
	    (e->blen && !e->body))
		return -1;
	memcpy(buf, "SCE", 3);
	buf[3] = ENTRY_VERSION;
	buf[OFF_TAGKIND] = auth != NULL ? ENTRY_TAG_HMAC : ENTRY_TAG_CRC32C;
	put_be(buf + OFF_STORED, (uint64_t)e->stored_at, 8);
	put_be(buf + OFF_LIFETIME, (uint64_t)e->lifetime, 8);
	put_be(buf + OFF_AGE0, (uint64_t)e->age0, 8);
	put_be(buf + OFF_STATUS, e->status, 2);
	put_be(buf + OFF_FLAGS, e->flags, 4);
	put_be(buf + OFF_SWR, e->swr, 4);
	put_be(buf + OFF_SIE, e->sie, 4);
	p = buf + OFF_KEY;
	*p++ = (uint8_t)e->klen;
	if (e->klen)
		memcpy(p, e->key, e->klen);
	p += e->klen;
	p = put_block(p, e->hdrs, e->hlen);
	p = put_block(p, e->vary, e->vlen);
	p = put_block(p, e->body, e->blen);
	if (auth != NULL)
		return sign(auth, buf, (size_t)(p - buf), p) < 0 ? -1 : (int)size;
	put_be(p, entry_crc32c(buf, (size_t)(p - buf)), 4);
	return (int)size;
}

/* One length-prefixed block out of [*p, end); -1 when it runs past end. */
static int
get_block(const uint8_t **p, const uint8_t *end, const uint8_t **data, size_t *len)
{
	uint64_t l;

	if (end - *p < 4)
		return -1;
	l = get_be(*p, 4);
	*p += 4;
	if (l > (uint64_t)(end - *p))
		return -1;
	*data = *p;
	*len = (size_t)l;
	*p += l;
	return 0;
}

/* The tag at end (tlen bytes) over buf[0..end): 0 or the ENTRY_ERR_*. */
static int
check_tag(const uint8_t *buf, const uint8_t *end, int kind, const struct entry_auth *auth)
{
	uint8_t mac[ENTRY_HMAC_LEN];

	if (kind == ENTRY_TAG_CRC32C)
		return entry_crc32c(buf, (size_t)(end - buf)) == (uint32_t)get_be(end, 4) ? 0 :
		    ENTRY_ERR_CORRUPT;
	/* Constant time: how much of a forged tag matched must not show. */
	if (sign(auth, buf, (size_t)(end - buf), mac) < 0 ||
	    CRYPTO_memcmp(mac, end, ENTRY_HMAC_LEN) != 0)
		return ENTRY_ERR_SIGNATURE;
	return 0;
}

int
entry_decode(const uint8_t *buf, size_t len, const char *key, size_t klen,
    const struct entry_auth *auth, struct entry *e)
{
	const uint8_t *p, *end, *h;
	size_t tlen;
	int kind, rc;

	if (len < 4 || memcmp(buf, "SCE", 3) != 0)
		return ENTRY_ERR_CORRUPT;
	/* Checked before the tag: another version may place it elsewhere,
	 * and "other version" must stay distinguishable. */
	if (buf[3] != ENTRY_VERSION)
		return ENTRY_ERR_VERSION;
	if (len <= OFF_TAGKIND)
		return ENTRY_ERR_CORRUPT;
	kind = buf[OFF_TAGKIND];
	if (kind != ENTRY_TAG_CRC32C && kind != ENTRY_TAG_HMAC)
		return ENTRY_ERR_CORRUPT;
	/* Only the tag this agent writes: with a secret, an unsigned entry is
	 * what anyone who can write to a shard could have made; without one,
	 * a signature cannot be checked. */
	if (auth != NULL && kind != ENTRY_TAG_HMAC)
		return ENTRY_ERR_UNSIGNED;
	if (auth == NULL && kind != ENTRY_TAG_CRC32C)
		return ENTRY_ERR_SIGNATURE;
	tlen = kind == ENTRY_TAG_HMAC ? ENTRY_HMAC_LEN : ENTRY_CRC_LEN;
	if (len < FIXED_LEN + tlen)
		return ENTRY_ERR_CORRUPT;
	end = buf + len - tlen;
	if ((rc = check_tag(buf, end, kind, auth)) < 0)
		return rc;
	e->stored_at = (int64_t)get_be(buf + OFF_STORED, 8);
	e->lifetime = (int64_t)get_be(buf + OFF_LIFETIME, 8);
	e->age0 = (int64_t)get_be(buf + OFF_AGE0, 8);
	e->status = (uint16_t)get_be(buf + OFF_STATUS, 2);
	e->flags = (uint32_t)get_be(buf + OFF_FLAGS, 4);
	e->swr = (uint32_t)get_be(buf + OFF_SWR, 4);
	e->sie = (uint32_t)get_be(buf + OFF_SIE, 4);
	if (!fields_ok(e->lifetime, e->age0, e->status))
		return ENTRY_ERR_CORRUPT;
	/* Lengths are checked even though the tag matched: a truncation must
	 * be caught deterministically, not with odds of 2^-32, and a signer
	 * with a bug must not make this read past the end. */
	p = buf + OFF_KEY;
	e->klen = *p++;
	if (e->klen > (size_t)(end - p))
		return ENTRY_ERR_CORRUPT;
	e->key = (const char *)p;
	p += e->klen;
	if (get_block(&p, end, &h, &e->hlen) < 0 ||
	    get_block(&p, end, &e->vary, &e->vlen) < 0 ||
	    get_block(&p, end, &e->body, &e->blen) < 0 || p != end)
		return ENTRY_ERR_CORRUPT;
	e->hdrs = (const char *)h;
	/* An entry copied under another key (signed or not) must not answer
	 * for it: compared after the tag, so a corrupt key is "corrupt". */
	if (key != NULL && (e->klen != klen || memcmp(e->key, key, klen) != 0))
		return ENTRY_ERR_KEY;
	return 0;
}

/* ---- before replay ---- */

/* What the agent never writes into an entry, by the reason it is refused:
 * found by length first, since every line of every hit is looked up. */
static int
refused_name(const char *n, size_t len, unsigned allow)
{
	static const struct { const char *s; size_t len; int err; unsigned allowed_by; } names[] = {
		{ "content-length", 14, ENTRY_ERR_FRAMING, 0 },	/* set from the body at hit time */
		{ "transfer-encoding", 17, ENTRY_ERR_FRAMING, 0 },
		{ "age", 3, ENTRY_ERR_FORBIDDEN, 0 },		/* computed at hit time */
		{ "x-cache-status", 14, ENTRY_ERR_FORBIDDEN, 0 },
		{ "x-cache-key", 11, ENTRY_ERR_FORBIDDEN, 0 },
		{ "x-cache-tier", 12, ENTRY_ERR_FORBIDDEN, 0 },
		{ "x-spoe-cache-l1", 15, ENTRY_ERR_FORBIDDEN, 0 },	/* the L1's Age (l1.c) */
		/* replayed to another client only when the policy says so */
		{ "set-cookie", 10, ENTRY_ERR_FORBIDDEN, ENTRY_ALLOW_SET_COOKIE },
		{ "set-cookie2", 11, ENTRY_ERR_FORBIDDEN, ENTRY_ALLOW_SET_COOKIE },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].len == len && hdr_name_eq(n, len, names[i].s, len))
			return (allow & names[i].allowed_by) ? 0 : names[i].err;
	return len <= 19 && hdrs_is_hop_by_hop(n, len) ? ENTRY_ERR_HOP_BY_HOP : 0;
}

/* Byte classes of a header line: C_TCHAR a token character (RFC 9110
 * 5.6.2, what hdr_is_tchar() says), C_VALUE a byte a value may hold (what
 * hdr_value_safe() says: no control byte but HTAB, no DEL; obs-text is
 * allowed). A table, so that checking every byte of every hit is a load
 * and a test; tests/unit/test_entry.c holds it to those two functions. */
#define C_TCHAR	0x1u
#define C_VALUE	0x2u
static const uint8_t byte_class[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,	/* 0x00 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x10 */
	2, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2,	/* 0x20 */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2,	/* 0x30 */
	2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,	/* 0x40 */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 3, 3,	/* 0x50 */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,	/* 0x60 */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 3, 0,	/* 0x70 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,	/* 0x80 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,	/* 0x90 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,	/* 0xa0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,	/* 0xb0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,	/* 0xc0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,	/* 0xd0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,	/* 0xe0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,	/* 0xf0 */
};

int
entry_check_replay(const struct entry *e, size_t max_lines)
{
	return entry_check_replay_allow(e, max_lines, 0);
}

int
entry_check_replay_allow(const struct entry *e, size_t max_lines, unsigned allow)
{
	const unsigned char *p = (const unsigned char *)e->hdrs, *end = p + e->hlen;
	size_t lines = 0;

	if (e->status < 200 || e->status > 599)
		return ENTRY_ERR_STATUS;
	if ((e->status == 204 || e->status == 304) && e->blen > 0)
		return ENTRY_ERR_FRAMING;
	/* The grammar entry.h gives and the Lua service splits on: name, ": ",
	 * value, CRLF, nothing else. */
	while (p < end) {
		const unsigned char *name = p;
		size_t nlen;
		int rc;

		if (++lines > max_lines)
			return ENTRY_ERR_HDR_LINE;
		while (p < end && (byte_class[*p] & C_TCHAR))
			p++;
		nlen = (size_t)(p - name);
		if (p == end)
			return ENTRY_ERR_HDR_LINE;
		if (*p != ':' || nlen == 0)
			return ENTRY_ERR_HDR_NAME;	/* CR, LF, NUL, space, ... in a name */
		if (end - p < 2 || p[1] != ' ')
			return ENTRY_ERR_HDR_LINE;
		p += 2;
		while (p < end && (byte_class[*p] & C_VALUE))
			p++;
		if (p == end)
			return ENTRY_ERR_HDR_LINE;	/* no CRLF */
		if (*p != '\r' || end - p < 2 || p[1] != '\n')
			return ENTRY_ERR_HDR_VALUE;	/* CR, LF, NUL or a control byte */
		p += 2;
		if ((rc = refused_name((const char *)name, nlen, allow)) < 0)
			return rc;
	}
	return 0;
}

int64_t
entry_age(const struct entry *e, int64_t now)
{
	int64_t resident = 0, age;

	if (now > e->stored_at && __builtin_sub_overflow(now, e->stored_at, &resident))
		resident = INT64_MAX;
	if (e->age0 < 0 || __builtin_add_overflow(e->age0, resident, &age))
		age = INT64_MAX;
	return age;
}
