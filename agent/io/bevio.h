/*
 * bevio.h - two fixes to libevent 2.1's socket bufferevents on the hot path.
 *
 * libevent 2.1 reads at most 4 KiB per read event (EVBUFFER_MAX_READ) and
 * writes at most 16 KiB per write event, so a 16 KiB memcached value costs
 * four trips through epoll, and an ACK carrying it two. bevio_tune() lifts
 * the write limit; bevio_read_more(), called at the top of a read callback,
 * reads what the socket holds now straight into the input buffer.
 * Plain sockets only: a TLS bufferevent reads through OpenSSL.
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

#endif
