/*
 * tests/fuzz/fuzz_cookie.c: session cookie verification (mr_cookie_verify)
 * against a fixed set of two keys.
 *
 * Input: now1 and now2 (8 bytes each, little-endian), a mode byte, then
 * the bytes. Mode even: the bytes are a cookie value. Verifying never reads
 * past it; a VALID value is exactly what mr_cookie_sign writes for its key,
 * cluster and times (one encoding per cookie), names a NUL-terminated
 * cluster, verifies the same with the keys in another order, and a second
 * verification at now2 by the same (caching) keys answers as fresh keys do.
 * Mode odd: the bytes name a cluster; what sign writes at now1 verifies
 * VALID with that cluster before it expires and EXPIRED after.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "router/cookie.h"

static unsigned char secret_a[32] = "0123456789abcdef0123456789abcdef";
static unsigned char secret_b[40] = "another secret, forty bytes long........";

/* Keys k1 then old (k1 signs), or old then k1. */
static struct mr_cookie_keys *keys(bool k1_first)
{
    struct mr_session_key set[2] = {
        {.kid = "k1", .secret = secret_a, .secret_len = sizeof(secret_a)},
        {.kid = "old", .secret = secret_b, .secret_len = sizeof(secret_b)},
    };
    struct mr_session_key order[2] = {set[k1_first ? 0 : 1], set[k1_first ? 1 : 0]};
    struct mr_snapshot snap;
    struct mr_cookie_keys *k;

    memset(&snap, 0, sizeof(snap));
    snap.session.keys = order;
    snap.session.n_keys = 2;
    k = mr_cookie_keys_new(&snap);
    if (k == NULL)
        abort();
    return k;
}

static int64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return (int64_t)v;
}

static enum mr_cookie_result verify(struct mr_cookie_keys *k, const uint8_t *v, size_t len,
                                    int64_t now, char *cluster)
{
    /* An exact-size copy, so ASan sees any read past len. */
    char *copy = malloc(len + 1);
    enum mr_cookie_result r;

    memcpy(copy, v, len);
    r = mr_cookie_verify(k, len ? copy : NULL, len, now, cluster, MR_COOKIE_CLUSTER_MAX + 1);
    free(copy);
    return r;
}

static void check_value(const uint8_t *v, size_t len, int64_t now1, int64_t now2)
{
    struct mr_cookie_keys *a = keys(true), *b = keys(false), *fresh = keys(true);
    char cluster[MR_COOKIE_CLUSTER_MAX + 1], other[MR_COOKIE_CLUSTER_MAX + 1];
    char text[MR_COOKIE_VALUE_MAX], again[MR_COOKIE_VALUE_MAX];
    enum mr_cookie_result r = verify(a, v, len, now1, cluster), r2, rf;

    if (r == MR_COOKIE_VALID) {
        char kid[8];
        int64_t issued, expires;
        size_t n;

        if (strlen(cluster) == 0 || strlen(cluster) > MR_COOKIE_CLUSTER_MAX)
            abort();
        /* v1.KID.CLUSTER.ISSUED.EXPIRES.MAC */
        memcpy(text, v, len);
        text[len] = '\0';
        if (sscanf(text, "v1.%7[^.].%*[^.].%" SCNd64 ".%" SCNd64 ".", kid, &issued, &expires) != 3)
            abort();
        struct mr_cookie_keys *signer = strcmp(kid, "k1") == 0 ? a : b;
        n = mr_cookie_sign(signer, cluster, issued, expires - issued, again, sizeof(again));
        if (n != len || memcmp(again, v, len) != 0) {
            fprintf(stderr, "valid cookie %s is not what sign writes: %s\n", text, again);
            abort();
        }
        if (verify(b, v, len, now1, other) != MR_COOKIE_VALID || strcmp(other, cluster) != 0)
            abort();
    }
    /* A cached verification answers as a fresh one. */
    r2 = verify(a, v, len, now2, cluster);
    rf = verify(fresh, v, len, now2, other);
    if (r2 != rf || (r2 == MR_COOKIE_VALID && strcmp(cluster, other) != 0)) {
        fprintf(stderr, "at %" PRId64 " after %" PRId64 ": %s cached, %s fresh\n", now2, now1,
                mr_cookie_result_name(r2), mr_cookie_result_name(rf));
        abort();
    }
    mr_cookie_keys_free(a);
    mr_cookie_keys_free(b);
    mr_cookie_keys_free(fresh);
}

static void check_sign(const uint8_t *name, size_t len, int64_t now, int64_t max_age)
{
    struct mr_cookie_keys *a = keys(true);
    char cluster[MR_COOKIE_CLUSTER_MAX + 2], out[MR_COOKIE_VALUE_MAX],
        got[MR_COOKIE_CLUSTER_MAX + 1];
    size_t n;

    len = len > MR_COOKIE_CLUSTER_MAX + 1 ? MR_COOKIE_CLUSTER_MAX + 1 : len;
    memcpy(cluster, name, len);
    cluster[len] = '\0';
    n = mr_cookie_sign(a, cluster, now, max_age, out, sizeof(out));
    if (n > 0) {
        if (n != strlen(out) ||
            mr_cookie_verify(a, out, n, now, got, sizeof(got)) != MR_COOKIE_VALID ||
            strcmp(got, cluster) != 0)
            abort();
        if (mr_cookie_verify(a, out, n, now + max_age, got, sizeof(got)) != MR_COOKIE_EXPIRED)
            abort();
    } else if (strlen(cluster) > 0 && strlen(cluster) <= MR_COOKIE_CLUSTER_MAX && now >= 0 &&
               max_age > 0 && now <= INT64_MAX - max_age) {
        fprintf(stderr, "sign refused %s at %" PRId64 " for %" PRId64 "\n", cluster, now, max_age);
        abort();
    }
    mr_cookie_keys_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t now1, now2;

    if (size < 17)
        return 0;
    now1 = get64(data);
    now2 = get64(data + 8);
    if (data[16] & 1)
        check_sign(data + 17, size - 17, now1, now2 < 0 ? -(now2 + 1) : now2);
    else
        check_value(data + 17, size - 17, now1, now2);
    return 0;
}
