/*
 * ctl/print.c: meridianctl's readable printouts of the admin API's answers
 * (ctl/print.h).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "ctl/http.h"
#include "ctl/print.h"

/* ------------------------------------------------------------ JSON helpers */

static const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* A scalar as text: integers as such, reals shortest, null/missing as dflt. */
const char *mr_ctl_jfmt(const json_t *v, char *out, size_t n, const char *dflt)
{
    if (json_is_integer(v)) {
        snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        double d = json_real_value(v);

        if (d == floor(d) && fabs(d) < 1e15) {
            snprintf(out, n, "%.0f", d);
        } else {
            snprintf(out, n, "%g", d);
        }
    } else if (json_is_string(v)) {
        snprintf(out, n, "%s", json_string_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(out, n, "%s", json_is_true(v) ? "true" : "false");
    } else {
        snprintf(out, n, "%s", dflt);
    }
    return out;
}

/* A passive-health ejection of the status or explain: " ejected (timeout,
 * until ..., ejection 2)"; nothing for null. */
static void print_ejection(const json_t *ej, const char *sep)
{
    char n[32];

    if (!json_is_object(ej)) {
        return;
    }
    printf("%sejected (%s, until %s, ejection %s)", sep,
           jstr(ej, "reason") ? jstr(ej, "reason") : "?",
           jstr(ej, "until") ? jstr(ej, "until") : "?",
           mr_ctl_jfmt(json_object_get(ej, "ejections"), n, sizeof n, "?"));
}

/* One value of an audit line, short: null as "none", a drain object as its
 * mode (and deadline), other objects and arrays as compact JSON. */
static void describe_item(const json_t *item, struct mr_ctl_buf *out)
{
    char tmp[128];

    if (json_is_object(item) && jstr(item, "mode") != NULL) {
        const json_t *deadline = json_object_get(item, "deadline");

        mr_ctl_buf_printf(out, "%s", jstr(item, "mode"));
        /* The edge writes "no deadline" as null or 0. */
        if (json_is_string(deadline) ||
            (json_is_number(deadline) && json_number_value(deadline) != 0)) {
            mr_ctl_buf_printf(out, "(deadline %s)", mr_ctl_jfmt(deadline, tmp, sizeof tmp, "?"));
        }
    } else if (json_is_object(item) || json_is_array(item)) {
        char *s = json_dumps(item, JSON_COMPACT);

        mr_ctl_buf_printf(out, "%s", s != NULL ? s : "?");
        free(s);
    } else {
        mr_ctl_buf_printf(out, "%s", mr_ctl_jfmt(item, tmp, sizeof tmp, "none"));
    }
}

/* An audit line's value as "key=value ...". Only the keys that changed when
 * the line also has the previous value, each with "(was OLD)": the edge
 * records a cluster's whole override (drain and weight), and the reader
 * wants what moved. "-" when there is nothing to show. */
static void describe_change_value(const json_t *change, struct mr_ctl_buf *out)
{
    const json_t *value = json_object_get(change, "value");
    const json_t *prev = json_object_get(change, "previous");
    const char *key;
    json_t *item;
    size_t start = out->len;

    if (!json_is_object(value)) {
        if (value == NULL || json_is_null(value)) {
            mr_ctl_buf_printf(out, "-");
        } else {
            describe_item(value, out);
        }
        return;
    }
    json_object_foreach((json_t *)value, key, item) {
        const json_t *old = json_is_object(prev) ? json_object_get(prev, key) : NULL;

        if (old != NULL && json_equal((json_t *)old, item)) {
            continue;
        }
        mr_ctl_buf_printf(out, "%s%s=", out->len > start ? " " : "", key);
        describe_item(item, out);
        if (old != NULL) {
            mr_ctl_buf_printf(out, " (was ");
            describe_item(old, out);
            mr_ctl_buf_printf(out, ")");
        }
    }
    if (out->len == start) {
        mr_ctl_buf_printf(out, "-");
    }
}

/* ------------------------------------------------------------- printouts */

#define STATUS_COLS 8

static const char *const status_heads[STATUS_COLS] = {
    "REGION", "CLUSTER", "STATE", "HEALTH", "WEIGHT", "DRAIN", "REQUESTS", "ACTIVE",
};

/* The table cells of one cluster. */
static void cluster_cells(const json_t *region, const json_t *c, char cells[STATUS_COLS][160])
{
    const json_t *drain = json_object_get(c, "drain");
    const json_t *traffic = json_object_get(c, "traffic");
    const json_t *w = json_object_get(c, "weight"), *cw = json_object_get(c, "configured_weight");
    char a[64], b[64];

    snprintf(cells[0], 160, "%s", jstr(region, "name") ? jstr(region, "name") : "-");
    snprintf(cells[1], 160, "%s", jstr(c, "name") ? jstr(c, "name") : "-");
    snprintf(cells[2], 160, "%s", jstr(c, "state") ? jstr(c, "state") : "-");
    snprintf(cells[3], 160, "%s/%s",
             mr_ctl_jfmt(json_object_get(c, "endpoints_up"), a, sizeof a, "?"),
             mr_ctl_jfmt(json_object_get(c, "endpoints_total"), b, sizeof b, "?"));
    mr_ctl_jfmt(w, a, sizeof a, "-");
    mr_ctl_jfmt(cw, b, sizeof b, "-");
    if (cw != NULL && !json_is_null(cw) && strcmp(a, b) != 0) {
        snprintf(cells[4], 160, "%s (file %s)", a, b);
    } else {
        snprintf(cells[4], 160, "%s", a);
    }
    if (json_is_object(drain)) {
        const char *mode = jstr(drain, "mode") ? jstr(drain, "mode") : "?";
        const char *deadline = jstr(drain, "deadline");

        if (deadline != NULL) {
            snprintf(cells[5], 160, "%s until %s", mode, deadline);
        } else if (json_is_number(json_object_get(drain, "deadline_s"))) {
            snprintf(cells[5], 160, "%s, %ss", mode,
                     mr_ctl_jfmt(json_object_get(drain, "deadline_s"), a, sizeof a, "?"));
        } else {
            snprintf(cells[5], 160, "%s", mode);
        }
    } else {
        snprintf(cells[5], 160, "-");
    }
    mr_ctl_jfmt(json_object_get(traffic, "requests"), cells[6], 160, "-");
    mr_ctl_jfmt(json_object_get(traffic, "active_connections"), cells[7], 160, "-");
}

static void print_row(char cells[STATUS_COLS][160], const int width[STATUS_COLS])
{
    for (int i = 0; i < STATUS_COLS; i++) {
        if (i == STATUS_COLS - 1) {
            printf("%s\n", cells[i]);
        } else {
            printf("%-*s  ", width[i], cells[i]);
        }
    }
}

void mr_ctl_print_status(const json_t *st)
{
    const json_t *regions = json_object_get(st, "regions"), *region, *c, *ep;
    char cells[STATUS_COLS][160], a[64], b[64];
    int width[STATUS_COLS], addr_width = 0;
    size_t i, j, k, n_clusters = 0;

    printf("generation %s", mr_ctl_jfmt(json_object_get(st, "generation"), a, sizeof a, "?"));
    if (jstr(st, "config") != NULL) {
        printf("  config %s", jstr(st, "config"));
    }
    if (jstr(st, "started") != NULL) {
        printf("  started %s", jstr(st, "started"));
    }
    printf("\n");

    /* Two passes over the clusters: widths first, so columns line up. */
    for (i = 0; i < STATUS_COLS; i++) {
        width[i] = (int)strlen(status_heads[i]);
    }
    json_array_foreach(regions, i, region) {
        json_array_foreach(json_object_get(region, "clusters"), j, c) {
            cluster_cells(region, c, cells);
            for (k = 0; k < STATUS_COLS; k++) {
                if ((int)strlen(cells[k]) > width[k]) {
                    width[k] = (int)strlen(cells[k]);
                }
            }
            json_array_foreach(json_object_get(c, "endpoints"), k, ep) {
                const char *addr = jstr(ep, "address");

                if (addr != NULL && (int)strlen(addr) > addr_width) {
                    addr_width = (int)strlen(addr);
                }
            }
            n_clusters++;
        }
    }
    if (n_clusters == 0) {
        printf("no clusters\n");
        return;
    }
    for (i = 0; i < STATUS_COLS; i++) {
        snprintf(cells[i], sizeof cells[i], "%s", status_heads[i]);
    }
    print_row(cells, width);
    json_array_foreach(regions, i, region) {
        json_array_foreach(json_object_get(region, "clusters"), j, c) {
            cluster_cells(region, c, cells);
            print_row(cells, width);
            json_array_foreach(json_object_get(c, "endpoints"), k, ep) {
                const json_t *traffic = json_object_get(ep, "traffic");

                printf("    %-*s  %-4s  requests %s  active %s", addr_width,
                       jstr(ep, "address") ? jstr(ep, "address") : "?",
                       jstr(ep, "health") ? jstr(ep, "health") : "?",
                       mr_ctl_jfmt(json_object_get(traffic, "requests"), a, sizeof a, "-"),
                       mr_ctl_jfmt(json_object_get(traffic, "active_connections"), b, sizeof b,
                                   "-"));
                if (jstr(ep, "last_check") != NULL) {
                    printf("  last check %s", jstr(ep, "last_check"));
                }
                if (jstr(ep, "since") != NULL) {
                    printf("  since %s", jstr(ep, "since"));
                }
                print_ejection(json_object_get(ep, "ejection"), "  ");
                printf("\n");
            }
        }
    }
}

/* "WHAT: generation OLD -> NEW" for an applied change. */
void mr_ctl_print_applied(const json_t *ans, const char *what)
{
    const json_t *gen = json_object_get(ans, "generation");
    char a[64], b[64];

    const json_t *warning;
    size_t i;

    printf("%s", what);
    if (gen != NULL) {
        printf(": generation %s -> %s",
               mr_ctl_jfmt(json_object_get(ans, "previous_generation"), a, sizeof a, "?"),
               mr_ctl_jfmt(gen, b, sizeof b, "?"));
    }
    printf("\n");
    json_array_foreach(json_object_get(ans, "warnings"), i, warning) {
        if (json_string_value(warning) != NULL) {
            mr_ctl_complain("warning: %s", json_string_value(warning));
        }
    }
}

/* The answer's message, or fallback when it has none. */
const char *mr_ctl_message_or(const json_t *ans, const char *fallback)
{
    const char *msg = jstr(ans, "message");

    return msg != NULL && *msg != '\0' ? msg : fallback;
}

static void print_stranded(FILE *out, const char *prefix, const json_t *stranded)
{
    size_t i;
    const json_t *s;

    if (!json_is_array(stranded) || json_array_size(stranded) == 0) {
        return;
    }
    fprintf(out, "%s", prefix);
    json_array_foreach(stranded, i, s) {
        fprintf(out, "%s%s", i == 0 ? "" : ", ",
                json_string_value(s) != NULL ? json_string_value(s) : "?");
    }
    fprintf(out, "\n");
}

/* A dry run's answer: where the cluster's new sessions would go. what says
 * which change was tried (the edge's message restates "dry run"). */
void mr_ctl_print_dry_run(const json_t *ans, const char *what)
{
    const json_t *to = json_object_get(ans, "new_sessions_to"), *item;
    size_t i;
    int w = 0;

    printf("dry run of %s: nothing was changed\n", what);
    json_array_foreach(to, i, item) {
        const char *name = jstr(item, "cluster");

        if (name != NULL && (int)strlen(name) > w) {
            w = (int)strlen(name);
        }
    }
    if (json_array_size(to) == 0) {
        printf("new sessions would go to no cluster\n");
    } else {
        printf("new sessions would go to:\n");
        json_array_foreach(to, i, item) {
            const json_t *share = json_object_get(item, "share");

            printf("  %-*s  %5.1f%%\n", w, jstr(item, "cluster") ? jstr(item, "cluster") : "?",
                   json_is_number(share) ? json_number_value(share) * 100.0 : 0.0);
        }
    }
    if (jstr(ans, "basis") != NULL) {
        printf("(estimated from %s)\n", jstr(ans, "basis"));
    }
    print_stranded(stdout, "would strand (no cluster taking their new sessions): ",
                   json_object_get(ans, "stranded"));
}

void mr_ctl_print_explain(const json_t *ex)
{
    const json_t *loc = json_object_get(ex, "location"), *cookie = json_object_get(ex, "cookie");
    const json_t *cand, *c;
    char a[64], b[64];
    size_t i, j;

    printf("ip %s at generation %s\n", jstr(ex, "ip") ? jstr(ex, "ip") : "?",
           mr_ctl_jfmt(json_object_get(ex, "generation"), a, sizeof a, "?"));
    if (json_is_true(json_object_get(loc, "found"))) {
        printf("location:   country %s, continent %s",
               jstr(loc, "country") ? jstr(loc, "country") : "-",
               jstr(loc, "continent") ? jstr(loc, "continent") : "-");
        if (json_is_number(json_object_get(loc, "lat"))) {
            printf(", at %s, %s", mr_ctl_jfmt(json_object_get(loc, "lat"), a, sizeof a, "?"),
                   mr_ctl_jfmt(json_object_get(loc, "lon"), b, sizeof b, "?"));
        }
        printf("\n");
    } else {
        printf("location:   not found\n");
    }
    if (!json_is_true(json_object_get(cookie, "present"))) {
        printf("cookie:     none\n");
    } else {
        printf("cookie:     %s", jstr(cookie, "result") ? jstr(cookie, "result") : "?");
        if (jstr(cookie, "cluster") != NULL) {
            printf(", names cluster %s", jstr(cookie, "cluster"));
        }
        printf("\n");
    }
    printf("candidates:\n");
    if (json_array_size(json_object_get(ex, "candidates")) == 0) {
        printf("  none\n");
    }
    json_array_foreach(json_object_get(ex, "candidates"), i, cand) {
        printf("  %zu. region %s", i + 1, jstr(cand, "region") ? jstr(cand, "region") : "?");
        if (jstr(cand, "rule") != NULL) {
            printf(" (by %s)", jstr(cand, "rule"));
        }
        printf("\n");
        json_array_foreach(json_object_get(cand, "clusters"), j, c) {
            const json_t *ej;
            size_t k;

            if (json_is_true(json_object_get(c, "eligible"))) {
                printf("       %s: eligible\n", jstr(c, "name") ? jstr(c, "name") : "?");
            } else {
                printf("       %s: not eligible, %s\n", jstr(c, "name") ? jstr(c, "name") : "?",
                       jstr(c, "reason") ? jstr(c, "reason") : "no reason given");
            }
            json_array_foreach(json_object_get(c, "ejected_endpoints"), k, ej) {
                printf("         endpoint %s", jstr(ej, "address") ? jstr(ej, "address") : "?");
                print_ejection(ej, " ");
                printf("\n");
            }
        }
    }
    printf("decision:   %s", jstr(ex, "decision") ? jstr(ex, "decision") : "?");
    if (jstr(ex, "cluster") != NULL) {
        printf(" -> cluster %s", jstr(ex, "cluster"));
        if (jstr(ex, "region") != NULL) {
            printf(" in region %s", jstr(ex, "region"));
        }
    } else {
        printf(" -> no cluster");
    }
    printf("\n");
}

#define HISTORY_COLS 5

static void history_cells(const json_t *ch, char *cells[HISTORY_COLS], struct mr_ctl_buf *value)
{
    static char gens[160], kind[96];
    char a[64], b[64];

    value->len = 0;
    describe_change_value(ch, value);
    /* A change already reverted by an undo says so. */
    snprintf(kind, sizeof kind, "%s%s", jstr(ch, "change") ? jstr(ch, "change") : "-",
             json_is_true(json_object_get(ch, "undone")) ? " (undone)" : "");
    snprintf(gens, sizeof gens, "%s -> %s",
             mr_ctl_jfmt(json_object_get(ch, "generation_before"), a, sizeof a, "?"),
             mr_ctl_jfmt(json_object_get(ch, "generation_after"), b, sizeof b, "?"));
    cells[0] = (char *)(jstr(ch, "time") ? jstr(ch, "time") : "-");
    cells[1] = kind;
    cells[2] = (char *)(jstr(ch, "cluster") ? jstr(ch, "cluster") : "-");
    cells[3] = value->p;
    cells[4] = gens;
}

void mr_ctl_print_history(const json_t *h)
{
    static const char *const heads[HISTORY_COLS] = {"TIME", "CHANGE", "CLUSTER", "VALUE",
                                                    "GENERATION"};
    const json_t *changes = json_object_get(h, "changes"), *ch;
    int width[HISTORY_COLS];
    char *cells[HISTORY_COLS];
    struct mr_ctl_buf value = {0};
    size_t i;
    int k;

    if (json_array_size(changes) == 0) {
        printf("no changes\n");
        return;
    }
    for (k = 0; k < HISTORY_COLS; k++) {
        width[k] = (int)strlen(heads[k]);
    }
    json_array_foreach(changes, i, ch) {
        history_cells(ch, cells, &value);
        for (k = 0; k < HISTORY_COLS; k++) {
            if ((int)strlen(cells[k]) > width[k]) {
                width[k] = (int)strlen(cells[k]);
            }
        }
    }
    for (k = 0; k < HISTORY_COLS - 1; k++) {
        printf("%-*s  ", width[k], heads[k]);
    }
    printf("%s\n", heads[HISTORY_COLS - 1]);
    json_array_foreach(changes, i, ch) {
        history_cells(ch, cells, &value);
        for (k = 0; k < HISTORY_COLS - 1; k++) {
            printf("%-*s  ", width[k], cells[k]);
        }
        printf("%s\n", cells[HISTORY_COLS - 1]);
    }
    free(value.p);
}

/* ---------------------------------------------------------------- refusals */

/* The edge said no: its message (and the clients a guardrail protects, and
 * a reload's errors) on stderr. */
void mr_ctl_print_refusal(const struct mr_ctl_answer *ans, bool can_force)
{
    const char *msg = jstr(ans->json, "error");
    const json_t *errors = json_object_get(ans->json, "errors"), *e;
    size_t i;

    if (msg != NULL) {
        /* The edge may start its message with "refused:" too. */
        if (strncasecmp(msg, "refused: ", 9) == 0) {
            msg += 9;
        }
        mr_ctl_complain("refused: %s", msg);
    } else {
        /* Not the admin API's JSON (a proxy in between?): show the start of it. */
        size_t n = strcspn(ans->body, "\r\n");

        mr_ctl_complain("refused: HTTP %d%s%.*s", ans->status, n > 0 ? ": " : "",
                        (int)(n > 200 ? 200 : n), ans->body);
    }
    print_stranded(stderr, "meridianctl: stranded: ", json_object_get(ans->json, "stranded"));
    json_array_foreach(errors, i, e) {
        if (json_string_value(e) != NULL) {
            mr_ctl_complain("  %s", json_string_value(e));
        }
    }
    if (ans->status == 409 && can_force && json_object_get(ans->json, "stranded") != NULL) {
        mr_ctl_complain("(--force applies the change anyway)");
    }
}
