/* tests/unit/test_stats.c: per-worker counters summed over workers (the
 * process-wide counters, a cluster's, an endpoint's, every cluster once),
 * records some workers never added, and the country index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "router/stats.h"

#define WORKERS 3

static struct mr_stats *workers[WORKERS];

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < WORKERS; i++)
        if ((workers[i] = mr_stats_new()) == NULL)
            return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < WORKERS; i++) {
        mr_stats_free(workers[i]);
        workers[i] = NULL;
    }
    return 0;
}

/* Counts one request of a cluster on worker w, as the data path does. */
static void count_request(int w, const char *cluster, int status_class, const char *country)
{
    struct mr_stats_cluster *cs = mr_stats_cluster(workers[w], cluster);

    assert_non_null(cs);
    mr_stats_add(&cs->requests, 1);
    mr_stats_add(&cs->status[status_class], 1);
    if (country != NULL) {
        mr_stats_add(&cs->new_sessions, 1);
        mr_stats_add(&cs->new_by_country[mr_stats_country_index(country)], 1);
    } else {
        mr_stats_add(&cs->sticky_hits, 1);
    }
}

static void test_process_counters_sum_over_workers(void **state)
{
    struct mr_stats_sum sum;

    (void)state;
    mr_stats_add(&workers[0]->decisions[1], 2);
    mr_stats_add(&workers[2]->decisions[1], 3);
    mr_stats_add(&workers[1]->decisions[4], 1);
    mr_stats_add(&workers[0]->retries, 1);
    mr_stats_add(&workers[1]->client_connections, 4);
    mr_stats_add(&workers[2]->client_connections, 1);
    mr_stats_observe(workers[0], 300);     /* 0.3 ms: the first bucket */
    mr_stats_observe(workers[1], 400);     /* the first bucket */
    mr_stats_observe(workers[2], 2000000); /* 2 s: the last bucket */
    mr_stats_observe(workers[2], 9000000); /* 9 s: no bucket, counted */
    mr_stats_add(&workers[1]->listeners[3].tls_resumed, 5);
    mr_stats_add(&workers[2]->listeners[3].tls_resumed, 2);
    mr_stats_add(&workers[0]->listeners[0].proxy_protocol_refused, 1);

    mr_stats_sum(workers, WORKERS, &sum);
    assert_int_equal(sum.decisions[1], 5);
    assert_int_equal(sum.decisions[4], 1);
    assert_int_equal(sum.decisions[0], 0);
    assert_int_equal(sum.retries, 1);
    assert_int_equal(sum.client_connections, 5);
    assert_int_equal(sum.duration_buckets[0], 2);
    assert_int_equal(sum.duration_buckets[MR_STATS_BUCKETS - 1], 1);
    assert_int_equal(sum.duration_count, 4);
    assert_int_equal(sum.duration_sum_us, 11000700);
    assert_int_equal(sum.listeners[3].tls_resumed, 7);
    assert_int_equal(sum.listeners[3].tls_handshakes, 0);
    assert_int_equal(sum.listeners[0].proxy_protocol_refused, 1);

    /* The sum of the first worker alone. */
    mr_stats_sum(workers, 1, &sum);
    assert_int_equal(sum.decisions[1], 2);
    assert_int_equal(sum.client_connections, 0);
}

/* A cluster's records are matched by name on every worker; a cluster only
 * one worker has counted sums that worker's. */
static void test_cluster_sum_matches_by_name(void **state)
{
    struct mr_stats_cluster_sum sum;

    (void)state;
    count_request(0, "eu-a", 2, "GB");
    count_request(0, "us-a", 5, NULL);
    count_request(1, "eu-a", 2, "GB");
    count_request(1, "eu-a", 4, "FR");
    count_request(2, "eu-a", 2, NULL);
    count_request(2, "ap-a", 2, "JP");
    mr_stats_add(&mr_stats_cluster(workers[1], "eu-a")->active, 2);

    mr_stats_sum_cluster(workers, WORKERS, "eu-a", &sum);
    assert_int_equal(sum.requests, 4);
    assert_int_equal(sum.status[2], 3);
    assert_int_equal(sum.status[4], 1);
    assert_int_equal(sum.active, 2);
    assert_int_equal(sum.new_sessions, 3);
    assert_int_equal(sum.sticky_hits, 1);
    assert_int_equal(sum.new_by_country[mr_stats_country_index("GB")], 2);
    assert_int_equal(sum.new_by_country[mr_stats_country_index("FR")], 1);
    assert_int_equal(sum.new_by_country[mr_stats_country_index("JP")], 0);

    mr_stats_sum_cluster(workers, WORKERS, "ap-a", &sum);
    assert_int_equal(sum.requests, 1);
    assert_int_equal(sum.new_by_country[mr_stats_country_index("JP")], 1);

    memset(&sum, 0xff, sizeof(sum));
    mr_stats_sum_cluster(workers, WORKERS, "nowhere", &sum);
    assert_int_equal(sum.requests, 0);
    assert_int_equal(sum.new_by_country[MR_STATS_COUNTRY_UNKNOWN], 0);
}

static void test_endpoint_sum_matches_cluster_and_address(void **state)
{
    struct mr_stats_endpoint_sum sum;

    (void)state;
    mr_stats_add(&mr_stats_endpoint(workers[0], "eu-a", "10.0.0.1:80")->requests, 3);
    mr_stats_add(&mr_stats_endpoint(workers[2], "eu-a", "10.0.0.1:80")->requests, 4);
    mr_stats_add(&mr_stats_endpoint(workers[2], "eu-a", "10.0.0.1:80")->connect_failures, 1);
    /* The same address in another cluster is another endpoint. */
    mr_stats_add(&mr_stats_endpoint(workers[1], "us-a", "10.0.0.1:80")->requests, 100);
    mr_stats_add(&mr_stats_endpoint(workers[1], "eu-a", "10.0.0.2:80")->active, 1);

    mr_stats_sum_endpoint(workers, WORKERS, "eu-a", "10.0.0.1:80", &sum);
    assert_int_equal(sum.requests, 7);
    assert_int_equal(sum.connect_failures, 1);
    assert_int_equal(sum.active, 0);
    mr_stats_sum_endpoint(workers, WORKERS, "eu-a", "10.0.0.2:80", &sum);
    assert_int_equal(sum.requests, 0);
    assert_int_equal(sum.active, 1);
    mr_stats_sum_endpoint(workers, WORKERS, "us-a", "10.0.0.1:80", &sum);
    assert_int_equal(sum.requests, 100);
}

struct visits {
    int n;
    char names[8][72];
    uint64_t requests[8];
};

static void visit(const char *name, const struct mr_stats_cluster_sum *sum, void *arg)
{
    struct visits *v = arg;

    assert_true(v->n < 8);
    strcpy(v->names[v->n], name);
    v->requests[v->n] = sum->requests;
    v->n++;
}

/* Every cluster any worker has a record of, once, with its whole sum. */
static void test_every_cluster_visited_once(void **state)
{
    struct visits v = {0};

    (void)state;
    count_request(1, "eu-a", 2, "GB");
    count_request(0, "us-a", 2, "US");
    count_request(1, "us-a", 2, "US");
    count_request(2, "us-a", 2, "US");
    count_request(2, "ap-a", 2, "JP");
    mr_stats_sum_clusters(workers, WORKERS, visit, &v);
    assert_int_equal(v.n, 3);
    /* Worker 0's records first, then names the earlier workers lack. */
    assert_string_equal(v.names[0], "us-a");
    assert_int_equal(v.requests[0], 3);
    assert_string_equal(v.names[1], "eu-a");
    assert_int_equal(v.requests[1], 1);
    assert_string_equal(v.names[2], "ap-a");
    assert_int_equal(v.requests[2], 1);
}

static void test_country_index_and_name(void **state)
{
    static const struct {
        const char *code;
        size_t index;
        const char *name;
    } cases[] = {
        {"AA", 0, "AA"},
        {"AB", 1, "AB"},
        {"GB", 6 * 26 + 1, "GB"},
        {"ZZ", 26 * 26 - 1, "ZZ"},
        {"gb", MR_STATS_COUNTRY_UNKNOWN, "unknown"},
        {"G", MR_STATS_COUNTRY_UNKNOWN, "unknown"},
        {"GBR", MR_STATS_COUNTRY_UNKNOWN, "unknown"},
        {"G1", MR_STATS_COUNTRY_UNKNOWN, "unknown"},
        {"", MR_STATS_COUNTRY_UNKNOWN, "unknown"},
        {NULL, MR_STATS_COUNTRY_UNKNOWN, "unknown"},
    };
    char name[8];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t k = mr_stats_country_index(cases[i].code);
        assert_int_equal(k, cases[i].index);
        mr_stats_country_name(k, name);
        assert_string_equal(name, cases[i].name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_process_counters_sum_over_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_sum_matches_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_sum_matches_cluster_and_address, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_every_cluster_visited_once, setup, teardown),
        cmocka_unit_test(test_country_index_and_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
