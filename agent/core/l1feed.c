/*
 * l1feed.c - the L1's grants and invalidation feed; see l1feed.h.
 */
#include <stdlib.h>
#include <string.h>

#include "l1feed.h"

#define L1G_MIN_CAP	256

/* The key is hex SHA-256: its first 16 digits are as good as any hash. */
static size_t
slot_of(const struct l1_grants *g, const char *key)
{
	uint64_t h = 0;

	for (int i = 0; i < 16; i++) {
		char c = key[i];

		h = h << 4 | (uint64_t)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
	}
	return (size_t)(h ^ h >> 29) & (g->cap - 1);
}

void
l1g_init(struct l1_grants *g, size_t max)
{
	memset(g, 0, sizeof(*g));
	g->max = max;
}

void
l1g_free(struct l1_grants *g)
{
	for (size_t i = 0; i < g->cap; i++)
		if (g->tab[i].used)
			free(g->tab[i].base);
	free(g->tab);
	g->tab = NULL;
	g->cap = g->n = 0;
}

static struct l1_grant *
find(const struct l1_grants *g, const char *key)
{
	if (g->cap == 0)
		return NULL;
	for (size_t i = slot_of(g, key);; i = (i + 1) & (g->cap - 1)) {
		struct l1_grant *e = &g->tab[i];

		if (!e->used)
			return NULL;
		if (memcmp(e->key, key, KEY_HEX_LEN) == 0)
			return e;
	}
}

/* Remove e, shifting back the entries of its probe run (no tombstones). */
static void
drop(struct l1_grants *g, struct l1_grant *e)
{
	size_t i = (size_t)(e - g->tab), j = i;

	free(e->base);
	g->n--;
	for (;;) {
		size_t k;

		g->tab[i].used = 0;
		for (;;) {
			j = (j + 1) & (g->cap - 1);
			if (!g->tab[j].used)
				return;
			k = slot_of(g, g->tab[j].key);
			/* j's entry may move to i when its home k is not in (i, j] */
			if (i <= j ? (k <= i || k > j) : (k <= i && k > j))
				break;
		}
		g->tab[i] = g->tab[j];
		i = j;
	}
}

static int
grow(struct l1_grants *g)
{
	size_t cap = g->cap ? g->cap * 2 : L1G_MIN_CAP;
	struct l1_grant *old = g->tab, *tab = calloc(cap, sizeof(*tab));
	size_t ocap = g->cap;

	if (tab == NULL)
		return -1;
	g->tab = tab;
	g->cap = cap;
	g->cursor = 0;	/* the walk in progress starts again on the new table */
	for (size_t i = 0; i < ocap; i++) {
		size_t j;

		if (!old[i].used)
			continue;
		for (j = slot_of(g, old[i].key); tab[j].used; j = (j + 1) & (cap - 1))
			;
		tab[j] = old[i];
	}
	free(old);
	return 0;
}

int
l1g_grant(struct l1_grants *g, const char *key, uint64_t cas, const char *base,
    size_t blen, int64_t until_ms, l1_emit_fn emit, void *arg)
{
	struct l1_grant *e = find(g, key);
	char *copy;
	size_t i;

	if (blen == 0 || blen > L1_BASE_MAX)
		return -1;
	/* a base is one field of a feed line: a CR or LF in it (a Host no
	 * HAProxy should pass, but hostile until checked) would forge lines */
	for (i = 0; i < blen; i++)
		if ((unsigned char)base[i] < 0x20 || base[i] == 0x7f)
			return -1;
	if (e != NULL && e->cas == cas && e->blen == blen && memcmp(e->base, base, blen) == 0) {
		if (until_ms > e->until_ms)
			e->until_ms = until_ms;
		return 0;
	}
	if (e != NULL) {
		/* another entry now, or another base for the same key (a
		 * policy keying on less than Host + path): the older copies go */
		emit(arg, e->base, e->blen, e->until_ms);
		drop(g, e);
	}
	if (g->n >= g->max)
		return -1;
	if ((g->n + 1) * 2 > g->cap && grow(g) < 0)
		return -1;
	if ((copy = malloc(blen)) == NULL)
		return -1;
	memcpy(copy, base, blen);
	for (i = slot_of(g, key); g->tab[i].used; i = (i + 1) & (g->cap - 1))
		;
	e = &g->tab[i];
	memcpy(e->key, key, KEY_HEX_LEN);
	e->cas = cas;
	e->until_ms = until_ms;
	e->base = copy;
	e->blen = (uint16_t)blen;
	e->used = 1;
	e->checking = 0;
	g->n++;
	return 0;
}

size_t
l1g_round(struct l1_grants *g, int64_t now_ms, size_t slots,
    int (*check)(void *arg, const struct l1_grant *gr), l1_emit_fn emit, void *arg)
{
	size_t sent = 0;

	if (slots > g->cap)
		slots = g->cap;
	while (slots > 0) {
		struct l1_grant *e = &g->tab[g->cursor];

		if (e->used && !e->checking && e->until_ms <= now_ms) {
			drop(g, e);	/* another entry may have moved into it */
			continue;
		}
		if (e->used && !e->checking) {
			if (check(arg, e) < 0) {
				emit(arg, e->base, e->blen, e->until_ms);
				drop(g, e);
				continue;
			}
			e->checking = 1;
			sent++;
		}
		g->cursor = (g->cursor + 1) & (g->cap - 1);
		slots--;
	}
	return sent;
}

void
l1g_checked(struct l1_grants *g, const char *key, uint64_t cas, int found,
    uint64_t cas_now, l1_emit_fn emit, void *arg)
{
	struct l1_grant *e = find(g, key);

	if (e == NULL || e->cas != cas)
		return;
	e->checking = 0;
	if (found && cas_now == cas)
		return;
	emit(arg, e->base, e->blen, e->until_ms);
	drop(g, e);
}

/* ---- the feed ---- */

int
l1r_init(struct l1_ring *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->ev = calloc(cap, sizeof(*r->ev));
	if (r->ev == NULL)
		return -1;
	r->cap = cap;
	return 0;
}

void
l1r_free(struct l1_ring *r)
{
	for (size_t i = 0; i < r->cap; i++)
		free(r->ev[i].base);
	free(r->ev);
	r->ev = NULL;
	r->cap = 0;
}

uint64_t
l1r_push(struct l1_ring *r, const char *base, size_t blen, int64_t until_ms)
{
	struct l1_event *ev = &r->ev[(r->seq + 1) % r->cap];
	char *copy = malloc(blen ? blen : 1);

	if (copy == NULL) {
		l1r_lose(r);
		return 0;
	}
	memcpy(copy, base, blen);
	free(ev->base);
	ev->seq = ++r->seq;
	ev->until_ms = until_ms;
	ev->base = copy;
	ev->blen = blen;
	return ev->seq;
}

void
l1r_lose(struct l1_ring *r)
{
	for (size_t i = 0; i < r->cap; i++) {
		free(r->ev[i].base);
		memset(&r->ev[i], 0, sizeof(r->ev[i]));
	}
	r->seq++;	/* the event lost: no reader has it, none can get it */
}

uint64_t
l1r_oldest(const struct l1_ring *r)
{
	uint64_t first = r->seq >= r->cap ? r->seq - r->cap + 1 : 1;

	/* after l1r_lose() the slots from first on may be empty */
	while (first <= r->seq && r->ev[first % r->cap].seq != first)
		first++;
	return first;
}

const struct l1_event *
l1r_get(const struct l1_ring *r, uint64_t seq)
{
	const struct l1_event *ev;

	if (seq == 0 || seq > r->seq)
		return NULL;
	ev = &r->ev[seq % r->cap];
	return ev->seq == seq ? ev : NULL;
}
