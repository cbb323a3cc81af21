/*
 * control/history.h: the change history (a ring of the last
 * MR_HISTORY_SIZE changes) and the audit log it is kept in.
 *
 * Every change the control thread applies (drain, undrain, weight, reload,
 * undo) is recorded here with a sequence number, the value it set and the
 * one it replaced, so that undo can put the previous one back. Sequence
 * numbers only grow, also across restarts: mr_history_load() reads the
 * audit log back at start. The audit log is one JSON object per line,
 * appended with one write(2) each (O_APPEND), and never rewritten; a line
 * that does not parse or has no "change" is skipped. Control thread only.
 */
#ifndef MR_CONTROL_HISTORY_H
#define MR_CONTROL_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define MR_HISTORY_SIZE 100

/* One entry of the change history (and one line of the audit log). */
struct mr_change {
    uint64_t seq;
    int64_t time_ms;
    char kind[16];    /* "drain", "undrain", "weight", "reload", "undo" */
    char cluster[72]; /* empty for reload */
    json_t *value;    /* what was set (owned) */
    json_t *previous; /* what it replaced (owned) */
    uint64_t generation_before, generation_after;
    bool undone;
    char *previous_text; /* reload: the configuration text it replaced (owned) */
};

/* Zeroed is empty; the newest entry is at ring[(head + SIZE - 1) % SIZE]. */
struct mr_history {
    struct mr_change ring[MR_HISTORY_SIZE];
    size_t len, head;
    uint64_t next_seq; /* the last sequence number given */
};

/* Records a change made at time_ms (unix ms) with the next sequence number,
 * overwriting the oldest entry when the ring is full; takes ownership of
 * value and previous. The entry stays valid until MR_HISTORY_SIZE more are
 * recorded. */
struct mr_change *mr_history_record(struct mr_history *h, int64_t time_ms, const char *kind,
                                    const char *cluster, json_t *value, json_t *previous,
                                    uint64_t before, uint64_t after);

/* The entry age changes back (0: the newest); NULL past the oldest kept. */
struct mr_change *mr_history_at(struct mr_history *h, size_t age);

/* What an undo reverts: the newest change neither undone nor itself an
 * undo; NULL when there is none. */
struct mr_change *mr_history_undo_target(struct mr_history *h);

/* The API's and the audit log's form of a change (a new reference). */
json_t *mr_history_change_json(const struct mr_change *c);

/* {"changes": [...]}, newest first (a new reference). */
json_t *mr_history_json(struct mr_history *h);

/* Appends c as one line to the audit log at path (NULL: none kept); errors
 * are logged, never returned: a change in force stays in force. */
void mr_history_append(const char *path, const struct mr_change *c);

/* Records the changes of the audit log at path (NULL or missing: none), in
 * order, with their own sequence numbers and times; an undo line marks the
 * change it undid. */
void mr_history_load(struct mr_history *h, const char *path);

/* Frees every entry; h is empty after. */
void mr_history_clear(struct mr_history *h);

#endif
