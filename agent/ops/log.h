/*
 * log.h - leveled logging to stderr or syslog, safe from any thread.
 * Per-request events log at LOG_INFO or LOG_DEBUG only, so the default level
 * (notice) prints one line per error, never one per request.
 */
#ifndef SC_LOG_H
#define SC_LOG_H

#include <stdatomic.h>
#include <syslog.h>

void log_init(const char *ident, int level, int use_syslog);
void log_set_level(int level);
int log_level(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Level from a name ("err", "warning", "notice", "info", "debug"); -1 if unknown. */
int log_level_parse(const char *name);

/* 1 when a line may be written now: at most one per sec seconds per slot.
 * Any thread; the slot starts at 0. */
int log_ratelimit(atomic_llong *slot, int sec);

/* Events caused by requests or peers: each call site (each cause) has its
 * own slot, so one noisy cause never hides another. */
#define log_every(sec, level, ...) do { \
	static atomic_llong log_slot_; \
	if (log_level() >= (level) && log_ratelimit(&log_slot_, (sec))) \
		log_msg((level), __VA_ARGS__); \
} while (0)

#define log_err(...)	log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)	log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)	do { if (log_level() >= LOG_INFO) log_msg(LOG_INFO, __VA_ARGS__); } while (0)
#define log_debug(...)	do { if (log_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
