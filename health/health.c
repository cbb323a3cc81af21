/* health/health.c: see health.h. */
#include "health/health.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "health/passive.h"

#define SLOT_MAGIC 0x4ea17b10U

/* Slots by key, open addressing with linear probing. Rebuilt whole at each
 * attach (the set of slots is exactly the newest snapshot's), so it never
 * deletes and needs no tombstones. */
struct slot_table {
    struct mr_health_slot **items; /* NULL = empty */
    size_t cap;                    /* power of two, > 2 * count */
};

struct mr_health {
    struct slot_table table;
    uint64_t epoch; /* attach counter */
    struct mr_health_transition ring[MR_HEALTH_TRANSITIONS];
    size_t ring_next; /* where the next transition goes */
    size_t ring_n;    /* valid entries, <= MR_HEALTH_TRANSITIONS */
};

static int64_t now_unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t hash_key(const char *cluster, const char *address)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (const char *p = cluster; *p != '\0'; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    h = (h ^ 0xffU) * 1099511628211ULL; /* separator: ("ab","c") != ("a","bc") */
    for (const char *p = address; *p != '\0'; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    return (size_t)h;
}

/* Returns the cell holding the key, or the empty cell where it would go. */
static struct mr_health_slot **find_cell(const struct slot_table *t, const char *cluster,
                                         const char *address)
{
    size_t mask = t->cap - 1;

    for (size_t i = hash_key(cluster, address) & mask;; i = (i + 1) & mask) {
        struct mr_health_slot *s = t->items[i];

        if (s == NULL || (strcmp(s->cluster, cluster) == 0 && strcmp(s->address, address) == 0)) {
            return &t->items[i];
        }
    }
}

static struct mr_health_slot *lookup(const struct slot_table *t, const char *cluster,
                                     const char *address)
{
    if (t->cap == 0) {
        return NULL;
    }
    return *find_cell(t, cluster, address);
}

static struct mr_health_slot *new_slot(const char *cluster, const char *address)
{
    struct mr_health_slot *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->cluster = strdup(cluster);
    s->address = strdup(address);
    if (s->cluster == NULL || s->address == NULL) {
        free(s->cluster);
        free(s->address);
        free(s);
        return NULL;
    }
    s->magic = SLOT_MAGIC;
    atomic_init(&s->up, true);
    atomic_init(&s->refs, 1);
    s->rise = 1;
    s->fall = 1;
    s->changed_ms = now_unix_ms();
    snprintf(s->last, sizeof(s->last), "not checked yet");
    s->last_ok = true;
    return s;
}

struct mr_health_slot *mr_health_slot_acquire(struct mr_health_slot *slot)
{
    assert(slot != NULL && slot->magic == SLOT_MAGIC);
    atomic_fetch_add(&slot->refs, 1);
    return slot;
}

void mr_health_slot_release(struct mr_health_slot *slot)
{
    if (slot == NULL) {
        return;
    }
    assert(slot->magic == SLOT_MAGIC);
    if (atomic_fetch_sub(&slot->refs, 1) == 1) {
        slot->magic = 0;
        free(slot->cluster);
        free(slot->address);
        free(slot);
    }
}

struct mr_health *mr_health_new(void)
{
    return calloc(1, sizeof(struct mr_health));
}

void mr_health_free(struct mr_health *h)
{
    if (h == NULL) {
        return;
    }
    for (size_t i = 0; i < h->table.cap; i++) {
        struct mr_health_slot *s = h->table.items[i];

        if (s != NULL) {
            s->registry = NULL;
            mr_health_slot_release(s);
        }
    }
    free(h->table.items);
    free(h);
}

/* Release hook: drops the references the snapshot's endpoints hold. May run
 * on any thread, when the last holder of the snapshot lets go. */
static void on_snap_release(struct mr_snapshot *snap)
{
    for (size_t i = 0; i < snap->n_endpoints; i++) {
        struct mr_endpoint *e = snap->endpoints[i];

        mr_health_slot_release(e->health);
        e->health = NULL;
    }
}

static bool hook_registered(const struct mr_snapshot *snap)
{
    for (size_t i = 0; i < snap->n_release_hooks; i++) {
        if (snap->release_hooks[i] == on_snap_release) {
            return true;
        }
    }
    return false;
}

/* Frees the slots a failed attach created (not yet in the registry). */
static void undo_new_slots(struct slot_table *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        struct mr_health_slot *s = t->items[i];

        if (s != NULL && s->registry == NULL) {
            mr_health_slot_release(s);
        }
    }
    free(t->items);
}

int mr_health_attach(struct mr_health *h, struct mr_snapshot *snap)
{
    bool again = hook_registered(snap);
    struct slot_table next = {0};
    struct mr_health_slot **picked;
    uint64_t epoch;

    if (!again && snap->n_release_hooks == MR_SNAP_MAX_HOOKS) {
        return -1;
    }
    next.cap = 8;
    while (next.cap <= 2 * snap->n_endpoints) {
        next.cap *= 2;
    }
    next.items = calloc(next.cap, sizeof(*next.items));
    picked = calloc(snap->n_endpoints + 1, sizeof(*picked));
    if (next.items == NULL || picked == NULL) {
        free(next.items);
        free(picked);
        return -1;
    }
    /* A failed attach burns its number too, so its marks never count. */
    epoch = ++h->epoch;

    /* Pass 1, which may fail: find or create every endpoint's slot. */
    for (size_t i = 0; i < snap->n_endpoints; i++) {
        const struct mr_endpoint *e = snap->endpoints[i];
        const char *cluster = e->cluster->name, *address = e->address;
        struct mr_health_slot **cell = find_cell(&next, cluster, address);

        if (*cell == NULL) {
            struct mr_health_slot *s = lookup(&h->table, cluster, address);

            if (s == NULL && (s = new_slot(cluster, address)) == NULL) {
                undo_new_slots(&next);
                free(picked);
                return -1;
            }
            s->epoch = epoch;
            *cell = s;
        }
        picked[i] = *cell;
    }

    /* Pass 2, which cannot fail: commit. */
    if (again) {
        on_snap_release(snap);
    } else {
        mr_snap_on_release(snap, on_snap_release);
    }
    for (size_t i = 0; i < snap->n_endpoints; i++) {
        struct mr_health_slot *s = picked[i];

        s->rise = snap->health.rise > 0 ? snap->health.rise : 1;
        s->fall = snap->health.fall > 0 ? snap->health.fall : 1;
        snap->endpoints[i]->health = mr_health_slot_acquire(s);
    }
    for (size_t i = 0; i < next.cap; i++) {
        if (next.items[i] != NULL) {
            next.items[i]->registry = h; /* new slots: the creation reference */
        }
    }
    for (size_t i = 0; i < h->table.cap; i++) {
        struct mr_health_slot *s = h->table.items[i];

        if (s != NULL && s->epoch != epoch) {
            s->registry = NULL;
            mr_health_slot_release(s);
        }
    }
    free(h->table.items);
    h->table = next;
    free(picked);
    return 0;
}

bool mr_health_endpoint_up(const struct mr_endpoint *e)
{
    const struct mr_health_slot *s = e->health;

    return s == NULL || atomic_load_explicit(&s->up, memory_order_acquire);
}

size_t mr_health_cluster_up(const struct mr_cluster *c)
{
    size_t up = 0;

    for (size_t i = 0; i < c->n_endpoints; i++) {
        if (mr_health_endpoint_up(&c->endpoints[i])) {
            up++;
        }
    }
    return up;
}

bool mr_health_cluster_healthy(const struct mr_snapshot *snap, const struct mr_cluster *c)
{
    size_t up = mr_health_cluster_up(c);

    if (up == 0) {
        return false;
    }
    /* Compared as up >= min * n, with slack for 0.7 * 10 landing above 7. */
    return (double)up + 1e-9 >= snap->health.min_healthy * (double)c->n_endpoints;
}

/* The pure state machine: feeds one result, returns true on a transition.
 * Publishes the new state with a release store. */
static bool observe(struct mr_health_slot *s, bool ok, int64_t now_ms)
{
    bool up = atomic_load_explicit(&s->up, memory_order_relaxed);

    s->checks++;
    if (ok) {
        s->failures = 0;
        if (s->successes < s->rise) {
            s->successes++;
        }
        if (up || s->successes < s->rise) {
            return false;
        }
    } else {
        s->successes = 0;
        if (s->failures < s->fall) {
            s->failures++;
        }
        if (!up || s->failures < s->fall) {
            return false;
        }
    }
    atomic_store_explicit(&s->up, ok, memory_order_release);
    s->changed_ms = now_ms;
    return true;
}

static void record_transition(struct mr_health *h, const struct mr_health_slot *s, const char *why)
{
    struct mr_health_transition *t = &h->ring[h->ring_next];

    t->time_ms = s->changed_ms;
    snprintf(t->cluster, sizeof(t->cluster), "%s", s->cluster);
    snprintf(t->address, sizeof(t->address), "%s", s->address);
    t->up = atomic_load_explicit(&s->up, memory_order_relaxed);
    snprintf(t->reason, sizeof(t->reason), "%s", why);
    h->ring_next = (h->ring_next + 1) % MR_HEALTH_TRANSITIONS;
    if (h->ring_n < MR_HEALTH_TRANSITIONS) {
        h->ring_n++;
    }
}

void mr_health_report(struct mr_health_slot *slot, bool ok, const char *why)
{
    assert(slot != NULL && slot->magic == SLOT_MAGIC);
    if (why == NULL) {
        why = ok ? "ok" : "failed";
    }
    slot->last_ok = ok;
    snprintf(slot->last, sizeof(slot->last), "%s", why);
    if (ok)
        mr_passive_check_passed(slot, mr_passive_now_ms());
    if (!observe(slot, ok, now_unix_ms())) {
        return;
    }
    mr_log(ok ? MR_LOG_INFO : MR_LOG_WARN, "health: %s %s %s: %s", slot->cluster, slot->address,
           ok ? "up" : "down", why);
    if (slot->registry != NULL) {
        record_transition(slot->registry, slot, why);
    }
}

size_t mr_health_transitions(const struct mr_health *h, struct mr_health_transition *out,
                             size_t max)
{
    size_t n = h->ring_n < max ? h->ring_n : max;

    for (size_t i = 0; i < n; i++) {
        size_t at = (h->ring_next + MR_HEALTH_TRANSITIONS - 1 - i) % MR_HEALTH_TRANSITIONS;

        out[i] = h->ring[at];
    }
    return n;
}
