/*
 * varint.c - see varint.h. 0 <= X < 240 is one byte; above, the first byte
 * carries the low 4 bits with 0xF0 set, then 7 bits per byte, high bit set
 * on all but the last.
 */
#include "varint.h"

int
varint_decode(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
	const uint8_t *start = p;
	uint64_t v, add;
	unsigned shift;

	if (p >= end)
		return 0;
	v = *p;
	if (v < 240) {
		*out = v;
		return 1;
	}
	shift = 4;
	do {
		p++;
		if (p >= end)
			return 0;
		if (shift > 63)
			return -1;
		add = (uint64_t)*p << shift;
		if ((add >> shift) != *p || v + add < v)
			return -1;	/* bits lost past 64 */
		v += add;
		shift += 7;
	} while (*p >= 128);
	*out = v;
	return (int)(p - start + 1);
}

int
varint_encode(uint64_t v, uint8_t *p, const uint8_t *end)
{
	uint8_t *start = p;

	if (p >= end)
		return 0;
	if (v < 240) {
		*p = (uint8_t)v;
		return 1;
	}
	*p++ = (uint8_t)v | 240;
	v = (v - 240) >> 4;
	while (v >= 128) {
		if (p >= end)
			return 0;
		*p++ = (uint8_t)v | 128;
		v = (v - 128) >> 7;
	}
	if (p >= end)
		return 0;
	*p++ = (uint8_t)v;
	return (int)(p - start);
}

int
varint_size(uint64_t v)
{
	int n = 1;

	if (v < 240)
		return 1;
	v = (v - 240) >> 4;
	while (v >= 128) {
		n++;
		v = (v - 128) >> 7;
	}
	return n + 1;
}
