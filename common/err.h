/*
 * common/err.h: a list of configuration errors and warnings.
 *
 * Each entry is one "json.path: message" line. Validation keeps going and
 * collects every problem, so a user sees all of them at once. Not shared
 * between threads.
 */
#ifndef MR_COMMON_ERR_H
#define MR_COMMON_ERR_H

#include <stddef.h>
#include <stdio.h>

struct mr_errors {
    char **errors; /* owned strings */
    size_t n_errors;
    char **warnings; /* owned strings */
    size_t n_warnings;
};

/* Appends one formatted error line. */
void mr_errors_add(struct mr_errors *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends one formatted warning line. */
void mr_errors_warn(struct mr_errors *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints every warning ("warning: " first) then every error, one per line. */
void mr_errors_print(const struct mr_errors *e, FILE *out);

/* Frees every entry and resets the list to empty; accepts NULL. */
void mr_errors_clear(struct mr_errors *e);

#endif
