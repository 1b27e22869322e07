/*
 * spop_peer.h - HAProxy's half of SPOP, for the tests and the fuzz targets
 * only: the frames HAProxy sends (HAPROXY-HELLO, NOTIFY,
 * HAPROXY-DISCONNECT), the ACK decoder HAProxy runs, the capability check
 * of a HELLO's list, and ACK shorthands, so a test can build what the agent
 * reads and read what the agent writes. The agent never sends or decodes
 * these, so they are not in agent/core/spop.c; they are written over the
 * core's public frame builder and decoders.
 *
 * Header only (static inline): a test or fuzz target includes it, and the
 * Makefile needs no test library. Same contract as spop.h: nothing is
 * written at or past the end given, "does not fit" is -1, decoders leave
 * the cursor where it was on error.
 */
#ifndef SC_SPOP_PEER_H
#define SC_SPOP_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "spop.h"

static inline struct spop_data
peer_cstr(const char *s)
{
	struct spop_data d;

	d.type = SPOP_T_STR;
	d.v.s.p = (const uint8_t *)s;
	d.v.s.len = s ? strlen(s) : 0;
	return d;
}

/* Append raw payload bytes (fragments, deliberately malformed payloads). */
static inline void
peer_fb_raw(struct spop_fb *fb, const void *bytes, size_t n)
{
	if (fb->err)
		return;
	if (n > (size_t)(fb->end - fb->p)) {
		fb->err = 1;
		return;
	}
	if (n)
		memcpy(fb->p, bytes, n);
	fb->p += n;
}

/* HAPROXY-HELLO. NULL strings and healthcheck < 0 leave the item out, to
 * build incomplete HELLOs on purpose. Item order follows HAProxy 2.6
 * (spoe_prepare_hahello_frame, then the health check appends
 * "healthcheck"). */
static inline int
peer_enc_hello(uint8_t *buf, size_t cap, const char *versions, uint32_t max_frame_size,
	       const char *caps, int healthcheck, const char *engine_id)
{
	struct spop_fb fb;
	struct spop_data d;

	spop_fb_begin(&fb, buf, cap, SPOP_FRM_HAPROXY_HELLO, SPOP_FL_FIN, 0, 0);
	if (versions) {
		d = peer_cstr(versions);
		spop_fb_kv(&fb, "supported-versions", &d);
	}
	d.type = SPOP_T_UINT32;
	d.v.u = max_frame_size;
	spop_fb_kv(&fb, "max-frame-size", &d);
	if (caps) {
		d = peer_cstr(caps);
		spop_fb_kv(&fb, "capabilities", &d);
	}
	if (engine_id) {
		d = peer_cstr(engine_id);
		spop_fb_kv(&fb, "engine-id", &d);
	}
	if (healthcheck >= 0) {
		d.type = SPOP_T_BOOL;
		d.v.b = healthcheck != 0;
		spop_fb_kv(&fb, "healthcheck", &d);
	}
	return spop_fb_end(&fb);
}

/* HAPROXY-DISCONNECT: the AGENT-DISCONNECT payload under the other type. */
static inline int
peer_enc_disconnect(uint8_t *buf, size_t cap, uint32_t status, const char *msg)
{
	struct spop_fb fb;
	struct spop_data d;

	spop_fb_begin(&fb, buf, cap, SPOP_FRM_HAPROXY_DISCON, SPOP_FL_FIN, 0, 0);
	d.type = SPOP_T_UINT32;
	d.v.u = status;
	spop_fb_kv(&fb, "status-code", &d);
	d = peer_cstr(msg ? msg : "");
	spop_fb_kv(&fb, "message", &d);
	return spop_fb_end(&fb);
}

/* NOTIFY builder: begin, then per message msg(name, nargs) followed by its
 * args. The arg count is not enforced, so tests can lie about NB-ARGS;
 * nargs above 255 is an error. */
struct peer_notify {
	struct spop_fb fb;
};

static inline void
peer_notify_begin(struct peer_notify *n, uint8_t *buf, size_t cap, uint64_t stream_id,
		  uint64_t frame_id)
{
	spop_fb_begin(&n->fb, buf, cap, SPOP_FRM_NOTIFY, SPOP_FL_FIN, stream_id, frame_id);
}

static inline void
peer_notify_msg(struct peer_notify *n, const char *name, size_t namelen, int nargs)
{
	uint8_t nb;

	if (nargs < 0 || nargs > 255) {
		n->fb.err = 1;
		return;
	}
	nb = (uint8_t)nargs;
	spop_fb_str(&n->fb, name, namelen);
	peer_fb_raw(&n->fb, &nb, 1);
}

static inline void
peer_notify_arg(struct peer_notify *n, const char *name, size_t namelen,
		const struct spop_data *val)
{
	struct spop_fb *fb = &n->fb;

	spop_fb_str(fb, name, namelen);
	if (!fb->err && spop_enc_data(&fb->p, fb->end, val) < 0)
		fb->err = 1;
}

static inline int
peer_notify_end(struct peer_notify *n)
{
	return spop_fb_end(&n->fb);
}

/* One action of an ACK's LIST-OF-ACTIONS, as HAProxy decodes it: 1 got
 * one, 0 end of list, <0 malformed (unknown action type, wrong NB-ARGS,
 * scope above RES). */
struct peer_act {
	uint8_t type;			/* SPOP_ACT_* */
	uint8_t scope;			/* SPOP_SCOPE_* */
	struct spop_str name;
	struct spop_data val;		/* set-var only; NULL for unset-var */
};

static inline int
peer_act_next(const uint8_t **p, const uint8_t *end, struct peer_act *a)
{
	const uint8_t *q = *p;
	uint8_t nargs;

	if (q >= end)
		return 0;
	if (end - q < 3)
		return -SPOP_ST_INVALID;
	a->type = q[0];
	nargs = q[1];
	a->scope = q[2];
	q += 3;
	if ((a->type == SPOP_ACT_SET_VAR && nargs != 3) ||
	    (a->type == SPOP_ACT_UNSET_VAR && nargs != 2) ||
	    (a->type != SPOP_ACT_SET_VAR && a->type != SPOP_ACT_UNSET_VAR) ||
	    a->scope > SPOP_SCOPE_RES)
		return -SPOP_ST_INVALID;
	/* VAR-NAME is a bare <STRING>, without a type byte. */
	if (spop_str_decode(&q, end, &a->name) < 0)
		return -SPOP_ST_INVALID;
	if (a->type == SPOP_ACT_SET_VAR) {
		if (spop_data_decode(&q, end, &a->val) < 0)
			return -SPOP_ST_INVALID;
	} else {
		a->val.type = SPOP_T_NULL;
	}
	*p = q;
	return 1;
}

/* ACK shorthands over the core's builder, one per value type, and the
 * unset-var action (NB-ARGS 2, no value), which the agent never sends. */
static inline void
peer_ack_set_str(struct spop_ack *a, int scope, const char *name, size_t namelen,
		 const char *s, size_t len)
{
	struct spop_data d;

	d.type = SPOP_T_STR;
	d.v.s.p = (const uint8_t *)s;
	d.v.s.len = len;
	spop_ack_set(a, scope, name, namelen, &d);
}

static inline void
peer_ack_set_bin(struct spop_ack *a, int scope, const char *name, size_t namelen,
		 const void *b, size_t len)
{
	struct spop_data d;

	d.type = SPOP_T_BIN;
	d.v.s.p = b;
	d.v.s.len = len;
	spop_ack_set(a, scope, name, namelen, &d);
}

static inline void
peer_ack_set_int(struct spop_ack *a, int scope, const char *name, size_t namelen, int64_t v)
{
	struct spop_data d;

	d.type = SPOP_T_INT64;
	d.v.i = v;
	spop_ack_set(a, scope, name, namelen, &d);
}

static inline void
peer_ack_set_uint(struct spop_ack *a, int scope, const char *name, size_t namelen, uint64_t v)
{
	struct spop_data d;

	d.type = SPOP_T_UINT64;
	d.v.u = v;
	spop_ack_set(a, scope, name, namelen, &d);
}

static inline void
peer_ack_set_bool(struct spop_ack *a, int scope, const char *name, size_t namelen, int v)
{
	struct spop_data d;

	d.type = SPOP_T_BOOL;
	d.v.b = v != 0;
	spop_ack_set(a, scope, name, namelen, &d);
}

static inline void
peer_ack_set_null(struct spop_ack *a, int scope, const char *name, size_t namelen)
{
	struct spop_data d;

	d.type = SPOP_T_NULL;
	spop_ack_set(a, scope, name, namelen, &d);
}

/* <UNSET-VAR:2><NB-ARGS:2><VAR-SCOPE><VAR-NAME>; a bad scope fails the
 * frame, as the core's set does. */
static inline void
peer_ack_unset(struct spop_ack *a, int scope, const char *name, size_t namelen)
{
	uint8_t hdr[3];

	if (scope < SPOP_SCOPE_PROC || scope > SPOP_SCOPE_RES) {
		a->fb.err = 1;
		return;
	}
	hdr[0] = SPOP_ACT_UNSET_VAR;
	hdr[1] = 2;
	hdr[2] = (uint8_t)scope;
	peer_fb_raw(&a->fb, hdr, sizeof(hdr));
	spop_fb_str(&a->fb, name, namelen);
}

#endif
