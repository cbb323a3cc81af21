/* tests/unit/test_file.c: the whole-file reader: contents and length,
 * the size cap, missing files, empty files, directories and the fstat of
 * the file read. Each test gets a fresh temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

#include "common/file.h"

struct fixture {
    char dir[64]; /* "/tmp/meridian-test-file-XXXXXX" */
    char path[PATH_MAX];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    strcpy(fx->dir, "/tmp/meridian-test-file-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    static const char *const names[] = {"f", "link", "sub", NULL};
    char path[PATH_MAX];

    for (const char *const *n = names; *n != NULL; n++) {
        snprintf(path, sizeof(path), "%s/%s", fx->dir, *n);
        remove(path);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Writes len bytes of data to DIR/name (mode 0600); returns its path. */
static const char *write_file(struct fixture *fx, const char *name, const void *data, size_t len)
{
    snprintf(fx->path, sizeof(fx->path), "%s/%s", fx->dir, name);
    mr_test_write_file(fx->path, data, len);
    assert_int_equal(chmod(fx->path, 0600), 0);
    return fx->path;
}

/* A file of n bytes, each its offset modulo 251, so a misplaced block shows. */
static char *pattern(size_t n)
{
    char *p = malloc(n);

    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(i % 251);
    return p;
}

static void test_reads_whole_file(void **state)
{
    struct fixture *fx = *state;
    /* Larger than the first buffer, so it grows several times. */
    size_t n = 100000, len = 0;
    char *want = pattern(n);
    const char *path = write_file(fx, "f", want, n);
    char *got = mr_file_read(path, 0, 0, NULL, &len);

    assert_non_null(got);
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    assert_int_equal(got[n], '\0');
    free(got);
    free(want);
}

static void test_nul_bytes_kept(void **state)
{
    struct fixture *fx = *state;
    const char *path = write_file(fx, "f", "a\0b\n", 4);
    size_t len = 0;
    char *got = mr_file_read(path, 0, 0, NULL, &len);

    assert_non_null(got);
    assert_int_equal(len, 4);
    assert_memory_equal(got, "a\0b\n", 5);
    free(got);
}

static void test_empty_file(void **state)
{
    struct fixture *fx = *state;
    const char *path = write_file(fx, "f", "", 0);
    size_t len = 99;
    char *got = mr_file_read(path, 16, 0, NULL, &len);

    assert_non_null(got);
    assert_int_equal(len, 0);
    assert_string_equal(got, "");
    free(got);
}

static void test_missing_file(void **state)
{
    struct fixture *fx = *state;
    struct stat st;
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/none", fx->dir);
    memset(&st, 0xff, sizeof(st));
    errno = 0;
    assert_null(mr_file_read(path, 0, 0, &st, NULL));
    assert_int_equal(errno, ENOENT);
    assert_int_equal(st.st_mode, 0);
    /* A dangling symlink is a missing file too. */
    snprintf(fx->path, sizeof(fx->path), "%s/link", fx->dir);
    assert_int_equal(symlink("none", fx->path), 0);
    errno = 0;
    assert_null(mr_file_read(fx->path, 0, MR_FILE_SHORT_READ_OK, NULL, NULL));
    assert_int_equal(errno, ENOENT);
}

static void test_size_cap(void **state)
{
    struct fixture *fx = *state;
    size_t cap = 5000, len = 0;
    char *data = pattern(cap + 1);
    const char *path = write_file(fx, "f", data, cap);
    char *got;

    /* Exactly max_bytes is accepted... */
    got = mr_file_read(path, cap, 0, NULL, &len);
    assert_non_null(got);
    assert_int_equal(len, cap);
    assert_memory_equal(got, data, cap);
    free(got);
    /* ...one byte more is EFBIG... */
    path = write_file(fx, "f", data, cap + 1);
    errno = 0;
    assert_null(mr_file_read(path, cap, 0, NULL, &len));
    assert_int_equal(errno, EFBIG);
    /* ...and 0 is no cap at all. */
    got = mr_file_read(path, 0, 0, NULL, &len);
    assert_non_null(got);
    assert_int_equal(len, cap + 1);
    free(got);
    free(data);
}

/* A file that never ends stops at the cap, not at memory exhaustion. */
static void test_size_cap_on_endless_file(void **state)
{
    errno = 0;
    assert_null(mr_file_read("/dev/zero", 64 * 1024, 0, NULL, NULL));
    assert_int_equal(errno, EFBIG);
}

static void test_directory(void **state)
{
    struct fixture *fx = *state;
    struct stat st;
    size_t len = 99;
    char *got;

    snprintf(fx->path, sizeof(fx->path), "%s/sub", fx->dir);
    assert_int_equal(mkdir(fx->path, 0700), 0);
    errno = 0;
    assert_null(mr_file_read(fx->path, 0, 0, &st, &len));
    assert_int_equal(errno, EISDIR);
    assert_true(S_ISDIR(st.st_mode));
    /* With MR_FILE_SHORT_READ_OK the read error ends the text: empty. */
    got = mr_file_read(fx->path, 0, MR_FILE_SHORT_READ_OK, NULL, &len);
    assert_non_null(got);
    assert_int_equal(len, 0);
    assert_string_equal(got, "");
    free(got);
}

/* st describes the file read (through a symlink: its target), also when
 * reading it fails, so a caller can warn about its mode either way. */
static void test_stat_of_file_read(void **state)
{
    struct fixture *fx = *state;
    const char *path = write_file(fx, "f", "0123456789", 10);
    char target[PATH_MAX];
    struct stat st;
    char *got;

    assert_int_equal(chmod(path, 0640), 0);
    snprintf(target, sizeof(target), "%s", path);
    snprintf(fx->path, sizeof(fx->path), "%s/link", fx->dir);
    assert_int_equal(symlink("f", fx->path), 0);
    got = mr_file_read(fx->path, 0, 0, &st, NULL);
    assert_non_null(got);
    assert_string_equal(got, "0123456789");
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_size, 10);
    free(got);
    memset(&st, 0, sizeof(st));
    errno = 0;
    assert_null(mr_file_read(target, 4, 0, &st, NULL));
    assert_int_equal(errno, EFBIG);
    assert_int_equal(st.st_mode & 07777, 0640);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_whole_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_bytes_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_cap_on_endless_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stat_of_file_read, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
