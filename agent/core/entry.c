/*
 * entry.c - see entry.h. The bytes come back from memcached, which another
 * version of the agent, a bug or a bit flip may have written: decoding
 * checks the checksum and every length against what is left and must not
 * read outside buf[0..len). Must not allocate or copy the body.
 */
#include "entry.h"

#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#define OFF_STORED	4
#define OFF_LIFETIME	12
#define OFF_AGE0	20
#define OFF_STATUS	28
#define OFF_FLAGS	30
#define OFF_BLOCKS	34

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

static int
fields_ok(int64_t lifetime, int64_t age0, unsigned status)
{
	return lifetime >= 0 && age0 >= 0 && status >= 100 && status <= 999;
}

size_t
entry_size(const struct entry *e)
{
	size_t s = ENTRY_OVERHEAD;

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
entry_encode(const struct entry *e, uint8_t *buf, size_t cap)
{
	size_t size = entry_size(e);
	uint8_t *p;

	if (e->hlen > UINT32_MAX || e->vlen > UINT32_MAX || e->blen > UINT32_MAX)
		return -1;
	if (size > INT_MAX || size > cap || !fields_ok(e->lifetime, e->age0, e->status))
		return -1;
	if ((e->hlen && !e->hdrs) || (e->vlen && !e->vary) || (e->blen && !e->body))
		return -1;
	memcpy(buf, "SCE", 3);
	buf[3] = ENTRY_VERSION;
	put_be(buf + OFF_STORED, (uint64_t)e->stored_at, 8);
	put_be(buf + OFF_LIFETIME, (uint64_t)e->lifetime, 8);
	put_be(buf + OFF_AGE0, (uint64_t)e->age0, 8);
	put_be(buf + OFF_STATUS, e->status, 2);
	put_be(buf + OFF_FLAGS, e->flags, 4);
	p = buf + OFF_BLOCKS;
	p = put_block(p, e->hdrs, e->hlen);
	p = put_block(p, e->vary, e->vlen);
	p = put_block(p, e->body, e->blen);
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

int
entry_decode(const uint8_t *buf, size_t len, struct entry *e)
{
	const uint8_t *p, *end, *h;

	if (len < 4 || memcmp(buf, "SCE", 3) != 0)
		return ENTRY_ERR_CORRUPT;
	/* Checked before the checksum: another version may place it
	 * elsewhere, and "other version" must stay distinguishable. */
	if (buf[3] != ENTRY_VERSION)
		return ENTRY_ERR_VERSION;
	if (len < ENTRY_OVERHEAD)
		return ENTRY_ERR_CORRUPT;
	end = buf + len - 4;
	if (entry_crc32c(buf, len - 4) != (uint32_t)get_be(end, 4))
		return ENTRY_ERR_CORRUPT;
	e->stored_at = (int64_t)get_be(buf + OFF_STORED, 8);
	e->lifetime = (int64_t)get_be(buf + OFF_LIFETIME, 8);
	e->age0 = (int64_t)get_be(buf + OFF_AGE0, 8);
	e->status = (uint16_t)get_be(buf + OFF_STATUS, 2);
	e->flags = (uint32_t)get_be(buf + OFF_FLAGS, 4);
	if (!fields_ok(e->lifetime, e->age0, e->status))
		return ENTRY_ERR_CORRUPT;
	/* Lengths are checked even though the checksum matched: a truncation
	 * must be caught deterministically, not with odds of 2^-32. */
	p = buf + OFF_BLOCKS;
	if (get_block(&p, end, &h, &e->hlen) < 0 ||
	    get_block(&p, end, &e->vary, &e->vlen) < 0 ||
	    get_block(&p, end, &e->body, &e->blen) < 0 || p != end)
		return ENTRY_ERR_CORRUPT;
	e->hdrs = (const char *)h;
	return 0;
}
