/* tests/unit/testutil.c: see testutil.h. */
#include "tests/unit/testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "conf/conf.h"

char mr_test_dir[64];
char mr_test_keys_path[128];
char mr_test_testdata[PATH_MAX];

static const struct mr_test_file keys_file = {"session.keys", "test1:" MR_TEST_SECRET32 "\n"};

int mr_test_keys_setup(void **state)
{
    (void)state;
    strcpy(mr_test_dir, "/tmp/meridian-unit-XXXXXX");
    if (mr_test_files_setup(mr_test_dir, &keys_file, 1) != 0)
        return -1;
    snprintf(mr_test_keys_path, sizeof(mr_test_keys_path), "%s/session.keys", mr_test_dir);
    return 0;
}

int mr_test_keys_teardown(void **state)
{
    (void)state;
    return mr_test_files_teardown(mr_test_dir, &keys_file, 1);
}

struct mr_snapshot *mr_test_load(const char *json)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = mr_conf_load_string(json, mr_test_dir, &errs);

    if (snap == NULL) {
        mr_test_print_errors(&errs);
        mr_errors_clear(&errs);
        fail_msg("configuration did not load");
    }
    mr_errors_clear(&errs);
    return snap;
}

struct mr_snapshot *mr_test_loadf(const char *fmt, ...)
{
    struct mr_snapshot *snap;
    char *members, *json;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&members, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    assert_true(asprintf(&json, "{" MR_TEST_CONF_HEAD " %s}", members) >= 0);
    free(members);
    snap = mr_test_load(json);
    free(json);
    return snap;
}

static int write_private(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    if (fputs(text, f) < 0) {
        fclose(f);
        return -1;
    }
    if (fclose(f) != 0)
        return -1;
    return chmod(path, 0600);
}

int mr_test_files_setup(char *dir, const struct mr_test_file *files, size_t n)
{
    if (mkdtemp(dir) == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (write_private(dir, files[i].name, files[i].text) != 0)
            return -1;
    return 0;
}

int mr_test_files_teardown(const char *dir, const struct mr_test_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
        unlink(path);
    }
    return rmdir(dir);
}

void mr_test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL)
        fail_msg("cannot write %s", path);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

void mr_test_write_text(const char *path, const char *text)
{
    mr_test_write_file(path, text, strlen(text));
}

void mr_test_print_errors(const struct mr_errors *errs)
{
    for (size_t i = 0; i < errs->n_errors; i++)
        fprintf(stderr, "    error: %s\n", errs->errors[i]);
    for (size_t i = 0; i < errs->n_warnings; i++)
        fprintf(stderr, "    warning: %s\n", errs->warnings[i]);
}

bool mr_test_has_line(char *const *lines, size_t n, const char *line)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(lines[i], line) == 0)
            return true;
    }
    return false;
}

void mr_test_find_testdata(const char *argv0)
{
    const char *env = getenv("MERIDIAN_TESTDATA");
    const char *slash = strrchr(argv0, '/');

    if (env != NULL && env[0] != '\0') {
        snprintf(mr_test_testdata, sizeof(mr_test_testdata), "%s", env);
        return;
    }
    if (slash != NULL) {
        snprintf(mr_test_testdata, sizeof(mr_test_testdata), "%.*s/../testdata",
                 (int)(slash - argv0), argv0);
        if (access(mr_test_testdata, F_OK) == 0)
            return;
    }
    snprintf(mr_test_testdata, sizeof(mr_test_testdata), "build/release/testdata");
}
