/*
 * bevio.c - see bevio.h.
 */
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>

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
