/* health/passive.c: see passive.h. */
#include "health/passive.h"

#include <time.h>

#include "common/log.h"

const char *mr_passive_reason_name(enum mr_passive_reason why)
{
    switch (why) {
    case MR_PASSIVE_CONNECT: return "connect_failure";
    case MR_PASSIVE_RESET: return "reset";
    case MR_PASSIVE_TIMEOUT: return "timeout";
    case MR_PASSIVE_BAD_RESPONSE: return "bad_response";
    case MR_PASSIVE_NONE: break;
    }
    return "";
}

int64_t mr_passive_now_ms(void)
{
    struct timespec ts;

    /* Coarse: a few ms of resolution is plenty, and it is the cheapest
     * clock for a read on every pick that finds an ejection. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mr_passive_backoff_ms(int ejections, int base_ms, int max_ms)
{
    int64_t ms = base_ms;

    for (int i = 0; i < ejections && ms < max_ms; i++)
        ms *= 2;
    return ms < max_ms ? ms : max_ms;
}

size_t mr_passive_max_ejected(const struct mr_snapshot *snap, const struct mr_cluster *c)
{
    return c->n_endpoints * (size_t)snap->health.passive.max_ejected_percent / 100;
}

bool mr_passive_ejected(const struct mr_endpoint *e, int64_t now)
{
    return e->health != NULL &&
           atomic_load_explicit(&e->health->ejected_until, memory_order_relaxed) > now;
}

void mr_passive_success(const struct mr_endpoint *e)
{
    struct mr_health_slot *s = e->health;

    /* Read first: a store on every response would bounce the cache line
     * between workers. */
    if (s != NULL && atomic_load_explicit(&s->passive_failures, memory_order_relaxed) != 0)
        atomic_store_explicit(&s->passive_failures, 0, memory_order_relaxed);
}

static size_t count_ejected(const struct mr_cluster *c, int64_t now)
{
    size_t n = 0;

    for (size_t i = 0; i < c->n_endpoints; i++)
        n += mr_passive_ejected(&c->endpoints[i], now);
    return n;
}

bool mr_passive_failure(const struct mr_snapshot *snap, const struct mr_endpoint *e,
                        enum mr_passive_reason why, int64_t now)
{
    struct mr_health_slot *s = e->health;
    int threshold = snap->health.passive.consecutive_failures;
    size_t allowed = mr_passive_max_ejected(snap, e->cluster);
    int64_t old_until, until, ms;
    int count;

    /* Requests that were in flight when it went out say nothing new. */
    if (s == NULL || threshold == 0 || mr_passive_ejected(e, now))
        return false;
    if (atomic_fetch_add_explicit(&s->passive_failures, 1, memory_order_relaxed) + 1 < threshold)
        return false;
    old_until = atomic_load_explicit(&s->ejected_until, memory_order_relaxed);
    if (old_until > now || count_ejected(e->cluster, now) >= allowed)
        return false;
    count = atomic_load_explicit(&s->ejections, memory_order_relaxed);
    if (old_until != 0 && now - old_until >= snap->health.passive.max_ms)
        count = 0;
    ms = mr_passive_backoff_ms(count, snap->health.passive.base_ms, snap->health.passive.max_ms);
    until = now + ms;
    /* One worker wins the ejection; the cap is checked again once it is
     * visible, so that two simultaneous ejections cannot both stay. */
    if (!atomic_compare_exchange_strong(&s->ejected_until, &old_until, until))
        return false;
    if (count_ejected(e->cluster, now) > allowed) {
        atomic_store(&s->ejected_until, old_until);
        return false;
    }
    atomic_store_explicit(&s->ejections, count + 1, memory_order_relaxed);
    atomic_store_explicit(&s->eject_reason, (int)why, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->ejections_total, 1, memory_order_relaxed);
    atomic_store_explicit(&s->passive_failures, 0, memory_order_relaxed);
    mr_log(MR_LOG_WARN, "health: %s %s ejected for %lld ms: %d failures in a row, last %s",
           e->cluster->name, e->address, (long long)ms, threshold, mr_passive_reason_name(why));
    return true;
}

void mr_passive_check_passed(struct mr_health_slot *slot, int64_t now)
{
    int64_t until = atomic_load_explicit(&slot->ejected_until, memory_order_relaxed);

    if (until > now && atomic_compare_exchange_strong(&slot->ejected_until, &until, now))
        mr_log(MR_LOG_INFO, "health: %s %s back in picks: health check passed", slot->cluster,
               slot->address);
}
