/*
 * ctl/print.h: meridianctl's readable printouts of the admin API's answers
 * (docs/admin-api.md): the status table, a dry run, an applied change,
 * explain, history, and a refusal.
 *
 * Printouts go to stdout, warnings and refusals to stderr as
 * "meridianctl: ...". They take the answer's JSON as it came and never fail:
 * a missing key prints as "?" or "-", so an older or newer edge still gets
 * a readable line.
 */
#ifndef MR_CTL_PRINT_H
#define MR_CTL_PRINT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ctl/http.h"

/* A scalar as text into out (n bytes): integers as such, reals shortest,
 * null/missing as dflt. Returns out. */
const char *mr_ctl_jfmt(const json_t *v, char *out, size_t n, const char *dflt);

/* The answer's "message", or fallback when it has none. */
const char *mr_ctl_message_or(const json_t *ans, const char *fallback);

/* GET /api/v1/status: every region, cluster and endpoint, columns aligned. */
void mr_ctl_print_status(const json_t *st);

/* "WHAT: generation OLD -> NEW" for an applied change; its warnings on stderr. */
void mr_ctl_print_applied(const json_t *ans, const char *what);

/* A dry run's answer: where the cluster's new sessions would go. what says
 * which change was tried. */
void mr_ctl_print_dry_run(const json_t *ans, const char *what);

/* GET /api/v1/explain: location, cookie, candidates and the decision. */
void mr_ctl_print_explain(const json_t *ex);

/* GET /api/v1/history: one aligned line per change, newest first. */
void mr_ctl_print_history(const json_t *h);

/* The edge said no (ans->status >= 400): its message, the clients a
 * guardrail protects and a reload's errors, on stderr. can_force: mention
 * --force when the guardrail refused. */
void mr_ctl_print_refusal(const struct mr_ctl_answer *ans, bool can_force);

#endif
