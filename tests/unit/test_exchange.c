/* tests/unit/test_exchange.c: the exchange's decisions (router/exchange.c).
 *
 * When a request may be sent again (the README's retry rule: any request
 * after a connect failure, an idempotent one after a failure before any
 * response byte, never twice, never once a response byte came, never when
 * the body forwarded outgrew limits.retry_body_bytes), what is kept of the
 * body for that, where a retry goes (and how its counts move), the one
 * reset between requests, and the cause table that picks each failure's
 * status and names it in the access log. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>
#include <cmocka.h>

#include "tests/unit/testutil.h"
#include "router/exchange.h"
#include "router/lease.h"
#include "router/stats.h"

/* An exchange on its first attempt, nothing seen or dropped yet. */
static struct mr_exchange first_attempt(enum mr_http1_method method)
{
    struct mr_exchange x;

    memset(&x, 0, sizeof(x));
    x.method = method;
    x.attempts = 1;
    return x;
}

static void test_retry_rule_table(void **state)
{
    static const struct {
        const char *name;
        enum mr_http1_method method;
        int attempts;
        bool resp_seen, body_unkept, connect_failed;
        bool retry;
    } cases[] = {
        {"GET, connect failed", MR_METHOD_GET, 1, false, false, true, true},
        {"POST, connect failed: nothing reached the origin", MR_METHOD_POST, 1, false, false, true,
         true},
        {"PATCH, connect failed", MR_METHOD_PATCH, 1, false, false, true, true},
        {"GET, reused connection failed", MR_METHOD_GET, 1, false, false, false, true},
        {"HEAD, reused connection failed", MR_METHOD_HEAD, 1, false, false, false, true},
        {"PUT is idempotent", MR_METHOD_PUT, 1, false, false, false, true},
        {"DELETE is idempotent", MR_METHOD_DELETE, 1, false, false, false, true},
        {"OPTIONS is idempotent", MR_METHOD_OPTIONS, 1, false, false, false, true},
        {"TRACE is idempotent", MR_METHOD_TRACE, 1, false, false, false, true},
        {"POST after bytes went out: may have been acted on", MR_METHOD_POST, 1, false, false,
         false, false},
        {"PATCH after bytes went out", MR_METHOD_PATCH, 1, false, false, false, false},
        {"CONNECT after bytes went out", MR_METHOD_CONNECT, 1, false, false, false, false},
        {"an unknown method after bytes went out", MR_METHOD_OTHER, 1, false, false, false, false},
        {"GET after a response byte", MR_METHOD_GET, 1, true, false, false, false},
        {"connect failed after a response byte (never)", MR_METHOD_GET, 1, true, false, true,
         false},
        {"body past retry_body_bytes, connect failed", MR_METHOD_POST, 1, false, true, true, false},
        {"body past retry_body_bytes, idempotent", MR_METHOD_PUT, 1, false, true, false, false},
        {"second attempt, connect failed: one retry only", MR_METHOD_GET, 2, false, false, true,
         false},
        {"second attempt, idempotent", MR_METHOD_GET, 2, false, false, false, false},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mr_exchange x = first_attempt(cases[i].method);
        x.attempts = cases[i].attempts;
        x.resp_seen = cases[i].resp_seen;
        x.body_unkept = cases[i].body_unkept;
        if (mr_exchange_may_retry(&x, cases[i].connect_failed) != cases[i].retry)
            fail_msg("%s: expected %s", cases[i].name, cases[i].retry ? "retry" : "no retry");
    }
}

/* Queues n bytes of c to out and lets the exchange keep them. */
static void forward(struct mr_exchange *x, struct evbuffer *out, char c, size_t n, size_t limit)
{
    size_t from = evbuffer_get_length(out);
    char buf[256];

    assert_true(n <= sizeof(buf));
    memset(buf, c, n);
    evbuffer_add(out, buf, n);
    mr_exchange_keep_for_retry(x, out, from, limit);
}

static void test_body_kept_up_to_the_limit(void **state)
{
    struct mr_exchange x = first_attempt(MR_METHOD_POST);
    struct evbuffer *out = evbuffer_new();
    char kept[16];
    (void)state;

    evbuffer_add(out, "HEAD", 4); /* already queued: not body */
    forward(&x, out, 'a', 6, 10);
    forward(&x, out, 'b', 4, 10);
    assert_false(x.body_unkept);
    assert_int_equal(evbuffer_get_length(x.sent_body), 10);
    evbuffer_copyout(x.sent_body, kept, 10);
    assert_memory_equal(kept, "aaaaaabbbb", 10);
    assert_true(mr_exchange_may_retry(&x, true));

    forward(&x, out, 'c', 1, 10); /* one byte past retry_body_bytes */
    assert_true(x.body_unkept);
    assert_int_equal(evbuffer_get_length(x.sent_body), 0);
    assert_false(mr_exchange_may_retry(&x, true));
    forward(&x, out, 'd', 1, 10);
    assert_int_equal(evbuffer_get_length(x.sent_body), 0);
    assert_int_equal(evbuffer_get_length(out), 4 + 12); /* forwarding itself goes on */
    evbuffer_free(out);
    mr_exchange_free(&x);
}

static void test_body_not_kept_after_response_or_retry(void **state)
{
    struct mr_exchange x = first_attempt(MR_METHOD_PUT);
    struct evbuffer *out = evbuffer_new();
    (void)state;

    x.resp_seen = true;
    forward(&x, out, 'a', 5, 100);
    assert_true(x.sent_body == NULL || evbuffer_get_length(x.sent_body) == 0);
    x.resp_seen = false;
    x.attempts = 2; /* the retry is sent: there is no second one to keep it for */
    forward(&x, out, 'a', 5, 100);
    assert_true(x.sent_body == NULL || evbuffer_get_length(x.sent_body) == 0);
    evbuffer_free(out);
    mr_exchange_free(&x);
}

/* One reset for every request: nothing of the previous exchange's outcome
 * survives it, and the buffers kept across requests are emptied, not freed. */
static void test_begin_resets(void **state)
{
    struct mr_exchange x = first_attempt(MR_METHOD_POST);
    struct evbuffer *out = evbuffer_new();
    struct mr_sockaddr peer;
    (void)state;

    memset(&peer, 0, sizeof(peer));
    peer.len = 16;
    peer.ss.ss_family = AF_INET;
    forward(&x, out, 'a', 5, 100);
    x.attempts = 2;
    x.resp_seen = x.resp_started = x.req_done = x.body_forwarded = true;
    x.body_unkept = true;
    x.status = 502;
    x.cause = MR_CAUSE_CONNECT_FAILED;
    x.bytes_out = 99;
    x.log_method_len = 3;
    x.decision.reason = MR_PICK_GEO;

    mr_exchange_begin(&x, 42, &peer, 123456789);
    assert_int_equal(x.attempts, 0);
    assert_false(x.resp_seen || x.resp_started || x.req_done || x.body_forwarded || x.body_unkept);
    assert_true(x.unlogged);
    assert_int_equal(x.status, 0);
    assert_int_equal(x.cause, MR_CAUSE_NONE);
    assert_int_equal(x.bytes_in, 42);
    assert_int_equal(x.bytes_out, 0);
    assert_int_equal(x.log_method_len, 0);
    assert_int_equal(x.decision.reason, MR_PICK_NONE);
    assert_null(x.decision.cluster);
    assert_null(x.endpoint);
    assert_int_equal(x.started_ns, 123456789);
    assert_int_equal(x.client_addr.len, 16);
    assert_non_null(x.sent_body);
    assert_int_equal(evbuffer_get_length(x.sent_body), 0);
    evbuffer_free(out);
    mr_exchange_free(&x);
}

/* Two clusters in one region: "a" with two endpoints, "b" with one. */
static struct mr_lease *retry_lease(struct mr_stats *stats)
{
    struct mr_snapshot *snap = mr_test_load(
        "{" MR_TEST_CONF_HEAD " \"regions\": [{\"name\": \"r1\", \"clusters\": ["
        "   {\"name\": \"a\", \"weight\": 1, \"endpoints\": [\"127.0.0.1:9001\", "
        "\"127.0.0.1:9002\"]},"
        "   {\"name\": \"b\", \"weight\": 1, \"endpoints\": [\"127.0.0.1:9003\"]}]}],"
        " \"routing\": {\"default\": [\"r1\"]}}");
    struct mr_lease *lease = mr_lease_new(stats, snap);

    assert_non_null(lease);
    return lease;
}

/* A decided exchange on cluster c of lease, counted. */
static struct mr_exchange decided(struct mr_lease *lease, size_t c)
{
    struct mr_exchange x = first_attempt(MR_METHOD_GET);

    x.lease = lease;
    x.decision.reason = MR_PICK_GEO;
    x.decision.region = &lease->snap->regions[0];
    x.decision.cluster = lease->snap->clusters[c];
    x.client_addr.ss.ss_family = AF_INET;
    x.client_addr.len = sizeof(struct sockaddr_in);
    mr_exchange_count_decision(&x);
    return x;
}

static void test_retry_goes_to_another_endpoint(void **state)
{
    struct mr_stats *stats = mr_stats_new();
    struct mr_lease *lease = retry_lease(stats);
    struct mr_exchange x = decided(lease, 0);
    const struct mr_endpoint *e0 = &lease->snap->clusters[0]->endpoints[0];
    (void)state;

    assert_true(mr_exchange_pick_retry(&x, e0, false, 1000, 1));
    assert_ptr_equal(x.endpoint, &lease->snap->clusters[0]->endpoints[1]);
    assert_false(x.set_cookie);
    assert_ptr_equal(x.decision.cluster, lease->snap->clusters[0]);
    mr_exchange_count_end(&x, stats, 1000);
    mr_lease_free(lease);
    mr_stats_free(stats);
}

/* Cluster "b" has one endpoint: a failed connect there moves the session
 * to "a", with a new cookie, and the count of active exchanges with it; a
 * stale pooled connection goes back to the same endpoint instead. */
static void test_retry_moves_the_session(void **state)
{
    struct mr_stats *stats = mr_stats_new();
    struct mr_lease *lease = retry_lease(stats);
    struct mr_exchange x = decided(lease, 1);
    const struct mr_endpoint *only = &lease->snap->clusters[1]->endpoints[0];
    struct mr_stats_cluster *sa = mr_lease_cluster_stats(lease, lease->snap->clusters[0]);
    struct mr_stats_cluster *sb = mr_lease_cluster_stats(lease, lease->snap->clusters[1]);
    (void)state;

    assert_int_equal(mr_stats_get(&sb->active), 1);
    assert_true(mr_exchange_pick_retry(&x, only, true, 1000, 1));
    assert_ptr_equal(x.endpoint, only);
    assert_false(x.set_cookie);

    assert_true(mr_exchange_pick_retry(&x, only, false, 1000, 1));
    assert_ptr_equal(x.decision.cluster, lease->snap->clusters[0]);
    assert_ptr_equal(x.endpoint->cluster, lease->snap->clusters[0]);
    assert_true(x.set_cookie);
    assert_int_equal(mr_stats_get(&sb->active), 0);
    assert_int_equal(mr_stats_get(&sa->active), 1);
    assert_int_equal(mr_stats_get(&sa->new_sessions), 1);

    x.status = 200;
    mr_exchange_count_end(&x, stats, 2000000);
    assert_int_equal(mr_stats_get(&sa->active), 0);
    assert_int_equal(mr_stats_get(&sa->requests), 1);
    assert_int_equal(mr_stats_get(&sa->status[2]), 1);
    assert_int_equal(mr_stats_get(&sb->requests), 0);
    assert_int_equal(mr_stats_get(&stats->decisions[MR_PICK_GEO]), 1);
    assert_int_equal(mr_stats_get(&stats->duration_count), 1);
    assert_null(x.cluster_stats);
    mr_lease_free(lease);
    mr_stats_free(stats);
}

/* Each failure's status is the one meridian has always answered with. */
static void test_cause_statuses(void **state)
{
    static const struct {
        enum mr_cause cause;
        const char *name;
        int status;
    } cases[] = {
        {MR_CAUSE_BAD_REQUEST, "bad request", 400},
        {MR_CAUSE_METHOD_NOT_ALLOWED, "method not allowed", 405},
        {MR_CAUSE_URI_TOO_LONG, "uri too long", 414},
        {MR_CAUSE_HEAD_TOO_LARGE, "request head too large", 431},
        {MR_CAUSE_NOT_IMPLEMENTED, "not implemented", 501},
        {MR_CAUSE_VERSION, "http version not supported", 505},
        {MR_CAUSE_HEAD_TIMEOUT, "request head timeout", 408},
        {MR_CAUSE_BAD_REQUEST_BODY, "bad request body", 400},
        {MR_CAUSE_NO_HOST, "no host to redirect to", 400},
        {MR_CAUSE_NO_SNAPSHOT, "no configuration", 503},
        {MR_CAUSE_LISTENER_GONE, "listener removed", 503},
        {MR_CAUSE_NO_CLUSTER, "no cluster available", 503},
        {MR_CAUSE_NO_PUBLIC_URL, "no public url", 503},
        {MR_CAUSE_NO_ENDPOINT, "no endpoint available", 503},
        {MR_CAUSE_NO_MEMORY, "out of memory", 503},
        {MR_CAUSE_CONNECT_FAILED, "upstream connect failed", 502},
        {MR_CAUSE_CONNECT_TIMEOUT, "upstream connect timeout", 502},
        {MR_CAUSE_UPSTREAM_CLOSED, "upstream closed", 502},
        {MR_CAUSE_RESPONSE_TIMEOUT, "upstream response timeout", 504},
        {MR_CAUSE_BAD_RESPONSE_HEAD, "bad upstream response head", 502},
        {MR_CAUSE_BAD_RESPONSE_BODY, "bad upstream response body", 502},
        {MR_CAUSE_UPSTREAM_CUT, "upstream closed mid body", 502},
        {MR_CAUSE_BODY_TIMEOUT, "upstream body timeout", 504},
    };
    (void)state;

    assert_int_equal(sizeof(cases) / sizeof(cases[0]), MR_CAUSE_COUNT - 1);
    assert_null(mr_cause_name(MR_CAUSE_NONE));
    assert_int_equal(mr_cause_status(MR_CAUSE_NONE), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(mr_cause_name(cases[i].cause), cases[i].name);
        assert_int_equal(mr_cause_status(cases[i].cause), cases[i].status);
    }
}

/* Names are the access log's words: distinct, lowercase, JSON-safe. */
static void test_cause_names(void **state)
{
    (void)state;
    for (int i = 1; i < MR_CAUSE_COUNT; i++) {
        const char *name = mr_cause_name((enum mr_cause)i);
        assert_non_null(name);
        assert_true(name[0] != '\0');
        for (const char *p = name; *p != '\0'; p++)
            if (!(islower((unsigned char)*p) || *p == ' '))
                fail_msg("cause %d: \"%s\" is not lowercase words", i, name);
        for (int j = 1; j < i; j++)
            if (strcmp(name, mr_cause_name((enum mr_cause)j)) == 0)
                fail_msg("causes %d and %d share \"%s\"", j, i, name);
    }
}

/* A head refused by router/http1 keeps the status the parser chose. */
static void test_head_refusals_keep_their_status(void **state)
{
    static const int statuses[] = {400, 405, 414, 431, 501, 505};
    (void)state;

    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        assert_int_equal(mr_cause_status(mr_cause_of_head(statuses[i])), statuses[i]);
    assert_int_equal(mr_cause_of_head(431), MR_CAUSE_HEAD_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_rule_table),
        cmocka_unit_test(test_body_kept_up_to_the_limit),
        cmocka_unit_test(test_body_not_kept_after_response_or_retry),
        cmocka_unit_test(test_begin_resets),
        cmocka_unit_test(test_retry_goes_to_another_endpoint),
        cmocka_unit_test(test_retry_moves_the_session),
        cmocka_unit_test(test_cause_statuses),
        cmocka_unit_test(test_cause_names),
        cmocka_unit_test(test_head_refusals_keep_their_status),
    };
    return cmocka_run_group_tests(tests, mr_test_keys_setup, mr_test_keys_teardown);
}
