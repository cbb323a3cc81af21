/* conf/jpath.c: see jpath.h. */
#include "conf/jpath.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON paths ---- */

/* Marks a path cut short by MR_JPATH_MAX with a visible "...". */
static void mark_truncated(char *out, int n)
{
    if (n < 0 || n >= MR_JPATH_MAX)
        memcpy(out + MR_JPATH_MAX - 4, "...", 4);
}

void mr_jpath_key(char *out, const char *parent, const char *key)
{
    mark_truncated(out, snprintf(out, MR_JPATH_MAX, "%s%s%s", parent, parent[0] != '\0' ? "." : "",
                                 key));
}

void mr_jpath_index(char *out, const char *parent, size_t i)
{
    mark_truncated(out, snprintf(out, MR_JPATH_MAX, "%s[%zu]", parent, i));
}

/* ---- messages ---- */

__attribute__((format(printf, 4, 0))) static void
report(struct mr_jpath *jp, bool warning, const char *path, const char *fmt, va_list ap)
{
    const char *prefix = jp->prefix != NULL ? jp->prefix : "";
    char *message = NULL;

    if (vasprintf(&message, fmt, ap) < 0)
        return;
    if (warning)
        mr_errors_warn(jp->errs, "%s%s: %s", prefix, path, message);
    else
        mr_errors_add(jp->errs, "%s%s: %s", prefix, path, message);
    free(message);
}

void mr_jpath_error(struct mr_jpath *jp, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(jp, false, path, fmt, ap);
    va_end(ap);
}

void mr_jpath_warn(struct mr_jpath *jp, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(jp, true, path, fmt, ap);
    va_end(ap);
}

/* ---- typed readers (contracts in jpath.h) ---- */

void mr_jpath_check_keys(struct mr_jpath *jp, json_t *obj, const char *path,
                         const char *const *known)
{
    char p[MR_JPATH_MAX];

    for (void *it = json_object_iter(obj); it != NULL; it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        bool found = false;

        for (const char *const *k = known; *k != NULL && !found; k++)
            found = strcmp(*k, key) == 0;
        if (!found) {
            mr_jpath_key(p, path, key);
            mr_jpath_warn(jp, p, "unknown key, ignored");
        }
    }
}

json_t *mr_jpath_member(struct mr_jpath *jp, json_t *obj, const char *parent, const char *key,
                        bool required)
{
    json_t *v = obj != NULL ? json_object_get(obj, key) : NULL;
    char p[MR_JPATH_MAX];

    if (v != NULL && json_is_null(v))
        v = NULL;
    if (v == NULL && required) {
        mr_jpath_key(p, parent, key);
        mr_jpath_error(jp, p, "required");
    }
    return v;
}

bool mr_jpath_read_object(struct mr_jpath *jp, json_t *v, const char *path)
{
    if (json_is_object(v))
        return true;
    mr_jpath_error(jp, path, "expected an object");
    return false;
}

bool mr_jpath_read_string(struct mr_jpath *jp, json_t *v, const char *path, bool nonempty,
                          const char **out)
{
    if (!json_is_string(v)) {
        mr_jpath_error(jp, path, "expected a string");
        return false;
    }
    if (nonempty && json_string_length(v) == 0) {
        mr_jpath_error(jp, path, "expected a non-empty string");
        return false;
    }
    *out = json_string_value(v);
    return true;
}

bool mr_jpath_read_bool(struct mr_jpath *jp, json_t *v, const char *path, bool *out)
{
    if (!json_is_boolean(v)) {
        mr_jpath_error(jp, path, "expected a boolean");
        return false;
    }
    *out = json_is_true(v);
    return true;
}

bool mr_jpath_read_int(struct mr_jpath *jp, json_t *v, const char *path, int64_t min, int64_t max,
                       int64_t *out)
{
    json_int_t x = 0;

    if (json_is_integer(v)) {
        x = json_integer_value(v);
        if (x >= min && x <= max) {
            *out = x;
            return true;
        }
    }
    if (max == INT_MAX && !(json_is_integer(v) && x > max))
        mr_jpath_error(jp, path, "expected an integer >= %lld", (long long)min);
    else
        mr_jpath_error(jp, path, "expected an integer between %lld and %lld", (long long)min,
                       (long long)max);
    return false;
}

bool mr_jpath_read_number(struct mr_jpath *jp, json_t *v, const char *path, double min, double max,
                          bool min_exclusive, const char *expect, double *out)
{
    if (json_is_number(v)) {
        double x = json_number_value(v);

        if ((min_exclusive ? x > min : x >= min) && x <= max) {
            *out = x;
            return true;
        }
    }
    mr_jpath_error(jp, path, "expected a number %s", expect);
    return false;
}

bool mr_jpath_member_int(struct mr_jpath *jp, json_t *obj, const char *parent, const char *key,
                         int64_t min, int64_t max, int64_t *val)
{
    json_t *v = mr_jpath_member(jp, obj, parent, key, false);
    char p[MR_JPATH_MAX];

    if (v == NULL)
        return true;
    mr_jpath_key(p, parent, key);
    return mr_jpath_read_int(jp, v, p, min, max, val);
}

void mr_jpath_member_bool(struct mr_jpath *jp, json_t *obj, const char *parent, const char *key,
                          bool *val)
{
    json_t *v = mr_jpath_member(jp, obj, parent, key, false);
    char p[MR_JPATH_MAX];

    if (v == NULL)
        return;
    mr_jpath_key(p, parent, key);
    mr_jpath_read_bool(jp, v, p, val);
}

bool mr_jpath_member_string(struct mr_jpath *jp, json_t *obj, const char *parent, const char *key,
                            bool required, bool nonempty, const char **val)
{
    json_t *v = mr_jpath_member(jp, obj, parent, key, required);
    char p[MR_JPATH_MAX];

    if (v == NULL)
        return !required;
    mr_jpath_key(p, parent, key);
    return mr_jpath_read_string(jp, v, p, nonempty, val);
}

/* ---- arrays, element by element ---- */

/* Resets it to yield nothing, its array at path. */
static void start(struct mr_jpath_iter *it, const char *path)
{
    it->array = NULL;
    it->n = it->i = it->_next = 0;
    it->item = NULL;
    snprintf(it->array_path, sizeof(it->array_path), "%s", path);
    it->path[0] = '\0';
}

size_t mr_jpath_iter_array(struct mr_jpath *jp, json_t *v, const char *path, bool nonempty,
                           struct mr_jpath_iter *it)
{
    start(it, path);
    if (!json_is_array(v)) {
        mr_jpath_error(jp, path, "expected an array");
        return 0;
    }
    if (json_array_size(v) == 0) {
        if (nonempty)
            mr_jpath_error(jp, path, "expected a non-empty array");
        return 0;
    }
    it->array = v;
    it->n = json_array_size(v);
    return it->n;
}

size_t mr_jpath_member_array(struct mr_jpath *jp, json_t *obj, const char *parent, const char *key,
                             struct mr_jpath_iter *it)
{
    json_t *v = mr_jpath_member(jp, obj, parent, key, true);
    char p[MR_JPATH_MAX];

    mr_jpath_key(p, parent, key);
    if (v == NULL) {
        start(it, p);
        return 0;
    }
    return mr_jpath_iter_array(jp, v, p, true, it);
}

bool mr_jpath_next(struct mr_jpath_iter *it)
{
    if (it->array == NULL || it->_next >= it->n)
        return false;
    it->i = it->_next++;
    it->item = json_array_get(it->array, it->i);
    mr_jpath_index(it->path, it->array_path, it->i);
    return true;
}

bool mr_jpath_next_object(struct mr_jpath *jp, struct mr_jpath_iter *it)
{
    while (mr_jpath_next(it)) {
        if (mr_jpath_read_object(jp, it->item, it->path))
            return true;
    }
    return false;
}
