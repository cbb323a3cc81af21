/* tests/unit/test_accesslog.c: the access log's line format
 * (router/accesslog.c, mr_accesslog_format): every field in its place,
 * nulls for what is unknown, and the escaping of method and path exactly
 * as the log has always written it (control bytes, quotes, backslashes and
 * bytes >= 0x7f as \u00xx), and the "error" field only where a cause is
 * given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <cmocka.h>

#include "router/accesslog.h"

/* The line mr_accesslog_format writes for e, as a string (caller frees). */
static char *format(const struct mr_accesslog_entry *e)
{
    struct evbuffer *out = evbuffer_new();
    size_t len;
    char *line;

    assert_non_null(out);
    mr_accesslog_format(out, e);
    len = evbuffer_get_length(out);
    line = calloc(1, len + 1);
    assert_non_null(line);
    evbuffer_remove(out, line, len);
    evbuffer_free(out);
    return line;
}

/* 2026-01-02T03:04:05.678Z */
static const struct timeval WHEN = {1767323045, 678901};

static void test_every_field(void **state)
{
    struct mr_accesslog_entry e = {
        .time = WHEN,
        .client = "192.0.2.7",
        .method = "GET",
        .method_len = 3,
        .path = "/a?b=1",
        .path_len = 6,
        .status = 200,
        .bytes_in = 78,
        .bytes_out = 1234,
        .took_ns = 1500000,
        .decision = "geo",
        .region = "eu",
        .cluster = "eu-a",
        .endpoint = "127.0.0.1:8001",
        .country = "GB",
        .generation = 3,
    };
    char *line = format(&e);
    (void)state;

    assert_string_equal(
        line, "{\"time\":\"2026-01-02T03:04:05.678Z\",\"client\":\"192.0.2.7\",\"method\":\"GET\","
              "\"path\":\"/a?b=1\",\"status\":200,\"bytes_in\":78,\"bytes_out\":1234,"
              "\"duration_ms\":1.500,\"decision\":\"geo\",\"region\":\"eu\",\"cluster\":\"eu-a\","
              "\"endpoint\":\"127.0.0.1:8001\",\"country\":\"GB\",\"generation\":3}\n");
    free(line);
}

/* A request refused before a decision: no method or path, nothing picked. */
static void test_unknowns_are_null(void **state)
{
    struct mr_accesslog_entry e = {
        .time = {0, 0},
        .client = "",
        .status = 400,
        .bytes_in = 5,
        .decision = "none",
        .country = "",
        .generation = 18446744073709551615ULL,
    };
    char *line = format(&e);
    (void)state;

    assert_string_equal(line,
                        "{\"time\":\"1970-01-01T00:00:00.000Z\",\"client\":\"\",\"method\":\"\","
                        "\"path\":\"\","
                        "\"status\":400,\"bytes_in\":5,\"bytes_out\":0,\"duration_ms\":0.000,"
                        "\"decision\":\"none\",\"region\":null,\"cluster\":null,\"endpoint\":null,"
                        "\"country\":null,\"generation\":18446744073709551615}\n");
    free(line);
}

/* A failed exchange names its cause last; the rest of the line is as
 * without it. */
static void test_error_field(void **state)
{
    struct mr_accesslog_entry e = {
        .time = WHEN,
        .client = "127.0.0.1",
        .method = "GET",
        .method_len = 3,
        .path = "/x",
        .path_len = 2,
        .status = 502,
        .bytes_in = 30,
        .bytes_out = 120,
        .took_ns = 2000,
        .decision = "geo",
        .region = "r1",
        .cluster = "main",
        .endpoint = "127.0.0.1:9",
        .generation = 1,
        .error = "upstream connect failed",
    };
    char *line = format(&e);
    (void)state;

    assert_string_equal(
        line, "{\"time\":\"2026-01-02T03:04:05.678Z\",\"client\":\"127.0.0.1\",\"method\":\"GET\","
              "\"path\":\"/x\",\"status\":502,\"bytes_in\":30,\"bytes_out\":120,"
              "\"duration_ms\":0.002,\"decision\":\"geo\",\"region\":\"r1\",\"cluster\":\"main\","
              "\"endpoint\":\"127.0.0.1:9\",\"country\":null,\"generation\":1,"
              "\"error\":\"upstream connect failed\"}\n");
    free(line);
    e.error = NULL;
    line = format(&e);
    assert_null(strstr(line, "error"));
    free(line);
}

/* Method and path are escaped by length (a NUL inside is a byte like any
 * other); printable ASCII but '"' and '\\' passes. */
static void test_escaping(void **state)
{
    static const char path[] = "/\x01\t\n\"\\\x7f\x80\xff\0z~ ";
    struct mr_accesslog_entry e = {
        .time = WHEN,
        .client = "::1",
        .method = "G\"T",
        .method_len = 3,
        .path = path,
        .path_len = sizeof(path) - 1,
        .status = 0,
        .decision = "sticky",
        .generation = 1,
    };
    char *line = format(&e);
    const char *p;
    (void)state;

    p = strstr(line, "\"method\":");
    assert_non_null(p);
    assert_memory_equal(p,
                        "\"method\":\"G\\u0022T\",\"path\":\"/\\u0001\\u0009\\u000a\\u0022"
                        "\\u005c\\u007f\\u0080\\u00ff\\u0000z~ \",\"status\":0,",
                        strlen("\"method\":\"G\\u0022T\",\"path\":\"/\\u0001\\u0009\\u000a"
                               "\\u0022\\u005c\\u007f\\u0080\\u00ff\\u0000z~ \",\"status\":0,"));
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_field),
        cmocka_unit_test(test_unknowns_are_null),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_error_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
