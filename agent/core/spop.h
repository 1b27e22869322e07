/*
 * spop.h - the SPOP 2.0 codec (HAProxy's Stream Processing Offload Protocol,
 * doc/SPOE.txt section 3): frame headers, typed data, KV lists, message
 * lists, HELLO/DISCONNECT payloads, and encoders for the frames the agent
 * sends (AGENT-HELLO, ACK, AGENT-DISCONNECT). What only HAProxy sends or
 * decodes (HAPROXY-HELLO, NOTIFY, HAPROXY-DISCONNECT, the ACK decoder) is
 * not here: the tests build it with tests/unit/spop_peer.h.
 *
 * Pure: functions over (buf, len) or (cursor, end). No allocation, no I/O,
 * no globals, no logging; the connection state machine decides what to do
 * with a result. Decoded strings point into the caller's buffer, so they
 * live exactly as long as it does and are NOT NUL-terminated.
 *
 * Errors are returned as the negative of the SPOP status code the agent
 * should put in its AGENT-DISCONNECT (-SPOP_ST_INVALID, -SPOP_ST_TOO_BIG...).
 */
#ifndef SC_SPOP_H
#define SC_SPOP_H

#include <stddef.h>
#include <stdint.h>

/* Frame types (3.2.2). */
enum spop_frame_type {
	SPOP_FRM_UNSET          = 0,	/* continuation fragment */
	SPOP_FRM_HAPROXY_HELLO  = 1,
	SPOP_FRM_HAPROXY_DISCON = 2,
	SPOP_FRM_NOTIFY         = 3,
	SPOP_FRM_AGENT_HELLO    = 101,
	SPOP_FRM_AGENT_DISCON   = 102,
	SPOP_FRM_ACK            = 103,
};

/* Frame flags (3.2), a 32-bit big-endian field; bits 2-31 are reserved. */
#define SPOP_FL_FIN  0x00000001u
#define SPOP_FL_ABRT 0x00000002u

/* Typed data (3.1): the type is the low nibble, flags the high one. */
enum spop_type {
	SPOP_T_NULL   = 0,
	SPOP_T_BOOL   = 1,
	SPOP_T_INT32  = 2,
	SPOP_T_UINT32 = 3,
	SPOP_T_INT64  = 4,
	SPOP_T_UINT64 = 5,
	SPOP_T_IPV4   = 6,
	SPOP_T_IPV6   = 7,
	SPOP_T_STR    = 8,
	SPOP_T_BIN    = 9,
};
#define SPOP_T_MASK    0x0F
#define SPOP_T_FL_TRUE 0x10	/* BOOL: value lives in the flags nibble */

/* Variable scopes and action types (3.4). */
enum spop_scope {
	SPOP_SCOPE_PROC = 0,
	SPOP_SCOPE_SESS = 1,
	SPOP_SCOPE_TXN  = 2,
	SPOP_SCOPE_REQ  = 3,
	SPOP_SCOPE_RES  = 4,
};
enum spop_action {
	SPOP_ACT_SET_VAR   = 1,
	SPOP_ACT_UNSET_VAR = 2,
};

/* Status codes carried by DISCONNECT frames (3.5). */
enum spop_status {
	SPOP_ST_NORMAL             = 0,
	SPOP_ST_IO                 = 1,
	SPOP_ST_TIMEOUT            = 2,
	SPOP_ST_TOO_BIG            = 3,
	SPOP_ST_INVALID            = 4,
	SPOP_ST_NO_VSN             = 5,
	SPOP_ST_NO_FRAME_SIZE      = 6,
	SPOP_ST_NO_CAP             = 7,
	SPOP_ST_BAD_VSN            = 8,
	SPOP_ST_BAD_FRAME_SIZE     = 9,
	SPOP_ST_FRAG_NOT_SUPPORTED = 10,
	SPOP_ST_INTERLACED         = 11,
	SPOP_ST_FRAMEID_NOTFOUND   = 12,
	SPOP_ST_RES                = 13,
	SPOP_ST_UNKNOWN            = 99,
};

#define SPOP_LEN_PREFIX     4	/* <FRAME-LENGTH:4 bytes>, not counted in it */
#define SPOP_MIN_FRAME_LEN  7	/* type + flags + two 1-byte varints */
#define SPOP_MIN_FRAME_SIZE 256	/* smallest max-frame-size a peer may offer */
#define SPOP_VERSION        "2.0"

/* Short text for a status code ("invalid frame received"); never NULL. */
const char *spop_status_str(int status);

/* A byte run inside a buffer the caller owns. Not NUL-terminated. */
struct spop_str {
	const uint8_t *p;
	size_t len;
};

struct spop_data {
	uint8_t type;			/* SPOP_T_*, flags stripped */
	union {
		int b;			/* BOOL: 0 or 1 */
		int64_t i;		/* INT32, INT64 */
		uint64_t u;		/* UINT32, UINT64 */
		uint8_t ip4[4];		/* network order */
		uint8_t ip6[16];
		struct spop_str s;	/* STR, BIN: points into the input */
	} v;
};

struct spop_frame {
	uint8_t type;			/* SPOP_FRM_*; unknown values kept */
	uint32_t flags;			/* SPOP_FL_*, reserved bits kept */
	uint64_t stream_id;
	uint64_t frame_id;
	const uint8_t *payload;		/* points into the frame */
	size_t plen;
};

/*
 * Read the 4-byte length prefix at buf. Returns 0 when fewer than 4 bytes
 * are there, -SPOP_ST_TOO_BIG when the length exceeds max (the negotiated
 * max-frame-size, which excludes the prefix), -SPOP_ST_INVALID when it is
 * below SPOP_MIN_FRAME_LEN, else 4 (the bytes of the prefix). *flen is set
 * whenever 4 bytes were available. The caller still has to wait for
 * 4 + *flen bytes before calling spop_frame_parse.
 */
int spop_frame_len(const uint8_t *buf, size_t len, uint32_t max, uint32_t *flen);

/* Parse a complete frame (without its length prefix). Only the syntax is
 * checked: type/flag semantics are the state machine's. 0 or -SPOP_ST_INVALID. */
int spop_frame_parse(const uint8_t *frame, size_t flen, struct spop_frame *f);

/*
 * Cursor decoders. On success *p moves past what was read; on error *p is
 * left where it was. A frame is always complete when these run, so running
 * out of bytes is -SPOP_ST_INVALID, never "need more".
 */
/* One TYPED-DATA. 0 or -SPOP_ST_INVALID (truncated, unknown type 10-15,
 * INT32/UINT32 value out of range). */
int spop_data_decode(const uint8_t **p, const uint8_t *end, struct spop_data *d);
/* One <STRING> (varint length + bytes). 0 or -SPOP_ST_INVALID. */
int spop_str_decode(const uint8_t **p, const uint8_t *end, struct spop_str *s);
/* Next KV of a KV-LIST: 1 got one, 0 end of list (*p == end), <0 malformed. */
int spop_kv_next(const uint8_t **p, const uint8_t *end,
		 struct spop_str *name, struct spop_data *val);
/* Next message of a LIST-OF-MESSAGES: 1 got its name and NB-ARGS (the caller
 * must then read exactly *nargs args with spop_arg_next), 0 end of list,
 * <0 malformed. */
int spop_msg_next(const uint8_t **p, const uint8_t *end,
		  struct spop_str *name, int *nargs);
/* One message argument: a KV that must be there. 0 or -SPOP_ST_INVALID, so
 * an NB-ARGS larger than what follows is an error, not an end of list. */
int spop_arg_next(const uint8_t **p, const uint8_t *end,
		  struct spop_str *name, struct spop_data *val);
/* Walk a whole LIST-OF-MESSAGES: 0 if well formed, else -SPOP_ST_INVALID.
 * *nmsgs (may be NULL) gets the message count. */
int spop_msgs_validate(const uint8_t *payload, size_t len, int *nmsgs);

/* Equal as length-and-bytes (names are never compared as prefixes). */
int spop_str_eq(const struct spop_str *s, const char *cstr);

/* HAPROXY-HELLO payload. Items are optional at parse time; spop_hello_check
 * applies the mandatory-item and value rules. */
#define SPOP_HELLO_VERSIONS   0x01u
#define SPOP_HELLO_MAX_FRAME  0x02u
#define SPOP_HELLO_CAPS       0x04u
#define SPOP_HELLO_HEALTH     0x08u
#define SPOP_HELLO_ENGINE_ID  0x10u
struct spop_hello {
	unsigned int seen;		/* SPOP_HELLO_* of items present */
	struct spop_str versions;	/* "supported-versions" */
	uint32_t max_frame_size;	/* any integer type, must fit uint32 */
	struct spop_str caps;		/* "capabilities" */
	int healthcheck;		/* 0 unless "healthcheck" was TRUE */
	struct spop_str engine_id;
};
/* 0, -SPOP_ST_INVALID (malformed list, known key with the wrong type), or
 * -SPOP_ST_BAD_FRAME_SIZE (max-frame-size negative or above 2^32-1). Unknown
 * keys are skipped; for a repeated key the last one wins. */
int spop_hello_parse(const uint8_t *payload, size_t len, struct spop_hello *h);
/* 0 or, in this order: -SPOP_ST_NO_VSN, -SPOP_ST_NO_FRAME_SIZE,
 * -SPOP_ST_NO_CAP, -SPOP_ST_BAD_VSN (no 2.x offered),
 * -SPOP_ST_BAD_FRAME_SIZE (max-frame-size below 256). */
int spop_hello_check(const struct spop_hello *h);
/* True if the comma-separated list (spaces ignored) offers major version 2. */
int spop_version_supported(const char *list, size_t len);
/* True if the comma-separated list (spaces ignored) holds exactly cap. */
int spop_has_cap(const char *list, size_t len, const char *cap);

/* HAPROXY-DISCONNECT (or AGENT-DISCONNECT) payload. */
#define SPOP_DISCON_STATUS  0x01u
#define SPOP_DISCON_MESSAGE 0x02u
struct spop_disconnect {
	unsigned int seen;		/* SPOP_DISCON_* of items present */
	uint32_t status;		/* "status-code", any integer type */
	struct spop_str message;
};
/* 0 or -SPOP_ST_INVALID. Missing items are left to the caller (seen). */
int spop_disconnect_parse(const uint8_t *payload, size_t len,
			  struct spop_disconnect *d);

/*
 * Encoders. Nothing is ever written at or past the end given; "does not fit"
 * is -1. Every frame they build carries its 4-byte length prefix, so a
 * frame that has to respect the peer's max-frame-size needs
 * cap <= max_frame_size + 4.
 */
/* Cursor forms: 0 and *p advanced, or -1 with *p unchanged. */
int spop_enc_data(uint8_t **p, const uint8_t *end, const struct spop_data *d);
int spop_enc_str(uint8_t **p, const uint8_t *end, const void *s, size_t len);

/* Generic frame builder, the base of the HELLO, DISCONNECT and ACK
 * encoders. The first
 * error (no room, bad argument) is remembered and turns later calls into
 * no-ops, so a caller checks once, at spop_fb_end. */
struct spop_fb {
	uint8_t *buf;			/* frame start (its length prefix) */
	uint8_t *p;			/* write cursor */
	uint8_t *end;			/* buf + cap */
	int err;
};
void spop_fb_begin(struct spop_fb *fb, uint8_t *buf, size_t cap, uint8_t type,
		   uint32_t flags, uint64_t stream_id, uint64_t frame_id);
void spop_fb_str(struct spop_fb *fb, const void *s, size_t len);
void spop_fb_kv(struct spop_fb *fb, const char *name, const struct spop_data *d);
/* Writes the length prefix. Total bytes (prefix included) or -1. */
int spop_fb_end(struct spop_fb *fb);

/* Whole frames the agent sends. Flags FIN, stream-id and frame-id 0. */
int spop_enc_agent_hello(uint8_t *buf, size_t cap, uint32_t max_frame_size,
			 const char *caps);
int spop_enc_agent_disconnect(uint8_t *buf, size_t cap, uint32_t status,
			      const char *msg);

/* ACK builder: begin, any number of set-var actions, end. A scope above
 * SPOP_SCOPE_RES or a NULL val is an error. */
struct spop_ack {
	struct spop_fb fb;
};
void spop_ack_begin(struct spop_ack *a, uint8_t *buf, size_t cap,
		    uint64_t stream_id, uint64_t frame_id);
void spop_ack_set(struct spop_ack *a, int scope, const char *name,
		  size_t namelen, const struct spop_data *val);
/* Total bytes including the length prefix, or -1 if anything failed. */
int spop_ack_end(struct spop_ack *a);

#endif
