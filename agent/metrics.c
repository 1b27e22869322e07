/* metrics.c - names of the counters' labels; see metrics.h. */
#include "metrics.h"

const char *const cache_status_name[CS_MAX] = { "Hit", "Miss", "Refresh", "Bypass" };
const char *const store_refusal_name[SR_MAX] = {
	"status", "content_type", "no_store", "private", "set_cookie",
	"authorization", "length", "too_big", "vary", "zero_ttl", "headers",
	"store_failed"
};
