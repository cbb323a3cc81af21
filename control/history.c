/* control/history.c: see history.h. */
#include "control/history.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

struct mr_change *mr_history_at(struct mr_history *h, size_t age)
{
    size_t i = (h->head + MR_HISTORY_SIZE - 1 - age) % MR_HISTORY_SIZE;
    return age < h->len ? &h->ring[i] : NULL;
}

struct mr_change *mr_history_undo_target(struct mr_history *h)
{
    for (size_t age = 0; age < h->len; age++) {
        struct mr_change *c = mr_history_at(h, age);
        if (!c->undone && strcmp(c->kind, "undo") != 0)
            return c;
    }
    return NULL;
}

static void change_clear(struct mr_change *c)
{
    json_decref(c->value);
    json_decref(c->previous);
    free(c->previous_text);
    memset(c, 0, sizeof(*c));
}

json_t *mr_history_change_json(const struct mr_change *c)
{
    char stamp[40];
    time_t secs = (time_t)(c->time_ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + strlen(stamp), sizeof(stamp) - strlen(stamp), ".%03dZ",
             (int)(c->time_ms % 1000));
    return json_pack("{s:I, s:s, s:s, s:s?, s:O?, s:O?, s:I, s:I, s:b}", "seq", (json_int_t)c->seq,
                     "time", stamp, "change", c->kind, "cluster",
                     c->cluster[0] != '\0' ? c->cluster : NULL, "value", c->value, "previous",
                     c->previous, "generation_before", (json_int_t)c->generation_before,
                     "generation_after", (json_int_t)c->generation_after, "undone", c->undone);
}

/* O_APPEND: one write per line. */
void mr_history_append(const char *path, const struct mr_change *c)
{
    json_t *line;
    char *text;
    int fd;

    if (path == NULL)
        return;
    line = mr_history_change_json(c);
    text = line != NULL ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    if (text == NULL)
        return;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0) {
        size_t len = strlen(text);
        text[len] = '\n';
        if (write(fd, text, len + 1) != (ssize_t)(len + 1))
            mr_log(MR_LOG_ERROR, "audit_log: cannot write %s: %m", path);
        close(fd);
    } else {
        mr_log(MR_LOG_ERROR, "audit_log: cannot open %s: %m", path);
    }
    free(text);
}

struct mr_change *mr_history_record(struct mr_history *h, int64_t time_ms, const char *kind,
                                    const char *cluster, json_t *value, json_t *previous,
                                    uint64_t before, uint64_t after)
{
    struct mr_change *c = &h->ring[h->head];

    change_clear(c);
    h->head = (h->head + 1) % MR_HISTORY_SIZE;
    if (h->len < MR_HISTORY_SIZE)
        h->len++;
    c->seq = ++h->next_seq;
    c->time_ms = time_ms;
    snprintf(c->kind, sizeof(c->kind), "%s", kind);
    snprintf(c->cluster, sizeof(c->cluster), "%s", cluster != NULL ? cluster : "");
    c->value = value;
    c->previous = previous;
    c->generation_before = before;
    c->generation_after = after;
    return c;
}

/* Parses "2026-11-27T08:24:35.982Z" back to unix ms; 0 when it does not. */
static int64_t parse_iso_ms(const char *text)
{
    struct tm tm;
    int ms = 0;
    const char *rest;

    memset(&tm, 0, sizeof(tm));
    if (text == NULL || (rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
        return 0;
    if (rest[0] == '.')
        ms = atoi(rest + 1);
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Reads the newest changes of earlier runs back, so history and undo
 * survive a restart. */
void mr_history_load(struct mr_history *h, const char *path)
{
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    char line[16384];

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        json_t *entry = json_loads(line, 0, NULL);
        const char *kind = json_string_value(json_object_get(entry, "change"));
        const char *cluster = json_string_value(json_object_get(entry, "cluster"));
        struct mr_change *c;
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(entry, "seq"));

        if (kind == NULL) {
            json_decref(entry);
            continue;
        }
        if (strcmp(kind, "undo") == 0) {
            /* An undo marks what it undid. */
            uint64_t undid = (uint64_t)json_integer_value(
                json_object_get(json_object_get(entry, "value"), "undid"));
            for (size_t age = 0; age < h->len; age++)
                if (mr_history_at(h, age)->seq == undid)
                    mr_history_at(h, age)->undone = true;
        }
        c = mr_history_record(h, parse_iso_ms(json_string_value(json_object_get(entry, "time"))),
                              kind, cluster, json_incref(json_object_get(entry, "value")),
                              json_incref(json_object_get(entry, "previous")),
                              (uint64_t)json_integer_value(
                                  json_object_get(entry, "generation_before")),
                              (uint64_t)json_integer_value(
                                  json_object_get(entry, "generation_after")));
        c->seq = seq;
        c->undone = c->undone || json_is_true(json_object_get(entry, "undone"));
        if (seq > h->next_seq)
            h->next_seq = seq;
        json_decref(entry);
    }
    fclose(f);
}

json_t *mr_history_json(struct mr_history *h)
{
    json_t *list = json_array();

    for (size_t age = 0; age < h->len; age++)
        json_array_append_new(list, mr_history_change_json(mr_history_at(h, age)));
    return json_pack("{s:o}", "changes", list);
}

void mr_history_clear(struct mr_history *h)
{
    for (size_t i = 0; i < MR_HISTORY_SIZE; i++)
        change_clear(&h->ring[i]);
    h->len = h->head = 0;
    h->next_seq = 0;
}
