/* inspect.c - see inspect.h. What it prints came from memcached: it is
 * decoded and checked as a lookup does first, and no stored time is used
 * in arithmetic that could overflow. */
#include <inttypes.h>
#include <string.h>

#include "inspect.h"

void
inspect_json_str(struct evbuffer *out, const char *s, size_t len)
{
	evbuffer_add(out, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			evbuffer_add_printf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			evbuffer_add_printf(out, "\\u%04x", c);
		else
			evbuffer_add(out, &s[i], 1);
	}
	evbuffer_add(out, "\"", 1);
}

int
inspect_decode(const struct sc_config *cf, const char *key, const uint8_t *val, size_t vlen,
    struct entry *e)
{
	int rc = entry_decode(val, vlen, key, strlen(key), cf->pool.entry_auth, e);
	unsigned allow = 0;

	/* The key does not say which policy stored it: an entry with
	 * Set-Cookie is shown when some policy stores them (set_cookie =
	 * "store"); a lookup under any other policy still refuses it. */
	for (size_t i = 0; i < cf->npolicies; i++)
		if (cf->policies[i].set_cookie == SC_COOKIE_STORE)
			allow |= ENTRY_ALLOW_SET_COOKIE;
	return rc < 0 ? rc : entry_check_replay_allow(e, (size_t)cf->agent.max_headers, allow);
}


void
inspect_entry_json(struct evbuffer *out, const char *key, const struct entry *e, int64_t now)
{
	const char *h = e->hdrs, *end = e->hdrs + e->hlen;
	int64_t age = entry_age(e, now);	/* saturates: every field may be forged */
	int first = 1;

	evbuffer_add_printf(out, "{\"found\":true,\"key\":");
	inspect_json_str(out, key, strlen(key));
	evbuffer_add_printf(out, ",\"status\":%u,\"stored_at\":%" PRId64 ",\"age\":%" PRId64
	    ",\"lifetime\":%" PRId64 ",\"fresh\":%s,\"flags\":%u,\"body_size\":%zu,\"headers\":[",
	    e->status, e->stored_at, age, e->lifetime, age < e->lifetime ? "true" : "false",
	    e->flags, e->blen);
	while (h < end) {
		const char *eol = memchr(h, '\r', (size_t)(end - h));
		const char *colon = eol ? memchr(h, ':', (size_t)(eol - h)) : NULL;

		if (eol == NULL || colon == NULL)
			break;
		evbuffer_add_printf(out, "%s[", first ? "" : ",");
		inspect_json_str(out, h, (size_t)(colon - h));
		evbuffer_add(out, ",", 1);
		colon += colon + 1 < eol && colon[1] == ' ' ? 2 : 1;
		inspect_json_str(out, colon, (size_t)(eol - colon));
		evbuffer_add(out, "]", 1);
		first = 0;
		h = eol + 2;
	}
	evbuffer_add_printf(out, "]}\n");
}

void
inspect_entry_text(struct evbuffer *out, const char *key, const struct entry *e, int64_t now)
{
	int64_t age = entry_age(e, now);	/* saturates: every field may be forged */

	evbuffer_add_printf(out, "key: %s\nstatus: %u\nage: %" PRId64 "\nlifetime: %" PRId64
	    "\nfresh: %s\nbody_size: %zu\nheaders:\n", key, e->status, age, e->lifetime,
	    age < e->lifetime ? "yes" : "no", e->blen);
	{
		const char *h = e->hdrs, *end = e->hdrs + e->hlen;

		while (h < end) {
			const char *eol = memchr(h, '\r', (size_t)(end - h));

			if (eol == NULL)
				break;
			evbuffer_add_printf(out, "  %.*s\n", (int)(eol - h), h);
			h = eol + 2;
		}
	}
}
