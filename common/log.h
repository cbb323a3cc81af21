/*
 * common/log.h: the event log (stderr, one line per event).
 *
 * Thread-safe: each line is formatted into a local buffer and written with a
 * single write(2), so lines from workers and the control thread never mix.
 */
#ifndef MR_COMMON_LOG_H
#define MR_COMMON_LOG_H

enum mr_log_level { MR_LOG_DEBUG, MR_LOG_INFO, MR_LOG_WARN, MR_LOG_ERROR };

/* Lines below this level are dropped (default MR_LOG_INFO). */
void mr_log_set_level(enum mr_log_level level);

/* Writes "meridian: LEVEL: message\n" to stderr. */
void mr_log(enum mr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
