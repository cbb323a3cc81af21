/*
 * tests/fuzz/fuzz_admin.c: the admin API's change bodies
 * (mr_admin_parse_change: POST .../drain and .../undrain, PUT .../weight).
 *
 * Input: a byte choosing the action, then the body. A refused body has a
 * message; an accepted one has every field in its documented range, and
 * the same request written back as JSON by jansson reads to the same
 * fields. The body is an exact-size copy, so ASan sees any read past it.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tests/fuzz/fuzz.h"
#include "control/admin.h"

static const char *const actions[] = {"drain", "undrain", "weight"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mr_admin_change ch, again;
    const char *action;
    char msg[300], msg2[300];
    char *body, *text;
    json_t *obj;

    if (size < 1)
        return 0;
    action = actions[data[0] % 3];
    body = malloc(size - 1 ? size - 1 : 1);
    memcpy(body, data + 1, size - 1);
    msg[0] = '\0';
    if (mr_admin_parse_change(action, body, size - 1, &ch, msg, sizeof(msg)) != 0) {
        if (msg[0] == '\0' || memchr(msg, '\0', sizeof(msg)) == NULL)
            abort();
        free(body);
        return 0;
    }
    if ((ch.mode != MR_DRAIN_SOFT && ch.mode != MR_DRAIN_HARD) || ch.deadline_s < 0 ||
        ch.deadline_s > 365 * 86400 || !isfinite(ch.weight) || ch.weight < 0 || ch.weight > 1e9)
        abort();
    if (strcmp(action, "drain") != 0 && (ch.mode != MR_DRAIN_SOFT || ch.deadline_s != 0))
        abort();
    obj = json_pack("{s:b, s:b}", "dry_run", ch.dry_run, "force", ch.force);
    if (strcmp(action, "drain") == 0) {
        json_object_set_new(obj, "mode", json_string(ch.mode == MR_DRAIN_HARD ? "hard" : "soft"));
        if (ch.deadline_s > 0)
            json_object_set_new(obj, "deadline_s", json_integer(ch.deadline_s));
    } else if (strcmp(action, "weight") == 0) {
        json_object_set_new(obj, "weight", json_real(ch.weight));
    }
    text = json_dumps(obj, JSON_REAL_PRECISION(17));
    if (mr_admin_parse_change(action, text, strlen(text), &again, msg2, sizeof(msg2)) != 0 ||
        again.mode != ch.mode || again.deadline_s != ch.deadline_s || again.weight != ch.weight ||
        again.dry_run != ch.dry_run || again.force != ch.force) {
        fprintf(stderr, "%s %.*s read back differently from %s\n", action, (int)size - 1, body,
                text);
        abort();
    }
    free(text);
    json_decref(obj);
    free(body);
    return 0;
}
