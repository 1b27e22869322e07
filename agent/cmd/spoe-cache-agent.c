/*
 * agent.c - spoe-cache-agent: main(). Loads the config, starts the worker
 * threads, accepts SPOP connections on the main thread and hands them to
 * the workers, serves the admin endpoint, and handles signals (TERM/INT
 * stop, HUP reloads). It does no request work itself.
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
	struct sc_config *cf;
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

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct agent *ag = arg;
	char err[512];
	struct sc_config *cf;

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
	 * host list; a name that does not resolve must refuse the reload here,
	 * whole, rather than leave each of them on the old pool with the new
	 * policies half applied. */
	{
		struct pool *probe = pool_new(ag->base, &cf->pool, ag->tls, err, sizeof(err));

		if (probe == NULL) {
			log_err("reload refused, keeping the running configuration: %s: %s",
			    cf->path, err);
			config_free(cf);
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
	/* Old configs stay allocated: requests in flight may still read them,
	 * and a reload is rare. Freed at exit. */
	cf->prev = ag->cf;
	ag->cf = cf;
	for (int i = 0; i < ag->nworkers; i++)
		worker_reload(&ag->workers[i], cf);
	admin_reload(ag->admin, cf);
	log_notice("configuration reloaded from %s", cf->path);
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
		printf("%s: configuration OK (%zu memcached hosts, %zu policies)\n", file,
		    ag.cf->pool.nhosts, ag.cf->npolicies);
		config_free(ag.cf);
		return 0;
	}
	log_init("spoe-cache-agent", debug ? LOG_DEBUG : ag.cf->agent.log_level,
	    ag.cf->agent.log_target == SC_LOG_SYSLOG);
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
	ag.nworkers = ag.cf->agent.threads;
	ag.workers = calloc((size_t)ag.nworkers, sizeof(struct worker));
	if (ag.workers == NULL) {
		log_err("out of memory");
		goto out;
	}
	for (int i = 0; i < ag.nworkers; i++) {
		if (worker_start(&ag.workers[i], i, ag.cf, ag.tls, err, sizeof(err)) < 0) {
			log_err("%s", err);
			goto out_workers;
		}
	}
	ag.admin = admin_new(ag.base, ag.cf, ag.tls, ag.workers, ag.nworkers, err, sizeof(err));
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
	if (ag.lst)
		evconnlistener_free(ag.lst);
	if (ag.base)
		event_base_free(ag.base);
	if (ag.tls)
		SSL_CTX_free(ag.tls);
	while (ag.cf != NULL) {
		struct sc_config *prev = ag.cf->prev;

		config_free(ag.cf);
		ag.cf = prev;
	}
	libevent_global_shutdown();
	return rc;
}
