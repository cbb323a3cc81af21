/*
 * router/cookie.h: the sticky session cookie (HMAC-SHA256 signed).
 *
 * The value names the session's cluster and is signed with the snapshot's
 * session keys (session.keys_file): the first key signs, every key
 * verifies, picked by the key id in the value. The format is cookie-octets
 * only (no space, comma, semicolon, quote or backslash):
 *
 *     v1.<kid>.<b64url(cluster)>.<issued>.<expires>.<b64url(mac)>
 *
 * b64url is RFC 4648 base64url without padding; issued and expires are
 * unix seconds in decimal; mac is the full HMAC-SHA256 (43 characters) over
 * everything before the last dot. A cookie is valid while now < expires.
 *
 * A struct mr_cookie_keys holds one keyed MAC context per key, reinitialized
 * (not re-keyed, not copied) for each sign or verify, so the per-request
 * cost is the HMAC itself. It belongs to one thread: build one per worker
 * per snapshot, and never share it. The other functions are pure.
 */
#ifndef MR_ROUTER_COOKIE_H
#define MR_ROUTER_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"

struct mr_cookie_keys;

/* A buffer this large holds any value signed for a cluster name of up to
 * MR_COOKIE_CLUSTER_MAX bytes with a key id of up to 32 characters. */
#define MR_COOKIE_CLUSTER_MAX 128
#define MR_COOKIE_VALUE_MAX 320

/* An issue time this far ahead of now is refused (clocks of the edges that
 * share the keys may disagree a little, not more). */
#define MR_COOKIE_CLOCK_SKEW_S 60

enum mr_cookie_result {
    MR_COOKIE_VALID,
    MR_COOKIE_MALFORMED,     /* truncated, garbled, issued in the future */
    MR_COOKIE_UNKNOWN_KEY,   /* well formed, its key id is not (or no longer) ours */
    MR_COOKIE_BAD_SIGNATURE, /* forged or re-targeted (fields changed) */
    MR_COOKIE_EXPIRED,       /* authentic, but now >= expires */
};

/* A short lower-case name for logs and counters: "valid", "malformed",
 * "unknown_key", "bad_signature", "expired". */
const char *mr_cookie_result_name(enum mr_cookie_result r);

/* Keys every session key of snap into its own MAC context; NULL when snap
 * has no key or OpenSSL fails. The result does not point into snap (key
 * ids are copied), but is meant to live as long as the worker holds snap.
 * Owned by the caller; one thread only. */
struct mr_cookie_keys *mr_cookie_keys_new(const struct mr_snapshot *snap);

/* Frees k (its contexts wipe their key material); accepts NULL. */
void mr_cookie_keys_free(struct mr_cookie_keys *k);

/* Writes a value naming cluster, issued at now and expiring at
 * now + max_age_s, signed with the first key, NUL-terminated into out.
 * Returns the value's length (without the NUL), or 0 when out is too small
 * (MR_COOKIE_VALUE_MAX always fits), cluster is empty or longer than
 * MR_COOKIE_CLUSTER_MAX, now < 0, max_age_s <= 0, or OpenSSL fails. */
size_t mr_cookie_sign(struct mr_cookie_keys *k, const char *cluster, int64_t now, int64_t max_age_s,
                      char *out, size_t cap);

/* Checks value[0..len) (not NUL-terminated; never read past len) against
 * every key, chosen by its key id; on MR_COOKIE_VALID, copies the cluster
 * name NUL-terminated into cluster_out. The checks run in this order:
 * format, each field's syntax and base64url canonical (MALFORMED), key id
 * (UNKNOWN_KEY), MAC compared in constant time (BAD_SIGNATURE), issue time
 * more than MR_COOKIE_CLOCK_SKEW_S ahead of now or a name that does not fit
 * cluster_cap (MALFORMED), expiry (EXPIRED). cluster_out is written only
 * when the result is VALID. Any byte string is safe to pass. */
enum mr_cookie_result mr_cookie_verify(struct mr_cookie_keys *k, const char *value, size_t len,
                                       int64_t now, char *cluster_out, size_t cluster_cap);

/* Finds the cookie called name in a Cookie header value
 * ("a=1; MRD=...; b=2"): exact name match, first one when repeated.
 * Returns a pointer into header_value at its value (surrounding blanks and
 * one pair of double quotes removed) and sets *value_len, which may be 0;
 * NULL when absent. Reads only header_value[0..len). */
const char *mr_cookie_find(const char *header_value, size_t len, const char *name,
                           size_t *value_len);

/* Writes the response header line
 * "Set-Cookie: <name>=<value>; Max-Age=<n>; Path=/[; HttpOnly][; Secure];
 * SameSite=<s>\r\n" from snap->session into out, NUL-terminated: HttpOnly
 * when session.http_only, Secure when session.secure or the client came
 * over TLS. Returns its length, or 0 when out is too small or value holds a
 * byte that is not a cookie-octet (no header injection). */
size_t mr_cookie_set_header(const struct mr_snapshot *snap, const char *value, size_t value_len,
                            bool tls, char *out, size_t cap);

#endif
