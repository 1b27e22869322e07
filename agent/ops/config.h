/*
 * config.h - the agent's and the CLI's configuration, read with libconfig
 * from one file (see examples/spoe-cache.conf and man/spoe-cache-agent.8).
 *
 * Ownership: config_load() and config_load_buf() allocate a struct sc_config
 * and every string and array inside it; config_free() releases all of it. A loaded config is
 * immutable and may be read by every thread without a lock.
 */
#ifndef SC_CONFIG_H
#define SC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "ketama.h"
#include "policy.h"

struct sc_pool_conf {
	struct sc_host *hosts;
	size_t nhosts;
	int timeout_ms;			/* connect/read/write, default 2000 */
	int keepalive_timeout_ms;	/* idle connection lifetime, default 10000 */
	int keepalive_pool_size;	/* connections per shard per thread, default 2 */
	int fail_threshold;		/* failures in a row before a shard is down, default 2 */
	int retry_interval_ms;		/* background probe of a down shard, default 1000 */
	size_t max_item_size;		/* largest value sent to memcached, default 1 MiB */
	size_t store_backlog;		/* bytes of stores in flight per worker, default 16 MiB */
	int tls;			/* connect with TLS, default off */
	int tls_verify;			/* verify the server certificate, default on with tls */
	char *tls_server_name;		/* SNI and the name to verify; NULL = host */
	char *tls_ca_file;		/* CA bundle; NULL = system default */
	char *tls_cert_file;		/* optional client certificate */
	char *tls_key_file;		/* its key */
	/* entry_secret, or the content of entry_secret_file, ready to sign
	 * and verify entries (entry.h); NULL: entries are not signed. The
	 * secret itself is wiped once this is made. */
	char *entry_secret;
	char *entry_secret_file;
	struct entry_auth *entry_auth;
};

enum sc_log_target { SC_LOG_STDERR, SC_LOG_SYSLOG };

struct sc_agent_conf {
	char *listen;			/* SPOP address, default 127.0.0.1; "unix:PATH" */
	uint16_t port;			/* default 12345 (not with unix:) */
	const char *unix_path;		/* inside listen when it is "unix:PATH", else NULL */
	int socket_mode;		/* permissions of the unix socket, default 0660 */
	char *socket_owner;		/* its owner and group (names or ids); NULL = ours */
	char *socket_group;
	long socket_uid, socket_gid;	/* resolved from the two above, -1 = unchanged */
	int max_connections;		/* SPOP connections open at once, default 1024 */
	int idle_timeout;		/* s without a frame from HAProxy after HELLO, default 120 */
	size_t max_buffered;		/* bytes all SPOP connections hold at most, default 64 MiB */
	int threads;			/* worker threads, default 2 */
	uint32_t max_frame_size;	/* our side of the negotiation, default 262140 */
	int max_inflight;		/* NOTIFY frames in flight per connection, default 256 */
	size_t max_output;		/* queued output before we stop reading, default 4 MiB */
	size_t max_frag_size;		/* largest reassembled NOTIFY, default 1 MiB */
	int max_query_params;		/* more means Bypass, default 100 */
	int max_headers;		/* more means Bypass, default 200 */
	char *admin_listen;		/* admin/metrics HTTP, default 127.0.0.1; "" = off */
	uint16_t admin_port;		/* default 12346 */
	char *admin_token;		/* optional bearer token; required off loopback */
	int admin_timeout;		/* s for a request to arrive whole, default 10 */
	int admin_max_connections;	/* admin connections open at once, default 16 */
	int log_level;			/* LOG_ERR..LOG_DEBUG, default LOG_NOTICE */
	enum sc_log_target log_target;
};

struct sc_config {
	char *path;			/* the file, or config_load_buf()'s name */
	struct sc_agent_conf agent;
	struct sc_pool_conf pool;
	struct sc_policy *policies;
	size_t npolicies;
	/* Settings that load but that an operator should hear about, as
	 * "FILE:LINE: setting: message": printed by -t, logged at start. */
	struct sc_strlist warnings;
};

/* Load and validate FILE. On error returns NULL and writes
 * "FILE:LINE: setting: message" into err. @include "PATH" reads PATH as
 * libconfig 1.5 does: as written, relative to the current directory (not
 * to FILE's). */
struct sc_config *config_load(const char *file, char *err, size_t errlen);
/* The same over text[0..len) (no NUL needed at its end; one inside is a
 * syntax error), which names no file: NAME stands for it in messages
 * ("NAME:LINE: setting: message") and in the config's path. No file is
 * read: @include is refused ("NAME:LINE: @include: ..."), since there is
 * no directory a buffer's relative paths could be taken from and a caller
 * handing over text (the fuzzer, a test) expects nothing else to be read.
 * config_load() is this plus reading FILE and following its includes. */
struct sc_config *config_load_buf(const char *name, const char *text, size_t len,
    char *err, size_t errlen);
void config_free(struct sc_config *c);
/* What a loaded config is allowed but warned about (-t prints it, the agent
 * logs it at start and reload): newline-terminated lines, or NULL. */

/* The agent-wide bounds the policy core works within. */
void config_limits(const struct sc_config *c, struct pol_limits *lim);
/* Policy by name (length and bytes); NULL when unknown. */
const struct sc_policy *config_policy(const struct sc_config *c, const char *name, size_t len);

#endif
