/*
 * hdrs.h - HAProxy's req.hdrs_bin / res.hdrs_bin header blocks, and the
 * small header-field helpers the cache policy needs (lists, hop-by-hop
 * names, value safety).
 *
 * Format: repeated <varint name-len><name><varint value-len><value>, ended
 * by an empty name AND an empty value; nothing may follow the terminator.
 *
 * Pure: no allocation, no I/O, no globals. The parsed struct hdr entries
 * point into the caller's buffer and live as long as it does. Names and
 * values are NOT NUL-terminated and may contain any byte: callers that
 * replay them must check hdr_name_valid() / hdr_value_safe() first.
 */
#ifndef SC_HDRS_H
#define SC_HDRS_H

#include <stddef.h>
#include <stdint.h>

#define HDRS_ERR_MALFORMED	(-1)	/* truncated, no terminator, length past the end, junk after it */
#define HDRS_ERR_TOO_MANY	(-2)	/* more than max headers */

struct hdr {
	const char *name;
	size_t nlen;
	const char *val;
	size_t vlen;
};

/* Parse a whole hdrs_bin block into out[0..max). On 0, *n is the number of
 * headers (the terminator is not counted). On error *n is unspecified and
 * out may have been partly written. An empty name with a non-empty value is
 * malformed. */
int hdrs_parse(const uint8_t *buf, size_t len, struct hdr *out, size_t max, size_t *n);

/* Next header named NAME (case-insensitive, whole name) at index >= *from,
 * or NULL. On a match *from is set past it, so a loop visits every
 * occurrence. from may be NULL to find the first one. */
const struct hdr *hdrs_find(const struct hdr *h, size_t n, const char *name, size_t nlen,
    size_t *from);

/* Every value of NAME, in order, joined with ", " (RFC 9110 5.3) into
 * out[0..cap), NOT NUL-terminated; empty values are kept so the result is
 * a faithful image of the field lines. Returns 1 found (*outlen set), 0
 * absent (*outlen = 0), -1 no room (nothing promised about out). */
int hdrs_join(const struct hdr *h, size_t n, const char *name, size_t nlen,
    char *out, size_t cap, size_t *outlen);

/* 1 when TOK is one element of the comma-separated LIST (Connection, Vary):
 * elements are OWS-trimmed and compared case-insensitively as whole
 * tokens. Empty elements never match. */
int hdr_token_in_list(const char *list, size_t len, const char *tok, size_t toklen);

/* 1 for the hop-by-hop fields a proxy must not store or forward
 * (RFC 9110 7.6.1 and the usual legacy ones). Case-insensitive. */
int hdrs_is_hop_by_hop(const char *name, size_t nlen);

/* 1 when C is an RFC 9110 tchar (5.6.2): ALPHA, DIGIT or one of
 * !#$%&'*+-.^_`|~. The one token test of the agent: header names,
 * Cache-Control directives and configured methods all go through it. */
int hdr_is_tchar(int c);

/* 1 when NAME is a non-empty RFC 9110 token (safe to write as "Name:"). */
int hdr_name_valid(const char *name, size_t nlen);

/* 1 when V contains no CR, LF, NUL or other control byte except HTAB
 * (DEL included), i.e. it can be replayed on one header line. obs-text
 * bytes >= 0x80 are allowed. */
int hdr_value_safe(const char *v, size_t len);

/* Case-insensitive equality of two ASCII strings given as length+bytes. */
int hdr_name_eq(const char *a, size_t alen, const char *b, size_t blen);

#endif
