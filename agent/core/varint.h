/*
 * varint.h - HAProxy's variable-length integer ("peers" encoding), used by
 * SPOP frames and by the req.hdrs_bin / res.hdrs_bin sample format.
 *
 * Pure: no allocation, no I/O. Decoding checks every byte against the end.
 */
#ifndef SC_VARINT_H
#define SC_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define VARINT_MAX_LEN 10

/* Decode one varint from [p, end). Returns bytes consumed (>0), 0 when more
 * bytes are needed (ran off the end), -1 when the encoding overflows 64 bits. */
int varint_decode(const uint8_t *p, const uint8_t *end, uint64_t *out);

/* Encode v into [p, end). Returns bytes written, or 0 when it does not fit. */
int varint_encode(uint64_t v, uint8_t *p, const uint8_t *end);

/* Bytes varint_encode(v) would write. */
int varint_size(uint64_t v);

#endif
