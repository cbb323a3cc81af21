/* common/log.c: see log.h. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static enum mr_log_level min_level = MR_LOG_INFO;

void mr_log_set_level(enum mr_log_level level)
{
    min_level = level;
}

void mr_log(enum mr_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    char line[2048];
    va_list ap;
    int n;

    if (level < min_level)
        return;
    n = snprintf(line, sizeof(line), "meridian: %s: ", names[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* One write per line so threads never interleave within a line. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}
