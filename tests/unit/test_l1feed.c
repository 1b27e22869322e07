/*
 * test_l1feed.c - the L1's grants (what HAProxy's cache was allowed to
 * keep, checked again and withdrawn when their entry changes) and the
 * feed's ring of withdrawals.
 */
#include "l1feed.h"
#include "t.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* What was emitted: the last base and until, and how many. */
struct sink {
	char base[L1_BASE_MAX + 1];
	int64_t until;
	int n;
};

static void
emit(void *arg, const char *base, size_t blen, int64_t until_ms)
{
	struct sink *s = arg;

	memcpy(s->base, base, blen);
	s->base[blen] = '\0';
	s->until = until_ms;
	s->n++;
}

/* A key: hex, 64 digits, numbered (the first 16 digits spread them). */
static const char *
key(unsigned n)
{
	static char k[8][KEY_HEX_LEN + 1];
	static int i;
	char *out = k[i++ % 8];

	snprintf(out, sizeof(k[0]), "%016x%048x", n * 2654435761u, n);
	return out;
}

/* The checks a round sent: their keys and CASes, to answer later. */
#define ALL SIZE_MAX	/* a whole round in one call */

struct sent {
	char key[64][KEY_HEX_LEN];
	uint64_t cas[64];
	int n;
	int fail;		/* check() returns -1 */
	struct sink *sink;
};

static int
check(void *arg, const struct l1_grant *gr)
{
	struct sent *s = arg;

	if (s->fail)
		return -1;
	if (s->n < 64) {
		memcpy(s->key[s->n], gr->key, KEY_HEX_LEN);
		s->cas[s->n] = gr->cas;
	}
	s->n++;
	return 0;
}

static void
emit_sent(void *arg, const char *base, size_t blen, int64_t until_ms)
{
	emit(((struct sent *)arg)->sink, base, blen, until_ms);
}

static void
t_grant_check_withdraw(void)
{
	struct l1_grants g;
	struct sink k = { .n = 0 };
	struct sent s = { .n = 0, .sink = &k };

	l1g_init(&g, 100);
	CHECK(l1g_grant(&g, key(1), 7, "h/a", 3, 5000, emit, &k) == 0);
	CHECK(l1g_grant(&g, key(2), 8, "h/b", 3, 5000, emit, &k) == 0);
	/* the same entry granted again: one grant, the longer life */
	CHECK(l1g_grant(&g, key(1), 7, "h/a", 3, 9000, emit, &k) == 0);
	CHECK(g.n == 2 && k.n == 0);
	CHECK(l1g_round(&g, 1000, ALL, check, emit_sent, &s) == 2 && s.n == 2);
	/* a round while they are out sends nothing more */
	CHECK(l1g_round(&g, 1100, ALL, check, emit_sent, &s) == 0);
	for (int i = 0; i < 2; i++) {
		if (memcmp(s.key[i], key(1), KEY_HEX_LEN) == 0)
			l1g_checked(&g, s.key[i], s.cas[i], 1, 7, emit, &k);	/* unchanged */
		else
			l1g_checked(&g, s.key[i], s.cas[i], 1, 99, emit, &k);	/* a newer store */
	}
	CHECK(k.n == 1 && strcmp(k.base, "h/b") == 0 && k.until == 5000);
	CHECK(g.n == 1);
	/* gone (purge, flush) or not verifiable (a failed check): withdrawn */
	s.n = 0;
	CHECK(l1g_round(&g, 2000, ALL, check, emit_sent, &s) == 1);
	l1g_checked(&g, s.key[0], s.cas[0], 0, 0, emit, &k);
	CHECK(k.n == 2 && strcmp(k.base, "h/a") == 0 && k.until == 9000 && g.n == 0);
	/* an answer for a grant no longer there changes nothing */
	l1g_checked(&g, key(1), 7, 0, 0, emit, &k);
	CHECK(k.n == 2);
	l1g_free(&g);
}

static void
t_regrant_and_expiry(void)
{
	struct l1_grants g;
	struct sink k = { .n = 0 };
	struct sent s = { .n = 0, .sink = &k };

	l1g_init(&g, 100);
	CHECK(l1g_grant(&g, key(1), 7, "h/a", 3, 5000, emit, &k) == 0);
	CHECK(l1g_round(&g, 1000, ALL, check, emit_sent, &s) == 1);
	/* granted again with another CAS while the check is out: the older
	 * copies go at once, and the check's answer is for the old one */
	CHECK(l1g_grant(&g, key(1), 8, "h/a", 3, 6000, emit, &k) == 0);
	CHECK(k.n == 1 && k.until == 5000);
	l1g_checked(&g, s.key[0], s.cas[0], 0, 0, emit, &k);
	CHECK(k.n == 1 && g.n == 1);
	/* a grant whose copies have all expired is forgotten, not withdrawn */
	s.n = 0;
	CHECK(l1g_round(&g, 6000, ALL, check, emit_sent, &s) == 0 && g.n == 0 && k.n == 1);
	/* a check that cannot be sent withdraws */
	CHECK(l1g_grant(&g, key(3), 1, "h/c", 3, 9000, emit, &k) == 0);
	s.fail = 1;
	CHECK(l1g_round(&g, 7000, ALL, check, emit_sent, &s) == 0 && g.n == 0 && k.n == 2);
	CHECK(strcmp(k.base, "h/c") == 0);
	l1g_free(&g);
}

static void
t_limits(void)
{
	struct l1_grants g;
	struct sink k = { .n = 0 };
	char big[L1_BASE_MAX + 1];

	memset(big, 'x', sizeof(big));
	l1g_init(&g, 3);
	CHECK(l1g_grant(&g, key(1), 1, "", 0, 100, emit, &k) == -1);
	CHECK(l1g_grant(&g, key(1), 1, big, L1_BASE_MAX + 1, 100, emit, &k) == -1);
	/* a control byte could forge a feed line: refused */
	CHECK(l1g_grant(&g, key(1), 1, "h/a\n1 60000 h/b", 15, 100, emit, &k) == -1);
	CHECK(l1g_grant(&g, key(1), 1, "h/a\r", 4, 100, emit, &k) == -1);
	CHECK(l1g_grant(&g, key(1), 1, "h/\x7f", 3, 100, emit, &k) == -1);
	CHECK(l1g_grant(&g, key(1), 1, big, L1_BASE_MAX, 100, emit, &k) == 0);
	CHECK(l1g_grant(&g, key(2), 1, "b", 1, 100, emit, &k) == 0);
	CHECK(l1g_grant(&g, key(3), 1, "c", 1, 100, emit, &k) == 0);
	/* full: refused, so that nothing untracked is kept */
	CHECK(l1g_grant(&g, key(4), 1, "d", 1, 100, emit, &k) == -1);
	CHECK(g.n == 3 && k.n == 0);
	l1g_free(&g);
}

/* A round spread over calls (the agent walks 1/20 of the table every
 * 50 ms): every live grant is checked once per walk of the table, a grant
 * made meanwhile within the next walk, and a grow restarts the walk. */
static void
t_round_in_slices(void)
{
	struct l1_grants g;
	struct sink k = { .n = 0 };
	struct sent s = { .n = 0, .sink = &k };
	size_t sent = 0, calls = 0;

	l1g_init(&g, 1000);
	for (unsigned i = 0; i < 100; i++)
		CHECK(l1g_grant(&g, key(i), i, "h/x", 3, 100000, emit, &k) == 0);
	CHECK(g.cap == 256);
	for (int c = 0; c < 4; c++) {
		size_t n = l1g_round(&g, 1000, g.cap / 4, check, emit_sent, &s);

		CHECK(n < 100);	/* a part, not all of them */
		sent += n;
	}
	CHECK(sent == 100 && g.cursor == 0);
	for (unsigned i = 0; i < 100; i++)
		l1g_checked(&g, key(i), i, 1, i, emit, &k);
	/* the table grows mid-walk: the walk starts again, nothing missed */
	s.n = 0;
	sent = l1g_round(&g, 1000, 8, check, emit_sent, &s);
	CHECK(g.cursor == 8);
	for (unsigned i = 100; i < 200; i++)
		CHECK(l1g_grant(&g, key(i), i, "h/x", 3, 100000, emit, &k) == 0);
	CHECK(g.cap == 512 && g.cursor == 0);
	for (calls = 0; calls * 50 < g.cap; calls++)
		sent += l1g_round(&g, 1000, 50, check, emit_sent, &s);
	CHECK(sent == 200 && k.n == 0);
	/* all out: another walk sends nothing */
	CHECK(l1g_round(&g, 1000, ALL, check, emit_sent, &s) == 0);
	l1g_free(&g);
}

/* Many grants, dropped in every order: the table finds each one left. */
static void
t_table_churn(void)
{
	struct l1_grants g;
	struct sink k = { .n = 0 };
	struct sent s = { .n = 0, .sink = &k };
	int ok = 1;

	l1g_init(&g, 5000);
	for (unsigned i = 0; i < 3000; i++)
		ok &= l1g_grant(&g, key(i), i, "h/x", 3, 1000 + (int64_t)(i % 7) * 1000, emit, &k) == 0;
	CHECK(ok && g.n == 3000);
	/* expire those living until 1000..3000: 3 of 7 */
	{
		size_t alive = 0;

		for (unsigned i = 0; i < 3000; i++)
			alive += i % 7 >= 3;
		CHECK(l1g_round(&g, 3000, ALL, check, emit_sent, &s) == alive && g.n == alive);
	}
	/* granted again, the same entries: those alive are found (nothing
	 * withdrawn), the others tracked anew */
	for (unsigned i = 0; i < 3000; i++)
		ok &= l1g_grant(&g, key(i), i, "h/x", 3, 100000, emit, &k) == 0;
	CHECK(ok && g.n == 3000 && k.n == 0);
	l1g_free(&g);
}

static void
t_ring(void)
{
	struct l1_ring r;
	const struct l1_event *ev;

	CHECK(l1r_init(&r, 4) == 0);
	CHECK(r.seq == 0 && l1r_oldest(&r) == 1 && l1r_get(&r, 1) == NULL);
	CHECK(l1r_push(&r, "h/a", 3, 10) == 1);
	CHECK(l1r_push(&r, "h/b", 3, 20) == 2);
	ev = l1r_get(&r, 2);
	CHECK(ev != NULL && ev->blen == 3 && memcmp(ev->base, "h/b", 3) == 0 && ev->until_ms == 20);
	CHECK(l1r_oldest(&r) == 1);
	for (int i = 0; i < 4; i++)
		l1r_push(&r, "h/c", 3, 30);
	CHECK(r.seq == 6 && l1r_oldest(&r) == 3 && l1r_get(&r, 2) == NULL && l1r_get(&r, 3) != NULL);
	CHECK(l1r_get(&r, 7) == NULL && l1r_get(&r, 0) == NULL);
	/* lost: nothing up to the lost one is held, later ones are */
	l1r_lose(&r);
	CHECK(r.seq == 7 && l1r_oldest(&r) == 8 && l1r_get(&r, 6) == NULL);
	CHECK(l1r_push(&r, "h/d", 3, 40) == 8 && l1r_oldest(&r) == 8);
	l1r_free(&r);
}

int
main(void)
{
	RUN(t_grant_check_withdraw);
	RUN(t_regrant_and_expiry);
	RUN(t_limits);
	RUN(t_round_in_slices);
	RUN(t_table_churn);
	RUN(t_ring);
	return T_EXIT();
}
