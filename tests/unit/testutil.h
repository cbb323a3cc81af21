/*
 * tests/unit/testutil.h: fixtures shared by the unit tests.
 *
 * A temporary directory holding a session.keys with one valid key, so a
 * test can build snapshots with mr_conf_load_string(json, mr_test_dir, ...)
 * and "keys_file": "session.keys". Not thread-safe; one set per process.
 */
#ifndef MR_TESTS_TESTUTIL_H
#define MR_TESTS_TESTUTIL_H

extern char mr_test_dir[64];        /* the temporary directory */
extern char mr_test_keys_path[128]; /* its session.keys */

/* cmocka group setup/teardown: creates / removes both. 0 or -1. */
int mr_test_keys_setup(void **state);
int mr_test_keys_teardown(void **state);

struct mr_snapshot;

/* Loads json (relative paths against mr_test_dir) into a new snapshot, or
 * fails the running test with every configuration error printed. */
struct mr_snapshot *mr_test_load(const char *json);

#endif
