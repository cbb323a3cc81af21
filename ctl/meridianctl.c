/*
 * ctl/meridianctl.c: meridianctl, the command-line client of the admin API
 * (docs/admin-api.md).
 *
 *   meridianctl [--admin URL] [--token-file FILE] [--json] COMMAND [ARGS]
 *
 * One command is one HTTP/1.1 request on a fresh connection (Connection:
 * close), answered by one printout: a readable one by default, the edge's
 * JSON as is with --json. The client (ctl/http.c) is deliberately small and
 * blocking: plain http:// only (the admin API binds to loopback), every send
 * and receive bounded by a 10 s timeout, the answer read whole
 * (Content-Length, chunked or up to EOF) before anything is printed
 * (ctl/print.c). This file holds the commands and the command line.
 *
 * Exit status, which scripts depend on: 0 done; 1 the edge refused (any
 * 4xx/5xx answer; its message on stderr as "meridianctl: refused: ...");
 * 2 usage error, or no usable answer (bad URL, unreadable token file, cannot
 * connect, timeout, malformed answer). Usage errors are found before any
 * request is sent.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/err.h"
#include "conf/secrets.h"
#include "ctl/http.h"
#include "ctl/print.h"

#ifndef MR_VERSION
#define MR_VERSION "0.0.0"
#endif

#define DEFAULT_ADMIN "http://127.0.0.1:9090" /* admin.address's default */
#define DEADLINE_MAX_S (10L * 366 * 24 * 3600)

enum ctl_exit {
    EXIT_DONE = 0,
    EXIT_REFUSED = 1, /* the edge answered 4xx/5xx */
    EXIT_TROUBLE = 2, /* usage, connection or protocol error */
};

/* Options that only some commands take; a command lists the ones it accepts.
 * Each is also its long_options entry's val. */
enum cmd_opt {
    OPT_HARD = 1u << 0,
    OPT_DEADLINE = 1u << 1,
    OPT_DRY_RUN = 1u << 2,
    OPT_FORCE = 1u << 3,
    OPT_COOKIE = 1u << 4,
};

struct ctl {
    const char *admin_url;  /* from --admin or MERIDIAN_ADMIN or the default */
    const char *admin_from; /* which of the three, for messages */
    const char *token_file; /* NULL: send no Authorization header */
    const char *token_from;
    bool json_out;
    unsigned opts_seen; /* OPT_* given on the command line */
    bool hard, dry_run, force;
    long deadline_s; /* 0: none */
    const char *cookie;
    const char **args; /* positionals: the command word, then its arguments */
    int n_args;
    struct mr_ctl_target target;
    char *token; /* owned */
};

struct command {
    const char *name;
    const char *synopsis; /* arguments, for usage messages */
    int min_args, max_args;
    unsigned opts; /* OPT_* it accepts */
    int (*run)(struct ctl *ctl);
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: meridianctl [--admin URL] [--token-file FILE] [--json] COMMAND [ARGS]\n"
        "\n"
        "Client of the meridian admin API. Options may come before or after COMMAND.\n"
        "\n"
        "commands:\n"
        "  status                        every region, cluster and endpoint: state, health,\n"
        "                                weight, drain and traffic\n"
        "  drain CLUSTER [--hard] [--deadline SECONDS] [--dry-run] [--force]\n"
        "                                stop new sessions to CLUSTER; soft (default) keeps its\n"
        "                                sticky sessions (until the deadline, if given), --hard\n"
        "                                moves them away at once\n"
        "  undrain CLUSTER               end CLUSTER's drain\n"
        "  weight CLUSTER N [--dry-run] [--force]\n"
        "                                set CLUSTER's weight in force (N >= 0; 0 takes no new\n"
        "                                sessions but keeps the ones it has)\n"
        "  reload                        re-read the edge's configuration file\n"
        "  explain IP [--cookie VALUE]   how a request from IP (carrying that session\n"
        "                                cookie) would be routed, and why\n"
        "  history                       the changes made, newest first\n"
        "  undo                          revert the last change not yet undone\n"
        "\n"
        "options:\n"
        "  --admin URL          admin API, http://HOST[:PORT] ([::1]:PORT for IPv6); default\n"
        "                       $MERIDIAN_ADMIN, else " DEFAULT_ADMIN "\n"
        "  --token-file FILE    file whose one line is the bearer token; default\n"
        "                       $MERIDIAN_TOKEN_FILE, else no token is sent\n"
        "  --json               print the edge's JSON answer as it is, for scripts\n"
        "  --hard               drain: hard drain, sticky sessions move too\n"
        "  --deadline SECONDS   drain: a soft drain keeps sessions only that long\n"
        "  --dry-run            drain, weight: show where new sessions would go, change\n"
        "                       nothing\n"
        "  --force              drain, weight: apply even if some clients would be left\n"
        "                       with no cluster taking new sessions\n"
        "  --cookie VALUE       explain: the value of the session cookie\n"
        "  -h, --help           print this help\n"
        "  --version            print meridianctl's version\n"
        "\n"
        "exit status: 0 done; 1 refused by the edge (its message on stderr); 2 usage\n"
        "error, or no usable answer (bad URL or token file, cannot connect, timeout).\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the message and where to find help; returns EXIT_TROUBLE. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mr_ctl_vcomplain(fmt, ap);
    va_end(ap);
    fputs("(meridianctl --help lists the commands and options)\n", stderr);
    return EXIT_TROUBLE;
}

/* ---------------------------------------------------------------- commands */

/* Runs one call: on success, the answer's JSON in ans->json (or, with
 * --json, the body printed and *printed set). Returns an exit code. */
static int call(const struct ctl *ctl, const char *method, const char *path, json_t *body,
                struct mr_ctl_answer *ans, bool *printed)
{
    *printed = false;
    if (mr_ctl_http_call(&ctl->target, ctl->token, method, path, body, ans) != 0) {
        return EXIT_TROUBLE;
    }
    if (ans->status >= 400) {
        mr_ctl_print_refusal(ans, (ctl->opts_seen & OPT_FORCE) == 0 &&
                                      (strcmp(ctl->args[0], "drain") == 0 ||
                                       strcmp(ctl->args[0], "weight") == 0));
        return EXIT_REFUSED;
    }
    if (ans->status < 200 || ans->status >= 300) {
        mr_ctl_complain("unexpected answer from the admin API at %s: HTTP %d",
                        ctl->target.authority, ans->status);
        return EXIT_TROUBLE;
    }
    if (ctl->json_out) {
        fwrite(ans->body, 1, ans->body_len, stdout);
        if (ans->body_len == 0 || ans->body[ans->body_len - 1] != '\n') {
            fputc('\n', stdout);
        }
        *printed = true;
        return EXIT_DONE;
    }
    if (!json_is_object(ans->json)) {
        mr_ctl_complain("bad answer from the admin API at %s: not a JSON object",
                        ctl->target.authority);
        return EXIT_TROUBLE;
    }
    return EXIT_DONE;
}

/* "/api/v1/clusters/NAME/ACTION", the name percent-encoded. */
static char *cluster_path(const char *cluster, const char *action)
{
    struct mr_ctl_buf b = {0};

    mr_ctl_buf_printf(&b, "/api/v1/clusters/");
    mr_ctl_buf_add_encoded(&b, cluster, "");
    mr_ctl_buf_printf(&b, "/%s", action);
    return b.p;
}

static int cmd_status(struct ctl *ctl)
{
    struct mr_ctl_answer ans;
    bool printed;
    int rc = call(ctl, "GET", "/api/v1/status", NULL, &ans, &printed);

    if (rc == EXIT_DONE && !printed) {
        mr_ctl_print_status(ans.json);
    }
    mr_ctl_answer_free(&ans);
    return rc;
}

enum change_kind {
    CHANGE_DRAIN,
    CHANGE_UNDRAIN,
    CHANGE_WEIGHT,
};

/* A change in words, from the request and, once applied, the answer:
 * "drained eu-west-a (soft drain, no deadline)", "weight of eu-west-a set
 * to 0 (was 50)"; for a dry run (ans NULL) what was tried. */
static void describe_change(const struct ctl *ctl, enum change_kind kind, const json_t *ans,
                            struct mr_ctl_buf *out)
{
    const char *cluster = ctl->args[1];
    const char *msg = ans != NULL ? mr_ctl_message_or(ans, NULL) : NULL;
    char mode[96];

    if (ctl->hard) {
        snprintf(mode, sizeof mode, "hard");
    } else if (ctl->deadline_s > 0) {
        snprintf(mode, sizeof mode, "soft, deadline in %ld s", ctl->deadline_s);
    } else {
        snprintf(mode, sizeof mode, "soft, no deadline");
    }
    switch (kind) {
    case CHANGE_DRAIN:
        mr_ctl_buf_printf(out, "%s %s (%s)", ans != NULL ? "drained" : "drain", cluster,
                          msg != NULL ? msg : mode);
        break;
    case CHANGE_UNDRAIN:
        mr_ctl_buf_printf(out, "%s %s", ans != NULL ? "undrained" : "undrain", cluster);
        if (msg != NULL && strcmp(msg, "undrained") != 0) {
            mr_ctl_buf_printf(out, " (%s)", msg);
        }
        break;
    case CHANGE_WEIGHT:
        if (ans == NULL) {
            mr_ctl_buf_printf(out, "weight %s for %s", ctl->args[2], cluster);
        } else {
            const json_t *prev = json_object_get(json_object_get(json_object_get(ans, "change"),
                                                                 "previous"),
                                                 "weight");
            char was[64];

            mr_ctl_buf_printf(out, "weight of %s set to %s", cluster, ctl->args[2]);
            if (json_is_number(prev)) {
                mr_ctl_buf_printf(out, " (was %s)", mr_ctl_jfmt(prev, was, sizeof was, "?"));
            }
        }
        break;
    }
}

/* drain, undrain and weight: a change to one cluster, maybe a dry run. */
static int run_change(struct ctl *ctl, const char *method, const char *action, json_t *body,
                      enum change_kind kind)
{
    char *path = cluster_path(ctl->args[1], action);
    struct mr_ctl_buf what = {0};
    struct mr_ctl_answer ans;
    bool printed;
    int rc;

    rc = call(ctl, method, path, body, &ans, &printed);
    if (rc == EXIT_DONE && !printed) {
        if (json_is_true(json_object_get(ans.json, "dry_run"))) {
            describe_change(ctl, kind, NULL, &what);
            mr_ctl_print_dry_run(ans.json, what.p);
        } else {
            describe_change(ctl, kind, ans.json, &what);
            mr_ctl_print_applied(ans.json, what.p);
        }
    }
    free(what.p);
    mr_ctl_answer_free(&ans);
    free(path);
    json_decref(body);
    return rc;
}

static int cmd_drain(struct ctl *ctl)
{
    json_t *body = json_object();

    json_object_set_new(body, "mode", json_string(ctl->hard ? "hard" : "soft"));
    if (ctl->deadline_s > 0) {
        json_object_set_new(body, "deadline_s", json_integer(ctl->deadline_s));
    }
    json_object_set_new(body, "dry_run", json_boolean(ctl->dry_run));
    json_object_set_new(body, "force", json_boolean(ctl->force));
    return run_change(ctl, "POST", "drain", body, CHANGE_DRAIN);
}

static int cmd_undrain(struct ctl *ctl)
{
    return run_change(ctl, "POST", "undrain", json_object(), CHANGE_UNDRAIN);
}

/* Strict: digits with an optional fraction and exponent, finite, >= 0;
 * no sign, spaces, hex, inf or nan (strtod alone would take them). */
static bool parse_weight(const char *s, double *out)
{
    char *end;

    if (*s == '\0' || strspn(s, "0123456789.eE+-") != strlen(s) ||
        (*s != '.' && (*s < '0' || *s > '9'))) {
        return false;
    }
    errno = 0;
    *out = strtod(s, &end);
    return *end == '\0' && errno == 0 && isfinite(*out) && *out >= 0;
}

static int cmd_weight(struct ctl *ctl)
{
    json_t *body = json_object();
    double w = 0;

    parse_weight(ctl->args[2], &w); /* checked in main, before any request */
    if (w == floor(w) && w < 9e15) {
        json_object_set_new(body, "weight", json_integer((json_int_t)w));
    } else {
        json_object_set_new(body, "weight", json_real(w));
    }
    json_object_set_new(body, "dry_run", json_boolean(ctl->dry_run));
    json_object_set_new(body, "force", json_boolean(ctl->force));
    return run_change(ctl, "PUT", "weight", body, CHANGE_WEIGHT);
}

static int cmd_reload(struct ctl *ctl)
{
    struct mr_ctl_answer ans;
    bool printed;
    int rc = call(ctl, "POST", "/api/v1/reload", NULL, &ans, &printed);

    if (rc == EXIT_DONE && !printed) {
        mr_ctl_print_applied(ans.json, mr_ctl_message_or(ans.json, "reloaded"));
    }
    mr_ctl_answer_free(&ans);
    return rc;
}

static int cmd_explain(struct ctl *ctl)
{
    struct mr_ctl_buf path = {0};
    struct mr_ctl_answer ans;
    bool printed;
    int rc;

    /* ':' stays as is: an IPv6 address reads the same on the edge's side. */
    mr_ctl_buf_printf(&path, "/api/v1/explain?ip=");
    mr_ctl_buf_add_encoded(&path, ctl->args[1], ":");
    if (ctl->cookie != NULL) {
        mr_ctl_buf_printf(&path, "&cookie=");
        mr_ctl_buf_add_encoded(&path, ctl->cookie, ":");
    }
    rc = call(ctl, "GET", path.p, NULL, &ans, &printed);
    if (rc == EXIT_DONE && !printed) {
        mr_ctl_print_explain(ans.json);
    }
    mr_ctl_answer_free(&ans);
    free(path.p);
    return rc;
}

static int cmd_history(struct ctl *ctl)
{
    struct mr_ctl_answer ans;
    bool printed;
    int rc = call(ctl, "GET", "/api/v1/history", NULL, &ans, &printed);

    if (rc == EXIT_DONE && !printed) {
        mr_ctl_print_history(ans.json);
    }
    mr_ctl_answer_free(&ans);
    return rc;
}

static int cmd_undo(struct ctl *ctl)
{
    struct mr_ctl_answer ans;
    bool printed;
    int rc = call(ctl, "POST", "/api/v1/undo", NULL, &ans, &printed);

    /* The edge's message names what was undone ("undid weight of ..."). */
    if (rc == EXIT_DONE && !printed) {
        mr_ctl_print_applied(ans.json, mr_ctl_message_or(ans.json, "undid the last change"));
    }
    mr_ctl_answer_free(&ans);
    return rc;
}

static const struct command commands[] = {
    {"status", "", 0, 0, 0, cmd_status},
    {"drain", "CLUSTER", 1, 1, OPT_HARD | OPT_DEADLINE | OPT_DRY_RUN | OPT_FORCE, cmd_drain},
    {"undrain", "CLUSTER", 1, 1, 0, cmd_undrain},
    {"weight", "CLUSTER N", 2, 2, OPT_DRY_RUN | OPT_FORCE, cmd_weight},
    {"reload", "", 0, 0, 0, cmd_reload},
    {"explain", "IP", 1, 1, OPT_COOKIE, cmd_explain},
    {"history", "", 0, 0, 0, cmd_history},
    {"undo", "", 0, 0, 0, cmd_undo},
};

/* ------------------------------------------------------- the command line */

/* Every option; a command option's val is its OPT_* flag, the others' a
 * letter. */
static const struct option long_options[] = {
    {"admin", required_argument, NULL, 'a'},
    {"token-file", required_argument, NULL, 't'},
    {"json", no_argument, NULL, 'j'},
    {"hard", no_argument, NULL, OPT_HARD},
    {"deadline", required_argument, NULL, OPT_DEADLINE},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"force", no_argument, NULL, OPT_FORCE},
    {"cookie", required_argument, NULL, OPT_COOKIE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* "-5" and "-0.5" are arguments (a weight that will be refused with a clear
 * message), not unknown options. */
static bool looks_negative_number(const char *a)
{
    return a[0] == '-' &&
           ((a[1] >= '0' && a[1] <= '9') || (a[1] == '.' && a[2] >= '0' && a[2] <= '9'));
}

/* Is the option word a (its name is a's first n bytes) spelled exactly as
 * one we take? getopt_long alone would also take abbreviations ("--adm"),
 * clusters ("-hx") and "--help=1", which the command line refuses as
 * unknown options. */
static bool option_known(const char *a, size_t n)
{
    if (strcmp(a, "-h") == 0) {
        return true;
    }
    if (n < 3 || a[1] != '-') {
        return false;
    }
    for (const struct option *o = long_options; o->name != NULL; o++) {
        if (strlen(o->name) == n - 2 && strncmp(o->name, a + 2, n - 2) == 0) {
            /* --help and --version count only as whole words. */
            return a[n] == '\0' || (o->val != 'h' && o->val != 'V');
        }
    }
    return false;
}

/* Parses argv into ctl; EXIT_DONE to go on, else the exit code (help and
 * version print and return -1 meaning "exit 0 now"). Options and arguments
 * may come in any order; words after "--" and words like "-5" are
 * arguments. Each option word is checked before getopt_long reads it (with
 * "+", so it never reorders argv), which takes its value from "=VALUE" or
 * from the next word. */
static int parse_args(int argc, char **argv, struct ctl *ctl)
{
    bool positional_only = false;

    ctl->args = mr_ctl_xrealloc(NULL, sizeof *ctl->args * (size_t)argc);
    opterr = 0;
    optind = 1;
    while (optind < argc) {
        const char *a = argv[optind];
        char name[64];
        size_t n;
        int opt;

        if (positional_only || a[0] != '-' || a[1] == '\0' || looks_negative_number(a)) {
            ctl->args[ctl->n_args++] = a;
            optind++;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            positional_only = true;
            optind++;
            continue;
        }
        /* "--name=value" or "--name value" */
        n = strcspn(a, "=");
        if (n >= sizeof name) {
            return usage_error("unknown option %s", a);
        }
        memcpy(name, a, n);
        name[n] = '\0';
        if (!option_known(a, n)) {
            return usage_error("unknown option %s", name);
        }
        opt = getopt_long(argc, argv, "+:h", long_options, NULL);
        switch (opt) {
        case ':': return usage_error("%s needs a value", name);
        case '?': return usage_error("%s takes no value", name);
        case 'h': usage(stdout); return -1;
        case 'V': printf("meridianctl %s\n", MR_VERSION); return -1;
        case 'a':
            ctl->admin_url = optarg;
            ctl->admin_from = "--admin";
            break;
        case 't':
            ctl->token_file = optarg;
            ctl->token_from = "--token-file";
            break;
        case 'j': ctl->json_out = true; break;
        case OPT_HARD:
            ctl->hard = true;
            ctl->opts_seen |= OPT_HARD;
            break;
        case OPT_DRY_RUN:
            ctl->dry_run = true;
            ctl->opts_seen |= OPT_DRY_RUN;
            break;
        case OPT_FORCE:
            ctl->force = true;
            ctl->opts_seen |= OPT_FORCE;
            break;
        case OPT_COOKIE:
            ctl->cookie = optarg;
            ctl->opts_seen |= OPT_COOKIE;
            break;
        case OPT_DEADLINE: {
            char *end;

            errno = 0;
            ctl->deadline_s = strtol(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || errno != 0 ||
                ctl->deadline_s < 1 || ctl->deadline_s > DEADLINE_MAX_S) {
                return usage_error("--deadline: expected a whole number of seconds >= 1, not '%s'",
                                   optarg);
            }
            ctl->opts_seen |= OPT_DEADLINE;
            break;
        }
        }
    }
    return EXIT_DONE;
}

/* Reads the token named by --token-file or MERIDIAN_TOKEN_FILE, with the
 * edge's own reader so both agree on what the file holds. */
static int load_token(struct ctl *ctl)
{
    struct mr_errors errs = {0};

    if (ctl->token_file == NULL) {
        return 0;
    }
    ctl->token = mr_secrets_read_token(ctl->token_file, ctl->token_from, &errs);
    if (ctl->token == NULL) {
        for (size_t i = 0; i < errs.n_errors; i++) {
            mr_ctl_complain("%s", errs.errors[i]);
        }
        if (errs.n_errors == 0) {
            mr_ctl_complain("%s: cannot read %s", ctl->token_from, ctl->token_file);
        }
        mr_errors_clear(&errs);
        return -1;
    }
    mr_errors_clear(&errs);
    return 0;
}

int main(int argc, char **argv)
{
    struct ctl ctl;
    const struct command *cmd = NULL;
    const char *env, *why = NULL;
    unsigned extra;
    double w;
    int rc;

    memset(&ctl, 0, sizeof ctl);
    rc = parse_args(argc, argv, &ctl);
    if (rc != EXIT_DONE) {
        free(ctl.args);
        return rc < 0 ? EXIT_DONE : rc;
    }
    if (ctl.n_args == 0) {
        mr_ctl_complain("no command given");
        usage(stderr);
        free(ctl.args);
        return EXIT_TROUBLE;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(ctl.args[0], commands[i].name) == 0) {
            cmd = &commands[i];
        }
    }
    rc = EXIT_TROUBLE;
    if (cmd == NULL) {
        usage_error("unknown command '%s'", ctl.args[0]);
        goto out;
    }
    if (ctl.n_args - 1 < cmd->min_args || ctl.n_args - 1 > cmd->max_args) {
        if (cmd->max_args == 0) {
            usage_error("%s takes no arguments", cmd->name);
        } else if (ctl.n_args - 1 < cmd->min_args) {
            usage_error("%s needs %s (meridianctl %s %s)", cmd->name, cmd->synopsis, cmd->name,
                        cmd->synopsis);
        } else {
            usage_error("too many arguments for %s (meridianctl %s %s)", cmd->name, cmd->name,
                        cmd->synopsis);
        }
        goto out;
    }
    extra = ctl.opts_seen & ~cmd->opts;
    if (extra != 0) {
        unsigned first = extra & -extra; /* the lowest flag: --help's order */

        for (const struct option *o = long_options; o->name != NULL; o++) {
            if ((unsigned)o->val == first) {
                usage_error("--%s is not an option of %s", o->name, cmd->name);
            }
        }
        goto out;
    }
    if (cmd->min_args >= 1 && ctl.args[1][0] == '\0') {
        usage_error("%s: %s must not be empty", cmd->name,
                    strcmp(cmd->name, "explain") == 0 ? "IP" : "CLUSTER");
        goto out;
    }
    if (cmd->run == cmd_weight && !parse_weight(ctl.args[2], &w)) {
        usage_error("weight: N must be a non-negative number, not '%s'", ctl.args[2]);
        goto out;
    }

    if (ctl.admin_url == NULL) {
        env = getenv("MERIDIAN_ADMIN");
        if (env != NULL && *env != '\0') {
            ctl.admin_url = env;
            ctl.admin_from = "MERIDIAN_ADMIN";
        } else {
            ctl.admin_url = DEFAULT_ADMIN;
            ctl.admin_from = "the default admin URL";
        }
    }
    if (mr_ctl_url_parse(ctl.admin_url, &ctl.target, &why) != 0) {
        mr_ctl_complain("bad admin URL '%s' (from %s): %s", ctl.admin_url, ctl.admin_from, why);
        goto out;
    }
    if (ctl.token_file == NULL) {
        env = getenv("MERIDIAN_TOKEN_FILE");
        if (env != NULL && *env != '\0') {
            ctl.token_file = env;
            ctl.token_from = "MERIDIAN_TOKEN_FILE";
        }
    }
    if (load_token(&ctl) != 0) {
        goto out;
    }
    rc = cmd->run(&ctl);
    if (fflush(stdout) != 0 && rc == EXIT_DONE) {
        mr_ctl_complain("writing the output: %s", strerror(errno));
        rc = EXIT_TROUBLE;
    }
out:
    if (ctl.token != NULL) {
        memset(ctl.token, 0, strlen(ctl.token));
        free(ctl.token);
    }
    free(ctl.args);
    return rc;
}
