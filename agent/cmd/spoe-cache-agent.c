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
 *
 * Accepting is bounded: beyond agent.max_connections open SPOP connections
 * a new one gets a DISCONNECT and is closed; when accept() fails (out of
 * file descriptors, EMFILE), the listener pauses with a growing backoff
 * instead of spinning on a socket that stays readable.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "admin.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "spop.h"
#include "version.h"
#include "worker.h"

#define ACCEPT_BACKOFF_MIN_MS	50	/* first pause after a failed accept() */
#define ACCEPT_BACKOFF_MAX_MS	2000	/* doubling up to this while it keeps failing */
#define FD_RESERVE		64	/* listeners, event loops, logs, probes */

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
	struct l1feed feed;		/* the L1's, the workers' and the admin endpoint's */
	int feed_ok;			/* feed made (l1feed_init) */
	int debug;			/* -d: debug level whatever the config says */
	atomic_int nconns;		/* SPOP sockets handed to workers, not closed yet */
	struct metrics m;		/* the acceptor's: conns_refused, accept_pauses */
	struct proc_metrics pm;		/* start time, reloads */
	struct event *accept_resume;	/* re-enables the listener after a pause */
	int backoff_ms;			/* current pause; 0 after an accept succeeds */
	char *unix_path;		/* the socket file we created, removed at exit */
	dev_t unix_dev;
	ino_t unix_ino;
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

/* Over agent.max_connections: say why (HAProxy logs a DISCONNECT's
 * status and message) and close. Best effort: the socket is new, its
 * buffer empty, so the few bytes go out at once or not at all. */
static void
refuse(evutil_socket_t fd, int max)
{
	uint8_t buf[128];
	char msg[64];
	int n;

	snprintf(msg, sizeof(msg), "too many connections (agent.max_connections %d)", max);
	n = spop_enc_agent_disconnect(buf, sizeof(buf), SPOP_ST_RES, msg);
	if (n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* gone already: nothing to tell */
	}
	shutdown(fd, SHUT_WR);
	evutil_closesocket(fd);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct agent *ag = arg;
	int open = atomic_load(&ag->nconns), max = ag->cf->agent.max_connections;

	(void)l;
	(void)salen;
	ag->backoff_ms = 0;
	if (open >= max) {
		M_INC(&ag->m, conns_refused);
		log_every(10, LOG_WARNING, "SPOP: %d connections open (agent.max_connections): "
		    "refusing new ones", open);
		refuse(fd, max);
		return;
	}
	evutil_make_socket_nonblocking(fd);
	if (sa->sa_family != AF_UNIX) {
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	atomic_fetch_add(&ag->nconns, 1);
	worker_hand(&ag->workers[ag->next++ % (unsigned)ag->nworkers], fd);
}

/*
 * accept() failed with something other than "try again": the listening
 * socket stays readable, so libevent would call us again at once, forever
 * (EMFILE: 100% CPU and a log line per try). Stop listening for a while,
 * doubling the pause while it keeps failing; the connections wait in the
 * kernel's backlog meanwhile.
 */
static void
on_accept_error(struct evconnlistener *l, void *arg)
{
	struct agent *ag = arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv;
	struct rlimit rl;

	ag->backoff_ms = ag->backoff_ms == 0 ? ACCEPT_BACKOFF_MIN_MS :
	    ag->backoff_ms * 2 > ACCEPT_BACKOFF_MAX_MS ? ACCEPT_BACKOFF_MAX_MS : ag->backoff_ms * 2;
	tv.tv_sec = ag->backoff_ms / 1000;
	tv.tv_usec = (ag->backoff_ms % 1000) * 1000;
	evconnlistener_disable(l);
	if (evtimer_add(ag->accept_resume, &tv) < 0)
		evconnlistener_enable(l);	/* no timer: better spin than never accept */
	M_INC(&ag->m, accept_pauses);
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		rl.rlim_cur = 0;
	log_every(10, LOG_WARNING, "accept: %s: new SPOP connections paused (up to %d ms at a "
	    "time; %d open, file descriptor limit %llu: keep agent.max_connections below it)",
	    evutil_socket_error_to_string(e), ACCEPT_BACKOFF_MAX_MS, atomic_load(&ag->nconns),
	    (unsigned long long)rl.rlim_cur);
}

static void
on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct agent *ag = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(ag->lst);
}

/*
 * The file descriptors a full agent uses: every SPOP and admin connection,
 * the memcached connections of every worker and of the admin endpoint (a
 * pool per thread, keepalive_pool_size per shard and a probe), and a
 * reserve. Raise the soft limit when the hard one allows; else say that
 * accepting will pause at the limit.
 */
static void
check_nofile(const struct sc_config *cf)
{
	const struct sc_agent_conf *a = &cf->agent;
	unsigned long long need = (unsigned long long)a->max_connections +
	    (unsigned long long)a->admin_max_connections +
	    (unsigned long long)(a->threads + 1) * cf->pool.nhosts *
	    (unsigned long long)(cf->pool.keepalive_pool_size + 1) + FD_RESERVE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= need)
		return;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) {
		struct rlimit up = { (rlim_t)need, rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
			log_info("file descriptor limit raised from %llu to %llu",
			    (unsigned long long)rl.rlim_cur, need);
			return;
		}
	}
	log_warn("file descriptor limit %llu (hard %llu) is below the %llu that "
	    "agent.max_connections (%d), agent.admin.max_connections and the memcached "
	    "connections need: accepting pauses when it is reached (raise LimitNOFILE)",
	    (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, need,
	    a->max_connections);
}

static void
log_warnings(const struct sc_config *cf)
{
	for (size_t i = 0; i < cf->warnings.n; i++)
		log_warn("%s", cf->warnings.v[i]);
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

static double
real_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Load ag->cf->path again: 0 when it is the new generation, -1 (and one
 * log line) when it is refused and the running one stays. */
static int
reload(struct agent *ag)
{
	char err[512];
	struct sc_config *cf;
	struct generation *g;

	cf = config_load(ag->cf->path, err, sizeof(err));
	if (cf == NULL) {
		log_err("reload refused, keeping the running configuration: %s", err);
		return -1;
	}
	if (cf->pool.tls != ag->cf->pool.tls) {
		log_err("reload refused: changing memcached.tls needs a restart");
		config_free(cf);
		return -1;
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
		return -1;
	}
	{
		struct pool *probe = pool_new_at(ag->base, &cf->pool, g->addrs, ag->tls, err,
		    sizeof(err));

		if (probe == NULL) {
			log_err("reload refused, keeping the running configuration: %s: %s",
			    cf->path, err);
			generation_free(g);
			return -1;
		}
		pool_free(probe);
	}
	/* What a running agent cannot change: said once, the rest applies. */
	{
		const struct sc_agent_conf *o = &ag->cf->agent, *n = &cf->agent;

		if (strcmp(o->listen, n->listen) != 0 || o->port != n->port)
			log_warn("reload: agent.listen/agent.port changed; needs a restart");
		if (o->unix_path != NULL && (o->socket_mode != n->socket_mode ||
		    o->socket_uid != n->socket_uid || o->socket_gid != n->socket_gid))
			log_warn("reload: agent.socket_mode/owner/group changed; needs a restart");
		if (o->threads != n->threads)
			log_warn("reload: agent.threads changed; needs a restart");
		if (strcmp(o->admin_listen, n->admin_listen) != 0 || o->admin_port != n->admin_port)
			log_warn("reload: agent.admin.listen/port changed; needs a restart");
		if (o->log_target != n->log_target)
			log_warn("reload: agent.log.target changed; needs a restart");
	}
	log_set_level(ag->debug ? LOG_DEBUG : cf->agent.log_level);
	log_warnings(cf);
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
	return 0;
}

/* SIGHUP: reload, and keep the score /metrics shows
 * (spoe_cache_config_reloads_total, spoe_cache_config_last_reload_*). */
static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct agent *ag = arg;

	(void)sig;
	(void)what;
	if (reload(ag) == 0) {
		ag->pm.reloads_ok++;
		ag->pm.last_reload_ok = 1;
		ag->pm.last_reload_ok_time = real_now();
	} else {
		ag->pm.reloads_failed++;
		ag->pm.last_reload_ok = 0;
	}
}

/*
 * agent.listen = "unix:PATH": file permissions decide who may speak SPOP.
 * A stale socket file (nobody accepts on it) is replaced; anything else at
 * PATH is an error. The socket is made with the configured mode (umask:
 * nothing runs on other threads yet), given its owner, and only then
 * listens, so no one connects through wider permissions meanwhile.
 */
static int
listen_unix(struct agent *ag, char *err, size_t errlen)
{
	const struct sc_agent_conf *a = &ag->cf->agent;
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a->unix_path);	/* length checked by config.c */
	if (lstat(a->unix_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "agent.listen: %s exists and is not a socket", a->unix_path);
			return -1;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			snprintf(err, errlen, "agent.listen: another process accepts on %s", a->unix_path);
			return -1;
		}
		if (fd >= 0)
			close(fd);
		if (unlink(a->unix_path) < 0) {
			snprintf(err, errlen, "agent.listen: cannot remove the stale socket %s: %s",
			    a->unix_path, strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "agent.listen: socket: %s", strerror(errno));
		return -1;
	}
	old = umask((mode_t)(~a->socket_mode & 0777));
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", a->unix_path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(a->unix_path, (mode_t)a->socket_mode) < 0 ||
	    ((a->socket_uid >= 0 || a->socket_gid >= 0) &&
	    lchown(a->unix_path, (uid_t)a->socket_uid, (gid_t)a->socket_gid) < 0) ||
	    lstat(a->unix_path, &st) < 0 || listen(fd, 1024) < 0) {
		snprintf(err, errlen, "agent.listen: %s: %s", a->unix_path, strerror(errno));
		close(fd);
		unlink(a->unix_path);
		return -1;
	}
	ag->unix_path = strdup(a->unix_path);
	ag->unix_dev = st.st_dev;
	ag->unix_ino = st.st_ino;
	ag->lst = evconnlistener_new(ag->base, on_accept, ag, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (ag->lst == NULL || ag->unix_path == NULL) {
		snprintf(err, errlen, "cannot listen on %s: out of memory", a->unix_path);
		if (ag->lst == NULL)
			close(fd);
		return -1;
	}
	evconnlistener_set_error_cb(ag->lst, on_accept_error);
	return 0;
}

/* Remove the socket file at exit, unless another agent replaced it. */
static void
unlink_unix(struct agent *ag)
{
	struct stat st;

	if (ag->unix_path == NULL)
		return;
	if (lstat(ag->unix_path, &st) == 0 && st.st_dev == ag->unix_dev && st.st_ino == ag->unix_ino)
		unlink(ag->unix_path);
	free(ag->unix_path);
	ag->unix_path = NULL;
}

static int
listen_on(struct agent *ag, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char addr[300];

	if (ag->cf->agent.unix_path != NULL)
		return listen_unix(ag, err, errlen);
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
	ag.pm.start_time = real_now();
	while ((opt = getopt(argc, argv, "c:tdVh")) != -1) {
		switch (opt) {
		case 'c': file = optarg; break;
		case 't': check = 1; break;
		case 'd': debug = ag.debug = 1; break;
		case 'V': printf("spoe-cache-agent %s\n", SC_VERSION); return 0;
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
	ag.pm.last_reload_ok = 1;
	ag.pm.last_reload_ok_time = real_now();
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
	log_warnings(ag.cf);
	check_nofile(ag.cf);
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
	ag.accept_resume = evtimer_new(ag.base, on_accept_resume, &ag);
	if (ag.accept_resume == NULL) {
		log_err("event_new failed");
		goto out;
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
	if (l1feed_init(&ag.feed) < 0) {
		log_err("out of memory");
		goto out;
	}
	ag.feed_ok = 1;
	for (int i = 0; i < ag.nworkers; i++) {
		/* Without the admin endpoint no HAProxy can read the feed: its
		 * L1 then keeps nothing (cacheio grants nothing). */
		ag.workers[i].cache.feed = ag.cf->agent.admin_listen[0] != '\0' ? &ag.feed : NULL;
		if (worker_start(&ag.workers[i], i, ag.gens, ag.tls, ag.reap_ev, &ag.nconns, err,
		    sizeof(err)) < 0) {
			log_err("%s", err);
			goto out_workers;
		}
	}
	ag.admin = admin_new(ag.base, ag.gens, ag.tls, ag.workers, ag.nworkers, &ag.m, &ag.pm,
	    &ag.feed, err, sizeof(err));
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
	if (ag.cf->agent.unix_path != NULL)
		log_notice("spoe-cache-agent %s listening on %s, %d threads, %zu memcached shards%s",
		    SC_VERSION, ag.cf->agent.listen, ag.nworkers, ag.cf->pool.nhosts,
		    ag.cf->pool.tls ? " (TLS)" : "");
	else
		log_notice("spoe-cache-agent %s listening on %s:%u, %d threads, %zu memcached "
		    "shards%s", SC_VERSION, ag.cf->agent.listen, ag.cf->agent.port, ag.nworkers,
		    ag.cf->pool.nhosts, ag.cf->pool.tls ? " (TLS)" : "");
	event_base_dispatch(ag.base);
	rc = 0;
out_admin:
	admin_free(ag.admin);
out_workers:
	evconnlistener_free(ag.lst);
	ag.lst = NULL;
	unlink_unix(&ag);
	for (int i = 0; i < ag.nworkers; i++)
		worker_stop(&ag.workers[i]);
	free(ag.workers);
out:
	if (ag.feed_ok)
		l1feed_free(&ag.feed);
	if (ev_term)
		event_free(ev_term);
	if (ev_int)
		event_free(ev_int);
	if (ev_hup)
		event_free(ev_hup);
	if (ag.reap_ev)
		event_free(ag.reap_ev);
	if (ag.accept_resume)
		event_free(ag.accept_resume);
	if (ag.lst)
		evconnlistener_free(ag.lst);
	unlink_unix(&ag);
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
