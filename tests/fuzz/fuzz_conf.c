/*
 * tests/fuzz/fuzz_conf.c: the configuration loader (mr_conf_load_string)
 * on any bytes as JSON text.
 *
 * Relative paths resolve in a temporary folder written once: session.keys
 * and admin.token as in conf/examples, and files the loader must refuse
 * (empty, garbage, a short token). The loader either returns a snapshot
 * with no error or NULL with at least one, every message non-empty, the
 * same for the same text twice; nothing leaks (LeakSanitizer). Inputs whose
 * strings could name a device, a /proc or /sys file or a FIFO under /run are
 * skipped, so that no input reads from a file that never ends.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tests/fuzz/fuzz.h"
#include "common/err.h"
#include "conf/conf.h"

static char dir[64];

static void put(const char *name, const char *text)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    strcpy(dir, "/tmp/meridian-fuzz-conf-XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    put("session.keys", "demo1:7JJpUdNO9LsxM32iyXrsP+BBF2PVQZQ9DH1CuoJIR/M=\n"
                        "old:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n");
    put("admin.token", "0123456789abcdef0123456789abcdef\n");
    put("short.token", "abc\n");
    put("bad.keys", "no colon here\n:=\nk:!!!\n");
    put("empty", "");
    return 0;
}

/* True when a string anywhere in v could reach a device or a kernel file. */
static bool risky(json_t *v)
{
    const char *key;
    json_t *e;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_STRING:
        return strstr(json_string_value(v), "dev") != NULL ||
               strstr(json_string_value(v), "proc") != NULL ||
               strstr(json_string_value(v), "sys") != NULL ||
               strstr(json_string_value(v), "run") != NULL ||
               strlen(json_string_value(v)) != json_string_length(v);
    case JSON_OBJECT:
        json_object_foreach(v, key, e)
            if (risky(e))
                return true;
        return false;
    case JSON_ARRAY:
        json_array_foreach(v, i, e)
            if (risky(e))
                return true;
        return false;
    default: return false;
    }
}

static struct mr_snapshot *load(const char *text, struct mr_errors *errs)
{
    struct mr_snapshot *snap = mr_conf_load_string(text, dir, errs);

    if ((snap == NULL) != (errs->n_errors > 0)) {
        fprintf(stderr, "snapshot %p with %zu errors\n", (void *)snap, errs->n_errors);
        abort();
    }
    for (size_t i = 0; i < errs->n_errors; i++)
        if (errs->errors[i] == NULL || errs->errors[i][0] == '\0')
            abort();
    return snap;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mr_errors errs = {0}, again = {0};
    struct mr_snapshot *snap, *snap2;
    char *text = malloc(size + 1);
    json_t *root;

    memcpy(text, data, size);
    text[size] = '\0';
    root = json_loads(text, JSON_DECODE_ANY, NULL);
    if (root != NULL && risky(root)) {
        json_decref(root);
        free(text);
        return 0;
    }
    json_decref(root);
    snap = load(text, &errs);
    snap2 = load(text, &again);
    if ((snap == NULL) != (snap2 == NULL) || errs.n_errors != again.n_errors)
        abort();
    for (size_t i = 0; i < errs.n_errors; i++)
        if (strcmp(errs.errors[i], again.errors[i]) != 0)
            abort();
    if (snap != NULL)
        mr_snap_free(snap);
    if (snap2 != NULL)
        mr_snap_free(snap2);
    mr_errors_clear(&errs);
    mr_errors_clear(&again);
    free(text);
    return 0;
}
