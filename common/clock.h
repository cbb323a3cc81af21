/*
 * common/clock.h: wall-clock time for what people read (the admin API's
 * timestamps, the change history). Durations and timeouts use the
 * monotonic clock instead (health/passive.h's mr_passive_now_ms, libevent).
 */
#ifndef MR_COMMON_CLOCK_H
#define MR_COMMON_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the epoch (CLOCK_REALTIME). */
int64_t mr_wall_ms(void);

/* Writes ms since the epoch as "2026-12-04T18:11:52Z" (UTC, whole seconds)
 * into buf (21 bytes suffice). */
void mr_iso_time(int64_t ms, char *buf, size_t len);

#endif
