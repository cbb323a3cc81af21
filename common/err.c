/* common/err.c: see err.h. */
#include "common/err.h"

#include <stdarg.h>
#include <stdlib.h>

__attribute__((format(printf, 3, 0))) static void append(char ***list, size_t *n, const char *fmt,
                                                         va_list ap)
{
    char *line = NULL;
    char **grown;

    if (vasprintf(&line, fmt, ap) < 0)
        return;
    grown = realloc(*list, (*n + 1) * sizeof(*grown));
    if (grown == NULL) {
        free(line);
        return;
    }
    grown[(*n)++] = line;
    *list = grown;
}

void mr_errors_add(struct mr_errors *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    append(&e->errors, &e->n_errors, fmt, ap);
    va_end(ap);
}

void mr_errors_warn(struct mr_errors *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    append(&e->warnings, &e->n_warnings, fmt, ap);
    va_end(ap);
}

void mr_errors_print(const struct mr_errors *e, FILE *out)
{
    for (size_t i = 0; i < e->n_warnings; i++)
        fprintf(out, "warning: %s\n", e->warnings[i]);
    for (size_t i = 0; i < e->n_errors; i++)
        fprintf(out, "%s\n", e->errors[i]);
}

void mr_errors_clear(struct mr_errors *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n_errors; i++)
        free(e->errors[i]);
    for (size_t i = 0; i < e->n_warnings; i++)
        free(e->warnings[i]);
    free(e->errors);
    free(e->warnings);
    e->errors = e->warnings = NULL;
    e->n_errors = e->n_warnings = 0;
}
