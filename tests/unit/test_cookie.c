/* tests/unit/test_cookie.c: the sticky cookie: sign/verify round trips, key
 * rotation, every way a value can be wrong (forged, re-targeted, truncated,
 * expired, issued in the future, random bytes), finding it in a Cookie
 * header, the Set-Cookie line; and a benchmark that prints (never asserts)
 * the cost of sign and verify. Snapshots are built from JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <cmocka.h>

#include "tests/unit/testutil.h"

#include "common/err.h"
#include "conf/conf.h"
#include "conf/snapshot.h"
#include "router/cookie.h"

/* 32-byte secrets, base64. */
#define SECRET_A "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define SECRET_B "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU="
#define SECRET_C "WllYV1ZVVFNSUVBPTk1MS0pJSEdGRURDQkE5ODc2NTQ="

#define T0 INT64_C(1767225600) /* 2026-01-01T00:00:00Z */
#define MAX_AGE 3600

static char tmpdir[64];

static const struct mr_test_file key_files[] = {
    {"one.keys", "# before rotation\nk1:" SECRET_A "\n"},
    {"two.keys",
     "# after rotation: k2 signs, k1 still verifies\nk2:" SECRET_B "\nk1:" SECRET_A "\n"},
    {"other.keys", "k9:" SECRET_C "\n"},
    {"samekid.keys", "k1:" SECRET_C "\n"}, /* k1 with another secret */
};

/* ---- fixtures ---- */

static int setup_files(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/meridian-test-cookie-XXXXXX");
    return mr_test_files_setup(tmpdir, key_files, sizeof(key_files) / sizeof(key_files[0]));
}

static int teardown_files(void **state)
{
    (void)state;
    return mr_test_files_teardown(tmpdir, key_files, sizeof(key_files) / sizeof(key_files[0]));
}

/* ---- helpers ---- */

/* A snapshot whose session block reads keys_file, plus session_extra
 * (",\"secure\": true" and the like, or ""). */
static struct mr_snapshot *load_snap(const char *keys_file, const char *session_extra)
{
    char json[2048];
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;

    snprintf(json, sizeof(json),
             "{"
             "\"listeners\": [{\"name\": \"http\", \"address\": \"127.0.0.1:8080\"}],"
             "\"session\": {\"keys_file\": \"%s\", \"max_age_s\": %d%s},"
             "\"regions\": ["
             "  {\"name\": \"eu\", \"lat\": 50, \"lon\": 8,"
             "   \"clusters\": [{\"name\": \"eu-a\", \"endpoints\": [\"127.0.0.1:9001\"]}]},"
             "  {\"name\": \"us\", \"lat\": 40, \"lon\": -75,"
             "   \"clusters\": [{\"name\": \"us-a\", \"endpoints\": [\"127.0.0.1:9101\"]},"
             "                {\"name\": \"us-b\", \"endpoints\": [\"127.0.0.1:9102\"]}]}"
             "],"
             "\"routing\": {\"default\": [\"eu\", \"us\"]}"
             "}",
             keys_file, MAX_AGE, session_extra);
    snap = mr_conf_load_string(json, tmpdir, &errs);
    if (snap == NULL) {
        mr_errors_print(&errs, stderr);
    }
    mr_errors_clear(&errs);
    assert_non_null(snap);
    return snap;
}

/* Keys of a fresh snapshot of keys_file; the snapshot is freed at once,
 * which also shows the keys do not point into it. */
static struct mr_cookie_keys *load_keys(const char *keys_file)
{
    struct mr_snapshot *snap = load_snap(keys_file, "");
    struct mr_cookie_keys *k = mr_cookie_keys_new(snap);

    mr_snap_free(snap);
    assert_non_null(k);
    return k;
}

/* Verifies a copy of value[0..len) in a buffer of exactly len bytes, so an
 * overread trips ASan; cluster_out gets the name on VALID. */
static enum mr_cookie_result verify_exact(struct mr_cookie_keys *k, const void *value, size_t len,
                                          int64_t now, char *cluster_out, size_t cap)
{
    char *copy = malloc(len > 0 ? len : 1);
    enum mr_cookie_result r;

    assert_non_null(copy);
    memcpy(copy, value, len);
    r = mr_cookie_verify(k, copy, len, now, cluster_out, cap);
    free(copy);
    return r;
}

static enum mr_cookie_result verify_str(struct mr_cookie_keys *k, const char *value, int64_t now)
{
    char cluster[MR_COOKIE_CLUSTER_MAX + 1];

    return verify_exact(k, value, strlen(value), now, cluster, sizeof(cluster));
}

static size_t sign(struct mr_cookie_keys *k, const char *cluster, int64_t now,
                   char out[MR_COOKIE_VALUE_MAX])
{
    size_t n = mr_cookie_sign(k, cluster, now, MAX_AGE, out, MR_COOKIE_VALUE_MAX);

    assert_true(n > 0);
    assert_int_equal(strlen(out), n);
    return n;
}

/* Start and length of field i (0..5) of a signed value. */
static void field(const char *value, int i, size_t *start, size_t *len)
{
    const char *p = value;

    for (int j = 0; j < i; j++) {
        p = strchr(p, '.');
        assert_non_null(p);
        p++;
    }
    *start = (size_t)(p - value);
    *len = strcspn(p, ".");
}

/* Replaces field i of value (a string) by text, into out. */
static void replace_field(const char *value, int i, const char *text, char *out, size_t cap)
{
    size_t start, len;

    field(value, i, &start, &len);
    snprintf(out, cap, "%.*s%s%s", (int)start, value, text, value + start + len);
}

static bool is_cookie_octet(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
           (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

/* xorshift64*: reproducible random bytes. */
static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- sign and verify ---- */

static void test_round_trip(void **state)
{
    struct mr_cookie_keys *k = load_keys("one.keys");
    static const char *const names[] = {
        "eu-a", "us-a", "us-b", "x", "xy", "xyz", "wxyz", "caf\xc3\xa9-1", "a.b;c d,\"e\\f",
    };
    char value[MR_COOKIE_VALUE_MAX], cluster[MR_COOKIE_CLUSTER_MAX + 1];
    size_t n;

    n = sign(k, "eu-a", T0, value);
    /* The format, byte for byte but the MAC. */
    assert_int_equal(strncmp(value, "v1.k1.ZXUtYQ.1767225600.1767229200.", 35), 0);
    assert_int_equal(n, 35 + 43);
    for (size_t i = 0; i < n; i++) {
        assert_true(is_cookie_octet((unsigned char)value[i]));
    }
    assert_int_equal(verify_exact(k, value, n, T0, cluster, sizeof(cluster)), MR_COOKIE_VALID);
    assert_string_equal(cluster, "eu-a");
    assert_int_equal(verify_str(k, value, T0 + MAX_AGE - 1), MR_COOKIE_VALID);
    /* A clock a little behind the signer's still accepts it. */
    assert_int_equal(verify_str(k, value, T0 - 30), MR_COOKIE_VALID);

    /* The MAC is plain HMAC-SHA256 over everything before the last dot. */
    {
        static const unsigned char secret[] = "0123456789abcdef0123456789abcdef";
        unsigned char mac[32];
        size_t mac_len = 0;
        const char *last = strrchr(value, '.');
        char other[MR_COOKIE_VALUE_MAX];
        size_t m;

        assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, 32,
                                  (const unsigned char *)value, (size_t)(last - value), mac,
                                  sizeof(mac), &mac_len));
        assert_int_equal(mac_len, 32);
        m = EVP_EncodeBlock((unsigned char *)other, mac, 32); /* standard base64 */
        assert_int_equal(m, 44);
        for (size_t i = 0; i < 43; i++) {
            char c = other[i] == '+' ? '-' : other[i] == '/' ? '_' : other[i];

            assert_int_equal(c, last[1 + i]);
        }
    }

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        n = sign(k, names[i], T0, value);
        for (size_t j = 0; j < n; j++) {
            assert_true(is_cookie_octet((unsigned char)value[j]));
        }
        memset(cluster, 0, sizeof(cluster));
        assert_int_equal(verify_str(k, value, T0), MR_COOKIE_VALID);
        assert_int_equal(verify_exact(k, value, n, T0, cluster, sizeof(cluster)), MR_COOKIE_VALID);
        assert_string_equal(cluster, names[i]);
    }
    mr_cookie_keys_free(k);
}

static void test_sign_limits(void **state)
{
    struct mr_cookie_keys *k = load_keys("one.keys");
    char name[MR_COOKIE_CLUSTER_MAX + 2], value[MR_COOKIE_VALUE_MAX], cluster[8];
    size_t n;

    /* The longest name fits MR_COOKIE_VALUE_MAX (with the longest now). */
    memset(name, 'n', sizeof(name));
    name[MR_COOKIE_CLUSTER_MAX] = '\0';
    n = mr_cookie_sign(k, name, INT64_MAX - MAX_AGE, MAX_AGE, value, sizeof(value));
    assert_true(n > 0);
    assert_int_equal(verify_str(k, value, INT64_MAX - MAX_AGE), MR_COOKIE_VALID);
    /* ... a cluster_out too small for it: malformed, untouched. */
    memset(cluster, 'z', sizeof(cluster));
    assert_int_equal(verify_exact(k, value, n, INT64_MAX - MAX_AGE, cluster, sizeof(cluster)),
                     MR_COOKIE_MALFORMED);
    assert_int_equal(cluster[0], 'z');
    assert_int_equal(verify_exact(k, value, n, INT64_MAX - MAX_AGE, NULL, 0), MR_COOKIE_MALFORMED);
    name[MR_COOKIE_CLUSTER_MAX] = 'n';
    name[MR_COOKIE_CLUSTER_MAX + 1] = '\0';
    assert_int_equal(mr_cookie_sign(k, name, T0, MAX_AGE, value, sizeof(value)), 0);

    /* Bad arguments. */
    assert_int_equal(mr_cookie_sign(k, "", T0, MAX_AGE, value, sizeof(value)), 0);
    assert_int_equal(mr_cookie_sign(k, "eu-a", -1, MAX_AGE, value, sizeof(value)), 0);
    assert_int_equal(mr_cookie_sign(k, "eu-a", T0, 0, value, sizeof(value)), 0);
    assert_int_equal(mr_cookie_sign(k, "eu-a", INT64_MAX, 1, value, sizeof(value)), 0);
    assert_int_equal(mr_cookie_sign(NULL, "eu-a", T0, MAX_AGE, value, sizeof(value)), 0);
    assert_int_equal(mr_cookie_sign(k, NULL, T0, MAX_AGE, value, sizeof(value)), 0);

    /* Every capacity short of length + 1 fails without writing past it. */
    n = sign(k, "eu-a", T0, value);
    for (size_t cap = 0; cap <= n + 1; cap++) {
        char *out = malloc(cap > 0 ? cap : 1);

        assert_non_null(out);
        assert_int_equal(mr_cookie_sign(k, "eu-a", T0, MAX_AGE, out, cap), cap > n ? n : 0);
        free(out);
    }

    assert_null(mr_cookie_keys_new(NULL));
    mr_cookie_keys_free(NULL);
    mr_cookie_keys_free(k);
}

static void test_rotation(void **state)
{
    struct mr_cookie_keys *before = load_keys("one.keys");
    struct mr_cookie_keys *after = load_keys("two.keys");
    char old_value[MR_COOKIE_VALUE_MAX], new_value[MR_COOKIE_VALUE_MAX];
    char cluster[MR_COOKIE_CLUSTER_MAX + 1];

    sign(before, "us-b", T0, old_value);
    assert_int_equal(strncmp(old_value, "v1.k1.", 6), 0);
    /* Old cookies still verify after the rotation, under the old key. */
    assert_int_equal(verify_exact(after, old_value, strlen(old_value), T0 + 10, cluster,
                                  sizeof(cluster)),
                     MR_COOKIE_VALID);
    assert_string_equal(cluster, "us-b");
    /* New ones are signed with the new first key. */
    sign(after, "us-b", T0 + 10, new_value);
    assert_int_equal(strncmp(new_value, "v1.k2.", 6), 0);
    assert_int_equal(verify_str(after, new_value, T0 + 10), MR_COOKIE_VALID);
    /* An edge not yet reloaded does not know k2. */
    assert_int_equal(verify_str(before, new_value, T0 + 10), MR_COOKIE_UNKNOWN_KEY);
    /* Claiming the other known kid does not help a value. */
    {
        char swapped[MR_COOKIE_VALUE_MAX];

        replace_field(old_value, 1, "k2", swapped, sizeof(swapped));
        assert_int_equal(verify_str(after, swapped, T0 + 10), MR_COOKIE_BAD_SIGNATURE);
    }
    mr_cookie_keys_free(before);
    mr_cookie_keys_free(after);
}

static void test_unknown_key(void **state)
{
    struct mr_cookie_keys *ours = load_keys("one.keys");
    struct mr_cookie_keys *theirs = load_keys("other.keys");
    struct mr_cookie_keys *samekid = load_keys("samekid.keys");
    char value[MR_COOKIE_VALUE_MAX];

    sign(theirs, "eu-a", T0, value);
    assert_int_equal(verify_str(ours, value, T0), MR_COOKIE_UNKNOWN_KEY);
    /* Same kid, another secret: a forgery. */
    sign(samekid, "eu-a", T0, value);
    assert_int_equal(verify_str(ours, value, T0), MR_COOKIE_BAD_SIGNATURE);
    /* Unknown comes before expired: nothing of an unknown key is trusted. */
    sign(theirs, "eu-a", T0, value);
    assert_int_equal(verify_str(ours, value, T0 + 10 * MAX_AGE), MR_COOKIE_UNKNOWN_KEY);
    mr_cookie_keys_free(ours);
    mr_cookie_keys_free(theirs);
    mr_cookie_keys_free(samekid);
}

/* Changed fields of a valid "eu-a" cookie signed at T0 with k1. */
static void test_tampered_fields(void **state)
{
    struct mr_cookie_keys *k = load_keys("two.keys");
    char value[MR_COOKIE_VALUE_MAX], changed[2 * MR_COOKIE_VALUE_MAX];
    static const struct {
        int field;
        const char *text;
        enum mr_cookie_result want;
    } cases[] = {
        {0, "v2", MR_COOKIE_MALFORMED},
        {0, "V1", MR_COOKIE_MALFORMED},
        {0, "", MR_COOKIE_MALFORMED},
        {1, "k3", MR_COOKIE_UNKNOWN_KEY},
        {1, "k2", MR_COOKIE_BAD_SIGNATURE},
        {1, "", MR_COOKIE_MALFORMED},
        {1, "k 1", MR_COOKIE_MALFORMED},
        {1, "k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k", MR_COOKIE_MALFORMED}, /* 33 characters */
        {2, "dXMtYQ", MR_COOKIE_BAD_SIGNATURE},                        /* "us-a": re-targeted */
        {2, "dXMtYg", MR_COOKIE_BAD_SIGNATURE},                        /* "us-b" */
        {2, "ZXUtYR", MR_COOKIE_MALFORMED},                            /* non-zero trailing bits */
        {2, "ZXUtYQ==", MR_COOKIE_MALFORMED},                          /* padding */
        {2, "ZXUtY", MR_COOKIE_MALFORMED},                             /* impossible length */
        {2, "ZXU+YQ", MR_COOKIE_MALFORMED}, /* standard, not url, alphabet */
        {2, "", MR_COOKIE_MALFORMED},
        {2, "AA", MR_COOKIE_MALFORMED}, /* a NUL byte */
        {3, "1767225601", MR_COOKIE_BAD_SIGNATURE},
        {3, "01767225600", MR_COOKIE_MALFORMED}, /* leading zero */
        {3, "+1767225600", MR_COOKIE_MALFORMED},
        {3, "-1", MR_COOKIE_MALFORMED},
        {3, "1767229200", MR_COOKIE_MALFORMED}, /* issued == expires */
        {3, "", MR_COOKIE_MALFORMED},
        {4, "1867229200", MR_COOKIE_BAD_SIGNATURE},       /* extended */
        {4, "99999999999999999999", MR_COOKIE_MALFORMED}, /* overflows int64 */
        {4, "9223372036854775807", MR_COOKIE_BAD_SIGNATURE},
        {4, "1767229200 ", MR_COOKIE_MALFORMED},
        {5, "", MR_COOKIE_MALFORMED},
        {5, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", MR_COOKIE_BAD_SIGNATURE},
        {5, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", MR_COOKIE_MALFORMED},
        {5, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", MR_COOKIE_MALFORMED},
        {5, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", MR_COOKIE_MALFORMED},
    };

    {
        struct mr_cookie_keys *k1 = load_keys("one.keys");

        sign(k1, "eu-a", T0, value);
        mr_cookie_keys_free(k1);
    }
    assert_int_equal(verify_str(k, value, T0), MR_COOKIE_VALID);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum mr_cookie_result got;

        replace_field(value, cases[i].field, cases[i].text, changed, sizeof(changed));
        got = verify_str(k, changed, T0);
        if (got != cases[i].want) {
            fprintf(stderr, "  case %zu (%s): got %s, want %s\n", i, changed,
                    mr_cookie_result_name(got), mr_cookie_result_name(cases[i].want));
            fail();
        }
    }
    /* Extra or missing fields, separators. */
    snprintf(changed, sizeof(changed), "%s.", value);
    assert_int_equal(verify_str(k, changed, T0), MR_COOKIE_MALFORMED);
    snprintf(changed, sizeof(changed), ".%s", value);
    assert_int_equal(verify_str(k, changed, T0), MR_COOKIE_MALFORMED);
    snprintf(changed, sizeof(changed), "%s.x", value);
    assert_int_equal(verify_str(k, changed, T0), MR_COOKIE_MALFORMED);
    /* A NUL inside the length: not a terminator. */
    memcpy(changed, value, strlen(value) + 1);
    changed[10] = '\0';
    assert_int_equal(verify_exact(k, changed, strlen(value), T0, NULL, 0), MR_COOKIE_MALFORMED);
    mr_cookie_keys_free(k);
}

/* Every byte, replaced by each of a few others: never valid, and a change
 * that keeps the syntax is a bad signature (or an unknown key in the kid). */
static void test_flipped_bytes(void **state)
{
    struct mr_cookie_keys *k = load_keys("one.keys");
    char value[MR_COOKIE_VALUE_MAX], changed[2 * MR_COOKIE_VALUE_MAX];
    static const unsigned char repl[] = {'A', 'b', '0',  '9',  '-',  '_', '.', ' ',
                                         ';', '"', '\0', 0x80, 0xff, '=', '+', '/'};
    size_t n = sign(k, "eu-a", T0, value);
    size_t counts[5] = {0}, timestamp_checks = 0;

    for (size_t i = 0; i < n; i++) {
        for (size_t r = 0; r < sizeof(repl); r++) {
            enum mr_cookie_result got;

            if ((unsigned char)value[i] == repl[r]) {
                continue;
            }
            memcpy(changed, value, n);
            changed[i] = (char)repl[r];
            got = verify_exact(k, changed, n, T0, NULL, 0);
            assert_int_not_equal(got, MR_COOKIE_VALID);
            assert_int_not_equal(got, MR_COOKIE_EXPIRED);
            counts[got]++;
            /* A digit for a digit in a timestamp, not a leading one and
             * keeping expires > issued: the syntax holds, only the MAC can
             * tell. ("v1.k1.ZXUtYQ." is 13 bytes, each time 10 digits.) */
            if (((i > 13 && i < 23) || (i > 24 && i < 34)) && repl[r] >= '0' && repl[r] <= '9') {
                long long issued = strtoll(changed + 13, NULL, 10);
                long long expires = strtoll(changed + 24, NULL, 10);

                assert_int_equal(got,
                                 expires > issued ? MR_COOKIE_BAD_SIGNATURE : MR_COOKIE_MALFORMED);
                timestamp_checks++;
            }
        }
        /* Each bit of the byte, too. */
        for (int bit = 0; bit < 8; bit++) {
            memcpy(changed, value, n);
            changed[i] = (char)((unsigned char)changed[i] ^ (1u << bit));
            assert_int_not_equal(verify_exact(k, changed, n, T0, NULL, 0), MR_COOKIE_VALID);
        }
    }
    /* Each kind of refusal happened. */
    assert_true(counts[MR_COOKIE_MALFORMED] > 0);
    assert_true(counts[MR_COOKIE_UNKNOWN_KEY] > 0);
    assert_true(counts[MR_COOKIE_BAD_SIGNATURE] > 0);
    assert_true(timestamp_checks >= 30);
    mr_cookie_keys_free(k);
}

/* A valid value for one cluster with its name swapped for another's, MAC
 * kept: the cookie must not move the session. */
static void test_retargeted(void **state)
{
    struct mr_snapshot *snap = load_snap("one.keys", "");
    struct mr_cookie_keys *k = mr_cookie_keys_new(snap);
    char value[MR_COOKIE_VALUE_MAX], other[MR_COOKIE_VALUE_MAX], changed[2 * MR_COOKIE_VALUE_MAX];

    assert_non_null(k);
    for (size_t i = 0; i < snap->n_clusters; i++) {
        for (size_t j = 0; j < snap->n_clusters; j++) {
            size_t s2, l2;
            char field_text[MR_COOKIE_VALUE_MAX];

            if (i == j) {
                continue;
            }
            sign(k, snap->clusters[i]->name, T0, value);
            sign(k, snap->clusters[j]->name, T0, other);
            field(other, 2, &s2, &l2);
            snprintf(field_text, sizeof(field_text), "%.*s", (int)l2, other + s2);
            replace_field(value, 2, field_text, changed, sizeof(changed));
            assert_int_equal(verify_str(k, changed, T0), MR_COOKIE_BAD_SIGNATURE);
        }
    }
    mr_cookie_keys_free(k);
    mr_snap_free(snap);
}

static void test_truncated(void **state)
{
    struct mr_cookie_keys *k = load_keys("one.keys");
    char value[MR_COOKIE_VALUE_MAX];
    size_t n = sign(k, "us-a", T0, value);

    for (size_t len = 0; len < n; len++) {
        char cluster[MR_COOKIE_CLUSTER_MAX + 1];

        assert_int_equal(verify_exact(k, value, len, T0, cluster, sizeof(cluster)),
                         MR_COOKIE_MALFORMED);
        /* Cut from the front as well. */
        assert_int_not_equal(verify_exact(k, value + n - len, len, T0, cluster, sizeof(cluster)),
                             MR_COOKIE_VALID);
    }
    assert_int_equal(mr_cookie_verify(k, NULL, 0, T0, NULL, 0), MR_COOKIE_MALFORMED);
    assert_int_equal(mr_cookie_verify(NULL, value, n, T0, NULL, 0), MR_COOKIE_MALFORMED);
    mr_cookie_keys_free(k);
}

static void test_expired(void **state)
{
    struct mr_cookie_keys *k = load_keys("one.keys");
    char value[MR_COOKIE_VALUE_MAX], changed[2 * MR_COOKIE_VALUE_MAX];
    char cluster[MR_COOKIE_CLUSTER_MAX + 1] = "untouched";

    sign(k, "eu-a", T0, value);
    assert_int_equal(verify_str(k, value, T0 + MAX_AGE - 1), MR_COOKIE_VALID);
    assert_int_equal(verify_exact(k, value, strlen(value), T0 + MAX_AGE, cluster, sizeof(cluster)),
                     MR_COOKIE_EXPIRED);
    assert_string_equal(cluster, "untouched");
    assert_int_equal(verify_str(k, value, T0 + 365 * 86400), MR_COOKIE_EXPIRED);
    /* The MAC is checked first: an expired forgery is a forgery. */
    replace_field(value, 2, "dXMtYQ", changed, sizeof(changed));
    assert_int_equal(verify_str(k, changed, T0 + MAX_AGE), MR_COOKIE_BAD_SIGNATURE);
    mr_cookie_keys_free(k);
}

static void test_future_issue(void **state)
{
    struct mr_cookie_keys *k = load_keys("one.keys");
    char value[MR_COOKIE_VALUE_MAX];

    sign(k, "eu-a", T0 + MR_COOKIE_CLOCK_SKEW_S, value);
    assert_int_equal(verify_str(k, value, T0), MR_COOKIE_VALID);
    sign(k, "eu-a", T0 + MR_COOKIE_CLOCK_SKEW_S + 1, value);
    assert_int_equal(verify_str(k, value, T0), MR_COOKIE_MALFORMED);
    assert_int_equal(verify_str(k, value, T0 + 1), MR_COOKIE_VALID);
    sign(k, "eu-a", T0 + 86400, value);
    assert_int_equal(verify_str(k, value, T0), MR_COOKIE_MALFORMED);
    /* now at the very top of the range does not overflow. */
    assert_int_equal(verify_str(k, value, INT64_MAX), MR_COOKIE_EXPIRED);
    assert_int_equal(verify_str(k, value, INT64_MIN), MR_COOKIE_MALFORMED);
    mr_cookie_keys_free(k);
}

/* Found by tests/fuzz/fuzz_cookie.c: a value verified once (and kept to
 * skip the HMAC next time) is still refused when the clock has gone back
 * past its issue time, as a fresh verification refuses it. */
static void test_future_issue_cached(void **state)
{
    struct mr_cookie_keys *k = load_keys("one.keys");
    char value[MR_COOKIE_VALUE_MAX];

    sign(k, "eu-a", T0, value);
    assert_int_equal(verify_str(k, value, T0), MR_COOKIE_VALID);
    assert_int_equal(verify_str(k, value, T0 - MR_COOKIE_CLOCK_SKEW_S - 1), MR_COOKIE_MALFORMED);
    assert_int_equal(verify_str(k, value, T0 - MR_COOKIE_CLOCK_SKEW_S), MR_COOKIE_VALID);
    mr_cookie_keys_free(k);
}

/* Random bytes, random strings of the cookie's own alphabet with dots, and
 * random mutations (replace, insert, delete, splice) of valid values. */
static void test_random_garbage(void **state)
{
    struct mr_cookie_keys *k = load_keys("two.keys");
    static const char alphabet[] = "v1.k2-_09AZaz.....";
    char value[MR_COOKIE_VALUE_MAX], other[MR_COOKIE_VALUE_MAX];
    unsigned char buf[512];
    size_t n = sign(k, "eu-a", T0, value);
    size_t n_other = sign(k, "us-b", T0, other);

    for (int it = 0; it < 20000; it++) {
        size_t len = (size_t)(rng() % 400);

        for (size_t i = 0; i < len; i++) {
            buf[i] = (unsigned char)rng();
        }
        assert_int_not_equal(verify_exact(k, buf, len, T0, NULL, 0), MR_COOKIE_VALID);
        for (size_t i = 0; i < len; i++) {
            buf[i] = (unsigned char)alphabet[rng() % (sizeof(alphabet) - 1)];
        }
        assert_int_not_equal(verify_exact(k, buf, len, T0, NULL, 0), MR_COOKIE_VALID);
    }
    for (int it = 0; it < 50000; it++) {
        size_t len = n;
        int edits = 1 + (int)(rng() % 4);
        char cluster[MR_COOKIE_CLUSTER_MAX + 1];
        enum mr_cookie_result got;

        memcpy(buf, value, n);
        for (int e = 0; e < edits; e++) {
            size_t at = len > 0 ? (size_t)(rng() % len) : 0;

            switch (rng() % 4) {
            case 0: /* replace */
                if (len > 0) {
                    buf[at] = (unsigned char)rng();
                }
                break;
            case 1: /* insert */
                if (len < sizeof(buf) - 1) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = (unsigned char)alphabet[rng() % (sizeof(alphabet) - 1)];
                    len++;
                }
                break;
            case 2: /* delete */
                if (len > 0) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            default: { /* splice: our head, the other value's tail */
                size_t cut = (size_t)(rng() % n_other);

                if (at + n_other - cut <= sizeof(buf)) {
                    memcpy(buf + at, other + cut, n_other - cut);
                    len = at + n_other - cut;
                }
                break;
            }
            }
        }
        got = verify_exact(k, buf, len, T0, cluster, sizeof(cluster));
        /* Only the original itself, or the other whole value, may pass. */
        if (got == MR_COOKIE_VALID) {
            assert_true((len == n && memcmp(buf, value, n) == 0) ||
                        (len == n_other && memcmp(buf, other, n_other) == 0));
        }
    }
    mr_cookie_keys_free(k);
}

/* ---- find ---- */

static void test_find(void **state)
{
    static const struct {
        const char *header;
        const char *want; /* NULL: not found */
    } cases[] = {
        {"MRD=abc", "abc"},
        {"MRD=abc; a=1", "abc"},
        {"a=1; MRD=abc", "abc"},
        {"a=1; MRD=abc; b=2", "abc"},
        {"a=1;MRD=abc;b=2", "abc"},
        {"  a=1 ;  MRD = abc  ; b=2 ", "abc"},
        {"\tMRD=abc\t", "abc"},
        {"MRD=first; MRD=second", "first"},
        {"a=1; MRD=; MRD=second", ""},
        {"MRD=", ""},
        {"MRD=\"quoted\"", "quoted"},
        {"MRD=\"", "\""},
        {"MRD=a=b", "a=b"},
        {"XMRD=abc", NULL},
        {"MRDX=abc", NULL},
        {"XMRD=1; MRDX=2; MRD=3", "3"},
        {"mrd=abc", NULL},
        {"a=MRD=abc", NULL},
        {"MRD", NULL},
        {"MRD; b=MRD=x", NULL},
        {"a=1; b=2", NULL},
        {"", NULL},
        {";;; ;", NULL},
        {"=abc", NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].header), vlen = 999;
        char *copy = malloc(len > 0 ? len : 1);
        const char *got;

        assert_non_null(copy);
        memcpy(copy, cases[i].header, len);
        got = mr_cookie_find(copy, len, "MRD", &vlen);
        if (cases[i].want == NULL) {
            if (got != NULL) {
                fprintf(stderr, "  case %zu [%s]: found [%.*s]\n", i, cases[i].header, (int)vlen,
                        got);
                fail();
            }
        } else {
            if (got == NULL || vlen != strlen(cases[i].want) ||
                memcmp(got, cases[i].want, vlen) != 0) {
                fprintf(stderr, "  case %zu [%s]: want [%s]\n", i, cases[i].header, cases[i].want);
                fail();
            }
            assert_true(got >= copy && got + vlen <= copy + len);
        }
        free(copy);
    }
    /* len, not the NUL, ends the header. */
    {
        size_t vlen = 0;
        const char *h = "a=1; MRD=abc; b=2";
        const char *got = mr_cookie_find(h, 11, "MRD", &vlen); /* "a=1; MRD=ab" */

        assert_ptr_equal(got, h + 9);
        assert_int_equal(vlen, 2);
        assert_null(mr_cookie_find(h, 8, "MRD", &vlen));
    }
    assert_null(mr_cookie_find(NULL, 0, "MRD", NULL));
    assert_null(mr_cookie_find("MRD=1", 5, "", NULL));
    assert_non_null(mr_cookie_find("MRD=1", 5, "MRD", NULL));
    /* Random headers never make it read outside. */
    for (int it = 0; it < 20000; it++) {
        static const char alphabet[] = "MRD=; \t\"xX";
        size_t len = (size_t)(rng() % 64), vlen;
        char *h = malloc(len > 0 ? len : 1);
        const char *got;

        assert_non_null(h);
        for (size_t i = 0; i < len; i++) {
            h[i] = alphabet[rng() % (sizeof(alphabet) - 1)];
        }
        got = mr_cookie_find(h, len, "MRD", &vlen);
        if (got != NULL) {
            assert_true(got >= h && got + vlen <= h + len);
        }
        free(h);
    }
}

/* ---- Set-Cookie ---- */

static void test_set_header(void **state)
{
    static const struct {
        const char *session;
        bool tls;
        const char *want;
    } cases[] = {
        {"", false, "Set-Cookie: MRD=V; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax\r\n"},
        {"", true, "Set-Cookie: MRD=V; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax\r\n"},
        {",\"secure\": true", false,
         "Set-Cookie: MRD=V; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax\r\n"},
        {",\"secure\": true", true,
         "Set-Cookie: MRD=V; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax\r\n"},
        {",\"http_only\": false", false,
         "Set-Cookie: MRD=V; Max-Age=3600; Path=/; SameSite=Lax\r\n"},
        {",\"http_only\": false, \"same_site\": \"Strict\"", true,
         "Set-Cookie: MRD=V; Max-Age=3600; Path=/; Secure; SameSite=Strict\r\n"},
        {",\"secure\": true, \"same_site\": \"None\"", false,
         "Set-Cookie: MRD=V; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=None\r\n"},
        {",\"same_site\": \"Strict\", \"cookie\": \"edge_s\"", false,
         "Set-Cookie: edge_s=V; Max-Age=3600; Path=/; HttpOnly; SameSite=Strict\r\n"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mr_snapshot *snap = load_snap("one.keys", cases[i].session);
        char out[512];
        size_t n = mr_cookie_set_header(snap, "V", 1, cases[i].tls, out, sizeof(out));

        if (n != strlen(cases[i].want) || strcmp(out, cases[i].want) != 0) {
            fprintf(stderr, "  case %zu: got [%s] want [%s]\n", i, out, cases[i].want);
            fail();
        }
        mr_snap_free(snap);
    }

    /* A real value; every capacity too small fails; injection refused. */
    {
        struct mr_snapshot *snap = load_snap("one.keys", "");
        struct mr_cookie_keys *k = mr_cookie_keys_new(snap);
        char value[MR_COOKIE_VALUE_MAX], out[512], *small;
        size_t vlen = sign(k, "eu-a", T0, value);
        size_t n = mr_cookie_set_header(snap, value, vlen, false, out, sizeof(out));

        assert_true(n > vlen);
        assert_non_null(strstr(out, value));
        for (size_t cap = 0; cap <= n; cap++) {
            small = malloc(cap > 0 ? cap : 1);
            assert_non_null(small);
            assert_int_equal(mr_cookie_set_header(snap, value, vlen, false, small, cap), 0);
            free(small);
        }
        assert_int_equal(mr_cookie_set_header(snap, "a\r\nX-Evil: 1", 12, false, out, sizeof(out)),
                         0);
        assert_int_equal(mr_cookie_set_header(snap, "a;b", 3, false, out, sizeof(out)), 0);
        assert_int_equal(mr_cookie_set_header(snap, "a b", 3, false, out, sizeof(out)), 0);
        mr_cookie_keys_free(k);
        mr_snap_free(snap);
    }
}

static void test_result_names(void **state)
{
    assert_string_equal(mr_cookie_result_name(MR_COOKIE_VALID), "valid");
    assert_string_equal(mr_cookie_result_name(MR_COOKIE_MALFORMED), "malformed");
    assert_string_equal(mr_cookie_result_name(MR_COOKIE_UNKNOWN_KEY), "unknown_key");
    assert_string_equal(mr_cookie_result_name(MR_COOKIE_BAD_SIGNATURE), "bad_signature");
    assert_string_equal(mr_cookie_result_name(MR_COOKIE_EXPIRED), "expired");
}

/* ---- BENCHMARK: prints timings, asserts only correctness ---- */

static void bench_sign_verify(void **state)
{
    enum { ITERATIONS = 100000 };
    struct mr_cookie_keys *k = load_keys("two.keys");
    char value[MR_COOKIE_VALUE_MAX], cluster[MR_COOKIE_CLUSTER_MAX + 1];
    size_t n = 0, valid = 0;
    double t, sign_ns, verify_ns;

    t = now_s();
    for (int i = 0; i < ITERATIONS; i++) {
        n = mr_cookie_sign(k, "eu-a", T0 + i, MAX_AGE, value, sizeof(value));
    }
    sign_ns = (now_s() - t) / ITERATIONS * 1e9;
    assert_true(n > 0);
    t = now_s();
    for (int i = 0; i < ITERATIONS; i++) {
        valid += mr_cookie_verify(k, value, n, T0 + ITERATIONS, cluster, sizeof(cluster)) ==
                 MR_COOKIE_VALID;
    }
    verify_ns = (now_s() - t) / ITERATIONS * 1e9;
    assert_int_equal(valid, ITERATIONS);
    print_message("BENCHMARK (informational, not asserted): %d iterations, value %zu bytes: "
                  "sign %.0f ns, verify %.0f ns\n",
                  ITERATIONS, n, sign_ns, verify_ns);
    mr_cookie_keys_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_sign_limits),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_tampered_fields),
        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_retargeted),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_future_issue),
        cmocka_unit_test(test_future_issue_cached),
        cmocka_unit_test(test_random_garbage),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_set_header),
        cmocka_unit_test(test_result_names),
        cmocka_unit_test(bench_sign_verify),
    };

    return cmocka_run_group_tests(tests, setup_files, teardown_files);
}
