/* tests/unit/testutil.c: see testutil.h. */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    return fclose(f);
}

int mr_test_keys_teardown(void **state)
{
    (void)state;
    unlink(mr_test_keys_path);
    return rmdir(mr_test_dir);
}
