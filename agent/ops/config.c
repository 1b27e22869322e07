/*
 * config.c - read the agent's and the CLI's configuration with libconfig.
 *
 * Every section is described by a table of {name, kind, offset, min, max};
 * one walker applies a table to a libconfig group, so an unknown setting, a
 * wrong type or an out-of-range number is reported the same way everywhere:
 * "FILE:LINE: setting: message". A validation pass runs after parsing. This
 * file never starts anything: it only turns a file into a struct sc_config.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <arpa/inet.h>
#include <sys/un.h>

#include <libconfig.h>
#include <openssl/crypto.h>

#include "cfglint.h"
#include "config.h"
#include "entry.h"
#include "hdrs.h"
#include "key.h"
#include "log.h"
#include "policy.h"

enum kind { K_INT, K_BOOL, K_STR, K_STRLIST, K_INTLIST, K_SIZE, K_U32, K_PORT, K_LOGLEVEL, K_LOGTARGET,
    K_MODE };

struct field {
	const char *name;
	enum kind kind;
	size_t off;
	long long min, max;	/* numbers: the range; K_STRLIST: max is the most
				 * elements (0: no limit) */
	size_t count_off;	/* K_INTLIST: where the element count goes */
};

struct ctx {
	const char *file;
	char *err;
	size_t errlen;
};

static int note_warning(struct ctx *c, struct sc_config *cf, const config_setting_t *s,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
fail(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	const char *file = c->file;
	int line = 0;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s != NULL) {
		line = (int)config_setting_source_line(s);
		if (config_setting_source_file(s) != NULL)
			file = config_setting_source_file(s);
	}
	snprintf(c->err, c->errlen, "%s:%d: %s", file, line, msg);
	return -1;
}

/* Dotted path of a setting, for messages: "memcached.hosts[1].port". */
static void
setting_path(const config_setting_t *s, char *out, size_t cap)
{
	const config_setting_t *chain[16];
	size_t n = 0, off = 0;

	out[0] = '\0';
	for (; s != NULL && config_setting_parent(s) != NULL && n < 16; s = config_setting_parent(s))
		chain[n++] = s;
	while (n-- > 0 && off < cap) {
		const config_setting_t *e = chain[n];
		int w;

		if (config_setting_name(e) != NULL)
			w = snprintf(out + off, cap - off, "%s%s", off ? "." : "", config_setting_name(e));
		else
			w = snprintf(out + off, cap - off, "[%d]", config_setting_index(e));
		if (w < 0)
			break;
		off += (size_t)w;
	}
}

static int
get_int(struct ctx *c, const config_setting_t *s, long long min, long long max, long long *out)
{
	char path[256];
	long long v;

	setting_path(s, path, sizeof(path));
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		v = config_setting_get_int(s);
		break;
	case CONFIG_TYPE_INT64:
		v = config_setting_get_int64(s);
		break;
	default:
		return fail(c, s, "%s: expected an integer", path);
	}
	if (v < min || v > max)
		return fail(c, s, "%s: %lld is out of range [%lld, %lld]", path, v, min, max);
	*out = v;
	return 0;
}

static int
get_str(struct ctx *c, const config_setting_t *s, char **out)
{
	char path[256];
	const char *v;

	setting_path(s, path, sizeof(path));
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(c, s, "%s: expected a string", path);
	v = config_setting_get_string(s);
	free(*out);
	*out = strdup(v);
	return *out != NULL ? 0 : fail(c, s, "%s: out of memory", path);
}

static int
is_list(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_ARRAY || config_setting_type(s) == CONFIG_TYPE_LIST;
}

static void
strlist_free(struct sc_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
get_strlist(struct ctx *c, const config_setting_t *s, long long max, struct sc_strlist *l)
{
	char path[256];
	int n;

	setting_path(s, path, sizeof(path));
	if (!is_list(s))
		return fail(c, s, "%s: expected a list of strings, like [\"a\", \"b\"]", path);
	strlist_free(l);
	n = config_setting_length(s);
	if (max > 0 && n > max)
		return fail(c, s, "%s: %d entries, at most %lld", path, n, max);
	l->v = calloc((size_t)n + 1, sizeof(char *));
	if (l->v == NULL)
		return fail(c, s, "%s: out of memory", path);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return fail(c, e, "%s[%d]: expected a string", path, i);
		if (config_setting_get_string(e)[0] == '\0')
			return fail(c, e, "%s[%d]: empty string", path, i);
		l->v[l->n] = strdup(config_setting_get_string(e));
		if (l->v[l->n] == NULL)
			return fail(c, e, "%s: out of memory", path);
		l->n++;
	}
	return 0;
}

static int
apply_field(struct ctx *c, const struct field *f, const config_setting_t *s, void *base)
{
	char *p = (char *)base + f->off;
	char path[256];
	long long v;

	setting_path(s, path, sizeof(path));
	switch (f->kind) {
	case K_INT:
		if (get_int(c, s, f->min, f->max, &v) < 0)
			return -1;
		*(int *)p = (int)v;
		return 0;
	case K_PORT:
		if (get_int(c, s, f->min, f->max, &v) < 0)
			return -1;
		*(uint16_t *)p = (uint16_t)v;
		return 0;
	case K_SIZE:
		if (get_int(c, s, f->min, f->max, &v) < 0)
			return -1;
		*(size_t *)p = (size_t)v;
		return 0;
	case K_U32:
		if (get_int(c, s, f->min, f->max, &v) < 0)
			return -1;
		*(uint32_t *)p = (uint32_t)v;
		return 0;
	case K_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return fail(c, s, "%s: expected true or false", path);
		*(int *)p = config_setting_get_bool(s);
		return 0;
	case K_STR:
		return get_str(c, s, (char **)p);
	case K_STRLIST:
		return get_strlist(c, s, f->max, (struct sc_strlist *)p);
	case K_INTLIST: {
		int **arr = (int **)p;
		size_t *cnt = (size_t *)((char *)base + f->count_off);
		int n;

		if (!is_list(s))
			return fail(c, s, "%s: expected a list of integers, like [200, 301]", path);
		n = config_setting_length(s);
		if (n == 0)
			return fail(c, s, "%s: empty list", path);
		free(*arr);
		*arr = calloc((size_t)n, sizeof(int));
		if (*arr == NULL)
			return fail(c, s, "%s: out of memory", path);
		*cnt = 0;
		for (int i = 0; i < n; i++) {
			if (get_int(c, config_setting_get_elem(s, (unsigned)i), f->min, f->max, &v) < 0)
				return -1;
			(*arr)[(*cnt)++] = (int)v;
		}
		return 0;
	}
	case K_LOGLEVEL: {
		int lvl;

		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return fail(c, s, "%s: expected a string", path);
		lvl = log_level_parse(config_setting_get_string(s));
		if (lvl < 0)
			return fail(c, s, "%s: unknown level \"%s\" (err, warning, notice, info, debug)",
			    path, config_setting_get_string(s));
		*(int *)p = lvl;
		return 0;
	}
	case K_MODE: {
		/* a string: libconfig has no octal literals, and 0660 would
		 * silently be decimal */
		const char *t;
		char *end;
		long m;

		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return fail(c, s, "%s: expected an octal mode in a string, like \"0660\"", path);
		t = config_setting_get_string(s);
		errno = 0;
		m = strtol(t, &end, 8);
		if (t[0] < '0' || t[0] > '7' || *end != '\0' || errno != 0 || m < f->min || m > f->max)
			return fail(c, s, "%s: \"%s\" is not an octal mode in [%llo, %llo]", path, t,
			    f->min, f->max);
		*(int *)p = (int)m;
		return 0;
	}
	case K_LOGTARGET: {
		const char *t;

		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return fail(c, s, "%s: expected a string", path);
		t = config_setting_get_string(s);
		if (strcmp(t, "stderr") == 0)
			*(enum sc_log_target *)p = SC_LOG_STDERR;
		else if (strcmp(t, "syslog") == 0)
			*(enum sc_log_target *)p = SC_LOG_SYSLOG;
		else
			return fail(c, s, "%s: unknown target \"%s\" (stderr, syslog)", path, t);
		return 0;
	}
	}
	return fail(c, s, "%s: internal error", path);
}

/* Apply table to every member of group; members named in skip[] are left to
 * the caller. An unknown member is an error. */
static int
apply_table(struct ctx *c, const config_setting_t *group, const struct field *tab,
    void *base, const char *const *skip)
{
	char path[256];
	int n = config_setting_length(group);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct field *f;
		int skipped = 0;

		for (const char *const *k = skip; k != NULL && *k != NULL; k++)
			if (strcmp(*k, name) == 0)
				skipped = 1;
		if (skipped)
			continue;
		for (f = tab; f->name != NULL; f++)
			if (strcmp(f->name, name) == 0)
				break;
		if (f->name == NULL) {
			setting_path(s, path, sizeof(path));
			return fail(c, s, "%s: unknown setting", path);
		}
		if (apply_field(c, f, s, base) < 0)
			return -1;
	}
	return 0;
}

#define AG(f) offsetof(struct sc_agent_conf, f)
static const struct field agent_fields[] = {
	{ "listen", K_STR, AG(listen), 0, 0, 0 },
	{ "port", K_PORT, AG(port), 1, 65535, 0 },
	{ "threads", K_INT, AG(threads), 1, 64, 0 },
	{ "max_frame_size", K_U32, AG(max_frame_size), 256, 16 * 1024 * 1024, 0 },
	{ "max_inflight", K_INT, AG(max_inflight), 1, 65536, 0 },
	{ "max_output", K_SIZE, AG(max_output), 65536, 1LL << 30, 0 },
	{ "max_frag_size", K_SIZE, AG(max_frag_size), 256, 64 * 1024 * 1024, 0 },
	/* the runtime's own bounds (key.h, policy.h): a larger value would
	 * be accepted here and silently clamped there */
	{ "max_query_params", K_INT, AG(max_query_params), 1, KEY_MAX_PARAMS, 0 },
	{ "max_headers", K_INT, AG(max_headers), 1, POL_MAX_HEADERS, 0 },
	{ "max_connections", K_INT, AG(max_connections), 1, 1000000, 0 },
	{ "idle_timeout", K_INT, AG(idle_timeout), 1, 86400, 0 },
	{ "max_buffered", K_SIZE, AG(max_buffered), 1 << 20, 1LL << 40, 0 },
	{ "socket_mode", K_MODE, AG(socket_mode), 0, 0777, 0 },
	{ "socket_owner", K_STR, AG(socket_owner), 0, 0, 0 },
	{ "socket_group", K_STR, AG(socket_group), 0, 0, 0 },
	{ NULL, K_INT, 0, 0, 0, 0 }
};
static const struct field admin_fields[] = {
	{ "listen", K_STR, AG(admin_listen), 0, 0, 0 },
	{ "port", K_PORT, AG(admin_port), 1, 65535, 0 },
	{ "token", K_STR, AG(admin_token), 0, 0, 0 },
	{ "timeout", K_INT, AG(admin_timeout), 1, 3600, 0 },
	{ "max_connections", K_INT, AG(admin_max_connections), 1, 4096, 0 },
	{ NULL, K_INT, 0, 0, 0, 0 }
};
static const struct field log_fields[] = {
	{ "level", K_LOGLEVEL, AG(log_level), 0, 0, 0 },
	{ "target", K_LOGTARGET, AG(log_target), 0, 0, 0 },
	{ NULL, K_INT, 0, 0, 0, 0 }
};
#undef AG

#define PL(f) offsetof(struct sc_pool_conf, f)
static const struct field pool_fields[] = {
	{ "timeout", K_INT, PL(timeout_ms), 1, 600000, 0 },
	{ "keepalive_timeout", K_INT, PL(keepalive_timeout_ms), 1, 86400000, 0 },
	{ "keepalive_pool_size", K_INT, PL(keepalive_pool_size), 1, 64, 0 },
	{ "fail_threshold", K_INT, PL(fail_threshold), 1, 1000, 0 },
	{ "retry_interval", K_INT, PL(retry_interval_ms), 10, 3600000, 0 },
	{ "max_item_size", K_SIZE, PL(max_item_size), 1024, 1LL << 30, 0 },
	{ "store_backlog", K_SIZE, PL(store_backlog), 1024, 1LL << 40, 0 },
	{ "tls", K_BOOL, PL(tls), 0, 0, 0 },
	{ "tls_verify", K_BOOL, PL(tls_verify), 0, 0, 0 },
	{ "tls_server_name", K_STR, PL(tls_server_name), 0, 0, 0 },
	{ "tls_ca_file", K_STR, PL(tls_ca_file), 0, 0, 0 },
	{ "tls_cert_file", K_STR, PL(tls_cert_file), 0, 0, 0 },
	{ "tls_key_file", K_STR, PL(tls_key_file), 0, 0, 0 },
	{ "entry_secret", K_STR, PL(entry_secret), 0, 0, 0 },
	{ "entry_secret_file", K_STR, PL(entry_secret_file), 0, 0, 0 },
	{ NULL, K_INT, 0, 0, 0, 0 }
};
#undef PL

#define HO(f) offsetof(struct sc_host, f)
static const struct field host_fields[] = {
	{ "host", K_STR, HO(host), 0, 0, 0 },
	{ "port", K_PORT, HO(port), 1, 65535, 0 },
	{ "weight", K_U32, HO(weight), 1, 100000, 0 },
	{ NULL, K_INT, 0, 0, 0, 0 }
};
#undef HO

#define PO(f) offsetof(struct sc_policy, f)
static const struct field policy_fields[] = {
	{ "response_code", K_INTLIST, PO(response_codes), 100, 599, PO(n_response_codes) },
	{ "request_method", K_STRLIST, PO(request_method), 0, 0, 0 },
	{ "content_type", K_STRLIST, PO(content_type), 0, 0, 0 },
	{ "cache_ttl", K_INT, PO(cache_ttl), 0, 365 * 86400, 0 },
	{ "storage_ttl", K_INT, PO(storage_ttl), 1, 365 * 86400, 0 },
	{ "cache_control", K_BOOL, PO(cache_control), 0, 0, 0 },
	{ "allow_force_cache_header", K_BOOL, PO(allow_force_cache_header), 0, 0, 0 },
	/* policy_key() refuses (Bypass) every request of a policy with more */
	{ "vary_headers", K_STRLIST, PO(vary_headers), 0, POL_MAX_VARY, 0 },
	{ "vary_query_params", K_STRLIST, PO(vary_query_params), 0, 0, 0 },
	{ "vary_body_json_fields", K_STRLIST, PO(vary_body_json_fields), 0, POL_MAX_VARY, 0 },
	{ "l1_ttl", K_INT, PO(l1_ttl), 0, 3600, 0 },
	{ "collapse_wait", K_INT, PO(collapse_wait), 0, 60000, 0 },
	{ "stale_while_revalidate", K_INT, PO(stale_while_revalidate), 0, 30 * 86400, 0 },
	{ "stale_if_error", K_INT, PO(stale_if_error), 0, 30 * 86400, 0 },
	{ "stale_keep", K_INT, PO(stale_keep), 0, 30 * 86400, 0 },
	{ "key_routing_headers", K_STRLIST, PO(key_routing_headers), 0, POL_MAX_VARY, 0 },
	{ "cache_status", K_BOOL, PO(cache_status), 0, 0, 0 },
	{ "targeted_cache_control", K_STRLIST, PO(targeted_cc), 0, 8, 0 },
	/* "routing_headers" ("key" | "bypass") and "set_cookie" ("refuse" |
	 * "strip" | "store") are read by parse_policy() */
	{ NULL, K_INT, 0, 0, 0, 0 }
};
#undef PO

static int
strlist_set(struct sc_strlist *l, const char *const *v)
{
	size_t n = 0;

	while (v[n] != NULL)
		n++;
	l->v = calloc(n + 1, sizeof(char *));
	if (l->v == NULL)
		return -1;
	for (l->n = 0; l->n < n; l->n++)
		if ((l->v[l->n] = strdup(v[l->n])) == NULL)
			return -1;
	return 0;
}

static int
policy_defaults(struct sc_policy *p)
{
	static const char *const methods[] = { "GET", "HEAD", NULL };
	static const char *const types[] = { "text/plain", "application/json", NULL };
	static const char *const targeted[] = { "CDN-Cache-Control", NULL };
	static const int codes[] = { 200, 301, 404 };

	p->response_codes = malloc(sizeof(codes));
	if (p->response_codes == NULL)
		return -1;
	memcpy(p->response_codes, codes, sizeof(codes));
	p->n_response_codes = 3;
	p->cache_ttl = 300;
	p->storage_ttl = -1;
	p->l1_ttl = 60;
	p->collapse_wait = POL_COLLAPSE_WAIT_DEFAULT;
	p->stale_keep = POL_STALE_KEEP_DEFAULT;
	if (strlist_set(&p->request_method, methods) < 0 || strlist_set(&p->content_type, types) < 0 ||
	    strlist_set(&p->key_routing_headers, pol_routing_headers_default) < 0 ||
	    strlist_set(&p->targeted_cc, targeted) < 0)
		return -1;
	return 0;
}

static void
policy_free(struct sc_policy *p)
{
	free(p->name);
	free(p->response_codes);
	strlist_free(&p->request_method);
	strlist_free(&p->content_type);
	strlist_free(&p->vary_headers);
	strlist_free(&p->vary_query_params);
	strlist_free(&p->vary_body_json_fields);
	strlist_free(&p->key_routing_headers);
	strlist_free(&p->targeted_cc);
}

/* RFC 9110: a method and a field name are both tokens. */
static int
is_token(const char *s)
{
	return hdr_name_valid(s, strlen(s));
}

static int
parse_hosts(struct ctx *c, const config_setting_t *s, struct sc_pool_conf *pc)
{
	char path[256];
	int n;

	setting_path(s, path, sizeof(path));
	if (config_setting_type(s) != CONFIG_TYPE_LIST)
		return fail(c, s, "%s: expected a list of groups, like ( { host = \"127.0.0.1\"; } )", path);
	n = config_setting_length(s);
	if (n == 0)
		return fail(c, s, "%s: at least one memcached host is needed", path);
	pc->hosts = calloc((size_t)n, sizeof(struct sc_host));
	if (pc->hosts == NULL)
		return fail(c, s, "%s: out of memory", path);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct sc_host *h = &pc->hosts[i];

		pc->nhosts++;
		h->port = 11211;
		h->weight = 100;
		h->line = (int)config_setting_source_line(e);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP)
			return fail(c, e, "%s[%d]: expected a group { host = ...; }", path, i);
		if (apply_table(c, e, host_fields, h, NULL) < 0)
			return -1;
		if (h->host == NULL || h->host[0] == '\0')
			return fail(c, e, "%s[%d].host: missing", path, i);
		for (int j = 0; j < i; j++)
			if (strcmp(pc->hosts[j].host, h->host) == 0 && pc->hosts[j].port == h->port)
				return fail(c, e, "%s[%d]: duplicate host %s:%u (also at line %d)",
				    path, i, h->host, h->port, pc->hosts[j].line);
	}
	return 0;
}

static int
parse_policy(struct ctx *c, const config_setting_t *s, struct sc_policy *p)
{
	static const char *const own[] = { "routing_headers", "set_cookie", NULL };
	const config_setting_t *rh, *sc;
	char path[256];

	setting_path(s, path, sizeof(path));
	p->line = (int)config_setting_source_line(s);
	if (policy_defaults(p) < 0)
		return fail(c, s, "%s: out of memory", path);
	p->name = strdup(config_setting_name(s));
	if (p->name == NULL)
		return fail(c, s, "%s: out of memory", path);
	/* the ctx HAProxy carries back would cut a longer name, and the store
	 * half would then look up a policy that does not exist */
	if (strlen(p->name) > POL_MAX_NAME)
		return fail(c, s, "policies.%.32s...: a policy name of %zu bytes, at most %d",
		    p->name, strlen(p->name), POL_MAX_NAME);
	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return fail(c, s, "%s: a policy is a group { cache_ttl = 60; ... }", path);
	if (apply_table(c, s, policy_fields, p, own) < 0)
		return -1;
	if ((rh = config_setting_get_member(s, "routing_headers")) != NULL) {
		const char *v = config_setting_get_string(rh);

		if (v != NULL && strcmp(v, "key") == 0)
			p->routing_bypass = 0;
		else if (v != NULL && strcmp(v, "bypass") == 0)
			p->routing_bypass = 1;
		else
			return fail(c, rh, "%s.routing_headers: expected \"key\" or \"bypass\"", path);
	}
	if ((sc = config_setting_get_member(s, "set_cookie")) != NULL) {
		static const char *const modes[] = { "refuse", "strip", "store" };
		const char *v = config_setting_get_string(sc);
		size_t m;

		for (m = 0; m < 3; m++)
			if (v != NULL && strcmp(v, modes[m]) == 0)
				break;
		if (m == 3)
			return fail(c, sc, "%s.set_cookie: expected \"refuse\", \"strip\" or \"store\"",
			    path);
		p->set_cookie = m == 0 ? SC_COOKIE_REFUSE : m == 1 ? SC_COOKIE_STRIP : SC_COOKIE_STORE;
	}
	for (size_t i = 0; i < p->targeted_cc.n; i++)
		if (!is_token(p->targeted_cc.v[i]) || strcasecmp(p->targeted_cc.v[i], "Cache-Control") == 0)
			return fail(c, config_setting_get_member(s, "targeted_cache_control"),
			    "%s.targeted_cache_control: \"%s\" is not a targeted field name", path,
			    p->targeted_cc.v[i]);
	for (size_t i = 0; i < p->key_routing_headers.n; i++)
		if (!is_token(p->key_routing_headers.v[i]))
			return fail(c, config_setting_get_member(s, "key_routing_headers"),
			    "%s.key_routing_headers: \"%s\" is not a header name", path,
			    p->key_routing_headers.v[i]);
	for (size_t i = 0; i < p->request_method.n; i++)
		if (!is_token(p->request_method.v[i]))
			return fail(c, config_setting_get_member(s, "request_method"),
			    "%s.request_method: \"%s\" is not an HTTP method", path, p->request_method.v[i]);
	for (size_t i = 0; i < p->vary_headers.n; i++)
		if (!is_token(p->vary_headers.v[i]))
			return fail(c, config_setting_get_member(s, "vary_headers"),
			    "%s.vary_headers: \"%s\" is not a header name", path, p->vary_headers.v[i]);
	if (p->request_method.n == 0)
		return fail(c, s, "%s.request_method: empty list", path);
	if (p->content_type.n == 0)
		return fail(c, s, "%s.content_type: empty list", path);
	return 0;
}

/* A literal loopback address: 127/8, ::1, ::ffff:127/104, or "localhost".
 * Any other name counts as reachable from elsewhere. */
static int
addr_is_loopback(const char *a)
{
	char buf[INET6_ADDRSTRLEN + 2];
	struct in_addr v4;
	struct in6_addr v6;
	size_t n = strlen(a);

	if (strcmp(a, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, a, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (n >= 2 && a[0] == '[' && a[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, a + 1, n - 2);
		buf[n - 2] = '\0';
		a = buf;
	}
	if (inet_pton(AF_INET6, a, &v6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
	return 0;
}

/* A user or group named or numbered: its id, or -1 when there is none. */
static long
lookup_id(const char *name, int group)
{
	char buf[4096];
	char *end;
	long id;

	errno = 0;
	id = strtol(name, &end, 10);
	if (name[0] >= '0' && name[0] <= '9' && *end == '\0' && errno == 0 && id >= 0 &&
	    id < 0x7fffffffL)
		return id;
	if (group) {
		struct group g, *gp = NULL;

		return getgrnam_r(name, &g, buf, sizeof(buf), &gp) == 0 && gp != NULL ?
		    (long)gp->gr_gid : -1;
	} else {
		struct passwd pw, *pp = NULL;

		return getpwnam_r(name, &pw, buf, sizeof(buf), &pp) == 0 && pp != NULL ?
		    (long)pp->pw_uid : -1;
	}
}

/* The listeners: where SPOP and the admin endpoint listen, and who may reach them. */
static int
validate_listeners(struct ctx *c, struct sc_config *cf, const config_setting_t *root)
{
	struct sc_agent_conf *a = &cf->agent;
	const config_setting_t *ag = config_setting_get_member(root, "agent");
	const config_setting_t *ad = ag != NULL ? config_setting_get_member(ag, "admin") : NULL;
	const config_setting_t *ls = ag != NULL ? config_setting_get_member(ag, "listen") : NULL;
	const config_setting_t *al = ad != NULL ? config_setting_get_member(ad, "listen") : NULL;
	static const char *const sock_settings[] = { "socket_mode", "socket_owner", "socket_group" };

	if (a->listen[0] == '\0')
		return fail(c, ls, "agent.listen: empty (an address, or \"unix:PATH\")");
	/* HAProxy spells it unix@PATH; both are taken */
	if (strncmp(a->listen, "unix:", 5) == 0 || strncmp(a->listen, "unix@", 5) == 0) {
		struct sockaddr_un sun;

		a->unix_path = a->listen + 5;
		if (a->unix_path[0] == '\0')
			return fail(c, ls, "agent.listen: \"%s\" needs a path", a->listen);
		if (strlen(a->unix_path) >= sizeof(sun.sun_path))
			return fail(c, ls, "agent.listen: a unix socket path of %zu bytes, at most %zu",
			    strlen(a->unix_path), sizeof(sun.sun_path) - 1);
		if (a->socket_owner != NULL && (a->socket_uid = lookup_id(a->socket_owner, 0)) < 0)
			return fail(c, config_setting_get_member(ag, "socket_owner"),
			    "agent.socket_owner: no such user \"%s\"", a->socket_owner);
		if (a->socket_group != NULL && (a->socket_gid = lookup_id(a->socket_group, 1)) < 0)
			return fail(c, config_setting_get_member(ag, "socket_group"),
			    "agent.socket_group: no such group \"%s\"", a->socket_group);
	} else {
		for (size_t i = 0; i < sizeof(sock_settings) / sizeof(sock_settings[0]); i++) {
			const config_setting_t *s = ag != NULL ?
			    config_setting_get_member(ag, sock_settings[i]) : NULL;

			if (s != NULL)
				return fail(c, s, "agent.%s: only for a unix socket (agent.listen = "
				    "\"unix:PATH\")", sock_settings[i]);
		}
		if (!addr_is_loopback(a->listen))
			if (note_warning(c, cf, ls, "agent.listen: \"%s\" is not a loopback address "
			    "and SPOP has no authentication: anyone who reaches port %u can read and "
			    "write the cache (prefer a unix socket, or firewall it)", a->listen, a->port) < 0)
				return -1;
	}
	/* The admin endpoint flushes and reads the cache: off loopback, only
	 * with a token. */
	if (a->admin_listen[0] != '\0' && !addr_is_loopback(a->admin_listen) &&
	    (a->admin_token == NULL || a->admin_token[0] == '\0'))
		return fail(c, al != NULL ? al : ad != NULL ? ad : root,
		    "agent.admin.listen: \"%s\" is not a loopback address: set agent.admin.token "
		    "(anyone who reaches it could read and flush the cache)", a->admin_listen);
	return 0;
}

static void
defaults(struct sc_config *cf)
{
	cf->agent.port = 12345;
	cf->agent.threads = 2;
	cf->agent.max_frame_size = 262140;
	cf->agent.max_inflight = 256;
	cf->agent.max_output = 4u << 20;
	cf->agent.max_frag_size = 1u << 20;
	cf->agent.max_query_params = 100;
	cf->agent.max_headers = 200;
	cf->agent.max_connections = 1024;
	cf->agent.idle_timeout = 120;
	cf->agent.max_buffered = 64u << 20;
	cf->agent.socket_mode = 0660;
	cf->agent.socket_uid = cf->agent.socket_gid = -1;
	cf->agent.admin_port = 12346;
	cf->agent.admin_timeout = 10;
	cf->agent.admin_max_connections = 16;
	cf->agent.log_level = LOG_NOTICE;
	cf->agent.log_target = SC_LOG_STDERR;
	cf->pool.timeout_ms = 50;
	cf->pool.keepalive_timeout_ms = 10000;
	cf->pool.keepalive_pool_size = 2;
	cf->pool.fail_threshold = 2;
	cf->pool.retry_interval_ms = 1000;
	cf->pool.max_item_size = 1u << 20;
	cf->pool.store_backlog = 16u << 20;
	cf->pool.tls_verify = -1;	/* unset: on when tls is */
}

/* A warning for -t and the start-up log, "FILE:LINE: message". */
static int
note_warning(struct ctx *c, struct sc_config *cf, const config_setting_t *s, const char *fmt, ...)
{
	char msg[512], line[600], **v;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s:%d: %s", s != NULL && config_setting_source_file(s) ?
	    config_setting_source_file(s) : c->file, s != NULL ? (int)config_setting_source_line(s) : 0,
	    msg);
	v = realloc(cf->warnings.v, (cf->warnings.n + 2) * sizeof(char *));
	if (v == NULL)
		return fail(c, s, "out of memory");
	cf->warnings.v = v;
	if ((v[cf->warnings.n] = strdup(line)) == NULL)
		return fail(c, s, "out of memory");
	v[++cf->warnings.n] = NULL;
	return 0;
}

/* Largest entry secret file read: far above any real secret. */
#define SECRET_FILE_MAX	4096

/* The entry secret, from the setting or its file, made into cf->pool.entry_auth
 * (MISSION 5: entries can be authenticated). The secret is wiped after. */
static int
entry_secret(struct ctx *c, struct sc_config *cf, const config_setting_t *mc, int files)
{
	struct sc_pool_conf *pc = &cf->pool;
	const config_setting_t *s;
	char buf[SECRET_FILE_MAX + 1];
	const char *secret = pc->entry_secret;
	size_t len = secret != NULL ? strlen(secret) : 0;
	int rc = -1;

	if (pc->entry_secret == NULL && pc->entry_secret_file == NULL)
		return 0;
	s = config_setting_get_member(mc, pc->entry_secret != NULL ? "entry_secret" : "entry_secret_file");
	if (pc->entry_secret != NULL && pc->entry_secret_file != NULL) {
		fail(c, s, "memcached: entry_secret and entry_secret_file: set one of them");
		goto out;
	}
	if (pc->entry_secret_file != NULL) {
		FILE *f;

		if (!files) {
			fail(c, s, "memcached.entry_secret_file: no file is read for this configuration");
			goto out;
		}
		if ((f = fopen(pc->entry_secret_file, "rb")) == NULL) {
			fail(c, s, "memcached.entry_secret_file: cannot read %s: %s", pc->entry_secret_file,
			    strerror(errno));
			goto out;
		}
		len = fread(buf, 1, sizeof(buf), f);
		if (ferror(f) || len > SECRET_FILE_MAX) {
			fail(c, s, "memcached.entry_secret_file: %s: %s", pc->entry_secret_file,
			    ferror(f) ? "read error" : "larger than 4096 bytes");
			fclose(f);
			goto out;
		}
		fclose(f);
		/* as echo or an editor wrote it: the line end is not the secret */
		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			len--;
		secret = buf;
	}
	if (len < ENTRY_SECRET_MIN) {
		fail(c, s, "memcached.%s: %zu bytes, at least %d", pc->entry_secret != NULL ?
		    "entry_secret" : "entry_secret_file", len, ENTRY_SECRET_MIN);
		goto out;
	}
	if ((pc->entry_auth = entry_auth_new(secret, len)) == NULL) {
		fail(c, s, "memcached: entry secret: HMAC-SHA-256 is not available from OpenSSL");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	if (pc->entry_secret != NULL) {
		OPENSSL_cleanse(pc->entry_secret, strlen(pc->entry_secret));
		free(pc->entry_secret);
		pc->entry_secret = NULL;
	}
	return rc;
}

static int
validate(struct ctx *c, struct sc_config *cf, const config_setting_t *root, int files)
{
	const config_setting_t *mc = config_setting_get_member(root, "memcached");

	if (cf->pool.nhosts == 0)
		return fail(c, mc != NULL ? mc : root, "memcached.hosts: at least one memcached host is needed");
	if ((cf->pool.tls_cert_file == NULL) != (cf->pool.tls_key_file == NULL))
		return fail(c, mc, "memcached: tls_cert_file and tls_key_file go together");
	if (!cf->pool.tls && (cf->pool.tls_verify > 0 || cf->pool.tls_ca_file != NULL ||
	    cf->pool.tls_cert_file != NULL || cf->pool.tls_server_name != NULL))
		return fail(c, mc, "memcached: tls_* settings need tls = true");
	if (cf->pool.tls_verify < 0)
		cf->pool.tls_verify = cf->pool.tls;
	/* Else a store of the largest item would be refused even with
	 * nothing else in flight. */
	if (cf->pool.store_backlog < cf->pool.max_item_size)
		return fail(c, config_setting_get_member(mc, "store_backlog") != NULL ?
		    config_setting_get_member(mc, "store_backlog") : mc,
		    "memcached.store_backlog: %zu bytes, less than max_item_size (%zu)",
		    cf->pool.store_backlog, cf->pool.max_item_size);
	/* A shard that is not verified can be anyone on the path, answering
	 * with entries of its choosing (MISSION 5). */
	if (cf->pool.tls && !cf->pool.tls_verify &&
	    note_warning(c, cf, config_setting_get_member(mc, "tls_verify"), "memcached.tls_verify: false: "
	    "TLS without verifying the shards' certificates; anyone on the path can pose as a "
	    "shard and answer with entries of its choosing") < 0)
		return -1;
	if (entry_secret(c, cf, mc, files) < 0)
		return -1;
	if (cf->agent.listen == NULL && (cf->agent.listen = strdup("127.0.0.1")) == NULL)
		return fail(c, root, "out of memory");
	if (cf->agent.admin_listen == NULL && (cf->agent.admin_listen = strdup("127.0.0.1")) == NULL)
		return fail(c, root, "out of memory");
	return validate_listeners(c, cf, root);
}

/* Largest configuration read: far above any real one, low enough that a
 * wrong path (a device, a log) is refused instead of read into memory. */
#define CONFIG_MAX_SIZE	(16u << 20)

/* Whether text may @include files (resolved as libconfig 1.5 does: the
 * path as written, relative to the current directory). */
enum includes { INC_FOLLOW, INC_REFUSE };

/* The one loader behind config_load() and config_load_buf(). */
static struct sc_config *
load(const char *name, const char *text, size_t len, enum includes inc, char *err, size_t errlen)
{
	struct ctx c = { name, err, errlen };
	struct sc_config *cf;
	config_t lc;
	char *str = NULL;
	const char *nul;
	const config_setting_t *root, *s;
	static const char *const agent_skip[] = { "admin", "log", NULL };
	static const char *const pool_skip[] = { "hosts", NULL };

	cf = calloc(1, sizeof(*cf));
	if (cf == NULL || (cf->path = strdup(name)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		free(cf);
		return NULL;
	}
	defaults(cf);
	config_init(&lc);
	if (len == 0)
		text = "";	/* (NULL, 0) is empty text; no mem*() on NULL */
	/* libconfig reads a C string: a NUL in the text would silently end
	 * it, where read from a file it is a syntax error. Say so. */
	if ((nul = memchr(text, '\0', len)) != NULL) {
		int line = 1;

		for (const char *q = text; q < nul; q++)
			line += *q == '\n';
		snprintf(err, errlen, "%s:%d: syntax error: NUL byte", name, line);
		goto fail;
	}
	if (inc == INC_REFUSE && cfglint_no_include(name, text, len, err, errlen) < 0)
		goto fail;
	if ((str = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto fail;
	}
	memcpy(str, text, len);
	str[len] = '\0';
	if (!config_read_string(&lc, str)) {
		snprintf(err, errlen, "%s:%d: syntax error: %s",
		    config_error_file(&lc) ? config_error_file(&lc) : name,
		    config_error_line(&lc), config_error_text(&lc));
		goto fail;
	}
	free(str);
	str = NULL;
	if (cfglint_int_literals(name, text, len, err, errlen) < 0)
		goto fail;
	root = config_root_setting(&lc);
	for (int i = 0; i < config_setting_length(root); i++) {
		const char *n;

		s = config_setting_get_elem(root, (unsigned)i);
		n = config_setting_name(s);
		if (strcmp(n, "agent") != 0 && strcmp(n, "memcached") != 0 && strcmp(n, "policies") != 0) {
			fail(&c, s, "%s: unknown section (agent, memcached, policies)", n);
			goto fail;
		}
		if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
			fail(&c, s, "%s: expected a group { ... }", n);
			goto fail;
		}
	}
	if ((s = config_setting_get_member(root, "agent")) != NULL) {
		const config_setting_t *g;

		if (apply_table(&c, s, agent_fields, &cf->agent, agent_skip) < 0)
			goto fail;
		if ((g = config_setting_get_member(s, "admin")) != NULL &&
		    apply_table(&c, g, admin_fields, &cf->agent, NULL) < 0)
			goto fail;
		if ((g = config_setting_get_member(s, "log")) != NULL &&
		    apply_table(&c, g, log_fields, &cf->agent, NULL) < 0)
			goto fail;
	}
	if ((s = config_setting_get_member(root, "memcached")) != NULL) {
		const config_setting_t *h;

		if (apply_table(&c, s, pool_fields, &cf->pool, pool_skip) < 0)
			goto fail;
		if ((h = config_setting_get_member(s, "hosts")) != NULL && parse_hosts(&c, h, &cf->pool) < 0)
			goto fail;
	}
	if ((s = config_setting_get_member(root, "policies")) != NULL) {
		int n = config_setting_length(s);

		cf->policies = calloc((size_t)n + 1, sizeof(struct sc_policy));
		if (cf->policies == NULL) {
			fail(&c, s, "policies: out of memory");
			goto fail;
		}
		for (int i = 0; i < n; i++) {
			cf->npolicies++;
			if (parse_policy(&c, config_setting_get_elem(s, (unsigned)i), &cf->policies[i]) < 0)
				goto fail;
		}
	}
	if (validate(&c, cf, root, inc == INC_FOLLOW) < 0)
		goto fail;
	config_destroy(&lc);
	return cf;
fail:
	free(str);
	config_destroy(&lc);
	config_free(cf);
	return NULL;
}

struct sc_config *
config_load_buf(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
	return load(name, text, len, INC_REFUSE, err, errlen);
}

struct sc_config *
config_load(const char *file, char *err, size_t errlen)
{
	struct sc_config *cf;
	FILE *f;
	char *t = NULL;
	size_t n = 0, cap = 0;

	if ((f = fopen(file, "rb")) == NULL) {
		snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
		return NULL;
	}
	for (;;) {
		size_t got;

		if (n == cap) {
			/* one byte past the limit tells "at the limit" from "over it" */
			size_t ncap = cap ? cap * 2 : 8192;
			char *nt;

			if (cap > CONFIG_MAX_SIZE) {
				snprintf(err, errlen, "%s: cannot read: larger than %u MiB", file,
				    CONFIG_MAX_SIZE >> 20);
				goto fail;
			}
			if (ncap > CONFIG_MAX_SIZE + 1)
				ncap = CONFIG_MAX_SIZE + 1;
			if ((nt = realloc(t, ncap)) == NULL) {
				snprintf(err, errlen, "%s: cannot read: out of memory", file);
				goto fail;
			}
			t = nt;
			cap = ncap;
		}
		got = fread(t + n, 1, cap - n, f);
		if (got == 0)
			break;
		n += got;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
		goto fail;
	}
	fclose(f);
	cf = load(file, t, n, INC_FOLLOW, err, errlen);
	free(t);
	return cf;
fail:
	fclose(f);
	free(t);
	return NULL;
}

void
config_free(struct sc_config *cf)
{
	if (cf == NULL)
		return;
	free(cf->path);
	free(cf->agent.listen);
	free(cf->agent.admin_listen);
	free(cf->agent.admin_token);
	free(cf->agent.socket_owner);
	free(cf->agent.socket_group);
	for (size_t i = 0; i < cf->pool.nhosts; i++)
		free(cf->pool.hosts[i].host);
	free(cf->pool.hosts);
	free(cf->pool.tls_server_name);
	free(cf->pool.tls_ca_file);
	free(cf->pool.tls_cert_file);
	free(cf->pool.tls_key_file);
	if (cf->pool.entry_secret != NULL)
		OPENSSL_cleanse(cf->pool.entry_secret, strlen(cf->pool.entry_secret));
	free(cf->pool.entry_secret);
	free(cf->pool.entry_secret_file);
	entry_auth_free(cf->pool.entry_auth);
	strlist_free(&cf->warnings);
	for (size_t i = 0; i < cf->npolicies; i++)
		policy_free(&cf->policies[i]);
	free(cf->policies);
	free(cf);
}

void
config_limits(const struct sc_config *cf, struct pol_limits *lim)
{
	lim->max_headers = (size_t)cf->agent.max_headers;
	lim->max_query_params = (size_t)cf->agent.max_query_params;
	lim->auth = cf->pool.entry_auth;
}

const struct sc_policy *
config_policy(const struct sc_config *cf, const char *name, size_t len)
{
	for (size_t i = 0; i < cf->npolicies; i++)
		if (strlen(cf->policies[i].name) == len && memcmp(cf->policies[i].name, name, len) == 0)
			return &cf->policies[i];
	return NULL;
}
