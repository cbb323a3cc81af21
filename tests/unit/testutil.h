/*
 * tests/unit/testutil.h: fixtures shared by the unit tests.
 *
 * A temporary directory holding a session.keys with one valid key, so a
 * test can build snapshots with mr_conf_load_string(json, mr_test_dir, ...)
 * and "keys_file": "session.keys"; directories of named files for tests
 * that need their own; the GeoIP test databases' folder; error-list
 * helpers. Not thread-safe; one set per process.
 */
#ifndef MR_TESTS_TESTUTIL_H
#define MR_TESTS_TESTUTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

/* 32 bytes once decoded: the shortest session secret the loader accepts. */
#define MR_TEST_SECRET32 "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

/* The members every test configuration starts with: one listener and the
 * session keys of mr_test_dir. */
#define MR_TEST_CONF_HEAD                                                                          \
    "\"listeners\": [{\"name\": \"http\", \"address\": \"127.0.0.1:8080\"}],"                      \
    " \"session\": {\"keys_file\": \"session.keys\"},"

extern char mr_test_dir[64];        /* the temporary directory */
extern char mr_test_keys_path[128]; /* its session.keys */

/* cmocka group setup/teardown: creates / removes both. 0 or -1. */
int mr_test_keys_setup(void **state);
int mr_test_keys_teardown(void **state);

struct mr_snapshot;
struct mr_errors;

/* Loads json (relative paths against mr_test_dir) into a new snapshot, or
 * fails the running test with every configuration error printed. */
struct mr_snapshot *mr_test_load(const char *json);

/* mr_test_load of "{" MR_TEST_CONF_HEAD, then the members fmt makes, "}". */
struct mr_snapshot *mr_test_loadf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A file a fixture directory holds. */
struct mr_test_file {
    const char *name;
    const char *text;
};

/* Makes a directory from dir, a mkdtemp template rewritten in place, and
 * writes the n files into it, readable by their owner only (a keys or token
 * file others may read is a warning). For cmocka group setups: 0 or -1. */
int mr_test_files_setup(char *dir, const struct mr_test_file *files, size_t n);

/* Removes the n files and the directory: -1 when the directory cannot go
 * (a test left something else in it). */
int mr_test_files_teardown(const char *dir, const struct mr_test_file *files, size_t n);

/* Writes len bytes, or a string, to path (created or truncated), or fails
 * the running test. */
void mr_test_write_file(const char *path, const void *data, size_t len);
void mr_test_write_text(const char *path, const char *text);

/* Prints every error and warning to stderr, indented under cmocka's lines. */
void mr_test_print_errors(const struct mr_errors *errs);

/* Whether one of the n lines is exactly line. */
bool mr_test_has_line(char *const *lines, size_t n, const char *line);

/* The folder of the GeoIP test databases `make testdata` writes:
 * $MERIDIAN_TESTDATA, else ../testdata beside the test binary argv0 when it
 * exists (so build/asan's test finds build/asan's databases), else the
 * release build's. Set by mr_test_find_testdata(), in main(). */
extern char mr_test_testdata[PATH_MAX];
void mr_test_find_testdata(const char *argv0);

#endif
