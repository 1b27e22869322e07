/*
 * spoeconn.c - the SPOP connection state machine; see spoeconn.h.
 *
 *   HELLO --HAPROXY-HELLO--> READY --HAPROXY-DISCONNECT / error--> CLOSING
 *     |  (healthcheck: AGENT-HELLO, then CLOSING)                     |
 *     +-------------------- error: AGENT-DISCONNECT ----------------> +--> freed
 *
 * conn_set_state() is the only place the state changes. Frames are parsed
 * by the pure codec in spop.c; this file only moves bytes, checks the
 * protocol's order and sizes, and applies backpressure: when a connection
 * has max_inflight requests in flight or more than max_output bytes queued
 * for HAProxy, reading stops until it drains. It must never block and never
 * wait for memcached: a request in flight is a struct spoe_req, finished by
 * spoe_req_done() whenever the cache layer is ready.
 *
 * Limits (nothing a peer does grows without bound): a peer gets
 * HELLO_TIMEOUT_SEC to say HELLO, then agent.idle_timeout of silence (none
 * of its requests in flight) or of not reading what we send; what every
 * connection of a worker holds (input, fragments, queued ACKs) is counted,
 * and above its share of agent.max_buffered the connections holding the
 * most are closed; once max_output is queued for a peer, its large ACKs
 * answer Bypass. The acceptor (agent.c) caps the connections.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "bevio.h"
#include "log.h"
#include "spoeconn.h"
#include "varint.h"

enum conn_state { ST_HELLO, ST_READY, ST_CLOSING };
static const char *const state_name[] = { "HELLO", "READY", "CLOSING" };

/* Why reading is stopped: named flags, cleared independently. */
#define STALL_INFLIGHT	0x1u
#define STALL_OUTPUT	0x2u

#define HELLO_TIMEOUT_SEC	10	/* a peer that never says HELLO */
#define CLOSE_TIMEOUT_SEC	5	/* a peer that never reads our DISCONNECT */
#define READ_MORE_MAX		(256 * 1024)	/* bytes read per read event */
/* Capabilities both sides must have: granted only when HAProxy offers them
 * (HAProxy 3.1+ offers pipelining alone). "fragmentation" is different: it
 * says what a peer can receive (SPOE.txt 2.3), so the agent, which
 * reassembles fragmented NOTIFY frames, always announces it. */
static const char *const shared_caps[] = { "pipelining", "async" };

struct spoe_conn {
	struct spoe_server *srv;
	struct bufferevent *bev;
	enum conn_state state;
	unsigned stall;
	unsigned long long id;
	uint32_t max_frame;		/* ours before HELLO, negotiated after */
	int inflight;
	TAILQ_HEAD(, spoe_req) reqs;
	TAILQ_ENTRY(spoe_conn) link;
	struct event *resume;		/* re-runs input processing after a stall */
	struct bevio_writer w;		/* writes the output at the end of each loop pass */
	/* One fragmented NOTIFY at a time (SPOP forbids interlacing). */
	struct evbuffer *frag;		/* NULL when none is being reassembled */
	uint64_t frag_sid, frag_fid;
	int frag_skip;			/* we aborted it: drop its fragments until FIN */
	const char *errmsg;		/* for the DISCONNECT of a failed frame */
	size_t held;			/* bytes in its input, output and frag buffers */
	size_t frame_len;		/* conn_process(): the frame being handled, else 0 */
};

static void conn_free(struct spoe_conn *c);
static void conn_process(struct spoe_conn *c);

static void
conn_set_state(struct spoe_conn *c, enum conn_state st)
{
	assert(st >= c->state);	/* never goes back */
	log_debug("spop conn %llu: %s -> %s", c->id, state_name[c->state], state_name[st]);
	c->state = st;
}

static void
conn_stall(struct spoe_conn *c, unsigned why)
{
	if (c->stall == 0)
		bufferevent_disable(c->bev, EV_READ);
	c->stall |= why;
}

static void
conn_unstall(struct spoe_conn *c, unsigned why)
{
	if ((c->stall & why) == 0)
		return;
	c->stall &= ~why;
	if (c->stall == 0 && c->state != ST_CLOSING) {
		bufferevent_enable(c->bev, EV_READ);
		/* Frames may already sit in the input buffer: no read event will
		 * come for them, so process them from the loop, not from here
		 * (we may be inside a memcached callback). */
		event_active(c->resume, 0, 0);
	}
}

/* ---- limits: buffered bytes, idle time, connection count ---------------- */

#define ACK_SHED_MIN	4096	/* ACKs up to this stay whole when a peer does not read */

static size_t
buffer_budget(const struct spoe_server *s)
{
	return s->conf->max_buffered / (size_t)(s->conf->threads > 0 ? s->conf->threads : 1);
}

/* Every change of a connection's buffers, as libevent makes it: adds and
 * drains, never a free (conn_unwatch() takes those). Only counts; closing
 * waits for on_evict(), outside libevent's buffer code. */
static void
on_buffer_change(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct spoe_conn *c = arg;
	struct spoe_server *s = c->srv;

	(void)b;
	c->held = c->held + info->n_added - info->n_deleted;
	s->buffered = s->buffered + info->n_added - info->n_deleted;
	M_ADD(s->m, buffered, (int64_t)info->n_added - (int64_t)info->n_deleted);
	if (info->n_added > 0 && s->buffered > buffer_budget(s))
		event_active(s->evict, 0, 0);
}

static int
conn_watch(struct spoe_conn *c, struct evbuffer *b)
{
	return evbuffer_add_cb(b, on_buffer_change, c) != NULL ? 0 : -1;
}

/* Before b is freed with what it holds: take that out of the count. */
static void
conn_unwatch(struct spoe_conn *c, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);

	if (evbuffer_remove_cb(b, on_buffer_change, c) < 0)
		return;		/* never watched */
	c->held -= n;
	c->srv->buffered -= n;
	M_ADD(c->srv->m, buffered, -(int64_t)n);
}

/* Above the worker's share of max_buffered: close the connections that
 * hold the most (a hostile peer holding a partial frame or a never-read
 * output holds far more than HAProxy's connections, which drain). */
static void
on_evict(evutil_socket_t fd, short what, void *arg)
{
	struct spoe_server *s = arg;
	size_t budget = buffer_budget(s);

	(void)fd;
	(void)what;
	while (s->buffered > budget) {
		struct spoe_conn *c, *big = NULL;

		TAILQ_FOREACH(c, &s->conns, link)
			if (big == NULL || c->held > big->held)
				big = c;
		if (big == NULL || big->held == 0)
			break;
		M_INC(s->m, evictions);
		log_every(10, LOG_WARNING, "worker %d: SPOP connections hold %zu bytes, more than "
		    "agent.max_buffered / threads (%zu): closing conn %llu, which holds %zu",
		    s->id, s->buffered, budget, big->id, big->held);
		conn_free(big);
	}
}

/* After HELLO. A peer silent that long with nothing in flight, or not
 * reading what we queued, is gone or hostile; HAProxy closes its idle
 * connections well before (timeout idle 30 s, 3.x: timeout server). */
static void
conn_arm_idle(struct spoe_conn *c)
{
	struct timeval tv = { c->srv->conf->idle_timeout, 0 };

	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/* Once max_output is queued for a peer, its requests still in flight
 * complete: a large ACK (a Hit) answers Bypass instead, so the connection
 * holds about max_output more at most (max_inflight small ACKs). */
static void
ack_shed(struct spoe_conn *c, struct spoe_req *r)
{
	size_t queued = evbuffer_get_length(bufferevent_get_output(c->bev));

	if (queued < c->srv->conf->max_output || spoe_req_ack_size(r) <= ACK_SHED_MIN)
		return;
	r->nvars = 0;
	spoe_req_set_str(r, "status", "Bypass", 6);
	M_INC(c->srv->m, acks_shed);
	log_every(10, LOG_WARNING, "spop conn %llu: %zu bytes queued for a peer that does not "
	    "read them (agent.max_output %zu): large ACKs answer Bypass", c->id, queued,
	    c->srv->conf->max_output);
}

static void
conn_count_closed(struct spoe_server *s)
{
	if (s->nconns != NULL)
		atomic_fetch_sub_explicit(s->nconns, 1, memory_order_relaxed);
}

static void
check_output(struct spoe_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (evbuffer_get_length(out) > c->srv->conf->max_output)
		conn_stall(c, STALL_OUTPUT);
}

/* Stop talking: queue an AGENT-DISCONNECT, close once it is written. */
static void
conn_disconnect(struct spoe_conn *c, int status, const char *msg)
{
	uint8_t buf[512];
	int n;

	if (c->state == ST_CLOSING)
		return;
	n = spop_enc_agent_disconnect(buf, sizeof(buf), (uint32_t)status, msg);
	if (n > 0)
		bufferevent_write(c->bev, buf, (size_t)n);
	if (status != SPOP_ST_NORMAL) {
		M_INC(c->srv->m, disconnects);
		log_every(1, LOG_NOTICE, "spop conn %llu: DISCONNECT status %d (%s): %s",
			    c->id, status, spop_status_str(status), msg);
	}
	conn_set_state(c, ST_CLOSING);
	bufferevent_disable(c->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	{
		struct timeval tv = { CLOSE_TIMEOUT_SEC, 0 };
		bufferevent_set_timeouts(c->bev, NULL, &tv);
	}
}

static int
fail(struct spoe_conn *c, int status, const char *msg)
{
	c->errmsg = msg;
	return -status;
}

static int
on_hello(struct spoe_conn *c, const struct spop_frame *f)
{
	struct spop_hello h;
	uint8_t buf[256];
	char caps[64];
	size_t clen = 0;
	uint32_t offered;
	int rc, n;

	rc = spop_hello_parse(f->payload, f->plen, &h);
	if (rc == 0)
		rc = spop_hello_check(&h);
	if (rc < 0)
		return fail(c, -rc, spop_status_str(-rc));
	offered = h.max_frame_size;
	if (h.max_frame_size < c->max_frame)
		c->max_frame = h.max_frame_size;
	for (size_t i = 0; i < sizeof(shared_caps) / sizeof(shared_caps[0]); i++)
		if (spop_has_cap((const char *)h.caps.p, h.caps.len, shared_caps[i]))
			clen += (size_t)snprintf(caps + clen, sizeof(caps) - clen, "%s,",
			    shared_caps[i]);
	snprintf(caps + clen, sizeof(caps) - clen, "fragmentation");
	/* HAProxy 3.1+ never fragments: a message larger than our frames
	 * fails there. Its HELLO cannot be told from 2.x's without async (the
	 * templates' choice on 2.x), so the warning names the version. */
	if (!h.healthcheck && offered > c->max_frame)
		log_every(60, LOG_WARNING, "spop conn %llu: HAProxy frames up to %u bytes, ours are "
		    "%u: HAProxy 3.1+ never fragments, so a larger message fails there (raise "
		    "agent.max_frame_size to tune.bufsize - 4)", c->id, offered, c->max_frame);
	n = spop_enc_agent_hello(buf, sizeof(buf), c->max_frame, caps);
	if (n < 0)
		return fail(c, SPOP_ST_UNKNOWN, "cannot encode AGENT-HELLO");
	bufferevent_write(c->bev, buf, (size_t)n);
	conn_arm_idle(c);
	if (h.healthcheck) {
		/* Answer and close; HAProxy expects no DISCONNECT here. */
		conn_set_state(c, ST_CLOSING);
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		return 0;
	}
	log_debug("spop conn %llu: hello, max-frame-size %u, caps \"%.*s\"", c->id,
	    c->max_frame, (int)h.caps.len, (const char *)h.caps.p);
	conn_set_state(c, ST_READY);
	return 0;
}

/* A complete NOTIFY payload: make a request of it and give it to the cache. */
static int
dispatch(struct spoe_conn *c, uint64_t sid, uint64_t fid, const uint8_t *payload, size_t plen)
{
	struct spoe_req *r;

	if (spop_msgs_validate(payload, plen, NULL) < 0)
		return fail(c, SPOP_ST_INVALID, "malformed LIST-OF-MESSAGES in NOTIFY");
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return fail(c, SPOP_ST_RES, "out of memory");
	r->conn = c;
	r->srv = c->srv;
	r->stream_id = sid;
	r->frame_id = fid;
	r->max_ack = c->max_frame - 1;	/* HAProxy 3.2+ drops an ACK of exactly the max */
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
	c->inflight++;
	M_ADD(c->srv->m, inflight, 1);
	if (c->inflight >= c->srv->conf->max_inflight)
		conn_stall(c, STALL_INFLIGHT);
	c->srv->notify(c->srv->arg, r, payload, plen);	/* may finish r before returning */
	return 0;
}

static void
frag_reset(struct spoe_conn *c)
{
	if (c->frag != NULL) {
		conn_unwatch(c, c->frag);
		evbuffer_free(c->frag);
	}
	c->frag = NULL;
}

/* Give up on an over-large fragmented NOTIFY: ACK it with ABORT (HAProxy
 * then ends that event with an error and carries on) and drop the rest. */
static void
frag_abort(struct spoe_conn *c, int fin)
{
	uint8_t buf[64];
	struct spop_fb fb;
	int n;

	spop_fb_begin(&fb, buf, sizeof(buf), SPOP_FRM_ACK, SPOP_FL_FIN | SPOP_FL_ABRT,
	    c->frag_sid, c->frag_fid);
	n = spop_fb_end(&fb);
	if (n > 0)
		bufferevent_write(c->bev, buf, (size_t)n);
	frag_reset(c);
	c->frag_skip = !fin;
	log_every(1, LOG_WARNING,
	    "spop conn %llu: fragmented NOTIFY larger than max_frag_size (%zu), aborted",
	    c->id, c->srv->conf->max_frag_size);
}

static int
frag_add(struct spoe_conn *c, const struct spop_frame *f)
{
	if (evbuffer_get_length(c->frag) + f->plen > c->srv->conf->max_frag_size) {
		frag_abort(c, f->flags & SPOP_FL_FIN);
		return 0;
	}
	if (evbuffer_add(c->frag, f->payload, f->plen) < 0)
		return fail(c, SPOP_ST_RES, "out of memory");
	if (f->flags & SPOP_FL_FIN) {
		size_t len = evbuffer_get_length(c->frag);
		const uint8_t *p = evbuffer_pullup(c->frag, -1);
		int rc;

		if (p == NULL && len > 0)
			return fail(c, SPOP_ST_RES, "out of memory");
		rc = dispatch(c, c->frag_sid, c->frag_fid, p, len);
		frag_reset(c);
		return rc;
	}
	return 0;
}

static int
on_notify(struct spoe_conn *c, const struct spop_frame *f)
{
	if (c->frag != NULL || c->frag_skip)
		return fail(c, SPOP_ST_INTERLACED, "NOTIFY while a fragmented frame is pending");
	if (f->flags & SPOP_FL_ABRT)
		return 0;	/* aborted before it started: nothing to answer */
	if (f->flags & SPOP_FL_FIN)
		return dispatch(c, f->stream_id, f->frame_id, f->payload, f->plen);
	c->frag = evbuffer_new();
	if (c->frag == NULL || conn_watch(c, c->frag) < 0)
		return fail(c, SPOP_ST_RES, "out of memory");
	c->frag_sid = f->stream_id;
	c->frag_fid = f->frame_id;
	return frag_add(c, f);
}

static int
on_fragment(struct spoe_conn *c, const struct spop_frame *f)
{
	if (c->frag == NULL && !c->frag_skip)
		return fail(c, SPOP_ST_FRAMEID_NOTFOUND, "fragment of an unknown frame");
	if (f->stream_id != c->frag_sid || f->frame_id != c->frag_fid)
		return fail(c, SPOP_ST_INTERLACED, "fragment of another frame than the pending one");
	if (c->frag_skip) {
		if (f->flags & (SPOP_FL_FIN | SPOP_FL_ABRT))
			c->frag_skip = 0;
		return 0;
	}
	if (f->flags & SPOP_FL_ABRT) {
		frag_reset(c);	/* HAProxy gave up on it; it expects no ACK */
		return 0;
	}
	return frag_add(c, f);
}

static int
on_haproxy_disconnect(struct spoe_conn *c, const struct spop_frame *f)
{
	struct spop_disconnect d;

	if (spop_disconnect_parse(f->payload, f->plen, &d) == 0 && (d.seen & SPOP_DISCON_STATUS) &&
	    d.status != SPOP_ST_NORMAL)
		log_info("spop conn %llu: HAProxy disconnects: status %u (%s): %.*s", c->id,
		    d.status, spop_status_str((int)d.status), (int)d.message.len,
		    (const char *)d.message.p);
	conn_disconnect(c, SPOP_ST_NORMAL, "bye");
	return 0;
}

static int
conn_frame(struct spoe_conn *c, const uint8_t *data, size_t len)
{
	struct spop_frame f;

	if (spop_frame_parse(data, len, &f) < 0)
		return fail(c, SPOP_ST_INVALID, "malformed frame header");
	M_INC(c->srv->m, frames_in);
	if (f.type == SPOP_FRM_HAPROXY_DISCON)
		return on_haproxy_disconnect(c, &f);
	if (c->state == ST_HELLO) {
		if (f.type != SPOP_FRM_HAPROXY_HELLO)
			return fail(c, SPOP_ST_INVALID, "expected HAPROXY-HELLO first");
		return on_hello(c, &f);
	}
	switch (f.type) {
	case SPOP_FRM_NOTIFY:
		return on_notify(c, &f);
	case SPOP_FRM_UNSET:
		return on_fragment(c, &f);
	case SPOP_FRM_HAPROXY_HELLO:
		return fail(c, SPOP_ST_INVALID, "second HAPROXY-HELLO");
	default:
		return fail(c, SPOP_ST_INVALID, "unexpected frame type");
	}
}

static void
conn_process(struct spoe_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (c->state != ST_CLOSING && c->stall == 0) {
		size_t avail = evbuffer_get_length(in);
		uint8_t hdr[SPOP_LEN_PREFIX];
		uint32_t flen = 0;
		uint8_t *data;
		int rc;

		if (avail < SPOP_LEN_PREFIX)
			break;
		evbuffer_copyout(in, hdr, sizeof(hdr));
		rc = spop_frame_len(hdr, sizeof(hdr), c->max_frame, &flen);
		if (rc < 0) {
			conn_disconnect(c, -rc, rc == -SPOP_ST_TOO_BIG ?
			    "frame is longer than max-frame-size" : "frame is too short");
			break;
		}
		if (avail < SPOP_LEN_PREFIX + (size_t)flen)
			break;
		data = evbuffer_pullup(in, SPOP_LEN_PREFIX + (ssize_t)flen);
		if (data == NULL) {
			conn_disconnect(c, SPOP_ST_RES, "out of memory");
			break;
		}
		c->frame_len = SPOP_LEN_PREFIX + (size_t)flen;
		rc = conn_frame(c, data + SPOP_LEN_PREFIX, flen);
		c->frame_len = 0;
		if (c->state != ST_CLOSING)
			evbuffer_drain(in, SPOP_LEN_PREFIX + (size_t)flen);
		if (rc < 0) {
			conn_disconnect(c, -rc, c->errmsg);
			break;
		}
	}
	if (c->state != ST_CLOSING)
		check_output(c);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct spoe_conn *c = arg;

	if (c->stall == 0 && c->state != ST_CLOSING)
		bevio_read_more(bev, READ_MORE_MAX);
	conn_process(c);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_process(arg);
}

/* Output written, left bytes of it still queued: by the bufferevent's
 * write event (on_write, down to the low watermark) or, all of it, by the
 * writer at the end of a loop pass (on_drained). */
static void
conn_written(struct spoe_conn *c, size_t left)
{
	if (c->state == ST_CLOSING) {
		if (left == 0)
			conn_free(c);
		return;
	}
	if (left <= c->srv->conf->max_output / 2)
		conn_unstall(c, STALL_OUTPUT);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct spoe_conn *c = arg;

	bevio_writer_written(&c->w);
	conn_written(c, evbuffer_get_length(bufferevent_get_output(bev)));
}

static void
on_drained(void *arg)
{
	conn_written(arg, 0);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct spoe_conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->state == ST_HELLO) {
			conn_disconnect(c, SPOP_ST_TIMEOUT, "no HAPROXY-HELLO in time");
			return;
		}
		if (c->state == ST_READY && (what & BEV_EVENT_READING) && c->inflight > 0) {
			/* silent, but waiting for our answers: not idle */
			if (c->stall == 0)
				bufferevent_enable(c->bev, EV_READ);
			return;
		}
		if (c->state == ST_READY) {
			M_INC(c->srv->m, idle_closes);
			log_info("spop conn %llu: %s for %d s, closing", c->id,
			    (what & BEV_EVENT_READING) ? "idle" : "not reading its ACKs",
			    c->srv->conf->idle_timeout);
			if (what & BEV_EVENT_READING) {
				conn_disconnect(c, SPOP_ST_TIMEOUT, "idle timeout");
				return;
			}
		}
		conn_free(c);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		log_debug("spop conn %llu: closed by peer in state %s with %d in flight",
		    c->id, state_name[c->state], c->inflight);
		conn_free(c);
	}
}

int
spoe_server_init(struct spoe_server *s)
{
	TAILQ_INIT(&s->conns);
	s->next_conn_id = 0;
	s->buffered = 0;
	s->ackbuf = NULL;
	s->ackbuf_cap = 0;
	s->evict = event_new(s->base, -1, 0, on_evict, s);
	return s->evict != NULL ? 0 : -1;
}

void
spoe_server_free(struct spoe_server *s)
{
	spoe_conn_close_all(s);
	if (s->evict != NULL)
		event_free(s->evict);
	s->evict = NULL;
	free(s->ackbuf);
	s->ackbuf = NULL;
	s->ackbuf_cap = 0;
}

void
spoe_conn_new(struct spoe_server *s, int fd)
{
	struct spoe_conn *c;
	struct timeval tv = { HELLO_TIMEOUT_SEC, 0 };

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto fail;
	c->srv = s;
	c->id = ++s->next_conn_id * 64 + (unsigned long long)s->id;
	c->max_frame = s->conf->max_frame_size;
	TAILQ_INIT(&c->reqs);
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		goto fail_c;
	fd = -1;	/* owned by the bufferevent now */
	c->resume = event_new(s->base, -1, 0, on_resume, c);
	if (c->resume == NULL)
		goto fail_bev;
	if (conn_watch(c, bufferevent_get_input(c->bev)) < 0 ||
	    conn_watch(c, bufferevent_get_output(c->bev)) < 0)
		goto fail_ev;
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bevio_tune(c->bev);
	bufferevent_setwatermark(c->bev, EV_WRITE, s->conf->max_output / 2, 0);
	bufferevent_set_timeouts(c->bev, &tv, NULL);
	/* without it (out of memory) the bufferevent writes, as it can */
	(void)bevio_writer_init(&c->w, s->base, c->bev, on_drained, c);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0)
		goto fail_w;
	bevio_writer_start(&c->w);
	TAILQ_INSERT_TAIL(&s->conns, c, link);
	M_INC(s->m, conns_total);
	M_ADD(s->m, conns_open, 1);
	return;
fail_w:
	bevio_writer_free(&c->w);
fail_ev:
	event_free(c->resume);
fail_bev:
	conn_unwatch(c, bufferevent_get_input(c->bev));
	conn_unwatch(c, bufferevent_get_output(c->bev));
	bufferevent_free(c->bev);
fail_c:
	free(c);
fail:
	if (fd >= 0)
		evutil_closesocket(fd);
	conn_count_closed(s);
	log_err("worker %d: cannot set up a connection: out of memory", s->id);
}

static void
conn_free(struct spoe_conn *c)
{
	struct spoe_req *r;

	/* Detach, never cancel: memcached callbacks still find their request. */
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
		TAILQ_REMOVE(&c->reqs, r, link);
		r->conn = NULL;
	}
	frag_reset(c);
	event_free(c->resume);
	c->resume = NULL;
	bevio_writer_free(&c->w);
	conn_unwatch(c, bufferevent_get_input(c->bev));
	conn_unwatch(c, bufferevent_get_output(c->bev));
	assert(c->held == 0);
	bufferevent_free(c->bev);
	c->bev = NULL;
	TAILQ_REMOVE(&c->srv->conns, c, link);
	M_ADD(c->srv->m, conns_open, -1);
	conn_count_closed(c->srv);
	free(c);
}

void
spoe_conn_close_all(struct spoe_server *s)
{
	struct spoe_conn *c;

	while ((c = TAILQ_FIRST(&s->conns)) != NULL) {
		/* SPOP: an agent that closes says DISCONNECT first. The loop
		 * has stopped, so flush what the (non-blocking) socket takes
		 * now instead of waiting for a write event: best effort, a
		 * peer that stopped reading gets a plain close. A socket
		 * bufferevent freezes the start of its output buffer (only its
		 * own write callback drains it): unfreeze it to write here. */
		struct evbuffer *out = bufferevent_get_output(c->bev);

		conn_disconnect(c, SPOP_ST_NORMAL, "agent shutting down");
		evbuffer_unfreeze(out, 1);
		(void)evbuffer_write(out, bufferevent_getfd(c->bev));
		conn_free(c);
	}
}

void
spoe_req_set(struct spoe_req *r, const char *name, const struct spop_data *v)
{
	assert(r->nvars < SPOE_REQ_MAX_VARS);
	if (r->nvars >= SPOE_REQ_MAX_VARS)
		return;
	r->vars[r->nvars].name = name;
	r->vars[r->nvars].val = *v;
	r->nvars++;
}

void
spoe_req_set_str(struct spoe_req *r, const char *name, const char *s, size_t len)
{
	struct spop_data d = { .type = SPOP_T_STR };

	d.v.s.p = (const uint8_t *)s;
	d.v.s.len = len;
	spoe_req_set(r, name, &d);
}

void
spoe_req_set_bin(struct spoe_req *r, const char *name, const void *b, size_t len)
{
	struct spop_data d = { .type = SPOP_T_BIN };

	d.v.s.p = b;
	d.v.s.len = len;
	spoe_req_set(r, name, &d);
}

void
spoe_req_set_int(struct spoe_req *r, const char *name, int64_t v)
{
	struct spop_data d = { .type = SPOP_T_INT64 };

	d.v.i = v;
	spoe_req_set(r, name, &d);
}

void
spoe_req_set_bool(struct spoe_req *r, const char *name, int v)
{
	struct spop_data d = { .type = SPOP_T_BOOL };

	d.v.b = v != 0;
	spoe_req_set(r, name, &d);
}

size_t
spoe_req_max_ack(const struct spoe_req *r)
{
	return r->max_ack;
}

void
spoe_req_clear(struct spoe_req *r)
{
	r->nvars = 0;
}

void
spoe_req_hold(struct spoe_req *r, void *p)
{
	assert(r->hold == NULL);
	r->hold = p;
}

size_t
spoe_req_ack_size(const struct spoe_req *r)
{
	/* frame header: type, flags, two varints */
	size_t n = 1 + 4 + (size_t)varint_size(r->stream_id) + (size_t)varint_size(r->frame_id);

	for (int i = 0; i < r->nvars; i++) {
		size_t nl = strlen(r->vars[i].name);
		const struct spop_data *d = &r->vars[i].val;

		n += 3 + (size_t)varint_size(nl) + nl + 1;
		if (d->type == SPOP_T_STR || d->type == SPOP_T_BIN)
			n += (size_t)varint_size(d->v.s.len) + d->v.s.len;
		else
			n += VARINT_MAX_LEN;
	}
	return n;
}

static int
encode_ack(struct spoe_req *r, uint8_t *buf, size_t cap)
{
	struct spop_ack a;

	spop_ack_begin(&a, buf, cap, r->stream_id, r->frame_id);
	for (int i = 0; i < r->nvars; i++)
		spop_ack_set(&a, SPOP_SCOPE_TXN, r->vars[i].name, strlen(r->vars[i].name),
		    &r->vars[i].val);
	return spop_ack_end(&a);
}

/*
 * Write r's ACK straight to the socket when nothing else is due on the
 * connection: nothing queued for the peer, no other request in flight, no
 * further frame already read (HAProxy 3.1+ without pipelining: always): no
 * copy into the output buffer, no wait for the end of the loop pass (the
 * writer, bevio.h). With other ACKs due, the writer's one writev at the end
 * of the pass for all of them is the cheaper path. 1: the ACK
 * is written, or what the socket did not take is queued here; 0: not taken
 * (the caller queues it). Counted before it is written: HAProxy may act on
 * it before this thread runs another instruction.
 */
static int
send_ack_direct(struct spoe_conn *c, struct spoe_req *r, size_t want)
{
	struct spoe_server *s = c->srv;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t cap = SPOP_LEN_PREFIX + r->max_ack;
	ssize_t w;
	int n;

	if (c->state != ST_READY || c->inflight > 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 ||
	    evbuffer_get_length(in) > c->frame_len)
		return 0;
	if (want < cap)
		cap = want;
	if (s->ackbuf_cap < cap) {
		uint8_t *b = realloc(s->ackbuf, cap);

		if (b == NULL)
			return 0;
		s->ackbuf = b;
		s->ackbuf_cap = cap;
	}
	n = encode_ack(r, s->ackbuf, cap);
	if (n < 0)
		return 0;	/* over the frame size: send_ack() says so */
	M_INC(s->m, frames_out);
	w = send(bufferevent_getfd(c->bev), s->ackbuf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w < 0)
		w = 0;		/* full, or an error the bufferevent will see */
	if (w < n && bufferevent_write(c->bev, s->ackbuf + w, (size_t)(n - w)) < 0)
		conn_disconnect(c, SPOP_ST_RES, "out of memory");
	return 1;
}

static void
send_ack(struct spoe_conn *c, struct spoe_req *r)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer_iovec v;
	size_t cap = SPOP_LEN_PREFIX + r->max_ack;
	size_t want = spoe_req_ack_size(r) + SPOP_LEN_PREFIX;
	int n;

	if (want < cap)
		cap = want;	/* an estimate from above: never reserve more than needed */
	if (send_ack_direct(c, r, want))
		return;
	if (evbuffer_reserve_space(out, (ev_ssize_t)cap, &v, 1) < 1) {
		conn_disconnect(c, SPOP_ST_RES, "out of memory");
		return;
	}
	n = encode_ack(r, v.iov_base, v.iov_len < SPOP_LEN_PREFIX + r->max_ack ?
	    v.iov_len : SPOP_LEN_PREFIX + r->max_ack);
	if (n < 0) {
		log_every(1, LOG_WARNING,
		    "spop conn %llu: ACK larger than max-frame-size %u, answering Bypass",
		    c->id, c->max_frame);
		r->nvars = 0;
		spoe_req_set_str(r, "status", "Bypass", 6);
		n = encode_ack(r, v.iov_base, v.iov_len);
	}
	if (n < 0) {
		conn_disconnect(c, SPOP_ST_UNKNOWN, "cannot encode ACK");
		return;
	}
	v.iov_len = (size_t)n;
	evbuffer_commit_space(out, &v, 1);
	M_INC(c->srv->m, frames_out);
}

void
spoe_req_done(struct spoe_req *r)
{
	struct spoe_conn *c = r->conn;

	/* Before the ACK: HAProxy, and whoever reads /metrics after its
	 * answer, may see it before this thread goes on. */
	M_ADD(r->srv->m, inflight, -1);
	if (c != NULL) {
		TAILQ_REMOVE(&c->reqs, r, link);
		c->inflight--;
		if (c->state == ST_READY) {
			if (r->nvars == 0)	/* an ACK always carries an action */
				spoe_req_set_str(r, "status", "Bypass", 6);
			ack_shed(c, r);
			send_ack(c, r);
			check_output(c);
		}
		if (c->inflight < c->srv->conf->max_inflight)
			conn_unstall(c, STALL_INFLIGHT);
	}
	free(r->hold);
	free(r);
}
