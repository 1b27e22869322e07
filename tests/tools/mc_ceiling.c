/*
 * mc_ceiling.c - memcached's own ceiling for the pool benchmark: one
 * connection, meta gets pipelined DEPTH deep, blocking I/O, no event loop,
 * no parsing beyond counting replies. What one client thread can get out
 * of one memcached with nothing else in the way.
 *
 *   mc_ceiling SECONDS DEPTH KEYS host:port
 *
 * Keys bench-0..KEYS-1 must be stored already (pool_bench stores them).
 * Prints "lookups N seconds S rate R". Talks only to the host it is given.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	static char in[1 << 20];
	char out[64 * 64];
	struct sockaddr_in sa;
	double seconds, t0;
	unsigned long long done_n = 0;
	int depth, nkeys, fd, one = 1;
	size_t have = 0;
	char *c;

	if (argc != 5) {
		fprintf(stderr, "usage: mc_ceiling SECONDS DEPTH KEYS host:port\n");
		return 2;
	}
	seconds = atof(argv[1]);
	depth = atoi(argv[2]);
	nkeys = atoi(argv[3]);
	if (depth < 1 || depth > 64)
		depth = 64;
	c = strrchr(argv[4], ':');
	*c = '\0';
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(c + 1));
	inet_pton(AF_INET, argv[4], &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("mc_ceiling: connect");
		return 1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	t0 = now();
	while (now() - t0 < seconds) {
		size_t olen = 0;
		int replies = 0;

		for (int i = 0; i < depth; i++)
			olen += (size_t)snprintf(out + olen, sizeof(out) - olen, "mg bench-%d v\r\n",
			    rand() % nkeys);
		if (write(fd, out, olen) != (ssize_t)olen) {
			perror("mc_ceiling: write");
			return 1;
		}
		/* Count replies: each ends with "\r\n" after its value (VA) or
		 * is one line (EN). */
		while (replies < depth) {
			ssize_t n = read(fd, in + have, sizeof(in) - have);
			char *p = in, *end;

			if (n <= 0) {
				perror("mc_ceiling: read");
				return 1;
			}
			have += (size_t)n;
			end = in + have;
			for (;;) {
				char *eol = memchr(p, '\n', (size_t)(end - p));
				size_t vlen;

				if (eol == NULL)
					break;
				if (p[0] == 'V' && p[1] == 'A') {
					vlen = strtoul(p + 3, NULL, 10);
					if ((size_t)(end - eol - 1) < vlen + 2)
						break;
					eol += vlen + 2;
				}
				p = eol + 1;
				replies++;
			}
			have = (size_t)(end - p);
			memmove(in, p, have);
		}
		done_n += (unsigned long long)replies;
	}
	seconds = now() - t0;
	printf("lookups %llu seconds %.2f rate %.0f\n", done_n, seconds, (double)done_n / seconds);
	close(fd);
	return 0;
}
