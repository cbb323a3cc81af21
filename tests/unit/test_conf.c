/* tests/unit/test_conf.c: configuration loading, validation messages,
 * secrets files and snapshot publication. Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/unit/testutil.h"

#include "common/err.h"
#include "conf/conf.h"
#include "conf/secrets.h"
#include "conf/snapshot.h"

#define EXAMPLE "conf/examples/edge.json"

/* A valid configuration; each bad case below changes one part of it. */
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
    "                 \"endpoints\": [\"127.0.0.1:9102\", \"[::1]:9103\"]}]}"
    "],"
    "\"routing\": {\"default\": [\"eu\", \"us\"]}"
    "}";

/* 16 bytes: too short. */
#define SECRET16 "MDEyMzQ1Njc4OWFiY2RlZg=="

static char tmpdir[64]; /* "/tmp/meridian-test-conf-XXXXXX" */

static const struct mr_test_file fixture_files[] = {
    {"session.keys", "# test keys\n\ntest1:" MR_TEST_SECRET32 "\n"},
    {"short.keys", "# comment\ntest1:" SECRET16 "\n"},
    {"badb64.keys", "test1:not*base64!\n"},
    {"dup.keys", "a:" MR_TEST_SECRET32 "\nb:" MR_TEST_SECRET32 "\na:" MR_TEST_SECRET32 "\n"},
    {"badkid.keys", "bad.kid:" MR_TEST_SECRET32 "\n"},
    {"nocolon.keys", MR_TEST_SECRET32 "\n"},
    {"empty.keys", "# only a comment\n\n   \n"},
    {"admin.token", "  s3cret-token-0123456789\n"},
    {"empty.token", "\n\n"},
    {"spaced.token", "two words\n"},
    {"short.token", "fifteen-bytes!!\n"},
    {"metrics.token", "metrics-token-0123456789\n"},
};

/* ---- fixtures ---- */

static void write_file(const char *dir, const char *name, const char *content)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    mr_test_write_text(path, content);
    /* Secrets readable by others are a warning: fixtures are private. */
    assert_int_equal(chmod(path, 0600), 0);
}

static void remove_file(const char *dir, const char *name)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

static int setup_files(void **state)
{
    strcpy(tmpdir, "/tmp/meridian-test-conf-XXXXXX");
    return mr_test_files_setup(tmpdir, fixture_files,
                               sizeof(fixture_files) / sizeof(fixture_files[0]));
}

static int teardown_files(void **state)
{
    return mr_test_files_teardown(tmpdir, fixture_files,
                                  sizeof(fixture_files) / sizeof(fixture_files[0]));
}

/* ---- helpers ---- */

/* Sets (or deletes, when value is NULL) the member at a dotted object path,
 * creating intermediate objects. */
static void apply_patch(json_t *root, const char *path, const char *value)
{
    char buf[256], *save = NULL, *seg, *next;
    json_t *obj = root;
    json_error_t je;

    snprintf(buf, sizeof(buf), "%s", path);
    seg = strtok_r(buf, ".", &save);
    while ((next = strtok_r(NULL, ".", &save)) != NULL) {
        json_t *child = json_object_get(obj, seg);

        if (child == NULL) {
            child = json_object();
            json_object_set_new(obj, seg, child);
        }
        obj = child;
        seg = next;
    }
    if (value == NULL) {
        json_object_del(obj, seg);
    } else {
        json_t *v = json_loads(value, JSON_DECODE_ANY, &je);

        if (v == NULL)
            fail_msg("bad patch value for %s: %s", path, je.text);
        json_object_set_new(obj, seg, v);
    }
}

struct patch {
    const char *path;
    const char *value; /* JSON text; NULL deletes */
};

/* The base configuration with up to n patches applied (malloc'd). */
static char *patched(const struct patch *patches, size_t n)
{
    json_error_t je;
    json_t *root = json_loads(base_config, 0, &je);
    char *text;

    assert_non_null(root);
    for (size_t i = 0; i < n; i++) {
        if (patches[i].path != NULL)
            apply_patch(root, patches[i].path, patches[i].value);
    }
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_non_null(text);
    return text;
}

/* Replaces each "@DIR@" in pattern with the fixture directory. */
static void expand(char *out, size_t len, const char *pattern)
{
    const char *at = strstr(pattern, "@DIR@");

    if (at == NULL) {
        snprintf(out, len, "%s", pattern);
        return;
    }
    snprintf(out, len, "%.*s%s%s", (int)(at - pattern), pattern, tmpdir, at + 5);
}

static void expect_error(const struct mr_errors *errs, const char *line)
{
    if (!mr_test_has_line(errs->errors, errs->n_errors, line)) {
        fprintf(stderr, "  missing error: %s\n  got:\n", line);
        mr_test_print_errors(errs);
        fail();
    }
}

static struct mr_snapshot *load_patched(const struct patch *patches, size_t n,
                                        struct mr_errors *errs)
{
    char *text = patched(patches, n);
    struct mr_snapshot *snap = mr_conf_load_string(text, tmpdir, errs);

    free(text);
    return snap;
}

static const struct mr_route *find_route(const struct mr_route *routes, size_t n, const char *code)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(routes[i].code, code) == 0)
            return &routes[i];
    }
    return NULL;
}

/* ---- the example configuration ---- */

static void test_example_loads(void **state)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;
    char dir[PATH_MAX], expected[PATH_MAX + 64];
    const struct mr_route *route;

    /* git keeps no read bits: a clone's secrets are 0644, which warns; the
     * demo makes them private as an operator would. */
    assert_int_equal(chmod("conf/examples/session.keys", 0600), 0);
    assert_int_equal(chmod("conf/examples/admin.token", 0600), 0);
    snap = mr_conf_load(EXAMPLE, &errs);
    mr_test_print_errors(&errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_errors, 0);
    assert_int_equal(errs.n_warnings, 0);
    assert_int_equal(atomic_load(&snap->refs), 1);
    assert_int_equal(snap->generation, 0);
    assert_non_null(realpath("conf/examples", dir));
    snprintf(expected, sizeof(expected), "%s/edge.json", dir);
    assert_string_equal(snap->path, expected);

    assert_int_equal(snap->workers, 2);
    assert_int_equal(snap->n_listeners, 1);
    assert_string_equal(snap->listeners[0].name, "http");
    assert_string_equal(snap->listeners[0].address, "127.0.0.1:8080");
    assert_int_equal(snap->listeners[0].addr.ss.ss_family, AF_INET);
    assert_int_equal(snap->trusted_proxies.n, 2);
    assert_int_equal(snap->trusted_proxies.items[1].family, AF_INET6);

    snprintf(expected, sizeof(expected), "%s/../../geo/data/country.mmdb", dir);
    assert_string_equal(snap->geoip.database, expected);
    assert_string_equal(snap->geoip.country[0], "country_code");
    assert_null(snap->geoip.country[1]);
    assert_string_equal(snap->geoip.longitude[1], "longitude");
    assert_null(snap->geoip.longitude[2]);

    assert_string_equal(snap->session.cookie, "MRD");
    assert_int_equal(snap->session.max_age_s, 86400);
    snprintf(expected, sizeof(expected), "%s/session.keys", dir);
    assert_string_equal(snap->session.keys_file, expected);
    assert_int_equal(snap->session.n_keys, 1);
    assert_string_equal(snap->session.keys[0].kid, "demo1");
    assert_int_equal(snap->session.keys[0].secret_len, 32);
    assert_false(snap->session.secure);
    assert_true(snap->session.http_only);
    assert_string_equal(snap->session.same_site, "Lax");

    assert_string_equal(snap->health.path, "/healthz");
    assert_int_equal(snap->health.interval_ms, 500);
    assert_int_equal(snap->health.timeout_ms, 300);
    assert_int_equal(snap->health.rise, 2);
    assert_int_equal(snap->health.fall, 2);
    assert_true(snap->health.min_healthy == 0.5);

    assert_int_equal(snap->n_regions, 3);
    assert_int_equal(snap->n_clusters, 4);
    assert_int_equal(snap->n_endpoints, 7);
    assert_string_equal(snap->regions[1].name, "us-east");
    assert_int_equal(snap->regions[1].index, 1);
    assert_true(snap->regions[0].lat == 53.35 && snap->regions[0].lon == -6.26);
    assert_int_equal(snap->regions[0].n_clusters, 2);
    for (size_t i = 0; i < snap->n_clusters; i++)
        assert_int_equal(snap->clusters[i]->index, i);
    for (size_t i = 0; i < snap->n_endpoints; i++)
        assert_int_equal(snap->endpoints[i]->index, i);
    assert_string_equal(snap->clusters[1]->name, "eu-west-b");
    assert_ptr_equal(snap->clusters[1], &snap->regions[0].clusters[1]);
    assert_string_equal(snap->clusters[2]->name, "us-east-a");
    assert_ptr_equal(snap->clusters[2]->region, &snap->regions[1]);
    assert_true(snap->clusters[2]->weight == 100);
    assert_true(snap->clusters[0]->weight == 50);
    assert_null(snap->clusters[0]->public_url);
    assert_int_equal(snap->clusters[0]->drain, MR_DRAIN_NONE);
    assert_string_equal(snap->endpoints[4]->address, "127.0.0.1:18201");
    assert_ptr_equal(snap->endpoints[4]->cluster, snap->clusters[2]);
    assert_ptr_equal(snap->endpoints[6]->cluster, snap->clusters[3]);
    assert_ptr_equal(mr_snap_cluster(snap, "eu-west-b"), snap->clusters[1]);
    assert_null(mr_snap_cluster(snap, "nope"));
    assert_ptr_equal(mr_snap_region(snap, "ap-south"), &snap->regions[2]);
    assert_null(mr_snap_region(snap, "eu-west-a"));

    assert_int_equal(snap->routing.n_countries, 2);
    route = find_route(snap->routing.countries, snap->routing.n_countries, "US");
    assert_non_null(route);
    assert_int_equal(route->list.n, 2);
    assert_int_equal(route->list.regions[0], 1);
    assert_int_equal(route->list.regions[1], 0);
    assert_int_equal(snap->routing.n_continents, 3);
    route = find_route(snap->routing.continents, snap->routing.n_continents, "AS");
    assert_non_null(route);
    assert_int_equal(route->list.regions[0], 2);
    assert_int_equal(route->list.regions[1], 0);
    assert_true(snap->routing.proximity);
    assert_int_equal(snap->routing.default_regions.n, 3);
    assert_int_equal(snap->routing.default_regions.regions[0], 1);
    assert_int_equal(snap->routing.default_regions.regions[2], 2);
    assert_int_equal(snap->routing.endpoint_policy, MR_POLICY_LEAST_REQUESTS);

    assert_int_equal(snap->timeouts.client_header_ms, 10000);
    assert_int_equal(snap->timeouts.upstream_response_ms, 30000);
    assert_int_equal(snap->timeouts.upstream_idle_ms, 30000);
    assert_int_equal(snap->timeouts.shutdown_grace_ms, 30000);
    assert_int_equal(snap->limits.max_head_bytes, 16384);
    assert_int_equal(snap->limits.max_headers, 100);
    assert_int_equal(snap->limits.max_uri_bytes, 8192);

    assert_string_equal(snap->admin.address, "127.0.0.1:9090");
    snprintf(expected, sizeof(expected), "%s/admin.token", dir);
    assert_string_equal(snap->admin.token_file, expected);
    assert_non_null(snap->admin.token);
    assert_true(strlen(snap->admin.token) > 0);
    /* Out of /tmp, beside the example (tools/demo.sh and meridian create it). */
    snprintf(expected, sizeof(expected), "%s/state/meridian-state.json", dir);
    assert_string_equal(snap->state_file, expected);
    snprintf(expected, sizeof(expected), "%s/state/meridian-audit.jsonl", dir);
    assert_string_equal(snap->audit_log, expected);
    assert_string_equal(snap->access_log, "-");

    mr_snap_free(snap);
    mr_errors_clear(&errs);
}

/* The minimal configuration gets every documented default. */
static void test_defaults(void **state)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = mr_conf_load_string(base_config, tmpdir, &errs);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    mr_test_print_errors(&errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_errors + errs.n_warnings, 0);
    assert_null(snap->path);
    assert_int_equal(snap->workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    assert_int_equal(snap->trusted_proxies.n, 0);
    assert_null(snap->geoip.database);
    assert_string_equal(snap->geoip.country[0], "country");
    assert_string_equal(snap->geoip.country[1], "iso_code");
    assert_null(snap->geoip.country[2]);
    assert_string_equal(snap->geoip.latitude[0], "location");
    assert_string_equal(snap->geoip.latitude[1], "latitude");
    assert_string_equal(snap->session.cookie, "MRD");
    assert_int_equal(snap->session.max_age_s, 86400);
    assert_false(snap->session.secure);
    assert_true(snap->session.http_only);
    assert_string_equal(snap->session.same_site, "Lax");
    assert_string_equal(snap->health.path, "/healthz");
    assert_int_equal(snap->health.interval_ms, 2000);
    assert_int_equal(snap->health.timeout_ms, 1000);
    assert_int_equal(snap->health.rise, 2);
    assert_int_equal(snap->health.fall, 3);
    assert_true(snap->health.min_healthy == 0.5);
    assert_int_equal(snap->health.passive.consecutive_failures, 3);
    assert_int_equal(snap->health.passive.base_ms, 5000);
    assert_int_equal(snap->health.passive.max_ms, 300000);
    assert_int_equal(snap->health.passive.max_ejected_percent, 50);
    assert_int_equal(snap->limits.retry_body_bytes, 65536);
    assert_true(snap->clusters[0]->weight == 1);
    assert_true(snap->clusters[2]->weight == 2);
    assert_int_equal(snap->endpoints[3]->addr.ss.ss_family, AF_INET6);
    assert_int_equal(snap->routing.n_countries + snap->routing.n_continents, 0);
    assert_false(snap->routing.proximity);
    assert_int_equal(snap->routing.endpoint_policy, MR_POLICY_LEAST_REQUESTS);
    assert_int_equal(snap->timeouts.client_idle_ms, 60000);
    assert_int_equal(snap->timeouts.upstream_connect_ms, 2000);
    assert_string_equal(snap->admin.address, "127.0.0.1:9090");
    assert_null(snap->admin.token_file);
    assert_null(snap->admin.token);
    assert_null(snap->state_file);
    assert_null(snap->access_log);
    mr_snap_free(snap);
    mr_errors_clear(&errs);
}

/* ---- bad inputs: one change each, one exact line expected ---- */

static const struct {
    struct patch p[2];
    const char *expected; /* "@DIR@" stands for the fixture directory */
} bad_cases[] = {
    {{{"workers", "0"}}, "workers: expected an integer between 1 and 256"},
    {{{"workers", "257"}}, "workers: expected an integer between 1 and 256"},
    {{{"workers", "\"4\""}}, "workers: expected an integer between 1 and 256"},
    {{{"workers", "2.5"}}, "workers: expected an integer between 1 and 256"},
    {{{"listeners", NULL}}, "listeners: required"},
    {{{"listeners", "[]"}}, "listeners: expected a non-empty array"},
    {{{"listeners", "{}"}}, "listeners: expected an array"},
    {{{"listeners", "[\"http\"]"}}, "listeners[0]: expected an object"},
    {{{"listeners", "[{\"address\": \"127.0.0.1:1\"}]"}}, "listeners[0].name: required"},
    {{{"listeners", "[{\"name\": \"\", \"address\": \"127.0.0.1:1\"}]"}},
     "listeners[0].name: expected a non-empty string"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1\"}]"}},
     "listeners[0].address: cannot parse \"127.0.0.1\" as HOST:PORT"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": 8080}]"}},
     "listeners[0].address: expected a string"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\"},"
                    " {\"name\": \"a\", \"address\": \"127.0.0.1:2\"}]"}},
     "listeners[1].name: duplicate listener name \"a\" (first at listeners[0].name)"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\"},"
                    " {\"name\": \"b\", \"address\": \"127.0.0.1:1\"}]"}},
     "listeners[1].address: duplicate address \"127.0.0.1:1\" (first at listeners[0].address)"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"tls\": {}}]"}},
     "listeners[0].tls.certificates: required"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\","
                    " \"tls\": {\"certificates\": []}}]"}},
     "listeners[0].tls.certificates: expected a non-empty array"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\","
                    " \"tls\": {\"certificates\": [{\"cert\": \"a.pem\"}]}}]"}},
     "listeners[0].tls.certificates[0].key: required"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"tls\": "
                    "{\"certificates\": [{\"cert\": \"a.pem\", \"key\": \"a.key\"}],"
                    " \"min_version\": \"TLSv1.1\"}}]"}},
     "listeners[0].tls.min_version: expected \"TLSv1.2\" or \"TLSv1.3\" (older versions are "
     "not offered)"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"tls\": "
                    "{\"certificates\": [{\"cert\": \"a.pem\", \"key\": \"a.key\"}],"
                    " \"alpn\": [\"http/1.1\", \"h2\"]}}]"}},
     "listeners[0].tls.alpn[1]: \"h2\" is not offered: meridian speaks HTTP/1.1 "
     "(\"http/1.1\" or \"http/1.0\")"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"tls\": "
                    "{\"certificates\": [{\"cert\": \"a.pem\", \"key\": \"a.key\"}],"
                    " \"ticket_rotate_s\": 0}}]"}},
     "listeners[0].tls.ticket_rotate_s: expected an integer between 1 and 604800"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"tls\": "
                    "{\"certificates\": [{\"cert\": \"a.pem\", \"key\": \"a.key\"}]},"
                    " \"redirect_https\": true}]"}},
     "listeners[0].redirect_https: only for a plain listener (this one has tls)"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\","
                    " \"proxy_protocol\": \"yes\"}]"}},
     "listeners[0].proxy_protocol: expected a boolean"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"proxy_protocol\": true}]"}},
     "listeners[0].proxy_protocol_from: required when proxy_protocol is true and "
     "trusted_proxies is empty"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"proxy_protocol\": true,"
                    " \"proxy_protocol_from\": []}]"},
      {"trusted_proxies", "[]"}},
     "listeners[0].proxy_protocol_from: required when proxy_protocol is true and "
     "trusted_proxies is empty"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"proxy_protocol\": true,"
                    " \"proxy_protocol_from\": \"10.0.0.0/8\"}]"}},
     "listeners[0].proxy_protocol_from: expected an array"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"proxy_protocol\": true,"
                    " \"proxy_protocol_from\": [\"10.0.0.0/8\", \"lb\"]}]"}},
     "listeners[0].proxy_protocol_from[1]: cannot parse \"lb\" as an address or CIDR prefix"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"mode\": \"tunnel\"}]"}},
     "listeners[0].mode: expected \"proxy\" or \"redirect\""},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"https_port\": 0}]"}},
     "listeners[0].https_port: expected an integer between 1 and 65535"},
    {{{"listeners", "[{\"name\": \"a\", \"address\": \"127.0.0.1:1\", \"mode\": \"redirect\"}]"}},
     "regions[1].clusters[0].public_url: required when a listener or host uses redirect mode"},
    {{{"hosts", "{\"go.example.com:80\": {\"mode\": \"redirect\"}}"}},
     "hosts.go.example.com:80: expected a host name (letters, digits, '-' and '.', no port)"},
    {{{"hosts", "{\"go.example.com\": {\"mode\": \"fast\"}}"}},
     "hosts.go.example.com.mode: expected \"proxy\" or \"redirect\""},
    {{{"hosts", "{\"go.example.com\": {\"mode\": \"redirect\"}}"}},
     "regions[0].clusters[0].public_url: required when a listener or host uses redirect mode"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\":"
                  " [\"127.0.0.1:1\"], \"public_url\": \"ftp://a.example.com\"}]},"
                  " {\"name\": \"us\", \"clusters\": [{\"name\": \"b\", \"endpoints\":"
                  " [\"127.0.0.1:2\"]}]}]"}},
     "regions[0].clusters[0].public_url: expected an absolute http:// or https:// URL without "
     "query or fragment"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\":"
                  " [\"127.0.0.1:1\"], \"public_url\": \"https://a.example.com/?x=1\"}]},"
                  " {\"name\": \"us\", \"clusters\": [{\"name\": \"b\", \"endpoints\":"
                  " [\"127.0.0.1:2\"]}]}]"}},
     "regions[0].clusters[0].public_url: expected an absolute http:// or https:// URL without "
     "query or fragment"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\":"
                  " [\"127.0.0.1:1\"], \"send_proxy\": \"v3\"}]},"
                  " {\"name\": \"us\", \"clusters\": [{\"name\": \"b\", \"endpoints\":"
                  " [\"127.0.0.1:2\"]}]}]"}},
     "regions[0].clusters[0].send_proxy: expected \"v1\", \"v2\" or \"none\""},
    {{{"timeouts.tunnel_idle_ms", "0"}}, "timeouts.tunnel_idle_ms: expected an integer >= 1"},
    {{{"trusted_proxies", "[\"10.0.0.0/8\", \"x\"]"}},
     "trusted_proxies[1]: cannot parse \"x\" as an address or CIDR prefix"},
    {{{"trusted_proxies", "[\"10.0.0.0/33\"]"}},
     "trusted_proxies[0]: cannot parse \"10.0.0.0/33\" as an address or CIDR prefix"},
    {{{"trusted_proxies", "\"10.0.0.0/8\""}}, "trusted_proxies: expected an array"},
    {{{"trusted_proxies", "[8]"}}, "trusted_proxies[0]: expected a string"},
    {{{"geoip", "{}"}}, "geoip.database: required"},
    {{{"geoip", "[]"}}, "geoip: expected an object"},
    {{{"geoip", "{\"database\": \"x.mmdb\", \"country\": []}"}},
     "geoip.country: expected a non-empty array"},
    {{{"geoip", "{\"database\": \"x.mmdb\", \"latitude\": [\"location\", \"\"]}"}},
     "geoip.latitude[1]: expected a non-empty string"},
    {{{"session", NULL}}, "session: required"},
    {{{"session", "true"}}, "session: expected an object"},
    {{{"session.keys_file", NULL}}, "session.keys_file: required"},
    {{{"session.keys_file", "7"}}, "session.keys_file: expected a string"},
    {{{"session.cookie", "\"a b\""}},
     "session.cookie: \"a b\" is not a valid cookie name (RFC 6265 token)"},
    {{{"session.cookie", "\"a=b\""}},
     "session.cookie: \"a=b\" is not a valid cookie name (RFC 6265 token)"},
    {{{"session.cookie", "\"\""}},
     "session.cookie: \"\" is not a valid cookie name (RFC 6265 token)"},
    {{{"session.max_age_s", "0"}}, "session.max_age_s: expected an integer >= 1"},
    {{{"session.secure", "\"yes\""}}, "session.secure: expected a boolean"},
    {{{"session.http_only", "1"}}, "session.http_only: expected a boolean"},
    {{{"session.same_site", "\"lax\""}},
     "session.same_site: expected one of \"Strict\", \"Lax\", \"None\""},
    {{{"session.keys_file", "\"missing.keys\""}},
     "session.keys_file: cannot read @DIR@/missing.keys: No such file or directory"},
    {{{"session.keys_file", "\"short.keys\""}},
     "session.keys_file: @DIR@/short.keys line 2: secret is 16 bytes, at least 32 required"},
    {{{"session.keys_file", "\"badb64.keys\""}},
     "session.keys_file: @DIR@/badb64.keys line 1: secret is not valid base64"},
    {{{"session.keys_file", "\"dup.keys\""}},
     "session.keys_file: @DIR@/dup.keys line 3: duplicate key id \"a\" (first on line 1)"},
    {{{"session.keys_file", "\"badkid.keys\""}},
     "session.keys_file: @DIR@/badkid.keys line 1: key id \"bad.kid\" must be 1-32 "
     "characters of A-Z a-z 0-9 _ -"},
    {{{"session.keys_file", "\"nocolon.keys\""}},
     "session.keys_file: @DIR@/nocolon.keys line 1: expected KID:BASE64SECRET"},
    {{{"session.keys_file", "\"empty.keys\""}}, "session.keys_file: @DIR@/empty.keys has no key"},
    {{{"health", "5"}}, "health: expected an object"},
    {{{"health.path", "\"healthz\""}}, "health.path: expected a string starting with \"/\""},
    {{{"health.interval_ms", "5"}}, "health.interval_ms: expected an integer >= 10"},
    {{{"health.timeout_ms", "0"}}, "health.timeout_ms: expected an integer >= 1"},
    {{{"health", "{\"interval_ms\": 100, \"timeout_ms\": 200}"}},
     "health.timeout_ms: must not exceed health.interval_ms (100)"},
    {{{"health.rise", "1.5"}}, "health.rise: expected an integer >= 1"},
    {{{"health.fall", "0"}}, "health.fall: expected an integer >= 1"},
    {{{"health.min_healthy", "0"}}, "health.min_healthy: expected a number > 0 and <= 1"},
    {{{"health.min_healthy", "1.5"}}, "health.min_healthy: expected a number > 0 and <= 1"},
    {{{"health.passive", "3"}}, "health.passive: expected an object"},
    {{{"health.passive", "{\"consecutive_failures\": -1}"}},
     "health.passive.consecutive_failures: expected an integer between 0 and 1000"},
    {{{"health.passive", "{\"base_ms\": 0}"}},
     "health.passive.base_ms: expected an integer between 1 and 86400000"},
    {{{"health.passive", "{\"base_ms\": 5000, \"max_ms\": 4000}"}},
     "health.passive.max_ms: must not be below health.passive.base_ms (5000)"},
    {{{"health.passive", "{\"max_ejected_percent\": 101}"}},
     "health.passive.max_ejected_percent: expected an integer between 0 and 100"},
    {{{"regions", NULL}}, "regions: required"},
    {{{"regions", "[]"}}, "regions: expected a non-empty array"},
    {{{"regions", "{}"}}, "regions: expected an array"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\":"
                  " [\"127.0.0.1:1\"]}]}, {\"name\": \"us\"}]"}},
     "regions[1].clusters: required"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\":"
                  " [\"127.0.0.1:1\"]}]}, {\"name\": \"us\", \"clusters\": []}]"}},
     "regions[1].clusters: expected a non-empty array"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\":"
                  " [\"127.0.0.1:1\"]}]}, {\"name\": \"eu\", \"clusters\": [{\"name\": \"b\","
                  " \"endpoints\": [\"127.0.0.1:2\"]}]}]"}},
     "regions[1].name: duplicate region name \"eu\" (first at regions[0].name)"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\":"
                  " [\"127.0.0.1:1\"]}]}, {\"name\": \"us\", \"clusters\": [{\"name\": \"b\","
                  " \"endpoints\": [\"127.0.0.1:2\"]}, {\"name\": \"a\", \"endpoints\":"
                  " [\"127.0.0.1:3\"]}]}]"}},
     "regions[1].clusters[1].name: duplicate cluster name \"a\" (first at "
     "regions[0].clusters[0].name)"},
    {{{"regions", "[{\"name\": \"eu\", \"lat\": 91, \"clusters\": [{\"name\": \"a\","
                  " \"endpoints\": [\"127.0.0.1:1\"]}]}, {\"name\": \"us\", \"clusters\":"
                  " [{\"name\": \"b\", \"endpoints\": [\"127.0.0.1:2\"]}]}]"}},
     "regions[0].lat: expected a number between -90 and 90"},
    {{{"regions", "[{\"name\": \"eu\", \"lon\": -180.5, \"clusters\": [{\"name\": \"a\","
                  " \"endpoints\": [\"127.0.0.1:1\"]}]}, {\"name\": \"us\", \"clusters\":"
                  " [{\"name\": \"b\", \"endpoints\": [\"127.0.0.1:2\"]}]}]"}},
     "regions[0].lon: expected a number between -180 and 180"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\":"
                  " [\"127.0.0.1:1\"]}]}, {\"name\": \"us\", \"lat\": 1, \"lon\": 2,"
                  " \"clusters\": [{\"name\": \"b\", \"endpoints\": [\"127.0.0.1:2\"]}]}]"},
      {"routing.proximity", "true"}},
     "regions[0].lat: required when routing.proximity is true"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"weight\": -1,"
                  " \"endpoints\": [\"127.0.0.1:1\"]}]}, {\"name\": \"us\", \"clusters\":"
                  " [{\"name\": \"b\", \"endpoints\": [\"127.0.0.1:2\"]}]}]"}},
     "regions[0].clusters[0].weight: expected a number >= 0"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"weight\": \"10\","
                  " \"endpoints\": [\"127.0.0.1:1\"]}]}, {\"name\": \"us\", \"clusters\":"
                  " [{\"name\": \"b\", \"endpoints\": [\"127.0.0.1:2\"]}]}]"}},
     "regions[0].clusters[0].weight: expected a number >= 0"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\": []}]},"
                  " {\"name\": \"us\", \"clusters\": [{\"name\": \"b\", \"endpoints\":"
                  " [\"127.0.0.1:2\"]}]}]"}},
     "regions[0].clusters[0].endpoints: expected a non-empty array"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\":"
                  " [\"127.0.0.1:1\", \"x\"]}]}, {\"name\": \"us\", \"clusters\":"
                  " [{\"name\": \"b\", \"endpoints\": [\"127.0.0.1:2\"]}]}]"}},
     "regions[0].clusters[0].endpoints[1]: cannot parse \"x\" as HOST:PORT"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\":"
                  " [\"127.0.0.1:1\", \"127.0.0.1:1\"]}]}, {\"name\": \"us\", \"clusters\":"
                  " [{\"name\": \"b\", \"endpoints\": [\"127.0.0.1:2\"]}]}]"}},
     "regions[0].clusters[0].endpoints[1]: duplicate endpoint \"127.0.0.1:1\" (first at "
     "regions[0].clusters[0].endpoints[0])"},
    {{{"regions", "[{\"name\": \"eu\", \"clusters\": [{\"endpoints\": [\"127.0.0.1:1\"]}]},"
                  " {\"name\": \"us\", \"clusters\": [{\"name\": \"b\", \"endpoints\":"
                  " [\"127.0.0.1:2\"]}]}]"}},
     "regions[0].clusters[0].name: required"},
    {{{"routing", NULL}}, "routing: required"},
    {{{"routing.default", NULL}}, "routing.default: required"},
    {{{"routing.default", "[]"}}, "routing.default: expected a non-empty array"},
    {{{"routing.default", "[\"eu\", \"mars\"]"}}, "routing.default[1]: unknown region \"mars\""},
    {{{"routing.default", "[\"eu\", \"eu\"]"}},
     "routing.default[1]: duplicate region \"eu\" (first at routing.default[0])"},
    {{{"routing.countries", "{\"US\": [\"us\", \"mars\"]}"}},
     "routing.countries.US[1]: unknown region \"mars\""},
    {{{"routing.countries", "{\"usa\": [\"us\"]}"}},
     "routing.countries.usa: expected a two-letter upper-case country code"},
    {{{"routing.countries", "{\"us\": [\"us\"]}"}},
     "routing.countries.us: expected a two-letter upper-case country code"},
    {{{"routing.countries", "[\"us\"]"}}, "routing.countries: expected an object"},
    {{{"routing.continents", "{\"XX\": [\"eu\"]}"}},
     "routing.continents.XX: expected a continent code (AF, AN, AS, EU, NA, OC or SA)"},
    {{{"routing.continents", "{\"EU\": []}"}}, "routing.continents.EU: expected a non-empty array"},
    {{{"routing.continents", "{\"EU\": [1]}"}}, "routing.continents.EU[0]: expected a string"},
    {{{"routing.proximity", "\"yes\""}}, "routing.proximity: expected a boolean"},
    {{{"routing.endpoint_policy", "\"random\""}},
     "routing.endpoint_policy: expected \"least_requests\" or \"round_robin\""},
    {{{"timeouts.client_header_ms", "0"}}, "timeouts.client_header_ms: expected an integer >= 1"},
    {{{"timeouts.upstream_idle_ms", "\"1s\""}},
     "timeouts.upstream_idle_ms: expected an integer >= 1"},
    {{{"timeouts.shutdown_grace_ms", "-1"}},
     "timeouts.shutdown_grace_ms: expected an integer >= 0"},
    {{{"timeouts.client_idle_ms", "3000000000"}},
     "timeouts.client_idle_ms: expected an integer between 1 and 2147483647"},
    {{{"limits.max_head_bytes", "100"}},
     "limits.max_head_bytes: expected an integer between 1024 and 1048576"},
    {{{"limits.max_headers", "1001"}},
     "limits.max_headers: expected an integer between 1 and 1000"},
    {{{"limits", "{\"max_head_bytes\": 2048, \"max_uri_bytes\": 4096}"}},
     "limits.max_uri_bytes: expected an integer between 16 and 2048"},
    {{{"limits.retry_body_bytes", "-1"}},
     "limits.retry_body_bytes: expected an integer between 0 and 16777216"},
    {{{"admin.address", "\"0.0.0.0:9090\""}},
     "admin.token_file: required when admin.address is not loopback"},
    {{{"admin.address", "\"nope\""}}, "admin.address: cannot parse \"nope\" as HOST:PORT"},
    {{{"admin.address", "\"127.0.0.1:8080\""}},
     "admin.address: \"127.0.0.1:8080\" is also listeners[0].address"},
    {{{"admin.token_file", "\"missing.token\""}},
     "admin.token_file: cannot read @DIR@/missing.token: No such file or directory"},
    {{{"admin.token_file", "\"empty.token\""}}, "admin.token_file: @DIR@/empty.token has no token"},
    {{{"admin.token_file", "\"spaced.token\""}},
     "admin.token_file: @DIR@/spaced.token: the token must be one line of visible ASCII "
     "characters without spaces"},
    {{{"admin.token_file", "\"short.token\""}},
     "admin.token_file: @DIR@/short.token: token is 15 bytes, at least 16 required"},
    {{{"admin", "{\"metrics_token_file\": \"metrics.token\"}"}},
     "admin.metrics_token_file: needs admin.token_file"},
    {{{"admin", "{\"token_file\": \"admin.token\", \"metrics_token_file\": \"short.token\"}"}},
     "admin.metrics_token_file: @DIR@/short.token: token is 15 bytes, at least 16 required"},
    {{{"admin", "{\"token_file\": \"admin.token\", \"metrics_token_file\": 5}"}},
     "admin.metrics_token_file: expected a string"},
    {{{"state_file", "5"}}, "state_file: expected a string"},
    {{{"access_log", "false"}}, "access_log: expected a string"},
};

static void test_bad_inputs(void **state)
{
    size_t failures = 0;

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct mr_errors errs = {0};
        char expected[PATH_MAX + 256];
        struct mr_snapshot *snap = load_patched(bad_cases[i].p, 2, &errs);

        expand(expected, sizeof(expected), bad_cases[i].expected);
        if (snap != NULL || !mr_test_has_line(errs.errors, errs.n_errors, expected)) {
            fprintf(stderr, "  case %zu (%s): missing error: %s\n  got:\n", i,
                    bad_cases[i].p[0].path, expected);
            mr_test_print_errors(&errs);
            failures++;
        }
        mr_snap_free(snap);
        mr_errors_clear(&errs);
    }
    assert_int_equal(failures, 0);
}

/* Validation keeps going: every problem of the file is reported at once. */
static void test_all_errors_at_once(void **state)
{
    static const struct patch patches[] = {
        {"workers", "0"},
        {"session.cookie", "\"a;b\""},
        {"health.min_healthy", "2"},
        {"routing.default", "[\"mars\"]"},
        {"limits.max_headers", "0"},
    };
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;

    snap = load_patched(patches, sizeof(patches) / sizeof(patches[0]), &errs);
    assert_null(snap);
    expect_error(&errs, "workers: expected an integer between 1 and 256");
    expect_error(&errs, "session.cookie: \"a;b\" is not a valid cookie name (RFC 6265 token)");
    expect_error(&errs, "health.min_healthy: expected a number > 0 and <= 1");
    expect_error(&errs, "routing.default[0]: unknown region \"mars\"");
    expect_error(&errs, "limits.max_headers: expected an integer between 1 and 1000");
    assert_int_equal(errs.n_errors, 5);
    mr_errors_clear(&errs);
}

static void test_unknown_keys_warn(void **state)
{
    static const struct patch patches[] = {
        {"colour", "\"blue\""},
        {"session.cookie_name", "\"x\""},
    };
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;
    char *text = patched(patches, 2);
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);

    /* And one deep inside an array. */
    json_object_set_new(json_array_get(json_object_get(json_array_get(json_object_get(root,
                                                                                      "regions"),
                                                                      1),
                                                       "clusters"),
                                       1),
                        "wieght", json_integer(3));
    free(text);
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    snap = mr_conf_load_string(text, tmpdir, &errs);
    free(text);
    if (snap == NULL || errs.n_warnings != 3)
        mr_test_print_errors(&errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_errors, 0);
    assert_int_equal(errs.n_warnings, 3);
    assert_true(mr_test_has_line(errs.warnings, errs.n_warnings, "colour: unknown key, ignored"));
    assert_true(mr_test_has_line(errs.warnings, errs.n_warnings,
                                 "session.cookie_name: unknown key, ignored"));
    assert_true(mr_test_has_line(errs.warnings, errs.n_warnings,
                                 "regions[1].clusters[1].wieght: unknown key, ignored"));
    mr_snap_free(snap);
    mr_errors_clear(&errs);
}

static void test_same_site_none_warns(void **state)
{
    static const struct patch insecure[] = {{"session.same_site", "\"None\""}};
    static const struct patch secure[] = {{"session.same_site", "\"None\""},
                                          {"session.secure", "true"}};
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;

    snap = load_patched(insecure, 1, &errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_warnings, 1);
    assert_true(strncmp(errs.warnings[0], "session.same_site: ", 19) == 0);
    mr_snap_free(snap);
    mr_errors_clear(&errs);

    snap = load_patched(secure, 2, &errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_warnings + errs.n_errors, 0);
    assert_string_equal(snap->session.same_site, "None");
    assert_true(snap->session.secure);
    mr_snap_free(snap);
    mr_errors_clear(&errs);
}

static void test_syntax_error(void **state)
{
    struct mr_errors errs = {0};
    char path[PATH_MAX], prefix[PATH_MAX + 64];

    assert_null(mr_conf_load_string("{\"workers\": 2,\n}", tmpdir, &errs));
    assert_int_equal(errs.n_errors, 1);
    assert_true(strncmp(errs.errors[0], "<string>: line 2, column ", 25) == 0);
    mr_errors_clear(&errs);

    /* Duplicate keys would silently drop a value: refused. */
    assert_null(mr_conf_load_string("{\"workers\": 2, \"workers\": 3}", tmpdir, &errs));
    assert_int_equal(errs.n_errors, 1);
    mr_errors_clear(&errs);

    assert_null(mr_conf_load_string("[1, 2]", tmpdir, &errs));
    assert_int_equal(errs.n_errors, 1);
    mr_errors_clear(&errs);

    snprintf(path, sizeof(path), "%s/broken.json", tmpdir);
    write_file(tmpdir, "broken.json", "{\n  \"workers\": 2\n  \"listeners\": []\n}\n");
    assert_null(mr_conf_load(path, &errs));
    snprintf(prefix, sizeof(prefix), "%s: line 3, column ", path);
    assert_int_equal(errs.n_errors, 1);
    assert_true(strncmp(errs.errors[0], prefix, strlen(prefix)) == 0);
    remove_file(tmpdir, "broken.json");
    mr_errors_clear(&errs);

    snprintf(path, sizeof(path), "%s/absent.json", tmpdir);
    assert_null(mr_conf_load(path, &errs));
    snprintf(prefix, sizeof(prefix), "cannot read %s: No such file or directory", path);
    expect_error(&errs, prefix);
    mr_errors_clear(&errs);
}

/* ---- paths ---- */

static void test_relative_paths(void **state)
{
    static const struct patch patches[] = {
        {"geoip", "{\"database\": \"geo/country.mmdb\"}"},
        {"admin.token_file", "\"admin.token\""},
    };
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;
    char expected[PATH_MAX + 64];
    char *text = patched(patches, 2);
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);

    free(text);
    json_object_set_new(root, "state_file", json_string("state/edge.json"));
    json_object_set_new(root, "access_log", json_string("/var/log/meridian/access.log"));
    text = json_dumps(root, JSON_COMPACT);

    snap = mr_conf_load_string(text, tmpdir, &errs);
    mr_test_print_errors(&errs);
    assert_non_null(snap);
    snprintf(expected, sizeof(expected), "%s/session.keys", tmpdir);
    assert_string_equal(snap->session.keys_file, expected);
    assert_int_equal(snap->session.n_keys, 1);
    assert_string_equal(snap->session.keys[0].kid, "test1");
    snprintf(expected, sizeof(expected), "%s/geo/country.mmdb", tmpdir);
    assert_string_equal(snap->geoip.database, expected);
    snprintf(expected, sizeof(expected), "%s/admin.token", tmpdir);
    assert_string_equal(snap->admin.token_file, expected);
    assert_string_equal(snap->admin.token, "s3cret-token-0123456789");
    snprintf(expected, sizeof(expected), "%s/state/edge.json", tmpdir);
    assert_string_equal(snap->state_file, expected);
    assert_string_equal(snap->access_log, "/var/log/meridian/access.log");
    mr_snap_free(snap);
    mr_errors_clear(&errs);
    free(text);

    /* access_log: "" means none, "-" stdout, anything else a path. */
    json_object_set_new(root, "access_log", json_string(""));
    text = json_dumps(root, JSON_COMPACT);
    snap = mr_conf_load_string(text, tmpdir, &errs);
    assert_non_null(snap);
    assert_null(snap->access_log);
    mr_snap_free(snap);
    free(text);
    json_object_set_new(root, "access_log", json_string("logs/access.log"));
    text = json_dumps(root, JSON_COMPACT);
    snap = mr_conf_load_string(text, tmpdir, &errs);
    assert_non_null(snap);
    snprintf(expected, sizeof(expected), "%s/logs/access.log", tmpdir);
    assert_string_equal(snap->access_log, expected);
    mr_snap_free(snap);
    free(text);
    json_decref(root);
    mr_errors_clear(&errs);
}

/* mr_conf_load resolves against the file's own directory, not the cwd. */
static void test_load_file_resolves_against_its_dir(void **state)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;
    char path[PATH_MAX], expected[PATH_MAX + 64];

    snprintf(path, sizeof(path), "%s/edge.json", tmpdir);
    write_file(tmpdir, "edge.json", base_config);
    snap = mr_conf_load(path, &errs);
    mr_test_print_errors(&errs);
    assert_non_null(snap);
    assert_string_equal(snap->path, path);
    snprintf(expected, sizeof(expected), "%s/session.keys", tmpdir);
    assert_string_equal(snap->session.keys_file, expected);
    mr_snap_free(snap);
    mr_errors_clear(&errs);
    remove_file(tmpdir, "edge.json");
}

/* ---- secrets ---- */

static void test_read_keys(void **state)
{
    /* 33 bytes (no padding needed), 34 with "==", 32 with "=", 35 with its
     * "=" left out; comments, blank lines and CRLF; order kept. */
    static const char content[] =
        "# rotated 2024-01\r\n"
        "new-key_2: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYw\r\n"
        "\n"
        "  old1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMQ==   # retiring\n"
        "k3:" MR_TEST_SECRET32 "\n"
        "k4:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTI";
    struct mr_errors errs = {0};
    struct mr_session_key *keys = NULL;
    size_t n = 0;
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/multi.keys", tmpdir);
    write_file(tmpdir, "multi.keys", content);
    assert_int_equal(mr_secrets_read_keys(path, "session.keys_file", &keys, &n, &errs), 0);
    mr_test_print_errors(&errs);
    assert_int_equal(errs.n_errors, 0);
    assert_int_equal(n, 4);
    assert_string_equal(keys[0].kid, "new-key_2");
    assert_int_equal(keys[0].secret_len, 33);
    assert_memory_equal(keys[0].secret, "0123456789abcdef0123456789abcdef0", 33);
    assert_string_equal(keys[1].kid, "old1");
    assert_int_equal(keys[1].secret_len, 34);
    assert_memory_equal(keys[1].secret, "0123456789abcdef0123456789abcdef01", 34);
    assert_string_equal(keys[2].kid, "k3");
    assert_int_equal(keys[2].secret_len, 32);
    assert_int_equal(keys[3].secret_len, 35);
    assert_memory_equal(keys[3].secret, "0123456789abcdef0123456789abcdef012", 35);
    mr_secrets_free_keys(keys, n);
    remove_file(tmpdir, "multi.keys");

    /* Every bad line is reported, not just the first. */
    write_file(tmpdir, "multi.keys",
               "a:" SECRET16 "\nb:" MR_TEST_SECRET32
               "=\nthis-kid-is-far-too-long-for-a-cookie-x:" MR_TEST_SECRET32 "\n");
    assert_int_equal(mr_secrets_read_keys(path, "p", &keys, &n, &errs), -1);
    assert_null(keys);
    assert_int_equal(n, 0);
    assert_int_equal(errs.n_errors, 3);
    remove_file(tmpdir, "multi.keys");
    mr_errors_clear(&errs);
    mr_secrets_free_keys(NULL, 0);
}

static void test_read_token(void **state)
{
    struct mr_errors errs = {0};
    char path[PATH_MAX];
    char *token;

    snprintf(path, sizeof(path), "%s/admin.token", tmpdir);
    token = mr_secrets_read_token(path, "admin.token_file", &errs);
    assert_string_equal(token, "s3cret-token-0123456789");
    free(token);
    assert_int_equal(errs.n_errors, 0);
}

/* A secret file that group or others may read still loads, with a warning
 * naming it; a private one loads quietly. */
static void test_secret_file_modes(void **state)
{
    struct mr_errors errs = {0};
    struct mr_session_key *keys = NULL;
    size_t n = 0;
    char path[PATH_MAX], expected[PATH_MAX + 128];
    char *token;

    snprintf(path, sizeof(path), "%s/admin.token", tmpdir);
    assert_int_equal(chmod(path, 0640), 0);
    token = mr_secrets_read_token(path, "admin.token_file", &errs);
    assert_string_equal(token, "s3cret-token-0123456789");
    free(token);
    assert_int_equal(errs.n_errors, 0);
    snprintf(expected, sizeof(expected),
             "admin.token_file: %s is readable by group or others (mode 0640; chmod 600 it)", path);
    assert_int_equal(errs.n_warnings, 1);
    assert_string_equal(errs.warnings[0], expected);
    mr_errors_clear(&errs);

    snprintf(path, sizeof(path), "%s/session.keys", tmpdir);
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(mr_secrets_read_keys(path, "session.keys_file", &keys, &n, &errs), 0);
    mr_secrets_free_keys(keys, n);
    snprintf(expected, sizeof(expected),
             "session.keys_file: %s is readable by group or others (mode 0604; chmod 600 it)",
             path);
    assert_int_equal(errs.n_warnings, 1);
    assert_string_equal(errs.warnings[0], expected);
    mr_errors_clear(&errs);

    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(mr_secrets_read_keys(path, "session.keys_file", &keys, &n, &errs), 0);
    mr_secrets_free_keys(keys, n);
    assert_int_equal(errs.n_warnings + errs.n_errors, 0);
    snprintf(path, sizeof(path), "%s/admin.token", tmpdir);
    assert_int_equal(chmod(path, 0600), 0);
}

static void test_metrics_token(void **state)
{
    static const struct patch patches[] = {
        {"admin", "{\"token_file\": \"admin.token\", \"metrics_token_file\": \"metrics.token\"}"},
    };
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = load_patched(patches, 1, &errs);
    char expected[PATH_MAX + 64];

    mr_test_print_errors(&errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_errors + errs.n_warnings, 0);
    assert_string_equal(snap->admin.token, "s3cret-token-0123456789");
    snprintf(expected, sizeof(expected), "%s/metrics.token", tmpdir);
    assert_string_equal(snap->admin.metrics_token_file, expected);
    assert_string_equal(snap->admin.metrics_token, "metrics-token-0123456789");
    mr_snap_free(snap);
}

/* ---- snapshot publication ---- */

static struct mr_snapshot *load_base(void)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = mr_conf_load_string(base_config, tmpdir, &errs);

    assert_non_null(snap);
    mr_errors_clear(&errs);
    return snap;
}

static void test_publish_acquire_release(void **state)
{
    struct mr_snapshot *a = load_base(), *b = load_base(), *held, *held2;
    uint64_t gen;

    mr_snap_free(NULL);
    mr_snap_release(NULL);
    assert_null(mr_snap_peek());
    assert_null(mr_snap_acquire());

    mr_snap_publish(a);
    gen = a->generation;
    assert_true(gen >= 1);
    assert_ptr_equal(mr_snap_peek(), a);
    assert_int_equal(atomic_load(&a->refs), 1);

    held = mr_snap_acquire();
    assert_ptr_equal(held, a);
    assert_int_equal(atomic_load(&a->refs), 2);

    mr_snap_publish(b);
    assert_int_equal(b->generation, gen + 1);
    assert_ptr_equal(mr_snap_peek(), b);
    /* The old one lives on for its holder only. */
    assert_int_equal(atomic_load(&a->refs), 1);
    assert_int_equal(a->generation, gen);

    held2 = mr_snap_acquire();
    assert_ptr_equal(held2, b);
    assert_int_equal(atomic_load(&b->refs), 2);
    mr_snap_release(held); /* frees a: ASan would see a leak or a double free */
    mr_snap_release(held2);
    assert_int_equal(atomic_load(&b->refs), 1);

    mr_snap_shutdown();
    assert_null(mr_snap_peek());
    assert_null(mr_snap_acquire());

    a = load_base();
    mr_snap_publish(a);
    assert_int_equal(a->generation, gen + 2);
    mr_snap_shutdown();
}

struct reader_args {
    atomic_bool stop;
    atomic_long acquired;
};

/* A worker's pattern: peek, acquire only on change, read, release. */
static void *reader(void *arg)
{
    struct reader_args *args = arg;
    struct mr_snapshot *held = NULL;

    while (!atomic_load(&args->stop)) {
        if (held == NULL || mr_snap_peek() != held) {
            mr_snap_release(held);
            held = mr_snap_acquire();
            atomic_fetch_add(&args->acquired, 1);
        }
        if (held != NULL && held->n_clusters != 3)
            abort();
    }
    mr_snap_release(held);
    return NULL;
}

static void test_publish_under_readers(void **state)
{
    struct reader_args args;
    pthread_t threads[4];

    atomic_init(&args.stop, false);
    atomic_init(&args.acquired, 0);
    mr_snap_publish(load_base());
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, reader, &args), 0);
    for (int i = 0; i < 200; i++)
        mr_snap_publish(load_base());
    atomic_store(&args.stop, true);
    for (size_t i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    assert_true(atomic_load(&args.acquired) >= 4);
    mr_snap_shutdown();
}

/* ---- region and cluster names ---- */

/* The base configuration with regions[0].name (when region is set, and
 * routing.default following it) and regions[0].clusters[0][key] = value
 * (when key is set; value is JSON text, NULL deletes). */
static struct mr_snapshot *load_names(const char *region, const char *key, const char *value,
                                      struct mr_errors *errs)
{
    json_error_t je;
    json_t *root = json_loads(base_config, 0, &je);
    json_t *region0, *cluster0;
    struct mr_snapshot *snap;
    char *text;

    assert_non_null(root);
    region0 = json_array_get(json_object_get(root, "regions"), 0);
    cluster0 = json_array_get(json_object_get(region0, "clusters"), 0);
    assert_non_null(cluster0);
    if (region != NULL) {
        json_object_set_new(region0, "name", json_string(region));
        json_object_set_new(json_object_get(root, "routing"), "default",
                            json_pack("[ss]", region, "us"));
    }
    if (key != NULL && value == NULL) {
        json_object_del(cluster0, key);
    } else if (key != NULL) {
        json_t *v = json_loads(value, JSON_DECODE_ANY, &je);

        if (v == NULL)
            fail_msg("bad value for %s: %s", key, je.text);
        json_object_set_new(cluster0, key, v);
    }
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_non_null(text);
    snap = mr_conf_load_string(text, tmpdir, errs);
    free(text);
    return snap;
}

/* A name of n characters: "abc...". */
static char *long_name(size_t n)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + i % 26);
    s[n] = '\0';
    return s;
}

/* Loading must fail with exactly this line among the errors. */
static void expect_name_error(const char *region, const char *cluster, const char *line)
{
    struct mr_errors errs = {0};
    char *value = NULL;
    struct mr_snapshot *snap;

    if (cluster != NULL) {
        json_t *s = json_string(cluster);
        value = json_dumps(s, JSON_ENCODE_ANY);
        json_decref(s);
    }
    snap = load_names(region, cluster != NULL ? "name" : NULL, value, &errs);
    free(value);
    if (snap != NULL || !mr_test_has_line(errs.errors, errs.n_errors, line)) {
        fprintf(stderr, "  missing error: %s\n  got:\n", line);
        mr_test_print_errors(&errs);
        mr_snap_free(snap);
        mr_errors_clear(&errs);
        fail();
    }
    mr_errors_clear(&errs);
}

static void expect_name_ok(const char *region, const char *cluster)
{
    struct mr_errors errs = {0};
    char *value = NULL;
    struct mr_snapshot *snap;

    if (cluster != NULL) {
        json_t *s = json_string(cluster);
        value = json_dumps(s, JSON_ENCODE_ANY);
        json_decref(s);
    }
    snap = load_names(region, cluster != NULL ? "name" : NULL, value, &errs);
    free(value);
    if (snap == NULL || errs.n_errors + errs.n_warnings != 0) {
        mr_test_print_errors(&errs);
        fail_msg("region %s, cluster %s: did not load cleanly", region ? region : "-",
                 cluster ? cluster : "-");
    }
    if (region != NULL)
        assert_string_equal(snap->regions[0].name, region);
    if (cluster != NULL) {
        assert_string_equal(snap->regions[0].clusters[0].name, cluster);
        assert_ptr_equal(mr_snap_cluster(snap, cluster), &snap->regions[0].clusters[0]);
    }
    mr_snap_free(snap);
    mr_errors_clear(&errs);
}

#define NAME_CHARS "may contain only letters, digits, '.', '_' and '-'"

static void test_name_characters(void **state)
{
    static const char *const bad[] = {"a b",   "a\"b",   "a/b",   "eu-west/1",   "a;b",
                                      "a=b",   "a,b",    "a\\b",  "caf\xc3\xa9", "tab\there",
                                      " lead", "trail ", "a%20b", "a:b"};
    char line[256];

    /* The exact lines of the brief. */
    expect_name_error(NULL, "a b",
                      "regions[0].clusters[0].name: \"a b\" may contain only letters, digits, "
                      "'.', '_' and '-'");
    expect_name_error("a b", NULL,
                      "regions[0].name: \"a b\" may contain only letters, digits, '.', '_' "
                      "and '-'");
    expect_name_error(NULL, "a\"b", "regions[0].clusters[0].name: \"a\"b\" " NAME_CHARS);
    expect_name_error("a\"b", NULL, "regions[0].name: \"a\"b\" " NAME_CHARS);
    expect_name_error(NULL, "a/b", "regions[0].clusters[0].name: \"a/b\" " NAME_CHARS);
    expect_name_error("a/b", NULL, "regions[0].name: \"a/b\" " NAME_CHARS);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(line, sizeof(line), "regions[0].clusters[0].name: \"%s\" " NAME_CHARS, bad[i]);
        expect_name_error(NULL, bad[i], line);
        snprintf(line, sizeof(line), "regions[0].name: \"%s\" " NAME_CHARS, bad[i]);
        expect_name_error(bad[i], NULL, line);
    }

    /* Every allowed character. */
    expect_name_ok(NULL, "Az09._-");
    expect_name_ok("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz.0123456789_-");
    expect_name_ok("-.", "_");
    expect_name_ok("eu-west-1.prod", "eu-west-1a_blue");
}

static void test_name_length(void **state)
{
    char *n64 = long_name(64), *n65 = long_name(65), *n200 = long_name(200);

    /* 64 is the most allowed. */
    expect_name_ok(NULL, n64);
    expect_name_ok(n64, NULL);
    expect_name_ok(n64, n64);
    expect_name_error(NULL, n65, "regions[0].clusters[0].name: longer than 64 characters");
    expect_name_error(n65, NULL, "regions[0].name: longer than 64 characters");
    expect_name_error(NULL, n200, "regions[0].clusters[0].name: longer than 64 characters");
    expect_name_error(n200, NULL, "regions[0].name: longer than 64 characters");
    free(n64);
    free(n65);
    free(n200);
}

/* Names are checked in every region and cluster, not just the first. */
static void test_name_checked_everywhere(void **state)
{
    static const struct patch patches[] = {
        {"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"ok\", \"endpoints\":"
                    " [\"127.0.0.1:1\"]}, {\"name\": \"not ok\", \"endpoints\":"
                    " [\"127.0.0.1:2\"]}]}, {\"name\": \"u s\", \"clusters\": [{\"name\":"
                    " \"b\", \"endpoints\": [\"127.0.0.1:3\"]}]}]"},
        {"routing.default", "[\"eu\"]"},
    };
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = load_patched(patches, 2, &errs);

    assert_null(snap);
    expect_error(&errs, "regions[0].clusters[1].name: \"not ok\" " NAME_CHARS);
    expect_error(&errs, "regions[1].name: \"u s\" " NAME_CHARS);
    assert_int_equal(errs.n_errors, 2);
    mr_errors_clear(&errs);
}

/* ---- drain in the file ---- */

static struct mr_snapshot *load_drain(const char *drain, struct mr_errors *errs)
{
    return load_names(NULL, "drain", drain, errs);
}

static void expect_drain_error(const char *drain, const char *line)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = load_drain(drain, &errs);

    if (snap != NULL || !mr_test_has_line(errs.errors, errs.n_errors, line)) {
        fprintf(stderr, "  drain %s: missing error: %s\n  got:\n", drain, line);
        mr_test_print_errors(&errs);
        mr_snap_free(snap);
        mr_errors_clear(&errs);
        fail();
    }
    mr_errors_clear(&errs);
}

static void test_drain_modes(void **state)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;

    /* Absent: not drained, no deadline, on every cluster. */
    snap = load_drain(NULL, &errs);
    assert_non_null(snap);
    for (size_t i = 0; i < snap->n_clusters; i++) {
        assert_int_equal(snap->clusters[i]->drain, MR_DRAIN_NONE);
        assert_int_equal(snap->clusters[i]->drain_deadline_s, 0);
    }
    mr_snap_free(snap);

    snap = load_drain("{\"mode\": \"soft\"}", &errs);
    mr_test_print_errors(&errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_errors + errs.n_warnings, 0);
    assert_int_equal(snap->regions[0].clusters[0].drain, MR_DRAIN_SOFT);
    assert_int_equal(snap->regions[0].clusters[0].drain_deadline_s, 0);
    /* Only that cluster. */
    assert_int_equal(mr_snap_cluster(snap, "us-a")->drain, MR_DRAIN_NONE);
    assert_int_equal(mr_snap_cluster(snap, "us-b")->drain, MR_DRAIN_NONE);
    mr_snap_free(snap);

    snap = load_drain("{\"mode\": \"hard\"}", &errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_errors + errs.n_warnings, 0);
    assert_int_equal(snap->regions[0].clusters[0].drain, MR_DRAIN_HARD);
    assert_int_equal(snap->regions[0].clusters[0].drain_deadline_s, 0);
    mr_snap_free(snap);

    /* deadline_s 0: no deadline. */
    snap = load_drain("{\"mode\": \"soft\", \"deadline_s\": 0}", &errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_errors + errs.n_warnings, 0);
    assert_int_equal(snap->regions[0].clusters[0].drain, MR_DRAIN_SOFT);
    assert_int_equal(snap->regions[0].clusters[0].drain_deadline_s, 0);
    mr_snap_free(snap);

    /* JSON null counts as absent. */
    snap = load_drain("null", &errs);
    assert_non_null(snap);
    assert_int_equal(snap->regions[0].clusters[0].drain, MR_DRAIN_NONE);
    mr_snap_free(snap);
    mr_errors_clear(&errs);
}

static void test_drain_deadline(void **state)
{
    static const struct {
        const char *json;
        int mode;
        int64_t seconds;
    } cases[] = {
        {"{\"mode\": \"soft\", \"deadline_s\": 300}", MR_DRAIN_SOFT, 300},
        {"{\"deadline_s\": 1, \"mode\": \"soft\"}", MR_DRAIN_SOFT, 1},
        {"{\"mode\": \"hard\", \"deadline_s\": 86400}", MR_DRAIN_HARD, 86400},
        {"{\"mode\": \"soft\", \"deadline_s\": 2147483647}", MR_DRAIN_SOFT, 2147483647},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mr_errors errs = {0};
        int64_t before = (int64_t)time(NULL), after;
        struct mr_snapshot *snap = load_drain(cases[i].json, &errs);
        const struct mr_cluster *c;

        after = (int64_t)time(NULL);
        mr_test_print_errors(&errs);
        assert_non_null(snap);
        assert_int_equal(errs.n_errors + errs.n_warnings, 0);
        c = &snap->regions[0].clusters[0];
        assert_int_equal(c->drain, cases[i].mode);
        /* Relative to load time: now + N, within a couple of seconds. */
        if (c->drain_deadline_s < before + cases[i].seconds - 2 ||
            c->drain_deadline_s > after + cases[i].seconds + 2)
            fail_msg("%s: deadline %lld, want %lld + %lld", cases[i].json,
                     (long long)c->drain_deadline_s, (long long)before,
                     (long long)cases[i].seconds);
        assert_int_equal(mr_snap_cluster(snap, "us-a")->drain_deadline_s, 0);
        mr_snap_free(snap);
        mr_errors_clear(&errs);
    }
}

/* The edge keys of listeners, hosts and clusters land in the snapshot. */
static void test_edge_keys(void **state)
{
    static const struct patch patches[] = {
        {"listeners",
         "[{\"name\": \"https\", \"address\": \"127.0.0.1:8443\", \"proxy_protocol\": true,"
         " \"proxy_protocol_from\": [\"10.0.0.0/8\", \"::1\"],"
         " \"mode\": \"redirect\", \"tls\": {\"certificates\": [{\"cert\": \"a.pem\","
         " \"key\": \"/k/a.key\", \"ocsp\": \"a.der\"}], \"min_version\": \"TLSv1.3\","
         " \"session_tickets\": false, \"ticket_rotate_s\": 60}},"
         " {\"name\": \"http\", \"address\": \"127.0.0.1:8080\", \"redirect_https\": true,"
         " \"https_port\": 8443}]"},
        {"hosts", "{\"Go.Example.COM\": {\"mode\": \"proxy\"}}"},
        {"regions",
         "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\": [\"127.0.0.1:1\"],"
         " \"public_url\": \"https://a.example.com/base/\", \"send_proxy\": \"v2\"}]},"
         " {\"name\": \"us\", \"clusters\": [{\"name\": \"b\", \"endpoints\": [\"127.0.0.1:2\"],"
         " \"public_url\": \"http://b.example.com:8080\", \"send_proxy\": \"v1\"}]}]"},
    };
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = load_patched(patches, sizeof(patches) / sizeof(patches[0]), &errs);
    const struct mr_listener *l;
    char want[PATH_MAX];
    (void)state;

    if (snap == NULL)
        mr_test_print_errors(&errs);
    assert_non_null(snap);
    l = &snap->listeners[0];
    assert_true(l->proxy_protocol);
    assert_int_equal(l->proxy_protocol_from.n, 2);
    assert_int_equal(l->proxy_protocol_from.items[0].prefix, 8);
    assert_int_equal(l->proxy_protocol_from.items[1].family, AF_INET6);
    assert_int_equal(l->mode, MR_MODE_REDIRECT);
    assert_non_null(l->tls);
    assert_int_equal(l->tls->n_certificates, 1);
    expand(want, sizeof(want), "@DIR@/a.pem");
    assert_string_equal(l->tls->certificates[0].cert, want);
    assert_string_equal(l->tls->certificates[0].key, "/k/a.key");
    expand(want, sizeof(want), "@DIR@/a.der");
    assert_string_equal(l->tls->certificates[0].ocsp, want);
    assert_int_equal(l->tls->min_version, 0x0304);
    assert_false(l->tls->session_tickets);
    assert_int_equal(l->tls->ticket_rotate_s, 60);
    assert_string_equal(l->tls->alpn[0], "http/1.1");
    assert_null(l->tls->alpn[1]);
    assert_non_null(l->tls->ciphers);
    l = &snap->listeners[1];
    assert_null(l->tls);
    assert_true(l->redirect_https);
    assert_int_equal(l->https_port, 8443);
    assert_int_equal(l->mode, MR_MODE_PROXY);
    assert_int_equal(snap->n_hosts, 1);
    assert_string_equal(snap->hosts[0].host, "go.example.com");
    assert_int_equal(snap->hosts[0].mode, MR_MODE_PROXY);
    assert_true(snap->uses_redirect);
    assert_string_equal(snap->clusters[0]->public_url, "https://a.example.com/base");
    assert_int_equal(snap->clusters[0]->send_proxy, MR_SEND_PROXY_V2);
    assert_string_equal(snap->clusters[1]->public_url, "http://b.example.com:8080");
    assert_int_equal(snap->clusters[1]->send_proxy, MR_SEND_PROXY_V1);
    assert_int_equal(snap->timeouts.tunnel_idle_ms, 300000);
    mr_snap_free(snap);
    mr_errors_clear(&errs);
}

/* proxy_protocol_from defaults to trusted_proxies; without proxy_protocol it
 * is ignored with a warning. */
static void test_proxy_protocol_from_default(void **state)
{
    static const struct patch by_default[] = {
        {"listeners",
         "[{\"name\": \"pp\", \"address\": \"127.0.0.1:1\", \"proxy_protocol\": true}]"},
        {"trusted_proxies", "[\"10.0.0.0/8\"]"},
    };
    static const struct patch unused[] = {
        {"listeners", "[{\"name\": \"pp\", \"address\": \"127.0.0.1:1\","
                      " \"proxy_protocol_from\": [\"10.0.0.0/8\"]}]"},
    };
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;
    (void)state;

    snap = load_patched(by_default, 2, &errs);
    if (snap == NULL || errs.n_warnings != 0)
        mr_test_print_errors(&errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_warnings, 0);
    assert_true(snap->listeners[0].proxy_protocol);
    assert_int_equal(snap->listeners[0].proxy_protocol_from.n, 0);
    mr_snap_free(snap);
    mr_errors_clear(&errs);

    snap = load_patched(unused, 1, &errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_warnings, 1);
    assert_string_equal(errs.warnings[0],
                        "listeners[0].proxy_protocol_from: ignored: proxy_protocol is false");
    mr_snap_free(snap);
    mr_errors_clear(&errs);
}

static void test_drain_errors(void **state)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;

    expect_drain_error("{\"mode\": \"medium\"}",
                       "regions[0].clusters[0].drain.mode: expected \"soft\" or \"hard\"");
    expect_drain_error("{\"mode\": \"Soft\"}",
                       "regions[0].clusters[0].drain.mode: expected \"soft\" or \"hard\"");
    expect_drain_error("{\"mode\": \"soft \"}",
                       "regions[0].clusters[0].drain.mode: expected \"soft\" or \"hard\"");
    expect_drain_error("{\"mode\": \"none\"}",
                       "regions[0].clusters[0].drain.mode: expected \"soft\" or \"hard\"");
    expect_drain_error("{\"mode\": \"soft\", \"deadline_s\": -1}",
                       "regions[0].clusters[0].drain.deadline_s: expected an integer >= 0");
    expect_drain_error("{\"mode\": \"hard\", \"deadline_s\": -86400}",
                       "regions[0].clusters[0].drain.deadline_s: expected an integer >= 0");
    expect_drain_error("{\"mode\": \"soft\", \"deadline_s\": 1.5}",
                       "regions[0].clusters[0].drain.deadline_s: expected an integer >= 0");
    expect_drain_error("{\"mode\": \"soft\", \"deadline_s\": \"60\"}",
                       "regions[0].clusters[0].drain.deadline_s: expected an integer >= 0");
    expect_drain_error("{\"deadline_s\": 60}", "regions[0].clusters[0].drain.mode: required");
    expect_drain_error("{}", "regions[0].clusters[0].drain.mode: required");
    expect_drain_error("{\"mode\": 1}", "regions[0].clusters[0].drain.mode: expected a string");
    expect_drain_error("{\"mode\": \"\"}",
                       "regions[0].clusters[0].drain.mode: expected a non-empty string");
    expect_drain_error("\"soft\"", "regions[0].clusters[0].drain: expected an object");
    expect_drain_error("true", "regions[0].clusters[0].drain: expected an object");

    /* A deadline that is too far off to add to the time is an error, not an
     * overflow. */
    snap = load_drain("{\"mode\": \"soft\", \"deadline_s\": 9223372036854775807}", &errs);
    assert_null(snap);
    assert_int_equal(errs.n_errors, 1);
    assert_true(strncmp(errs.errors[0], "regions[0].clusters[0].drain.deadline_s: ", 41) == 0);
    mr_errors_clear(&errs);

    /* Errors in another cluster carry its own path. */
    {
        static const struct patch patches[] = {
            {"regions", "[{\"name\": \"eu\", \"clusters\": [{\"name\": \"a\", \"endpoints\":"
                        " [\"127.0.0.1:1\"]}]}, {\"name\": \"us\", \"clusters\": [{\"name\":"
                        " \"b\", \"endpoints\": [\"127.0.0.1:2\"]}, {\"name\": \"c\","
                        " \"drain\": {\"mode\": \"hard\", \"deadline_s\": -5},"
                        " \"endpoints\": [\"127.0.0.1:3\"]}]}]"},
        };
        snap = load_patched(patches, 1, &errs);
        assert_null(snap);
        expect_error(&errs, "regions[1].clusters[1].drain.deadline_s: expected an integer >= 0");
        assert_int_equal(errs.n_errors, 1);
        mr_errors_clear(&errs);
    }
}

static void test_drain_unknown_key_warns(void **state)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;

    snap = load_drain("{\"mode\": \"soft\", \"deadline\": 60}", &errs);
    if (snap == NULL || errs.n_warnings != 1)
        mr_test_print_errors(&errs);
    assert_non_null(snap);
    assert_int_equal(errs.n_errors, 0);
    assert_int_equal(errs.n_warnings, 1);
    assert_string_equal(errs.warnings[0],
                        "regions[0].clusters[0].drain.deadline: unknown key, ignored");
    /* The rest of the block still counts; the misspelt deadline does not. */
    assert_int_equal(snap->regions[0].clusters[0].drain, MR_DRAIN_SOFT);
    assert_int_equal(snap->regions[0].clusters[0].drain_deadline_s, 0);
    mr_snap_free(snap);
    mr_errors_clear(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_all_errors_at_once),
        cmocka_unit_test(test_unknown_keys_warn),
        cmocka_unit_test(test_same_site_none_warns),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_load_file_resolves_against_its_dir),
        cmocka_unit_test(test_read_keys),
        cmocka_unit_test(test_read_token),
        cmocka_unit_test(test_secret_file_modes),
        cmocka_unit_test(test_metrics_token),
        cmocka_unit_test(test_publish_acquire_release),
        cmocka_unit_test(test_publish_under_readers),
        cmocka_unit_test(test_name_characters),
        cmocka_unit_test(test_name_length),
        cmocka_unit_test(test_name_checked_everywhere),
        cmocka_unit_test(test_drain_modes),
        cmocka_unit_test(test_drain_deadline),
        cmocka_unit_test(test_drain_errors),
        cmocka_unit_test(test_edge_keys),
        cmocka_unit_test(test_proxy_protocol_from_default),
        cmocka_unit_test(test_drain_unknown_key_warns),
    };

    return cmocka_run_group_tests(tests, setup_files, teardown_files);
}
