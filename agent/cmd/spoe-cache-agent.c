/*
 * agent.c - spoe-cache-agent: main(). Loads the config, starts the worker
 * threads, accepts SPOP connections on the main thread and hands them to
 * the workers, serves the admin endpoint, and handles signals (TERM/INT
 * stop, HUP reloads). It does no request work itself.
 *
 * Configurations: each one loaded (at start, then per accepted SIGHUP) is a
 * generation (worker.h), its memcached names resolved here, once, so that
 * no worker ever blocks on a lookup. The main thread owns every generation
 * and frees an old one as soon as every worker and the admin endpoint have
 * taken a newer one (reap()).
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "admin.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "worker.h"

#define VERSION "0.1.0"

struct agent {
	struct event_base *base;
	struct evconnlistener *lst;
	struct generation *gens;	/* newest first: the ones a thread may still read */
	struct sc_config *cf;		/* gens->cf, the newest */
	struct event *reap_ev;		/* workers activate it when they take a generation */
	SSL_CTX *tls;
	struct worker *workers;
	int nworkers;
	unsigned next;			/* round-robin hand-off */
	struct admin *admin;
	int debug;			/* -d: debug level whatever the config says */
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: spoe-cache-agent [-c FILE] [-t] [-d] [-V]\n"
	    "  -c FILE  configuration (default /etc/spoe-cache/spoe-cache.conf)\n"
	    "  -t       check the configuration and exit\n"
	    "  -d       log at debug level\n"
	    "  -V       print the version and exit\n");
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct agent *ag = arg;

	(void)l;
	(void)sa;
	(void)salen;
	evutil_make_socket_nonblocking(fd);
	{
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	worker_hand(&ag->workers[ag->next++ % (unsigned)ag->nworkers], fd);
}

static void
on_accept_error(struct evconnlistener *l, void *arg)
{
	(void)l;
	(void)arg;
	/* EMFILE and friends: log, keep listening; libevent retries. */
	log_err("accept: %s", strerror(errno));
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct agent *ag = arg;

	(void)what;
	log_notice("signal %d: stopping", (int)sig);
	event_base_loopexit(ag->base, NULL);
}

/* cf's generation n: cf's memcached hosts resolved, here, once (this may
 * block the main thread for the lookups, never a worker). Takes cf only
 * when it returns one. */
static struct generation *
generation_new(struct sc_config *cf, unsigned long n, char *err, size_t errlen)
{
	struct generation *g = calloc(1, sizeof(*g));

	if (g == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	g->addrs = pool_addrs_resolve(&cf->pool, err, errlen);
	if (g->addrs == NULL) {
		free(g);
		return NULL;
	}
	g->n = n;
	g->cf = cf;
	return g;
}

static void
generation_free(struct generation *g)
{
	pool_addrs_free(g->addrs);
	g->addrs = NULL;
	config_free(g->cf);
	g->cf = NULL;
	free(g);
}

/*
 * Free the generations nothing reads any more: those older than the oldest
 * one a worker or the admin endpoint still uses. A generation a worker has
 * not taken yet (in its next slot) is newer than the one it uses, so it is
 * kept; the newest is always kept.
 */
static void
reap(struct agent *ag)
{
	unsigned long oldest = admin_taken(ag->admin);
	struct generation *g, *cut;

	for (int i = 0; i < ag->nworkers; i++) {
		unsigned long t = worker_taken(&ag->workers[i]);

		if (t < oldest)
			oldest = t;
	}
	for (g = ag->gens; g->older != NULL && g->older->n >= oldest; g = g->older)
		;
	cut = g->older;
	g->older = NULL;
	while ((g = cut) != NULL) {
		cut = g->older;
		log_debug("configuration generation %lu freed: every thread uses %lu or newer",
		    g->n, oldest);
		generation_free(g);
	}
}

static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reap(arg);
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct agent *ag = arg;
	char err[512];
	struct sc_config *cf;
	struct generation *g;

	(void)sig;
	(void)what;
	cf = config_load(ag->cf->path, err, sizeof(err));
	if (cf == NULL) {
		log_err("reload refused, keeping the running configuration: %s", err);
		return;
	}
	if (cf->pool.tls != ag->cf->pool.tls) {
		log_err("reload refused: changing memcached.tls needs a restart");
		config_free(cf);
		return;
	}
	/* Every worker and the admin endpoint will build a pool from the new
	 * host list at the addresses resolved here, once; a name that does not
	 * resolve, or a pool that cannot be built (a probe: it connects
	 * nothing), refuses the reload here, whole, rather than leave each of
	 * them on the old pool with the new policies half applied. */
	g = generation_new(cf, ag->gens->n + 1, err, sizeof(err));
	if (g == NULL) {
		log_err("reload refused, keeping the running configuration: %s: %s", cf->path, err);
		config_free(cf);
		return;
	}
	{
		struct pool *probe = pool_new_at(ag->base, &cf->pool, g->addrs, ag->tls, err,
		    sizeof(err));

		if (probe == NULL) {
			log_err("reload refused, keeping the running configuration: %s: %s",
			    cf->path, err);
			generation_free(g);
			return;
		}
		pool_free(probe);
	}
	/* What a running agent cannot change: said once, the rest applies. */
	{
		const struct sc_agent_conf *o = &ag->cf->agent, *n = &cf->agent;

		if (strcmp(o->listen, n->listen) != 0 || o->port != n->port)
			log_warn("reload: agent.listen/agent.port changed; needs a restart");
		if (o->threads != n->threads)
			log_warn("reload: agent.threads changed; needs a restart");
		if (strcmp(o->admin_listen, n->admin_listen) != 0 || o->admin_port != n->admin_port)
			log_warn("reload: agent.admin.listen/port changed; needs a restart");
		if (o->log_target != n->log_target)
			log_warn("reload: agent.log.target changed; needs a restart");
	}
	log_set_level(ag->debug ? LOG_DEBUG : cf->agent.log_level);
	/* The older generations stay until every thread has moved past them
	 * (reap(), when the workers say they have). */
	g->older = ag->gens;
	ag->gens = g;
	ag->cf = cf;
	for (int i = 0; i < ag->nworkers; i++)
		worker_reload(&ag->workers[i], g);
	admin_reload(ag->admin, g);
	log_notice("configuration reloaded from %s (generation %lu)", cf->path, g->n);
	reap(ag);
}

static int
listen_on(struct agent *ag, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char addr[300];

	snprintf(addr, sizeof(addr), "%s:%u", ag->cf->agent.listen, ag->cf->agent.port);
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) < 0) {
		snprintf(err, errlen, "agent.listen: cannot parse \"%s\"", addr);
		return -1;
	}
	ag->lst = evconnlistener_new_bind(ag->base, on_accept, ag,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
	    (struct sockaddr *)&ss, sslen);
	if (ag->lst == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(ag->lst, on_accept_error);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *file = "/etc/spoe-cache/spoe-cache.conf";
	struct agent ag;
	struct event *ev_term = NULL, *ev_int = NULL, *ev_hup = NULL;
	char err[512];
	int check = 0, debug = 0, opt, rc = 1;

	memset(&ag, 0, sizeof(ag));
	while ((opt = getopt(argc, argv, "c:tdVh")) != -1) {
		switch (opt) {
		case 'c': file = optarg; break;
		case 't': check = 1; break;
		case 'd': debug = ag.debug = 1; break;
		case 'V': printf("spoe-cache-agent %s\n", VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	ag.cf = config_load(file, err, sizeof(err));
	if (ag.cf == NULL) {
		fprintf(stderr, "spoe-cache-agent: %s\n", err);
		return 1;
	}
	if (check) {
		/* What start-up would read besides the file: the TLS files. */
		if (ag.cf->pool.tls) {
			SSL_CTX *t = pool_tls_ctx_new(&ag.cf->pool, err, sizeof(err));

			if (t == NULL) {
				fprintf(stderr, "spoe-cache-agent: %s: memcached TLS: %s\n", file, err);
				config_free(ag.cf);
				return 1;
			}
			SSL_CTX_free(t);
		}
		for (size_t i = 0; i < ag.cf->warnings.n; i++)
			fprintf(stderr, "spoe-cache-agent: warning: %s\n", ag.cf->warnings.v[i]);
		printf("%s: configuration OK (%zu memcached hosts, %zu policies)\n", file,
		    ag.cf->pool.nhosts, ag.cf->npolicies);
		config_free(ag.cf);
		return 0;
	}
	log_init("spoe-cache-agent", debug ? LOG_DEBUG : ag.cf->agent.log_level,
	    ag.cf->agent.log_target == SC_LOG_SYSLOG);
	for (size_t i = 0; i < ag.cf->warnings.n; i++)
		log_warn("%s", ag.cf->warnings.v[i]);
	signal(SIGPIPE, SIG_IGN);
	/* Every hit mallocs and frees buffers of 16 KiB to a few hundred; with
	 * glibc's default 128 KiB trim threshold the worker arenas hand that
	 * memory back (madvise) and fault it in again on the next request.
	 * Keep up to 8 MiB free per arena instead. */
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	if (evthread_use_pthreads() < 0) {
		log_err("evthread_use_pthreads failed");
		goto out;
	}
	ag.base = event_base_new();
	if (ag.base == NULL) {
		log_err("event_base_new failed");
		goto out;
	}
	if (ag.cf->pool.tls) {
		ag.tls = pool_tls_ctx_new(&ag.cf->pool, err, sizeof(err));
		if (ag.tls == NULL) {
			log_err("memcached TLS: %s", err);
			goto out;
		}
	}
	if (listen_on(&ag, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	ag.gens = generation_new(ag.cf, 1, err, sizeof(err));
	if (ag.gens == NULL) {
		log_err("%s", err);
		goto out;
	}
	ag.reap_ev = event_new(ag.base, -1, 0, on_reap, &ag);
	if (ag.reap_ev == NULL) {
		log_err("event_new failed");
		goto out;
	}
	ag.nworkers = ag.cf->agent.threads;
	ag.workers = calloc((size_t)ag.nworkers, sizeof(struct worker));
	if (ag.workers == NULL) {
		log_err("out of memory");
		goto out;
	}
	for (int i = 0; i < ag.nworkers; i++) {
		if (worker_start(&ag.workers[i], i, ag.gens, ag.tls, ag.reap_ev, err,
		    sizeof(err)) < 0) {
			log_err("%s", err);
			goto out_workers;
		}
	}
	ag.admin = admin_new(ag.base, ag.gens, ag.tls, ag.workers, ag.nworkers, err, sizeof(err));
	if (ag.admin == NULL && ag.cf->agent.admin_listen[0] != '\0') {
		log_err("admin endpoint: %s", err);
		goto out_workers;
	}
	ev_term = evsignal_new(ag.base, SIGTERM, on_stop, &ag);
	ev_int = evsignal_new(ag.base, SIGINT, on_stop, &ag);
	ev_hup = evsignal_new(ag.base, SIGHUP, on_hup, &ag);
	if (ev_term == NULL || ev_int == NULL || ev_hup == NULL || evsignal_add(ev_term, NULL) < 0 ||
	    evsignal_add(ev_int, NULL) < 0 || evsignal_add(ev_hup, NULL) < 0) {
		log_err("cannot install signal handlers");
		goto out_admin;
	}
	log_notice("spoe-cache-agent %s listening on %s:%u, %d threads, %zu memcached shards%s",
	    VERSION, ag.cf->agent.listen, ag.cf->agent.port, ag.nworkers, ag.cf->pool.nhosts,
	    ag.cf->pool.tls ? " (TLS)" : "");
	event_base_dispatch(ag.base);
	rc = 0;
out_admin:
	admin_free(ag.admin);
out_workers:
	evconnlistener_free(ag.lst);
	ag.lst = NULL;
	for (int i = 0; i < ag.nworkers; i++)
		worker_stop(&ag.workers[i]);
	free(ag.workers);
out:
	if (ev_term)
		event_free(ev_term);
	if (ev_int)
		event_free(ev_int);
	if (ev_hup)
		event_free(ev_hup);
	if (ag.reap_ev)
		event_free(ag.reap_ev);
	if (ag.lst)
		evconnlistener_free(ag.lst);
	if (ag.base)
		event_base_free(ag.base);
	if (ag.tls)
		SSL_CTX_free(ag.tls);
	/* Every thread is gone: every generation still held goes. */
	if (ag.gens == NULL)
		config_free(ag.cf);
	while (ag.gens != NULL) {
		struct generation *older = ag.gens->older;

		generation_free(ag.gens);
		ag.gens = older;
	}
	ag.cf = NULL;
	libevent_global_shutdown();
	return rc;
}
