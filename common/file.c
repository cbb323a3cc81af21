/* common/file.c: see file.h. */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST_CAP 4096

/* Frees buf after wiping its first used bytes. */
static void discard(char *buf, size_t used)
{
    if (buf == NULL)
        return;
    explicit_bzero(buf, used);
    free(buf);
}

/* Moves the n bytes of *buf into a new buffer of cap bytes, wiping the old. */
static int grow(char **buf, size_t n, size_t cap)
{
    char *grown = malloc(cap);

    if (grown == NULL)
        return -1;
    if (n > 0)
        memcpy(grown, *buf, n);
    discard(*buf, n);
    *buf = grown;
    return 0;
}

char *mr_file_read(const char *path, size_t max_bytes, int flags, struct stat *st, size_t *len)
{
    size_t cap = 0, n = 0;
    char *buf = NULL;
    int fd, saved;

    if (st != NULL)
        memset(st, 0, sizeof(*st));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (st != NULL && fstat(fd, st) < 0)
        memset(st, 0, sizeof(*st));
    for (;;) {
        ssize_t r;

        /* Room for one byte more than max_bytes, so a longer file shows. */
        if (n + 1 >= cap) {
            size_t want = cap == 0 ? FIRST_CAP : cap * 2;

            if (max_bytes > 0 && want > max_bytes + 2)
                want = max_bytes + 2;
            if (grow(&buf, n, want) < 0)
                goto fail;
            cap = want;
        }
        /* A directory opens, then reads as EISDIR. */
        r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (flags & MR_FILE_SHORT_READ_OK))
            break;
        if (r < 0)
            goto fail;
        if (r == 0)
            break;
        n += (size_t)r;
        if (max_bytes > 0 && n > max_bytes) {
            errno = EFBIG;
            goto fail;
        }
    }
    close(fd);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
fail:
    saved = errno;
    discard(buf, n);
    close(fd);
    errno = saved;
    return NULL;
}
