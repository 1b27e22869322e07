/*
 * spoeconn.h - one SPOP connection from HAProxy: its state machine (HELLO,
 * then NOTIFY/ACK, then DISCONNECT), frame reassembly, backpressure, and the
 * requests (NOTIFY frames) in flight on it.
 *
 * It knows nothing of what the messages mean: its owner (the worker) fills
 * a struct spoe_server with an event loop, settings, counters and the NOTIFY
 * handler, the way twemproxy's connections get their parser.
 *
 * Ownership: a connection belongs to its server (one per worker) and is
 * freed on that worker's thread. Each NOTIFY becomes a struct spoe_req,
 * allocated here and handed to the handler, which must call
 * spoe_req_done() exactly once
 * (possibly later, from a memcached callback). When a connection closes with
 * requests still in flight, they are detached (req->conn = NULL) rather than
 * cancelled: their memcached callbacks still run, and spoe_req_done() then
 * only frees them. So a callback never touches a freed connection.
 */
#ifndef SC_SPOECONN_H
#define SC_SPOECONN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "config.h"
#include "metrics.h"
#include "spop.h"

struct spoe_conn;
struct spoe_req;

/* What a complete NOTIFY payload is handed to. */
typedef void spoe_notify_fn(void *arg, struct spoe_req *r, const uint8_t *payload, size_t len);

/* The SPOP side of one worker. The owner fills the first fields (and may
 * set conf again between frames, on reload); the rest is spoeconn.c's. */
struct spoe_server {
	struct event_base *base;
	const struct sc_agent_conf *conf;
	struct metrics *m;
	int id;				/* the worker's, in connection ids */
	spoe_notify_fn *notify;
	void *arg;
	/* SPOP connections open in the whole agent (agent.max_connections):
	 * the acceptor adds one per socket it hands over, this file takes it
	 * back when the socket closes. NULL: not counted. */
	atomic_int *nconns;
	TAILQ_HEAD(, spoe_conn) conns;
	unsigned long long next_conn_id;
	/* Bytes its connections hold (input, fragments, queued output), kept
	 * by evbuffer callbacks; over agent.max_buffered / threads, evict
	 * closes the connections holding the most. */
	size_t buffered;
	struct event *evict;
	/* Where an ACK written straight to its socket is encoded (see
	 * send_ack() in spoeconn.c); grown to the largest ACK so far. */
	uint8_t *ackbuf;
	size_t ackbuf_cap;
};

#define SPOE_REQ_MAX_VARS 12

struct spoe_var {
	const char *name;		/* static string */
	struct spop_data val;		/* STR/BIN point to memory alive until spoe_req_done */
};

struct spoe_req {
	struct spoe_conn *conn;		/* NULL once detached */
	struct spoe_server *srv;
	uint64_t stream_id, frame_id;
	TAILQ_ENTRY(spoe_req) link;
	uint32_t max_ack;		/* largest ACK frame (prefix excluded) the peer takes */
	int nvars;
	struct spoe_var vars[SPOE_REQ_MAX_VARS];
	void *hold;			/* freed after the ACK is built */
};

/* Ready s (its first fields filled) to take connections: 0, or -1 (out
 * of memory). */
int spoe_server_init(struct spoe_server *s);
/* Take a freshly accepted socket on s (one of *s->nconns). */
void spoe_conn_new(struct spoe_server *s, int fd);
/* Close every connection of s (shutdown): DISCONNECT then free. */
void spoe_conn_close_all(struct spoe_server *s);
/* spoe_conn_close_all(), then free what spoe_server_init() made. */
void spoe_server_free(struct spoe_server *s);

/* Queue a set-var (scope txn) for the ACK. Values must stay valid until
 * spoe_req_done(). A request has room for SPOE_REQ_MAX_VARS. */
void spoe_req_set(struct spoe_req *r, const char *name, const struct spop_data *v);
void spoe_req_set_str(struct spoe_req *r, const char *name, const char *s, size_t len);
void spoe_req_set_bin(struct spoe_req *r, const char *name, const void *b, size_t len);
void spoe_req_set_int(struct spoe_req *r, const char *name, int64_t v);
void spoe_req_set_bool(struct spoe_req *r, const char *name, int v);
/* Bytes the variables queued so far take in an ACK, and the most the
 * peer takes. */
size_t spoe_req_ack_size(const struct spoe_req *r);
size_t spoe_req_max_ack(const struct spoe_req *r);
/* Forget the variables queued so far. */
void spoe_req_clear(struct spoe_req *r);
/* Free p (once) after the ACK is built: what queued values point into. */
void spoe_req_hold(struct spoe_req *r, void *p);

/* Send the ACK (if the connection is still there) and free r and r->hold.
 * If the ACK would not fit the negotiated frame size, the variables are
 * replaced by status=Bypass and a warning is logged. */
void spoe_req_done(struct spoe_req *r);

#endif
