/*
 * ctl.c - spoe-cache-ctl: read, purge and flush the cache, compute keys,
 * show per-shard stats. Reads the agent's config file and uses the agent's
 * own core (pool, key derivation, entry format), so what it computes and
 * where it looks are exactly what the agent does.
 *
 *   spoe-cache-ctl [-c FILE] [--json] get KEY [--body FILE]
 *   spoe-cache-ctl [-c FILE] [--json] purge [--soft] KEY
 *   spoe-cache-ctl [-c FILE] [--json] flush
 *   spoe-cache-ctl [-c FILE] [--json] stats
 *   spoe-cache-ctl [-c FILE] [--json] key METHOD URL [-H 'Name: value']... [--policy P]
 *                  [--https] [--consumer ID] [--data BODY]
 *
 * get checks an entry as the agent does before a replay (its key, the
 * entry secret's signature, what it would send): one that fails is shown
 * as refused, with the reason, and exits 1 like an absent one.
 *
 * Exit: 0 done; 1 absent or refused (get), absent (purge), a shard failed (flush, stats) or
 * the request would be a Bypass (key);
 * purge --soft marks the entry stale instead of deleting it: the next
 * request revalidates it while the ones arriving meanwhile are still
 * served from it, for at most POL_SOFT_PURGE_TTL seconds. 2 usage or configuration error, or
 * the shard that owns KEY failed (get, purge: an error is not "absent", so
 * a script can tell them apart).
 * --json prints one JSON object per line: one for get, purge and key, one
 * per shard for flush and stats.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "entry.h"
#include "hdrs.h"
#include "inspect.h"
#include "key.h"
#include "log.h"
#include "policy.h"
#include "pool.h"
#include "varint.h"

struct ctl {
	const struct sc_config *cf;
	struct event_base *base;
	struct pool *pool;
	int json;
	int pending;
	int rc;
	const char *key;
	const char *body_file;
	int soft;
	int shard;
	struct evbuffer *out;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: spoe-cache-ctl [-c FILE] [--json] COMMAND ...\n"
	    "  get KEY [--body FILE]   show an entry (exit 1 when absent)\n"
	    "  purge [--soft] KEY      delete an entry on its shard (exit 1 when absent);\n"
	    "                          --soft: mark it stale, the next request revalidates\n"
	    "  flush                   flush_all on every shard\n"
	    "  stats                   per-shard items, memory, hit ratio, up/down\n"
	    "  key METHOD URL [-H 'Name: value']... [--policy P] [--https]\n"
	    "      [--consumer ID] [--data BODY]   compute a key offline\n"
	    "  -c FILE  configuration (default /etc/spoe-cache/spoe-cache.conf)\n");
}

static void
done(struct ctl *c)
{
	if (--c->pending == 0)
		event_base_loopexit(c->base, NULL);
}

static int
valid_key(const char *k)
{
	if (strlen(k) != KEY_HEX_LEN)
		return 0;
	for (const char *p = k; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

static void
on_get(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct ctl *c = arg;
	struct entry e;
	int rc;

	if (st == MC_NOTFOUND) {
		if (c->json)
			evbuffer_add_printf(c->out, "{\"key\":\"%s\",\"found\":false}\n", c->key);
		else
			evbuffer_add_printf(c->out, "%s: not in the cache\n", c->key);
		c->rc = 1;
	} else if (st != MC_OK) {
		if (c->json)
			evbuffer_add_printf(c->out, "{\"key\":\"%s\",\"shard\":\"%s\",\"error\":\"%s\"}\n",
			    c->key, pool_shard_name(c->pool, c->shard), mc_status_name(st));
		else
			evbuffer_add_printf(c->out, "%s: %s on shard %s\n", c->key, mc_status_name(st),
			    pool_shard_name(c->pool, c->shard));
		c->rc = 2;
	} else if ((rc = inspect_decode(c->cf, c->key, val, vlen, &e)) < 0) {
		/* What a lookup would refuse is shown as refused, never replayed
		 * into a terminal or a --body file. */
		if (c->json)
			evbuffer_add_printf(c->out, "{\"key\":\"%s\",\"found\":true,\"error\":"
			    "\"entry refused: %s\",\"reason\":\"%s\"}\n", c->key, entry_err_str(rc),
			    entry_err_name(rc));
		else
			evbuffer_add_printf(c->out, "%s: entry refused (%s): %s\n", c->key,
			    entry_err_name(rc), entry_err_str(rc));
		c->rc = 1;
	} else {
		if (c->json)
			inspect_entry_json(c->out, c->key, &e, (int64_t)time(NULL));
		else
			inspect_entry_text(c->out, c->key, &e, (int64_t)time(NULL));
		if (c->body_file != NULL) {
			FILE *f = strcmp(c->body_file, "-") == 0 ? stdout : fopen(c->body_file, "wb");

			if (f == NULL || fwrite(e.body, 1, e.blen, f) != e.blen) {
				fprintf(stderr, "spoe-cache-ctl: cannot write %s\n", c->body_file);
				c->rc = 2;
			}
			if (f != NULL && f != stdout)
				fclose(f);
		}
	}
	done(c);
}

static void
on_purge(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct ctl *c = arg;

	(void)val;
	(void)vlen;
	if (c->json)
		evbuffer_add_printf(c->out, "{\"key\":\"%s\",\"shard\":\"%s\",\"result\":\"%s\"}\n",
		    c->key, pool_shard_name(c->pool, c->shard),
		    st == MC_OK ? (c->soft ? "marked stale" : "purged") : st == MC_NOTFOUND ? "absent" :
		    mc_status_name(st));
	else
		evbuffer_add_printf(c->out, "%s: %s (shard %s)\n", c->key,
		    st == MC_OK ? (c->soft ? "marked stale" : "purged") : st == MC_NOTFOUND ?
		    "not in the cache" : mc_status_name(st),
		    pool_shard_name(c->pool, c->shard));
	c->rc = st == MC_OK ? 0 : st == MC_NOTFOUND ? 1 : 2;
	done(c);
}

struct shard_op {
	struct ctl *c;
	int shard;
};

static void
on_flush(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct shard_op *op = arg;
	struct ctl *c = op->c;

	(void)val;
	(void)vlen;
	if (c->json)
		evbuffer_add_printf(c->out, "{\"shard\":\"%s\",\"result\":\"%s\"}\n",
		    pool_shard_name(c->pool, op->shard), st == MC_OK ? "flushed" : mc_status_name(st));
	else
		evbuffer_add_printf(c->out, "%s: %s\n", pool_shard_name(c->pool, op->shard),
		    st == MC_OK ? "flushed" : mc_status_name(st));
	if (st != MC_OK)
		c->rc = 1;
	done(c);
}

/* The value of one "STAT name value" line. */
static unsigned long long
stat_val(const char *s, size_t len, const char *name)
{
	size_t nl = strlen(name);
	const char *p = s, *end = s + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > 6 + nl && memcmp(p, "STAT ", 5) == 0 &&
		    memcmp(p + 5, name, nl) == 0 && p[5 + nl] == ' ')
			return strtoull(p + 6 + nl, NULL, 10);
		p = eol + 1;
	}
	return 0;
}

static void
on_stats(void *arg, enum mc_status st, const uint8_t *val, size_t vlen)
{
	struct shard_op *op = arg;
	struct ctl *c = op->c;
	const char *name = pool_shard_name(c->pool, op->shard);

	if (st != MC_OK) {
		if (c->json)
			evbuffer_add_printf(c->out, "{\"shard\":\"%s\",\"up\":false,\"error\":\"%s\"}\n",
			    name, mc_status_name(st));
		else
			evbuffer_add_printf(c->out, "%s: down (%s)\n", name, mc_status_name(st));
		c->rc = 1;
	} else {
		const char *s = (const char *)val;
		unsigned long long items = stat_val(s, vlen, "curr_items");
		unsigned long long bytes = stat_val(s, vlen, "bytes");
		unsigned long long limit = stat_val(s, vlen, "limit_maxbytes");
		unsigned long long hits = stat_val(s, vlen, "get_hits");
		unsigned long long misses = stat_val(s, vlen, "get_misses");
		double ratio = hits + misses ? (double)hits / (double)(hits + misses) : 0.0;

		if (c->json)
			evbuffer_add_printf(c->out, "{\"shard\":\"%s\",\"up\":true,\"items\":%llu,"
			    "\"bytes\":%llu,\"limit_maxbytes\":%llu,\"get_hits\":%llu,\"get_misses\":%llu,"
			    "\"hit_ratio\":%.4f}\n", name, items, bytes, limit, hits, misses, ratio);
		else
			evbuffer_add_printf(c->out, "%s: up, %llu items, %llu of %llu bytes, "
			    "hit ratio %.1f%% (%llu hits, %llu misses)\n", name, items, bytes, limit,
			    ratio * 100.0, hits, misses);
	}
	done(c);
}


/* The hdrs_bin block HAProxy would send for these headers (malloc'd). */
static uint8_t *
hdrs_block(const struct hdr *h, size_t nh, size_t *len)
{
	size_t cap = 2;
	uint8_t *b, *p, *end;

	for (size_t i = 0; i < nh; i++)
		cap += 2 * VARINT_MAX_LEN + h[i].nlen + h[i].vlen;
	if ((b = malloc(cap)) == NULL)
		return NULL;
	p = b;
	end = b + cap;
	for (size_t i = 0; i < nh; i++) {
		p += varint_encode(h[i].nlen, p, end);
		memcpy(p, h[i].name, h[i].nlen);
		p += h[i].nlen;
		p += varint_encode(h[i].vlen, p, end);
		memcpy(p, h[i].val, h[i].vlen);
		p += h[i].vlen;
	}
	*p++ = 0;
	*p++ = 0;
	*len = (size_t)(p - b);
	return b;
}

static int
cmd_key(const struct sc_config *cf, int argc, char **argv, int json)
{
	static const struct option opts[] = {
		{ "header", required_argument, NULL, 'H' },
		{ "policy", required_argument, NULL, 'p' },
		{ "https", no_argument, NULL, 's' },
		{ "consumer", required_argument, NULL, 'u' },
		{ "data", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 }
	};
	struct hdr hdrs[POL_MAX_HEADERS];
	size_t nh = 0;
	const char *policy = "default";
	struct pol_request req;
	struct pol_lookup L;
	const struct sc_policy *p;
	char hex[KEY_HEX_LEN + 1];
	int opt;

	memset(&req, 0, sizeof(req));
	optind = 0;	/* GNU getopt: 0 re-initialises its state */
	while ((opt = getopt_long(argc, argv, "H:p:su:d:", opts, NULL)) != -1) {
		switch (opt) {
		case 'H': {
			char *colon = strchr(optarg, ':');

			if (colon == NULL || nh == POL_MAX_HEADERS) {
				fprintf(stderr, "spoe-cache-ctl: -H takes 'Name: value'\n");
				return 2;
			}
			hdrs[nh].name = optarg;
			hdrs[nh].nlen = (size_t)(colon - optarg);
			colon++;
			while (*colon == ' ' || *colon == '\t')
				colon++;
			hdrs[nh].val = colon;
			hdrs[nh].vlen = strlen(colon);
			nh++;
			break;
		}
		case 'p': policy = optarg; break;
		case 's': req.tls = 1; break;
		case 'u': req.consumer = optarg; req.consumer_len = strlen(optarg); break;
		case 'd': req.body = optarg; req.body_len = strlen(optarg); break;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	p = config_policy(cf, policy, strlen(policy));
	if (p == NULL) {
		fprintf(stderr, "spoe-cache-ctl: no policy \"%s\" in %s\n", policy, cf->path);
		return 2;
	}
	req.method = argv[optind];
	req.method_len = strlen(req.method);
	req.url = argv[optind + 1];
	req.url_len = strlen(req.url);
	/* An absolute URL carries its own Host when none is given. */
	{
		const char *s = strstr(req.url, "://");
		size_t from = 0;

		if (s != NULL && hdrs_find(hdrs, nh, "host", 4, &from) == NULL && nh < POL_MAX_HEADERS) {
			const char *a = s + 3, *e = a;

			while (*e && *e != '/' && *e != '?')
				e++;
			hdrs[nh].name = "Host";
			hdrs[nh].nlen = 4;
			hdrs[nh].val = a;
			hdrs[nh].vlen = (size_t)(e - a);
			nh++;
			if (strncmp(req.url, "https://", 8) == 0)
				req.tls = 1;
			req.url = e[0] ? e : "/";
			req.url_len = strlen(req.url);
		}
	}
	/* The agent's own first decision, over the block HAProxy would send. */
	{
		uint8_t *block = hdrs_block(hdrs, nh, &req.hdrs_len);
		struct pol_limits lim;

		if (block == NULL) {
			fprintf(stderr, "spoe-cache-ctl: out of memory\n");
			return 2;
		}
		req.hdrs = block;
		config_limits(cf, &lim);
		policy_request(p, &lim, &req, &L);
		free(block);
	}
	if (L.action != PA_FETCH) {
		fprintf(stderr, "spoe-cache-ctl: not cacheable (Bypass): %s\n",
		    L.action == PA_BYPASS ? L.why : "method not cacheable");
		return 1;
	}
	memcpy(hex, L.key, sizeof(hex));
	if (json)
		printf("{\"key\":\"%s\",\"policy\":\"%s\"}\n", hex, p->name);
	else
		printf("%s\n", hex);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *file = "/etc/spoe-cache/spoe-cache.conf", *cmd;
	struct sc_config *cf = NULL;
	struct shard_op *ops = NULL;
	struct ctl c;
	SSL_CTX *tls = NULL;
	char err[512];
	int opt, nargs, keycmd, shardcmd;

	memset(&c, 0, sizeof(c));
	/* Options before the command only; the command parses its own. */
	while ((opt = getopt_long(argc, argv, "+c:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': file = optarg; break;
		case 'j': c.json = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	nargs = argc - optind;
	/* The command line is checked before anything is allocated. */
	keycmd = strcmp(cmd, "get") == 0 || strcmp(cmd, "purge") == 0;
	shardcmd = strcmp(cmd, "flush") == 0 || strcmp(cmd, "stats") == 0;
	if (keycmd) {
		if (nargs == 4 && cmd[0] == 'g' && strcmp(argv[optind + 2], "--body") == 0)
			c.body_file = argv[optind + 3];
		else if (nargs == 3 && cmd[0] == 'p' && strcmp(argv[optind + 1], "--soft") == 0)
			c.soft = 1;
		else if (nargs != 2) {
			usage(stderr);
			return 2;
		}
		c.key = argv[optind + 1 + c.soft];
		if (!valid_key(c.key)) {
			fprintf(stderr, "spoe-cache-ctl: a key is 64 lowercase hex digits\n");
			return 2;
		}
	} else if ((shardcmd && nargs != 1) || (!shardcmd && strcmp(cmd, "key") != 0)) {
		usage(stderr);
		return 2;
	}
	log_init("spoe-cache-ctl", LOG_WARNING, 0);
	cf = config_load(file, err, sizeof(err));
	if (cf == NULL) {
		fprintf(stderr, "spoe-cache-ctl: %s\n", err);
		return 2;
	}
	c.cf = cf;
	if (strcmp(cmd, "key") == 0) {
		c.rc = cmd_key(cf, nargs, argv + optind, c.json);
		goto out_cf;
	}
	c.rc = 2;
	c.base = event_base_new();
	c.out = evbuffer_new();
	if (c.base == NULL || c.out == NULL) {
		fprintf(stderr, "spoe-cache-ctl: out of memory\n");
		goto out_base;
	}
	if (cf->pool.tls && (tls = pool_tls_ctx_new(&cf->pool, err, sizeof(err))) == NULL) {
		fprintf(stderr, "spoe-cache-ctl: memcached TLS: %s\n", err);
		goto out_base;
	}
	c.pool = pool_new(c.base, &cf->pool, tls, err, sizeof(err));
	if (c.pool == NULL) {
		fprintf(stderr, "spoe-cache-ctl: %s\n", err);
		goto out_tls;
	}
	c.rc = 0;
	if (keycmd) {
		c.shard = pool_shard_of(c.pool, c.key, KEY_HEX_LEN);
		c.pending = 1;
		if ((cmd[0] == 'g' ? pool_get(c.pool, c.key, KEY_HEX_LEN, on_get, &c) :
		    c.soft ? pool_invalidate(c.pool, c.key, KEY_HEX_LEN, POL_SOFT_PURGE_TTL, on_purge, &c) :
		    pool_delete(c.pool, c.key, KEY_HEX_LEN, on_purge, &c)) < 0) {
			fprintf(stderr, "spoe-cache-ctl: cannot send the request\n");
			c.pending = 0;
			c.rc = 2;
		}
	} else {
		int n = pool_nshards(c.pool);

		ops = calloc((size_t)n, sizeof(*ops));
		if (ops == NULL) {
			c.rc = 2;
			goto out_pool;
		}
		for (int i = 0; i < n; i++) {
			ops[i].c = &c;
			ops[i].shard = i;
			c.pending++;
			if ((cmd[0] == 'f' ? pool_flush_shard(c.pool, i, on_flush, &ops[i]) :
			    pool_stats_shard(c.pool, i, on_stats, &ops[i])) < 0) {
				c.pending--;
				c.rc = 1;
			}
		}
	}
	if (c.pending > 0)
		event_base_dispatch(c.base);
	fwrite(evbuffer_pullup(c.out, -1), 1, evbuffer_get_length(c.out),
	    c.body_file != NULL && strcmp(c.body_file, "-") == 0 ? stderr : stdout);
out_pool:
	pool_free(c.pool);
	free(ops);
out_tls:
	if (tls != NULL)
		SSL_CTX_free(tls);
out_base:
	if (c.out != NULL)
		evbuffer_free(c.out);
	if (c.base != NULL)
		event_base_free(c.base);
out_cf:
	config_free(cf);
	return c.rc;
}
