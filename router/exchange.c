/* router/exchange.c: see exchange.h. */
#include "router/exchange.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "router/lease.h"
#include "router/stats.h"

static const struct {
    const char *name;
    int status;
} causes[MR_CAUSE_COUNT] = {
    [MR_CAUSE_NONE] = {NULL, 0},
    [MR_CAUSE_BAD_REQUEST] = {"bad request", 400},
    [MR_CAUSE_METHOD_NOT_ALLOWED] = {"method not allowed", 405},
    [MR_CAUSE_URI_TOO_LONG] = {"uri too long", 414},
    [MR_CAUSE_HEAD_TOO_LARGE] = {"request head too large", 431},
    [MR_CAUSE_NOT_IMPLEMENTED] = {"not implemented", 501},
    [MR_CAUSE_VERSION] = {"http version not supported", 505},
    [MR_CAUSE_HEAD_TIMEOUT] = {"request head timeout", 408},
    [MR_CAUSE_BAD_REQUEST_BODY] = {"bad request body", 400},
    [MR_CAUSE_NO_HOST] = {"no host to redirect to", 400},
    [MR_CAUSE_NO_SNAPSHOT] = {"no configuration", 503},
    [MR_CAUSE_LISTENER_GONE] = {"listener removed", 503},
    [MR_CAUSE_NO_CLUSTER] = {"no cluster available", 503},
    [MR_CAUSE_NO_PUBLIC_URL] = {"no public url", 503},
    [MR_CAUSE_NO_ENDPOINT] = {"no endpoint available", 503},
    [MR_CAUSE_NO_MEMORY] = {"out of memory", 503},
    [MR_CAUSE_CONNECT_FAILED] = {"upstream connect failed", 502},
    [MR_CAUSE_CONNECT_TIMEOUT] = {"upstream connect timeout", 502},
    [MR_CAUSE_UPSTREAM_CLOSED] = {"upstream closed", 502},
    [MR_CAUSE_RESPONSE_TIMEOUT] = {"upstream response timeout", 504},
    [MR_CAUSE_BAD_RESPONSE_HEAD] = {"bad upstream response head", 502},
    [MR_CAUSE_BAD_RESPONSE_BODY] = {"bad upstream response body", 502},
    [MR_CAUSE_UPSTREAM_CUT] = {"upstream closed mid body", 502},
    [MR_CAUSE_BODY_TIMEOUT] = {"upstream body timeout", 504},
};

const char *mr_cause_name(enum mr_cause cause)
{
    return causes[cause].name;
}

int mr_cause_status(enum mr_cause cause)
{
    return causes[cause].status;
}

enum mr_cause mr_cause_of_head(int status)
{
    switch (status) {
    case 405: return MR_CAUSE_METHOD_NOT_ALLOWED;
    case 414: return MR_CAUSE_URI_TOO_LONG;
    case 431: return MR_CAUSE_HEAD_TOO_LARGE;
    case 501: return MR_CAUSE_NOT_IMPLEMENTED;
    case 505: return MR_CAUSE_VERSION;
    default: return MR_CAUSE_BAD_REQUEST; /* 400: router/http1 refuses with no other */
    }
}

void mr_exchange_begin(struct mr_exchange *x, uint64_t head_bytes, const struct mr_sockaddr *client,
                       int64_t now_ns)
{
    x->unlogged = true;
    x->status = 0;
    x->bytes_in = head_bytes;
    x->bytes_out = 0;
    x->endpoint = NULL;
    x->decision.reason = MR_PICK_NONE;
    x->decision.cluster = NULL;
    x->decision.located = false;
    x->client_addr = *client;
    x->started_ns = now_ns;
    x->log_method_len = x->log_target_len = 0;
    x->req_done = false;
    x->body_forwarded = false;
    x->attempts = 0;
    x->body_unkept = false;
    x->resp_seen = false;
    if (x->sent_body != NULL)
        evbuffer_drain(x->sent_body, evbuffer_get_length(x->sent_body));
    x->resp_started = false; /* whatever the previous exchange sent */
    x->cause = MR_CAUSE_NONE;
    x->set_cookie = false;
}

void mr_exchange_free(struct mr_exchange *x)
{
    free(x->head_buf);
    if (x->sent_body != NULL)
        evbuffer_free(x->sent_body);
    free(x->log_request);
}

bool mr_exchange_head_reserve(struct mr_exchange *x, size_t need)
{
    char *grown;

    if (need <= x->head_cap)
        return true;
    grown = realloc(x->head_buf, need);
    if (grown == NULL)
        return false;
    x->head_buf = grown;
    x->head_cap = need;
    return true;
}

bool mr_exchange_may_retry(const struct mr_exchange *x, bool connect_failed)
{
    if (x->attempts > 1 || x->resp_seen || x->body_unkept)
        return false;
    if (connect_failed)
        return true;
    switch (x->method) {
    case MR_METHOD_GET:
    case MR_METHOD_HEAD:
    case MR_METHOD_OPTIONS:
    case MR_METHOD_TRACE:
    case MR_METHOD_PUT:
    case MR_METHOD_DELETE: return true;
    default: return false;
    }
}

void mr_exchange_keep_for_retry(struct mr_exchange *x, struct evbuffer *out, size_t from,
                                size_t limit)
{
    size_t n = evbuffer_get_length(out) - from;
    struct evbuffer_ptr at;
    struct evbuffer_iovec vec;

    if (n == 0 || x->body_unkept || x->resp_seen || x->attempts > 1)
        return;
    if (x->sent_body == NULL)
        x->sent_body = evbuffer_new();
    if (x->sent_body == NULL || evbuffer_get_length(x->sent_body) + n > limit ||
        evbuffer_reserve_space(x->sent_body, (ev_ssize_t)n, &vec, 1) < 1) {
        x->body_unkept = true;
        if (x->sent_body != NULL)
            evbuffer_drain(x->sent_body, evbuffer_get_length(x->sent_body));
        return;
    }
    evbuffer_ptr_set(out, &at, from, EVBUFFER_PTR_SET);
    vec.iov_len = (size_t)evbuffer_copyout_from(out, &at, vec.iov_base, n);
    evbuffer_commit_space(x->sent_body, &vec, 1);
}

bool mr_exchange_pick_retry(struct mr_exchange *x, const struct mr_endpoint *failed,
                            bool was_reused, int64_t now, uint64_t random)
{
    const struct mr_snapshot *snap = x->lease->snap;
    const struct mr_cluster *cluster = failed->cluster;
    struct mr_pick_input in = {
        .addr = (const struct sockaddr *)&x->client_addr.ss,
        .exclude = cluster,
        .now = now,
        .random = random,
    };

    x->endpoint = mr_lease_pick_endpoint(x->lease, cluster, failed);
    if (x->endpoint != NULL)
        return true;
    if (was_reused) {
        /* A stale pooled connection says nothing about the endpoint. */
        x->endpoint = failed;
        return true;
    }
    if (mr_pick_session(snap, &in, &x->decision) == MR_PICK_NONE)
        return false;
    x->set_cookie = true; /* the session now lives elsewhere */
    mr_exchange_count_decision(x);
    x->endpoint = mr_lease_pick_endpoint(x->lease, x->decision.cluster, NULL);
    return x->endpoint != NULL;
}

void mr_exchange_count_decision(struct mr_exchange *x)
{
    const struct mr_decision *d = &x->decision;
    struct mr_stats_cluster *cs = mr_lease_cluster_stats(x->lease, d->cluster);

    if (x->cluster_stats != NULL)
        mr_stats_add(&x->cluster_stats->active, (uint64_t)-1);
    x->cluster_stats = cs;
    if (cs == NULL)
        return;
    mr_stats_add(&cs->active, 1);
    if (d->reason == MR_PICK_STICKY) {
        mr_stats_add(&cs->sticky_hits, 1);
    } else {
        mr_stats_add(&cs->new_sessions, 1);
        mr_stats_add(&cs->new_by_country[mr_stats_country_index(
                         d->located && d->loc.found ? d->loc.country : NULL)],
                     1);
    }
}

void mr_exchange_count_end(struct mr_exchange *x, struct mr_stats *stats, int64_t took_ns)
{
    mr_stats_add(&stats->decisions[x->decision.reason], 1);
    mr_stats_observe(stats, took_ns > 0 ? (uint64_t)took_ns / 1000 : 0);
    if (x->cluster_stats != NULL) {
        struct mr_stats_cluster *cs = x->cluster_stats;
        mr_stats_add(&cs->requests, 1);
        mr_stats_add(&cs->status[x->status >= 100 && x->status < 600 ? x->status / 100 : 0], 1);
        mr_stats_add(&cs->active, (uint64_t)-1);
        x->cluster_stats = NULL;
    }
}

void mr_exchange_keep_for_log(struct mr_exchange *x, const struct mr_http1_head *head)
{
    size_t target_len = head->target_len < 2048 ? head->target_len : 2048;
    size_t need = head->method_len + 1 + target_len;

    if (need > x->log_cap) {
        char *grown = realloc(x->log_request, need);
        if (grown == NULL)
            return;
        x->log_request = grown;
        x->log_cap = need;
    }
    memcpy(x->log_request, head->method_name, head->method_len);
    x->log_request[head->method_len] = '\0';
    memcpy(x->log_request + head->method_len + 1, head->target, target_len);
    x->log_method_len = head->method_len;
    x->log_target_len = target_len;
}
