/*
 * inspect.h - human and JSON views of a stored entry, shared by the admin
 * endpoint (GET /cache/KEY) and spoe-cache-ctl get, which check an entry
 * as a lookup does before they show it.
 */
#ifndef SC_INSPECT_H
#define SC_INSPECT_H

#include <stdint.h>

#include <event2/buffer.h>

#include "config.h"
#include "entry.h"

/* val as the agent takes it before a replay (bound to key, signed with
 * cf's entry secret when there is one, replayable, with Set-Cookie when a
 * policy of cf stores it): 0 and *e, or the ENTRY_ERR_* it is refused for. */
int inspect_decode(const struct sc_config *cf, const char *key, const uint8_t *val, size_t vlen,
    struct entry *e);

/* JSON string literal of (s, len), any bytes (\u escapes for control bytes,
 * invalid UTF-8 bytes as \u00XX). */
void inspect_json_str(struct evbuffer *out, const char *s, size_t len);
/* {"found":true,"key":..,"status":..,"age":..,"lifetime":..,"fresh":..,"stored_at":..,
 *  "headers":[[name,value],..],"body_size":..} */
void inspect_entry_json(struct evbuffer *out, const char *key, const struct entry *e, int64_t now);
/* The same as "name: value" lines for a terminal. */
void inspect_entry_text(struct evbuffer *out, const char *key, const struct entry *e, int64_t now);

#endif
