/*
 * control/history.h: the change history ring and the audit log.
 * (Moved from control.c; reworked in the next commit.)
 */
#ifndef MR_CONTROL_HISTORY_H
#define MR_CONTROL_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct mr_control;
struct mr_change;

struct mr_change *history_at(struct mr_control *ctl, size_t age);
void change_clear(struct mr_change *c);
json_t *change_json(const struct mr_change *c);
void audit(struct mr_control *ctl, const struct mr_change *c);
struct mr_change *record(struct mr_control *ctl, const char *kind, const char *cluster,
                         json_t *value, json_t *previous, uint64_t before, uint64_t after);
void load_history(struct mr_control *ctl, const char *audit_log);

#endif
