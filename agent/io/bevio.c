/*
 * bevio.c - see bevio.h.
 */
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "bevio.h"

#define CHUNK 65536
#define LIBEVENT_READ_CAP 4096	/* EVBUFFER_MAX_READ in libevent 2.1 */

void
bevio_tune(struct bufferevent *bev)
{
	(void)bufferevent_set_max_single_write(bev, BEVIO_MAX_WRITE);
}

void
bevio_read_more(struct bufferevent *bev, size_t max)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);
	size_t got = 0;

	/* libevent reads min(what the socket holds, 4 KiB): with less than
	 * that buffered, its read drained the socket and another would only
	 * cost a syscall to learn EAGAIN. */
	if (fd < 0 || evbuffer_get_length(in) < LIBEVENT_READ_CAP)
		return;
	/* A socket bufferevent freezes the end of its input buffer between
	 * its own reads; open it for ours, as its read callback does. */
	evbuffer_unfreeze(in, 0);
	while (got < max) {
		struct evbuffer_iovec v[2];
		struct iovec iov[2];
		size_t want = 0, left;
		ssize_t r;
		int i, n = evbuffer_reserve_space(in, CHUNK, v, 2);

		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
			want += v[i].iov_len;
		}
		r = readv(fd, iov, n);
		if (r <= 0)
			break;	/* drained (EAGAIN), EOF or an error: the bufferevent sees it */
		left = (size_t)r;
		for (i = 0; i < n && left > 0; i++) {
			if (v[i].iov_len > left)
				v[i].iov_len = left;
			left -= v[i].iov_len;
		}
		if (evbuffer_commit_space(in, v, i) < 0)
			break;
		got += (size_t)r;
		if ((size_t)r < want)
			break;	/* short read: nothing more for now */
	}
	evbuffer_freeze(in, 0);
}

static int
write_pending(const struct bevio_writer *w)
{
	return (bufferevent_get_enabled(w->bev) & EV_WRITE) != 0;
}

static void
writer_flush(evutil_socket_t fd, short what, void *arg)
{
	struct bevio_writer *w = arg;
	struct evbuffer *out = bufferevent_get_output(w->bev);

	(void)fd;
	(void)what;
	if (!w->on || write_pending(w) || evbuffer_get_length(out) == 0)
		return;
	/* the start of a socket bufferevent's output is frozen but for its
	 * own write callback, which does the same */
	evbuffer_unfreeze(out, 1);
	(void)evbuffer_write_atmost(out, bufferevent_getfd(w->bev), BEVIO_MAX_WRITE);
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) > 0) {
		/* the rest, or the error, is the bufferevent's (its write
		 * event, timeout and event callback) */
		bufferevent_enable(w->bev, EV_WRITE);
		return;
	}
	if (w->drained != NULL)
		w->drained(w->arg);	/* may free w */
}

static void
writer_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct bevio_writer *w = arg;

	(void)buf;
	if (info->n_added > 0 && w->on && !write_pending(w))
		event_active(w->ev, EV_WRITE, 1);
}

int
bevio_writer_init(struct bevio_writer *w, struct event_base *base, struct bufferevent *bev,
    void (*drained)(void *arg), void *arg)
{
	w->bev = bev;
	w->on = 0;
	w->drained = drained;
	w->arg = arg;
	w->ev = event_new(base, -1, 0, writer_flush, w);
	if (w->ev == NULL)
		return -1;
	if (evbuffer_add_cb(bufferevent_get_output(bev), writer_added, w) == NULL) {
		event_free(w->ev);
		w->ev = NULL;
		return -1;
	}
	return 0;
}

void
bevio_writer_start(struct bevio_writer *w)
{
	if (w->ev == NULL)
		return;
	w->on = 1;
	bevio_writer_written(w);
}

void
bevio_writer_written(struct bevio_writer *w)
{
	if (w->on && evbuffer_get_length(bufferevent_get_output(w->bev)) == 0)
		bufferevent_disable(w->bev, EV_WRITE);
}

void
bevio_writer_free(struct bevio_writer *w)
{
	if (w->ev == NULL)
		return;
	evbuffer_remove_cb(bufferevent_get_output(w->bev), writer_added, w);
	event_free(w->ev);
	w->ev = NULL;
	w->on = 0;
}
