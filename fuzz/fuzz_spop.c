/*
 * fuzz_spop.c - libFuzzer target for the SPOP codec: the input is a byte
 * stream as the agent would read it from HAProxy, cut into frames and
 * decoded the way the connection state machine will. Every decoded value is
 * re-encoded and decoded again, so encoder/decoder disagreement aborts too.
 * Must not allocate per input beyond the stack, nor do I/O.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spop.h"
/* HAProxy's half (the ACK decoder, the capability check): test-only */
#include "../tests/unit/spop_peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same_data(const struct spop_data *a, const struct spop_data *b)
{
	if (a->type != b->type)
		abort();
	switch (a->type) {
	case SPOP_T_BOOL:
		if (a->v.b != b->v.b)
			abort();
		break;
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		if (a->v.i != b->v.i)
			abort();
		break;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		if (a->v.u != b->v.u)
			abort();
		break;
	case SPOP_T_IPV4:
		if (memcmp(a->v.ip4, b->v.ip4, 4))
			abort();
		break;
	case SPOP_T_IPV6:
		if (memcmp(a->v.ip6, b->v.ip6, 16))
			abort();
		break;
	case SPOP_T_STR:
	case SPOP_T_BIN:
		if (a->v.s.len != b->v.s.len ||
		    (a->v.s.len && memcmp(a->v.s.p, b->v.s.p, a->v.s.len)))
			abort();
		break;
	}
}

/* Round-trip one value, and push it through the ACK builder with a small
 * buffer so the overflow paths run too. */
static void
check_value(const struct spop_str *name, const struct spop_data *d)
{
	uint8_t buf[64], *w = buf;
	const uint8_t *r = buf;
	struct spop_data back;
	struct spop_ack a;
	int n;

	if (spop_enc_data(&w, buf + sizeof(buf), d) == 0) {
		if (spop_data_decode(&r, w, &back) != 0 || r != w)
			abort();
		same_data(d, &back);
	}
	spop_ack_begin(&a, buf, sizeof(buf), 1, 1);
	spop_ack_set(&a, SPOP_SCOPE_TXN, (const char *)name->p, name->len, d);
	n = spop_ack_end(&a);
	if (n != -1 && (n < 11 || (size_t)n > sizeof(buf)))
		abort();
}

static void
walk_kv(const uint8_t *p, const uint8_t *end)
{
	struct spop_str name;
	struct spop_data val;

	while (spop_kv_next(&p, end, &name, &val) == 1)
		check_value(&name, &val);
}

static void
walk_msgs(const uint8_t *p, const uint8_t *end)
{
	struct spop_str name;
	struct spop_data val;
	int nargs, r;

	r = spop_msgs_validate(p, (size_t)(end - p), NULL);
	while (spop_msg_next(&p, end, &name, &nargs) == 1) {
		while (nargs-- > 0) {
			if (spop_arg_next(&p, end, &name, &val) < 0) {
				if (r == 0)	/* validate said fine */
					abort();
				return;
			}
			check_value(&name, &val);
		}
	}
}

static void
on_frame(const struct spop_frame *f)
{
	const uint8_t *end = f->payload + f->plen;
	struct spop_hello h;
	struct spop_disconnect d;
	struct peer_act act;
	const uint8_t *p;

	switch (f->type) {
	case SPOP_FRM_HAPROXY_HELLO:
		if (spop_hello_parse(f->payload, f->plen, &h) == 0) {
			uint8_t out[128];

			(void)spop_hello_check(&h);
			(void)spop_version_supported((const char *)h.versions.p,
						     h.versions.len);
			(void)spop_has_cap((const char *)h.caps.p, h.caps.len,
					   "pipelining");
			(void)spop_enc_agent_hello(out, sizeof(out),
						   h.max_frame_size, "pipelining,async");
		}
		break;
	case SPOP_FRM_HAPROXY_DISCON:
	case SPOP_FRM_AGENT_DISCON:
		if (spop_disconnect_parse(f->payload, f->plen, &d) == 0) {
			uint8_t out[64];

			(void)spop_status_str((int)d.status);
			(void)spop_enc_agent_disconnect(out, sizeof(out), d.status,
							"fuzz");
		}
		break;
	case SPOP_FRM_NOTIFY:
	case SPOP_FRM_UNSET:
		walk_msgs(f->payload, end);
		break;
	case SPOP_FRM_ACK:
		p = f->payload;
		while (peer_act_next(&p, end, &act) == 1)
			;
		break;
	default:
		walk_kv(f->payload, end);
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct spop_frame f;
	uint32_t flen;
	int r;

	/* A stream of frames, as read off one connection. */
	while (p < end) {
		r = spop_frame_len(p, (size_t)(end - p), 16380, &flen);
		if (r <= 0)
			break;
		if ((size_t)(end - p) - 4 < flen)
			break;		/* would wait for more */
		if (spop_frame_parse(p + 4, flen, &f) == 0) {
			if (f.payload < p + 4 || f.payload + f.plen != p + 4 + flen)
				abort();
			on_frame(&f);
		}
		p += 4 + flen;
	}
	/* and the raw input as a payload of each kind, without framing */
	walk_kv(data, end);
	walk_msgs(data, end);
	return 0;
}
