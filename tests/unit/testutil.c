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

#include "conf/conf.h"

/* 32 bytes once decoded: the shortest secret the loader accepts. */
#define SECRET32 "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

char mr_test_dir[64];
char mr_test_keys_path[128];

int mr_test_keys_setup(void **state)
{
    FILE *f;
    (void)state;

    strcpy(mr_test_dir, "/tmp/meridian-unit-XXXXXX");
    if (mkdtemp(mr_test_dir) == NULL)
        return -1;
    snprintf(mr_test_keys_path, sizeof(mr_test_keys_path), "%s/session.keys", mr_test_dir);
    f = fopen(mr_test_keys_path, "w");
    if (f == NULL)
        return -1;
    fputs("test1:" SECRET32 "\n", f);
    /* A keys file others may read is a warning: keep the fixture private. */
    if (fclose(f) != 0)
        return -1;
    return chmod(mr_test_keys_path, 0600);
}

int mr_test_keys_teardown(void **state)
{
    (void)state;
    unlink(mr_test_keys_path);
    return rmdir(mr_test_dir);
}

struct mr_snapshot *mr_test_load(const char *json)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = mr_conf_load_string(json, mr_test_dir, &errs);

    if (snap == NULL) {
        for (size_t i = 0; i < errs.n_errors; i++)
            fprintf(stderr, "    error: %s\n", errs.errors[i]);
        mr_errors_clear(&errs);
        fail_msg("configuration did not load");
    }
    mr_errors_clear(&errs);
    return snap;
}
