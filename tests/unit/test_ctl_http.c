/*
 * tests/unit/test_ctl_http.c: meridianctl's reading of the admin API's
 * answers (ctl/http.c): mr_ctl_http_parse over canned bytes, and
 * mr_ctl_http_read over a socketpair whose far end sends canned bytes and
 * closes, with the message it prints on stderr.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl/http.h"

#define AUTHORITY "127.0.0.1:9090"

/* ---- mr_ctl_http_parse ---- */

static const struct {
    const char *name;
    const char *raw;
    bool eof;
    int rc;           /* 1 complete, 0 more needed, -1 malformed */
    int status;       /* when complete */
    const char *body; /* when complete */
    const char *why;  /* when malformed */
} parse_cases[] = {
    {"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"a\": 1}", false, 1, 200,
     "{\"a\": 1}", NULL},
    {"content-length, bytes beyond it ignored",
     "HTTP/1.1 200 OK\r\ncontent-length:  2 \r\n\r\n{}garbage", false, 1, 200, "{}", NULL},
    {"content-length, short, open", "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"a\"", false, 0,
     0, NULL, NULL},
    {"content-length, short, closed", "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"a\"", true,
     -1, 0, NULL, "the answer ended before its Content-Length"},
    {"chunked, extensions and trailers",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "3;x=y\r\n{\"a\r\nA\r\n\": [1, 2]}\r\n0\r\nX-Trailer: t\r\n\r\n",
     false, 1, 200, "{\"a\": [1, 2]}", NULL},
    {"chunked wins over a length",
     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
     "Transfer-Encoding: gzip, CHUNKED\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
     false, 1, 200, "{}", NULL},
    {"chunked, cut, closed", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}", true,
     -1, 0, NULL, "the answer ended inside its chunked body"},
    {"chunked, bad size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n",
     false, -1, 0, NULL, "malformed chunked body"},
    {"chunked, no CRLF after the data",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}xx0\r\n\r\n", false, -1, 0, NULL,
     "malformed chunked body"},
    {"close-delimited, open", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}", false, 0, 0, NULL,
     NULL},
    {"close-delimited, closed", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"b\": 2}", true, 1,
     200, "{\"b\": 2}", NULL},
    {"no body for 204", "HTTP/1.1 204 No Content\r\n\r\n", false, 1, 204, "", NULL},
    {"non-JSON error body", "HTTP/1.0 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nBad Gateway",
     false, 1, 502, "Bad Gateway", NULL},
    {"status line without a reason", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", false, 1, 404, "",
     NULL},
    {"head, open", "HTTP/1.1 200 OK\r\nContent-Le", false, 0, 0, NULL, NULL},
    {"head, closed", "HTTP/1.1 200 OK\r\nContent-Le", true, -1, 0, NULL,
     "the answer ended inside its head"},
    {"nothing, closed", "", true, -1, 0, NULL,
     "the admin API closed the connection without answering"},
    {"not HTTP", "hello there\r\n\r\n", false, -1, 0, NULL, "not an HTTP/1.x answer"},
    {"HTTP/2", "HTTP/2 200\r\n\r\n", false, -1, 0, NULL, "not an HTTP/1.x answer"},
    {"status of two digits", "HTTP/1.1 20 OK\r\n\r\n", false, -1, 0, NULL,
     "not an HTTP/1.x answer"},
    {"bad content-length", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n{}", false, -1, 0, NULL,
     "bad Content-Length"},
    {"empty content-length", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n{}", false, -1, 0, NULL,
     "bad Content-Length"},
    {"two content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
     false, -1, 0, NULL, "two different Content-Length headers"},
    {"same content-length twice",
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", false, 1, 200, "{}",
     NULL},
};

static void test_parse_table(void **state)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        struct mr_ctl_answer ans;
        const char *why = NULL;
        int rc;

        memset(&ans, 0, sizeof ans);
        rc = mr_ctl_http_parse(parse_cases[i].raw, strlen(parse_cases[i].raw), parse_cases[i].eof,
                               &ans, &why);
        if (rc != parse_cases[i].rc) {
            fail_msg("%s: rc %d, expected %d (%s)", parse_cases[i].name, rc, parse_cases[i].rc,
                     why != NULL ? why : "");
        }
        if (rc == 1) {
            assert_int_equal(ans.status, parse_cases[i].status);
            assert_non_null(ans.body);
            assert_int_equal(ans.body_len, strlen(parse_cases[i].body));
            assert_string_equal(ans.body, parse_cases[i].body);
            assert_null(ans.json);
            mr_ctl_answer_free(&ans);
        } else if (rc < 0) {
            assert_non_null(why);
            assert_string_equal(why, parse_cases[i].why);
        }
    }
}

/* Every proper prefix of a whole answer asks for more bytes; the whole
 * answer is complete: the parser never answers early from a partial read. */
static void test_parse_prefixes_need_more(void **state)
{
    static const char *const answers[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"a\": 1}",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n5\r\n\": 1}\r\n"
        "0\r\n\r\n",
    };

    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        size_t len = strlen(answers[i]);
        struct mr_ctl_answer ans;
        const char *why = NULL;

        for (size_t n = 0; n < len; n++) {
            memset(&ans, 0, sizeof ans);
            if (mr_ctl_http_parse(answers[i], n, false, &ans, &why) != 0) {
                fail_msg("answer %zu: a prefix of %zu bytes is not \"need more\"", i, n);
            }
        }
        memset(&ans, 0, sizeof ans);
        assert_int_equal(mr_ctl_http_parse(answers[i], len, false, &ans, &why), 1);
        assert_string_equal(ans.body, "{\"a\": 1}");
        mr_ctl_answer_free(&ans);
    }
}

/* ---- mr_ctl_http_read over a socketpair ---- */

struct read_result {
    int rc;
    struct mr_ctl_answer ans;
    char err[512]; /* what it printed on stderr */
};

/* Sends raw from the far end of a socketpair and closes it, then reads with
 * mr_ctl_http_read, stderr captured. raw must fit the socket buffer. */
static void read_canned(const char *raw, size_t len, int send_err, struct read_result *out)
{
    int sv[2], saved;
    FILE *err = tmpfile();
    size_t n;

    assert_non_null(err);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(send(sv[1], raw, len, 0), (ssize_t)len);
    close(sv[1]);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(err), STDERR_FILENO) >= 0);
    out->rc = mr_ctl_http_read(sv[0], AUTHORITY, send_err, &out->ans);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(sv[0]);
    rewind(err);
    n = fread(out->err, 1, sizeof out->err - 1, err);
    out->err[n] = '\0';
    fclose(err);
}

static void test_read_content_length_json(void **state)
{
    static const char raw[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: 16\r\nConnection: close\r\n\r\n{\"generation\":3}";
    struct read_result r;

    read_canned(raw, sizeof raw - 1, 0, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    assert_int_equal(r.ans.status, 200);
    assert_true(json_is_object(r.ans.json));
    assert_int_equal(json_integer_value(json_object_get(r.ans.json, "generation")), 3);
    mr_ctl_answer_free(&r.ans);
    assert_null(r.ans.body);
    assert_null(r.ans.json);
}

static void test_read_chunked_json(void **state)
{
    static const char raw[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "7\r\n{\"chang\r\n9\r\nes\": []}\n\r\n0\r\n\r\n";
    struct read_result r;

    read_canned(raw, sizeof raw - 1, 0, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.ans.body, "{\"changes\": []}\n");
    assert_true(json_is_array(json_object_get(r.ans.json, "changes")));
    mr_ctl_answer_free(&r.ans);
}

static void test_read_close_delimited(void **state)
{
    static const char raw[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"ok\": true}";
    struct read_result r;

    read_canned(raw, sizeof raw - 1, 0, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.ans.body, "{\"ok\": true}");
    assert_true(json_is_true(json_object_get(r.ans.json, "ok")));
    mr_ctl_answer_free(&r.ans);
}

/* A proxy's error page: the status and the text are kept for the refusal
 * message, and there is no JSON. */
static void test_read_non_json_error_body(void **state)
{
    static const char raw[] = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 16\r\n\r\n"
                              "upstream is down";
    struct read_result r;

    read_canned(raw, sizeof raw - 1, 0, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.ans.status, 502);
    assert_string_equal(r.ans.body, "upstream is down");
    assert_null(r.ans.json);
    mr_ctl_answer_free(&r.ans);
}

static void test_read_truncated(void **state)
{
    static const char raw[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"generation\"";
    struct read_result r;

    read_canned(raw, sizeof raw - 1, 0, &r);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err, "meridianctl: bad answer from the admin API at " AUTHORITY
                               ": the answer ended before its Content-Length\n");
}

static void test_read_closed_without_answer(void **state)
{
    struct read_result r;

    read_canned("", 0, 0, &r);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err, "meridianctl: bad answer from the admin API at " AUTHORITY
                               ": the admin API closed the connection without answering\n");
}

/* The request was cut short (EPIPE): with no answer that is the error
 * reported; an answer that came anyway (an early 401) is read as usual. */
static void test_read_after_broken_pipe(void **state)
{
    static const char raw[] = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 27\r\n\r\n"
                              "{\"error\": \"bad token ...\"}\n";
    struct read_result r;

    read_canned("", 0, EPIPE, &r);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err,
                        "meridianctl: sending to the admin API at " AUTHORITY ": Broken pipe\n");
    read_canned(raw, sizeof raw - 1, EPIPE, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    assert_int_equal(r.ans.status, 401);
    assert_string_equal(json_string_value(json_object_get(r.ans.json, "error")), "bad token ...");
    mr_ctl_answer_free(&r.ans);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_prefixes_need_more),
        cmocka_unit_test(test_read_content_length_json),
        cmocka_unit_test(test_read_chunked_json),
        cmocka_unit_test(test_read_close_delimited),
        cmocka_unit_test(test_read_non_json_error_body),
        cmocka_unit_test(test_read_truncated),
        cmocka_unit_test(test_read_closed_without_answer),
        cmocka_unit_test(test_read_after_broken_pipe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
