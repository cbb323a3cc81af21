/*
 * conf/jpath.h: JSON paths for messages, and typed readers that report
 * with them.
 *
 * A path names a value the way a user finds it in the file: keys joined
 * with '.', array indices in brackets, "regions[0].clusters[1].weight"; the
 * top level is "". Paths live in caller buffers of MR_JPATH_MAX bytes; a
 * longer one is cut short and ends in "...", never overflows.
 *
 * Each reader checks one value, adds "PATH: message" (after the prefix of
 * its struct mr_jpath) to the errors and returns false (or 0) when the value
 * is refused. Nothing stops at the first problem: the caller reads on, so
 * the user sees every problem at once. A refused value leaves *out
 * untouched, so a default set before the call survives. Unknown keys are
 * warnings. In members, JSON null counts as absent. Readers keep no state
 * and allocate nothing but the messages; returned strings point into the
 * JSON document.
 */
#ifndef MR_CONF_JPATH_H
#define MR_CONF_JPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

/* Longer paths are cut short in messages, never overflow. */
#define MR_JPATH_MAX 512

/* One reading of a JSON document. */
struct mr_jpath {
    struct mr_errors *errs; /* every problem goes here */
    const char *prefix;     /* before every message ("state_file: "), or NULL */
};

/* out = parent.key ("key" at the top level, where parent is ""). */
void mr_jpath_key(char *out, const char *parent, const char *key);

/* out = parent[i]. */
void mr_jpath_index(char *out, const char *parent, size_t i);

/* Adds "PATH: message" to jp's errors (mr_jpath_error) or warnings. */
void mr_jpath_error(struct mr_jpath *jp, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mr_jpath_warn(struct mr_jpath *jp, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Warns "PATH.KEY: unknown key, ignored" for every key of obj, the object
 * at path, not in known (NULL-terminated). */
void mr_jpath_check_keys(struct mr_jpath *jp, json_t *obj, const char *path,
                         const char *const *known);

/* Returns obj.key, or NULL when absent (JSON null counts as absent), with
 * "PATH: required" added when it must be there. obj may be NULL. */
json_t *mr_jpath_member(struct mr_jpath *jp, json_t *obj, const char *parent, const char *key,
                        bool required);

/* true when v, the value at path, is an object; else "expected an object". */
bool mr_jpath_read_object(struct mr_jpath *jp, json_t *v, const char *path);

/* A string (non-empty when nonempty) into *out, which points into v. */
bool mr_jpath_read_string(struct mr_jpath *jp, json_t *v, const char *path, bool nonempty,
                          const char **out);

bool mr_jpath_read_bool(struct mr_jpath *jp, json_t *v, const char *path, bool *out);

/* Integers in [min, max]; max == INT_MAX means "no stated maximum". */
bool mr_jpath_read_int(struct mr_jpath *jp, json_t *v, const char *path, int64_t min, int64_t max,
                       int64_t *out);

/* Numbers (integer or real) in [min, max], or (min, max] when min_exclusive;
 * expect states that range in the message. */
bool mr_jpath_read_number(struct mr_jpath *jp, json_t *v, const char *path, double min, double max,
                          bool min_exclusive, const char *expect, double *out);

/* obj.key as an integer; *val keeps its default when absent or invalid.
 * false only when present and refused. */
bool mr_jpath_member_int(struct mr_jpath *jp, json_t *obj, const char *parent, const char *key,
                         int64_t min, int64_t max, int64_t *val);

void mr_jpath_member_bool(struct mr_jpath *jp, json_t *obj, const char *parent, const char *key,
                          bool *val);

/* Replaces *val with obj.key (pointing into obj) when present and valid;
 * false when refused, or absent and required. */
bool mr_jpath_member_string(struct mr_jpath *jp, json_t *obj, const char *parent, const char *key,
                            bool required, bool nonempty, const char **val);

/*
 * An array walked element by element, each with its path, so a loop over
 * "regions" or "regions[0].clusters" is written once:
 *
 *     struct mr_jpath_iter it;
 *     size_t n = mr_jpath_member_array(jp, root, "", "regions", &it);
 *
 *     regions = calloc(n, ...);
 *     while (mr_jpath_next_object(jp, &it))
 *         load_region(&regions[it.i], it.item, it.path);
 *
 * An iterator whose array was refused yields nothing.
 */
struct mr_jpath_iter {
    json_t *array;                 /* NULL when refused: nothing to yield */
    size_t n;                      /* its size */
    size_t i;                      /* the current element's index */
    json_t *item;                  /* the current element */
    char array_path[MR_JPATH_MAX]; /* "regions[0].clusters" */
    char path[MR_JPATH_MAX];       /* the current element's: "regions[0].clusters[3]" */
    size_t _next;                  /* the index next() moves to */
};

/* Starts it on v, the value at path: returns its size, or 0 when v is not
 * an array ("expected an array") or is empty and nonempty ("expected a
 * non-empty array"). */
size_t mr_jpath_iter_array(struct mr_jpath *jp, json_t *v, const char *path, bool nonempty,
                           struct mr_jpath_iter *it);

/* Starts it on obj.key, which must be there ("required") and be a
 * non-empty array; returns its size, or 0 with the problem reported. */
size_t mr_jpath_member_array(struct mr_jpath *jp, json_t *obj, const char *parent, const char *key,
                             struct mr_jpath_iter *it);

/* Moves it to the next element (it->i, it->item, it->path); false at the
 * end. */
bool mr_jpath_next(struct mr_jpath_iter *it);

/* Moves it to the next element that is an object, reporting "PATH:
 * expected an object" for each element passed over; false at the end. */
bool mr_jpath_next_object(struct mr_jpath *jp, struct mr_jpath_iter *it);

#endif
