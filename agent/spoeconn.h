/*
 * spoeconn.h - one SPOP connection from HAProxy: its state machine (HELLO,
 * then NOTIFY/ACK, then DISCONNECT), frame reassembly, backpressure, and the
 * requests (NOTIFY frames) in flight on it.
 *
 * Ownership: a connection belongs to its worker and is freed on that
 * worker's thread. Each NOTIFY becomes a struct spoe_req, allocated here and
 * handed to the cache layer, which must call spoe_req_done() exactly once
 * (possibly later, from a memcached callback). When a connection closes with
 * requests still in flight, they are detached (req->conn = NULL) rather than
 * cancelled: their memcached callbacks still run, and spoe_req_done() then
 * only frees them. So a callback never touches a freed connection.
 */
#ifndef SC_SPOECONN_H
#define SC_SPOECONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "spop.h"

struct worker;
struct spoe_conn;

#define SPOE_REQ_MAX_VARS 12

struct spoe_var {
	const char *name;		/* static string */
	struct spop_data val;		/* STR/BIN point to memory alive until spoe_req_done */
};

struct spoe_req {
	struct spoe_conn *conn;		/* NULL once detached */
	struct worker *w;
	uint64_t stream_id, frame_id;
	TAILQ_ENTRY(spoe_req) link;
	uint32_t max_ack;		/* largest ACK frame (prefix excluded) the peer takes */
	int nvars;
	struct spoe_var vars[SPOE_REQ_MAX_VARS];
	void *hold;			/* freed after the ACK is built */
	void *cache;			/* the cache layer's state, freed by it */
};

/* Take a freshly accepted socket on worker w. */
void spoe_conn_new(struct worker *w, int fd);
/* Close every connection of w (shutdown): DISCONNECT then free. */
void spoe_conn_close_all(struct worker *w);

/* Queue a set-var (scope txn) for the ACK. Values must stay valid until
 * spoe_req_done(). A request has room for SPOE_REQ_MAX_VARS. */
void spoe_req_set(struct spoe_req *r, const char *name, const struct spop_data *v);
void spoe_req_set_str(struct spoe_req *r, const char *name, const char *s, size_t len);
void spoe_req_set_bin(struct spoe_req *r, const char *name, const void *b, size_t len);
void spoe_req_set_int(struct spoe_req *r, const char *name, int64_t v);
void spoe_req_set_bool(struct spoe_req *r, const char *name, int v);
/* Bytes the variables queued so far take in an ACK. */
size_t spoe_req_ack_size(const struct spoe_req *r);

/* Send the ACK (if the connection is still there) and free r and r->hold.
 * If the ACK would not fit the negotiated frame size, the variables are
 * replaced by status=Bypass and a warning is logged. */
void spoe_req_done(struct spoe_req *r);

#endif
