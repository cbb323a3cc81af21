/* tests/unit/test_overrides.c: the override set, its state file (atomic
 * save, validating load) and its merge into a snapshot. Each test gets a
 * fresh temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

#include "common/err.h"
#include "conf/conf.h"
#include "conf/overrides.h"
#include "conf/snapshot.h"

/* Three clusters: eu-a (weight 1), us-a (weight 1), us-b (weight 2). */
static const char base_config[] =
    "{"
    "\"listeners\": [{\"name\": \"http\", \"address\": \"127.0.0.1:8080\"}],"
    "\"session\": {\"keys_file\": \"session.keys\"},"
    "\"regions\": ["
    "  {\"name\": \"eu\", \"lat\": 50, \"lon\": 8,"
    "   \"clusters\": [{\"name\": \"eu-a\", \"endpoints\": [\"127.0.0.1:9001\"]}]},"
    "  {\"name\": \"us\", \"lat\": 40, \"lon\": -75,"
    "   \"clusters\": [{\"name\": \"us-a\", \"endpoints\": [\"127.0.0.1:9101\"]},"
    "                {\"name\": \"us-b\", \"weight\": 2,"
    "                 \"endpoints\": [\"127.0.0.1:9102\"]}]}"
    "],"
    "\"routing\": {\"default\": [\"eu\", \"us\"]}"
    "}";

#define NOW 1795760000
#define DEADLINE 1795767254

struct fixture {
    char dir[64];        /* "/tmp/meridian-test-overrides-XXXXXX" */
    char path[PATH_MAX]; /* DIR/state.json */
};

/* ---- fixtures ---- */

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    strcpy(fx->dir, "/tmp/meridian-test-overrides-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/state.json", fx->dir);
    *state = fx;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    /* A test may have left a directory read-only. */
    if (type == FTW_DP)
        chmod(path, 0700);
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    int rc;

    chmod(fx->dir, 0700);
    rc = nftw(fx->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return rc;
}

/* ---- helpers ---- */

/* The whole file as a malloc'd string, or NULL when it cannot be read. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

/* The names in dir other than "." and "..", sorted and joined by spaces. */
static void list_dir(const char *dir, char *out, size_t len)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    size_t used = 0;

    assert_true(n >= 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *s = names[i]->d_name;

        if (strcmp(s, ".") != 0 && strcmp(s, "..") != 0)
            used += (size_t)snprintf(out + used, len - used, "%s%s", used > 0 ? " " : "", s);
        free(names[i]);
    }
    free(names);
}

static void expect_line(const struct mr_errors *errs, bool warning, const char *line)
{
    bool found = warning ? mr_test_has_line(errs->warnings, errs->n_warnings, line)
                         : mr_test_has_line(errs->errors, errs->n_errors, line);

    if (!found) {
        fprintf(stderr, "  missing %s: %s\n  got:\n", warning ? "warning" : "error", line);
        mr_test_print_errors(errs);
        fail();
    }
}

/* The override set the round-trip tests save: every shape an entry takes. */
static void fill_sample(struct mr_overrides *ov)
{
    assert_int_equal(mr_overrides_set_drain(ov, "eu-west-a", MR_DRAIN_SOFT, DEADLINE, NOW), 0);
    assert_int_equal(mr_overrides_set_weight(ov, "eu-west-a", 25), 0);
    assert_int_equal(mr_overrides_set_drain(ov, "us-east-b", MR_DRAIN_HARD, 0, NOW + 5), 0);
    assert_int_equal(mr_overrides_set_weight(ov, "ap-south-a", 0.1), 0);
    assert_int_equal(mr_overrides_set_weight(ov, "ap-north-a", 0), 0);
}

static void expect_sample(const struct mr_overrides *ov)
{
    const struct mr_override *o;

    assert_int_equal(ov->n, 4);
    /* Sorted by name, whatever order they were set in. */
    assert_string_equal(ov->items[0].cluster, "ap-north-a");
    assert_string_equal(ov->items[1].cluster, "ap-south-a");
    assert_string_equal(ov->items[2].cluster, "eu-west-a");
    assert_string_equal(ov->items[3].cluster, "us-east-b");

    o = mr_overrides_get(ov, "eu-west-a");
    assert_non_null(o);
    assert_true(o->has_drain);
    assert_int_equal(o->drain, MR_DRAIN_SOFT);
    assert_int_equal(o->drain_deadline_s, DEADLINE);
    assert_int_equal(o->drained_at_s, NOW);
    assert_true(o->has_weight);
    assert_true(o->weight == 25);

    o = mr_overrides_get(ov, "us-east-b");
    assert_non_null(o);
    assert_true(o->has_drain);
    assert_int_equal(o->drain, MR_DRAIN_HARD);
    assert_int_equal(o->drain_deadline_s, 0);
    assert_int_equal(o->drained_at_s, NOW + 5);
    assert_false(o->has_weight);

    o = mr_overrides_get(ov, "ap-south-a");
    assert_non_null(o);
    assert_false(o->has_drain);
    assert_true(o->has_weight);
    assert_true(o->weight == 0.1);

    o = mr_overrides_get(ov, "ap-north-a");
    assert_non_null(o);
    assert_true(o->has_weight);
    assert_true(o->weight == 0);
}

/* ---- the set ---- */

static void test_set_and_clear(void **state)
{
    struct mr_overrides ov = {0};
    const struct mr_override *o;

    assert_null(mr_overrides_get(&ov, "a"));
    assert_int_equal(mr_overrides_set_weight(&ov, "c", 3), 0);
    assert_int_equal(mr_overrides_set_drain(&ov, "a", MR_DRAIN_SOFT, 0, NOW), 0);
    assert_int_equal(mr_overrides_set_weight(&ov, "b", 2), 0);
    assert_int_equal(ov.n, 3);
    assert_string_equal(ov.items[0].cluster, "a");
    assert_string_equal(ov.items[1].cluster, "b");
    assert_string_equal(ov.items[2].cluster, "c");

    /* A second drain changes mode and deadline but not when it began. */
    assert_int_equal(mr_overrides_set_drain(&ov, "a", MR_DRAIN_HARD, DEADLINE, NOW + 60), 0);
    o = mr_overrides_get(&ov, "a");
    assert_int_equal(o->drain, MR_DRAIN_HARD);
    assert_int_equal(o->drain_deadline_s, DEADLINE);
    assert_int_equal(o->drained_at_s, NOW);
    assert_false(o->has_weight);

    /* Both on one entry; clearing one keeps the entry. */
    assert_int_equal(mr_overrides_set_weight(&ov, "a", 7), 0);
    assert_int_equal(ov.n, 3);
    assert_int_equal(mr_overrides_clear_drain(&ov, "a"), 0);
    o = mr_overrides_get(&ov, "a");
    assert_non_null(o);
    assert_false(o->has_drain);
    assert_true(o->weight == 7);

    /* Clearing the last thing removes the entry. */
    assert_int_equal(mr_overrides_clear_weight(&ov, "a"), 0);
    assert_null(mr_overrides_get(&ov, "a"));
    assert_int_equal(ov.n, 2);
    assert_string_equal(ov.items[0].cluster, "b");

    /* Clearing what is not there is fine and changes nothing. */
    assert_int_equal(mr_overrides_clear_drain(&ov, "b"), 0);
    assert_int_equal(mr_overrides_clear_weight(&ov, "zzz"), 0);
    assert_int_equal(mr_overrides_clear_drain(&ov, "zzz"), 0);
    assert_int_equal(ov.n, 2);

    /* MR_DRAIN_NONE undrains. */
    assert_int_equal(mr_overrides_set_drain(&ov, "d", MR_DRAIN_SOFT, 0, NOW), 0);
    assert_int_equal(ov.n, 3);
    assert_int_equal(mr_overrides_set_drain(&ov, "d", MR_DRAIN_NONE, 0, NOW), 0);
    assert_null(mr_overrides_get(&ov, "d"));

    assert_int_equal(mr_overrides_clear_weight(&ov, "b"), 0);
    assert_int_equal(mr_overrides_clear_weight(&ov, "c"), 0);
    assert_int_equal(ov.n, 0);
    assert_null(ov.items);
    mr_overrides_clear(&ov);
    mr_overrides_clear(NULL);
}

static void test_copy(void **state)
{
    struct mr_overrides ov = {0}, dup = {0};

    assert_int_equal(mr_overrides_set_weight(&dup, "old", 1), 0);
    fill_sample(&ov);
    assert_int_equal(mr_overrides_copy(&dup, &ov), 0);
    assert_null(mr_overrides_get(&dup, "old"));
    expect_sample(&dup);
    /* Deep: the copy outlives changes to the original. */
    assert_ptr_not_equal(dup.items[0].cluster, ov.items[0].cluster);
    mr_overrides_clear(&ov);
    expect_sample(&dup);
    assert_int_equal(mr_overrides_copy(&dup, &ov), 0);
    assert_int_equal(dup.n, 0);
    mr_overrides_clear(&dup);
}

/* ---- save and load ---- */

static void test_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0}, back = {0};
    struct mr_errors errs = {0};
    char err[256] = "";
    struct stat st;
    char *text;

    fill_sample(&ov);
    assert_int_equal(mr_overrides_save(&ov, fx->path, err, sizeof(err)), 0);
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);

    text = read_text(fx->path);
    assert_non_null(text);
    /* Human-readable: integral weights stay integers, 0.1 stays 0.1, no
     * deadline means no key, and clusters appear in name order. */
    assert_non_null(strstr(text, "\"version\": 1"));
    assert_non_null(strstr(text, "\"saved\": \"20"));
    assert_non_null(strstr(text, "\"weight\": 25\n"));
    assert_non_null(strstr(text, "\"weight\": 0.1\n"));
    assert_non_null(strstr(text, "\"deadline\": 1795767254"));
    assert_true(strstr(text, "ap-north-a") < strstr(text, "ap-south-a"));
    assert_true(strstr(text, "ap-south-a") < strstr(text, "eu-west-a"));
    assert_true(strstr(text, "eu-west-a") < strstr(text, "us-east-b"));
    assert_null(strstr(strstr(text, "us-east-b"), "deadline"));
    assert_int_equal(text[strlen(text) - 1], '\n');
    free(text);

    assert_int_equal(mr_overrides_set_weight(&back, "stale", 1), 0);
    assert_int_equal(mr_overrides_load(&back, fx->path, &errs), 0);
    mr_test_print_errors(&errs);
    assert_int_equal(errs.n_errors + errs.n_warnings, 0);
    expect_sample(&back);

    mr_overrides_clear(&ov);
    mr_overrides_clear(&back);
}

static void test_save_empty_set(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0};
    struct mr_errors errs = {0};
    char err[256] = "";

    assert_int_equal(mr_overrides_save(&ov, fx->path, err, sizeof(err)), 0);
    assert_int_equal(mr_overrides_set_weight(&ov, "stale", 1), 0);
    assert_int_equal(mr_overrides_load(&ov, fx->path, &errs), 0);
    assert_int_equal(errs.n_errors + errs.n_warnings, 0);
    assert_int_equal(ov.n, 0);
}

static void test_save_overwrites_and_leaves_no_temp(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0}, back = {0};
    struct mr_errors errs = {0};
    char err[256] = "", names[512];

    mr_test_write_text(fx->path, "old contents\n");
    fill_sample(&ov);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mr_overrides_save(&ov, fx->path, err, sizeof(err)), 0);
        list_dir(fx->dir, names, sizeof(names));
        assert_string_equal(names, "state.json");
    }
    assert_int_equal(mr_overrides_clear_weight(&ov, "ap-south-a"), 0);
    assert_int_equal(mr_overrides_save(&ov, fx->path, err, sizeof(err)), 0);
    assert_int_equal(mr_overrides_load(&back, fx->path, &errs), 0);
    assert_int_equal(back.n, 3);
    assert_null(mr_overrides_get(&back, "ap-south-a"));
    list_dir(fx->dir, names, sizeof(names));
    assert_string_equal(names, "state.json");

    mr_overrides_clear(&ov);
    mr_overrides_clear(&back);
}

static void test_save_into_missing_directory_fails(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0};
    char path[PATH_MAX + 32], err[PATH_MAX + 128] = "", expected[PATH_MAX + 128], names[512];

    fill_sample(&ov);
    snprintf(path, sizeof(path), "%s/nowhere/state.json", fx->dir);
    assert_int_equal(mr_overrides_save(&ov, path, err, sizeof(err)), -1);
    snprintf(expected, sizeof(expected), "cannot write %s: %s", path, strerror(ENOENT));
    assert_string_equal(err, expected);
    list_dir(fx->dir, names, sizeof(names));
    assert_string_equal(names, "");
    mr_overrides_clear(&ov);
}

/* rename() onto a directory fails after the temporary file is complete: the
 * temporary file must go and what was at PATH must stay. */
static void test_save_rename_failure_keeps_old(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0};
    char err[PATH_MAX + 128] = "", expected[PATH_MAX + 128], inner[PATH_MAX + 16], names[512];
    char *text;

    fill_sample(&ov);
    assert_int_equal(mkdir(fx->path, 0755), 0);
    snprintf(inner, sizeof(inner), "%s/keep", fx->path);
    mr_test_write_text(inner, "old\n");

    assert_int_equal(mr_overrides_save(&ov, fx->path, err, sizeof(err)), -1);
    snprintf(expected, sizeof(expected), "cannot write %s: %s", fx->path, strerror(EISDIR));
    assert_string_equal(err, expected);
    list_dir(fx->dir, names, sizeof(names));
    assert_string_equal(names, "state.json");
    text = read_text(inner);
    assert_string_equal(text, "old\n");
    free(text);
    mr_overrides_clear(&ov);
}

/* A write that fails midway (here the file size limit, which binds root
 * too, standing in for a full disk) leaves the old file byte for byte. */
static void test_save_write_failure_keeps_old(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0};
    char err[PATH_MAX + 128] = "", expected[PATH_MAX + 128], names[512];
    struct rlimit saved, small;
    void (*old_handler)(int);
    char *text;
    int rc;

    mr_test_write_text(fx->path, "{\"version\": 1, \"clusters\": {}}\n");
    fill_sample(&ov);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 16;
    old_handler = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    rc = mr_overrides_save(&ov, fx->path, err, sizeof(err));
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);

    assert_int_equal(rc, -1);
    snprintf(expected, sizeof(expected), "cannot write %s: %s", fx->path, strerror(EFBIG));
    assert_string_equal(err, expected);
    text = read_text(fx->path);
    assert_string_equal(text, "{\"version\": 1, \"clusters\": {}}\n");
    free(text);
    list_dir(fx->dir, names, sizeof(names));
    assert_string_equal(names, "state.json");
    mr_overrides_clear(&ov);
}

/* Where permissions bind (not root), a read-only directory fails too. */
static void test_save_read_only_directory_fails(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0};
    char err[PATH_MAX + 128] = "", expected[PATH_MAX + 128], names[512];
    char *text;

    if (geteuid() == 0)
        skip();
    mr_test_write_text(fx->path, "old\n");
    fill_sample(&ov);
    assert_int_equal(chmod(fx->dir, 0555), 0);
    assert_int_equal(mr_overrides_save(&ov, fx->path, err, sizeof(err)), -1);
    assert_int_equal(chmod(fx->dir, 0700), 0);
    snprintf(expected, sizeof(expected), "cannot write %s: %s", fx->path, strerror(EACCES));
    assert_string_equal(err, expected);
    text = read_text(fx->path);
    assert_string_equal(text, "old\n");
    free(text);
    list_dir(fx->dir, names, sizeof(names));
    assert_string_equal(names, "state.json");
    mr_overrides_clear(&ov);
}

static void test_load_missing_file(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0};
    struct mr_errors errs = {0};

    assert_int_equal(mr_overrides_set_weight(&ov, "stale", 1), 0);
    assert_int_equal(mr_overrides_load(&ov, fx->path, &errs), 0);
    assert_int_equal(ov.n, 0);
    assert_int_equal(errs.n_errors + errs.n_warnings, 0);
}

static void test_load_unreadable(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0};
    struct mr_errors errs = {0};
    char expected[PATH_MAX + 128];

    assert_int_equal(mkdir(fx->path, 0755), 0);
    assert_int_equal(mr_overrides_load(&ov, fx->path, &errs), -1);
    snprintf(expected, sizeof(expected), "state_file: cannot read %s: %s", fx->path,
             strerror(EISDIR));
    assert_int_equal(errs.n_errors, 1);
    expect_line(&errs, false, expected);
    assert_int_equal(ov.n, 0);
    mr_errors_clear(&errs);
}

static void test_load_corrupt_json(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0};
    struct mr_errors errs = {0};
    char prefix[PATH_MAX + 64];

    mr_test_write_text(fx->path, "{\"version\": 1,\n \"clusters\": {\"a\": {\"weight\": 2}},\n}\n");
    assert_int_equal(mr_overrides_set_weight(&ov, "stale", 1), 0);
    assert_int_equal(mr_overrides_load(&ov, fx->path, &errs), -1);
    assert_int_equal(ov.n, 0);
    assert_int_equal(errs.n_errors, 1);
    snprintf(prefix, sizeof(prefix), "state_file: %s: line 3, column ", fx->path);
    if (strncmp(errs.errors[0], prefix, strlen(prefix)) != 0) {
        mr_test_print_errors(&errs);
        fail();
    }
    mr_errors_clear(&errs);
}

static void test_load_wrong_version(void **state)
{
    static const char *const docs[] = {
        "{\"version\": 2, \"clusters\": {\"a\": {\"weight\": 2}}}",
        "{\"clusters\": {\"a\": {\"weight\": 2}}}",
        "{\"version\": \"1\", \"clusters\": {}}",
    };
    struct fixture *fx = *state;

    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct mr_overrides ov = {0};
        struct mr_errors errs = {0};

        mr_test_write_text(fx->path, docs[i]);
        assert_int_equal(mr_overrides_load(&ov, fx->path, &errs), -1);
        assert_int_equal(ov.n, 0);
        assert_int_equal(errs.n_errors, 1);
        expect_line(&errs, false, "state_file: version: expected 1");
        mr_errors_clear(&errs);
    }
}

/* One good entry among bad ones: the good one applies, each bad one is
 * reported with its path, and unknown keys only warn. */
static void test_load_good_and_bad(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0};
    struct mr_errors errs = {0};
    const struct mr_override *o;

    mr_test_write_text(fx->path,
                       "{\"version\": 1, \"saved\": \"2026-11-27T08:00:00Z\", \"colour\": 1,\n"
                       " \"clusters\": {\n"
                       "  \"eu-west-a\": {\"drain\": {\"mode\": \"soft\", \"deadline\": 1795767254,"
                       "                 \"since\": 1795760000, \"why\": \"x\"}, \"weight\": 25},\n"
                       "  \"eu-west-b\": {\"drain\": {\"mode\": \"gentle\"}},\n"
                       "  \"eu-west-c\": {\"weight\": -1},\n"
                       "  \"eu-west-d\": {\"drain\": {\"mode\": \"hard\", \"deadline\": \"soon\"},"
                       "                 \"weight\": 3}\n"
                       " }}\n");
    assert_int_equal(mr_overrides_load(&ov, fx->path, &errs), -1);

    assert_int_equal(ov.n, 1);
    o = mr_overrides_get(&ov, "eu-west-a");
    assert_non_null(o);
    assert_true(o->has_drain);
    assert_int_equal(o->drain, MR_DRAIN_SOFT);
    assert_int_equal(o->drain_deadline_s, 1795767254);
    assert_int_equal(o->drained_at_s, 1795760000);
    assert_true(o->has_weight);
    assert_true(o->weight == 25);

    assert_int_equal(errs.n_errors, 3);
    expect_line(&errs, false,
                "state_file: clusters.eu-west-b.drain.mode: expected \"soft\" or \"hard\"");
    expect_line(&errs, false, "state_file: clusters.eu-west-c.weight: expected a number >= 0");
    expect_line(&errs, false,
                "state_file: clusters.eu-west-d.drain.deadline: expected an integer >= 0 "
                "(unix seconds)");
    assert_int_equal(errs.n_warnings, 2);
    expect_line(&errs, true, "state_file: colour: unknown key, ignored");
    expect_line(&errs, true, "state_file: clusters.eu-west-a.drain.why: unknown key, ignored");
    mr_errors_clear(&errs);
    mr_overrides_clear(&ov);
}

/* Each malformed document and the one line it must produce. */
static void test_load_messages(void **state)
{
    static const struct {
        const char *clusters; /* the value of "clusters" */
        bool warning;
        const char *line;
    } cases[] = {
        {"[]", false, "state_file: clusters: expected an object"},
        {"{\"a\": 3}", false, "state_file: clusters.a: expected an object"},
        {"{\"\": {\"weight\": 1}}", false, "state_file: clusters: empty cluster name"},
        {"{\"a\": {\"drain\": \"soft\"}}", false,
         "state_file: clusters.a.drain: expected an object"},
        {"{\"a\": {\"drain\": {}}}", false, "state_file: clusters.a.drain.mode: required"},
        {"{\"a\": {\"drain\": {\"mode\": 1}}}", false,
         "state_file: clusters.a.drain.mode: expected \"soft\" or \"hard\""},
        {"{\"a\": {\"drain\": {\"mode\": \"hard\", \"since\": -5}}}", false,
         "state_file: clusters.a.drain.since: expected an integer >= 0 (unix seconds)"},
        {"{\"a\": {\"drain\": {\"mode\": \"hard\", \"deadline\": 1.5}}}", false,
         "state_file: clusters.a.drain.deadline: expected an integer >= 0 (unix seconds)"},
        {"{\"a\": {\"weight\": \"25\"}}", false,
         "state_file: clusters.a.weight: expected a number >= 0"},
        {"{\"a\": {\"weight\": null}}", false,
         "state_file: clusters.a.weight: expected a number >= 0"},
        {"{\"a\": {}}", true, "state_file: clusters.a: neither drain nor weight, ignored"},
        {"{\"a\": {\"wieght\": 2}}", true, "state_file: clusters.a.wieght: unknown key, ignored"},
    };
    struct fixture *fx = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mr_overrides ov = {0};
        struct mr_errors errs = {0};
        char doc[512];
        int rc;

        snprintf(doc, sizeof(doc), "{\"version\": 1, \"clusters\": %s}", cases[i].clusters);
        mr_test_write_text(fx->path, doc);
        rc = mr_overrides_load(&ov, fx->path, &errs);
        if (rc != (cases[i].warning ? 0 : -1) || errs.n_errors + errs.n_warnings < 1) {
            fprintf(stderr, "  case %zu: %s: rc %d\n", i, doc, rc);
            mr_test_print_errors(&errs);
            fail();
        }
        expect_line(&errs, cases[i].warning, cases[i].line);
        assert_int_equal(ov.n, 0);
        mr_errors_clear(&errs);
    }
}

/* ---- apply ---- */

static void test_apply(void **state)
{
    struct fixture *fx = *state;
    struct mr_overrides ov = {0};
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;
    const struct mr_cluster *eu_a, *us_a, *us_b;
    char keys[PATH_MAX + 16];

    snprintf(keys, sizeof(keys), "%s/session.keys", fx->dir);
    mr_test_write_text(keys, "test1:" MR_TEST_SECRET32 "\n");
    assert_int_equal(chmod(keys, 0600), 0); /* a keys file others may read warns */
    snap = mr_conf_load_string(base_config, fx->dir, &errs);
    mr_test_print_errors(&errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_errors + errs.n_warnings, 0);

    assert_int_equal(mr_overrides_set_drain(&ov, "eu-a", MR_DRAIN_HARD, DEADLINE, NOW), 0);
    assert_int_equal(mr_overrides_set_weight(&ov, "us-b", 5), 0);
    assert_int_equal(mr_overrides_set_drain(&ov, "gone", MR_DRAIN_SOFT, 0, NOW), 0);
    mr_overrides_apply(&ov, snap, &errs);

    eu_a = mr_snap_cluster(snap, "eu-a");
    us_a = mr_snap_cluster(snap, "us-a");
    us_b = mr_snap_cluster(snap, "us-b");
    assert_int_equal(eu_a->drain, MR_DRAIN_HARD);
    assert_int_equal(eu_a->drain_deadline_s, DEADLINE);
    assert_true(eu_a->weight == 1);
    assert_int_equal(us_a->drain, MR_DRAIN_NONE);
    assert_true(us_a->weight == 1);
    assert_int_equal(us_b->drain, MR_DRAIN_NONE);
    assert_true(us_b->weight == 5);
    assert_true(us_b->configured_weight == 2);

    assert_int_equal(errs.n_errors, 0);
    assert_int_equal(errs.n_warnings, 1);
    expect_line(&errs, true,
                "state_file: cluster \"gone\" does not exist in the configuration; its "
                "override is kept but not applied");
    /* Kept: a later configuration may bring the cluster back. */
    assert_non_null(mr_overrides_get(&ov, "gone"));

    mr_errors_clear(&errs);
    mr_overrides_clear(&ov);
    mr_snap_free(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_clear),
        cmocka_unit_test(test_copy),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_empty_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_overwrites_and_leaves_no_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_into_missing_directory_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_rename_failure_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_write_failure_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_read_only_directory_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_corrupt_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_wrong_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_good_and_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
