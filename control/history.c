/* control/history.c: see history.h. */
#include "control/history.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "control/control.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct mr_change *history_at(struct mr_control *ctl, size_t age)
{
    size_t i = (ctl->history_head + MR_CONTROL_HISTORY - 1 - age) % MR_CONTROL_HISTORY;
    return age < ctl->history_len ? &ctl->history[i] : NULL;
}

void change_clear(struct mr_change *c)
{
    json_decref(c->value);
    json_decref(c->previous);
    free(c->previous_text);
    memset(c, 0, sizeof(*c));
}

json_t *change_json(const struct mr_change *c)
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

/* Appends one line to the audit log (O_APPEND: one write per line). */
void audit(struct mr_control *ctl, const struct mr_change *c)
{
    const struct mr_snapshot *snap = mr_snap_peek();
    json_t *line;
    char *text;
    int fd;

    if (snap == NULL || snap->audit_log == NULL)
        return;
    line = change_json(c);
    text = line != NULL ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    if (text == NULL)
        return;
    fd = open(snap->audit_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0) {
        size_t len = strlen(text);
        text[len] = '\n';
        if (write(fd, text, len + 1) != (ssize_t)(len + 1))
            mr_log(MR_LOG_ERROR, "audit_log: cannot write %s: %m", snap->audit_log);
        close(fd);
    } else {
        mr_log(MR_LOG_ERROR, "audit_log: cannot open %s: %m", snap->audit_log);
    }
    free(text);
    (void)ctl;
}

struct mr_change *record(struct mr_control *ctl, const char *kind, const char *cluster,
                         json_t *value, json_t *previous, uint64_t before, uint64_t after)
{
    struct mr_change *c = &ctl->history[ctl->history_head];

    change_clear(c);
    ctl->history_head = (ctl->history_head + 1) % MR_CONTROL_HISTORY;
    if (ctl->history_len < MR_CONTROL_HISTORY)
        ctl->history_len++;
    c->seq = ++ctl->next_seq;
    c->time_ms = now_ms();
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

/* Reads the newest changes of earlier runs back from the audit log, so
 * history and undo survive a restart. */
void load_history(struct mr_control *ctl, const char *audit_log)
{
    FILE *f = audit_log != NULL ? fopen(audit_log, "r") : NULL;
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
            for (size_t age = 0; age < ctl->history_len; age++)
                if (history_at(ctl, age)->seq == undid)
                    history_at(ctl, age)->undone = true;
        }
        c = record(ctl, kind, cluster, json_incref(json_object_get(entry, "value")),
                   json_incref(json_object_get(entry, "previous")),
                   (uint64_t)json_integer_value(json_object_get(entry, "generation_before")),
                   (uint64_t)json_integer_value(json_object_get(entry, "generation_after")));
        c->seq = seq;
        c->time_ms = parse_iso_ms(json_string_value(json_object_get(entry, "time")));
        c->undone = c->undone || json_is_true(json_object_get(entry, "undone"));
        if (seq > ctl->next_seq)
            ctl->next_seq = seq;
        json_decref(entry);
    }
    fclose(f);
}

json_t *mr_control_history(struct mr_control *ctl)
{
    json_t *list = json_array();

    for (size_t age = 0; age < ctl->history_len; age++)
        json_array_append_new(list, change_json(history_at(ctl, age)));
    return json_pack("{s:o}", "changes", list);
}
