/*
 * bevio.h - two fixes to libevent 2.1's socket bufferevents on the hot path.
 *
 * libevent 2.1 reads at most 4 KiB per read event (EVBUFFER_MAX_READ) and
 * writes at most 16 KiB per write event, so a 16 KiB memcached value costs
 * four trips through epoll, and an ACK carrying it two. bevio_tune() lifts
 * the write limit; bevio_read_more(), called at the top of a read callback,
 * reads what the socket holds now straight into the input buffer.
 *
 * A socket bufferevent also writes only on its write event: queueing
 * output adds EPOLLOUT (epoll_ctl), the next loop pass writes, and an
 * empty buffer deletes it again (epoll_ctl): two syscalls and one more
 * pass for every batch of ACKs or memcached commands. A bevio_writer
 * instead writes the output itself at the end of the loop pass that queued
 * it (an event made active by the first byte queued, run after the
 * callbacks of that pass), all of it in one writev, and leaves the write
 * event off while nothing waits. Only what the socket does not take (a
 * full socket buffer, an error) goes back to the bufferevent's own write
 * event, which then reports it as usual; once that has drained the
 * buffer, bevio_writer_written() turns the write event off again.
 * Plain sockets only: a TLS bufferevent reads and writes through OpenSSL.
 */
#ifndef SC_BEVIO_H
#define SC_BEVIO_H

#include <stddef.h>

#include <event2/bufferevent.h>

/* Largest single write a tuned bufferevent makes. */
#define BEVIO_MAX_WRITE (1u << 20)

void bevio_tune(struct bufferevent *bev);

/* Reads until the socket is drained, it fails, or max bytes were read;
 * EOF and errors are left for the bufferevent's own next read to report. */
void bevio_read_more(struct bufferevent *bev, size_t max);

struct bevio_writer {
	struct bufferevent *bev;
	struct event *ev;		/* the end-of-pass write, made active */
	int on;				/* bevio_writer_start() was called */
	void (*drained)(void *arg);	/* all queued output written */
	void *arg;
};

/* 0, or -1 (out of memory: w is then unused and the bufferevent writes as
 * before). The write event stays as it is until bevio_writer_start(). */
int bevio_writer_init(struct bevio_writer *w, struct event_base *base, struct bufferevent *bev,
    void (*drained)(void *arg), void *arg);

/* From now on (the socket connected), the owner writes. */
void bevio_writer_start(struct bevio_writer *w);

/* From the bufferevent's write callback: its write event is done once the
 * buffer is empty. */
void bevio_writer_written(struct bevio_writer *w);

/* Before the bufferevent is freed. */
void bevio_writer_free(struct bevio_writer *w);

#endif
