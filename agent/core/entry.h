/*
 * entry.h - the stored cache entry: the bytes kept in memcached under a
 * key (MISSION 4.5). Versioned, checksummed, binary-safe.
 *
 *   off  size  field
 *     0     3  magic "SCE"
 *     3     1  version (ENTRY_VERSION)
 *     4     8  stored_at   int64 BE, unix seconds
 *    12     8  lifetime    int64 BE, freshness lifetime in seconds (>= 0)
 *    20     8  age0        int64 BE, upstream Age at store time (>= 0)
 *    28     2  status      uint16 BE, 100..999
 *    30     4  flags       uint32 BE, opaque to this module
 *    34   4+h  headers     uint32 BE length + replay text "Name: value\r\n"...
 *       4+v  vary        uint32 BE length + opaque blob built by the caller
 *       4+b  body        uint32 BE length + any bytes
 *    end-4 4  CRC-32C (Castagnoli) BE over every byte before it
 *
 * The buffer must be exactly one entry: trailing bytes are corruption.
 * Pure: no allocation, no I/O, no globals. Decoded pointers point into the
 * caller's buffer. Another version is ENTRY_ERR_VERSION and anything else
 * wrong is ENTRY_ERR_CORRUPT: both mean Miss and overwrite.
 */
#ifndef SC_ENTRY_H
#define SC_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#define ENTRY_VERSION		1
#define ENTRY_OVERHEAD		50	/* fixed fields, three lengths, checksum */

#define ENTRY_ERR_CORRUPT	(-1)
#define ENTRY_ERR_VERSION	(-2)

struct entry {
	int64_t stored_at, lifetime, age0;
	uint16_t status;
	uint32_t flags;
	const char *hdrs;		/* NULL allowed when hlen == 0 */
	size_t hlen;
	const uint8_t *vary;
	size_t vlen;
	const uint8_t *body;
	size_t blen;
};

/* Encoded size, or SIZE_MAX when it cannot be represented. */
size_t entry_size(const struct entry *e);

/* Bytes written to buf[0..cap), or -1: does not fit, a block longer than
 * 4 GiB - 1, a total over INT_MAX, status outside 100..999, or a negative
 * lifetime or age0. */
int entry_encode(const struct entry *e, uint8_t *buf, size_t cap);

/* 0, ENTRY_ERR_VERSION or ENTRY_ERR_CORRUPT. On error *e is unspecified. */
int entry_decode(const uint8_t *buf, size_t len, struct entry *e);

/* CRC-32C of buf (the checksum the format uses; exposed for tests). */
uint32_t entry_crc32c(const uint8_t *buf, size_t len);

#endif
