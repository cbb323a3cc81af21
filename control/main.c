/*
 * control/main.c: the meridian process.
 *
 *   meridian -c FILE      run the edge
 *   meridian -t -c FILE   check FILE: exit 0, or 1 with one line per error
 *   meridian --version
 *
 * The main thread becomes the control thread (control/control.c): it
 * starts the workers, then serves signals, health checks and the admin API.
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "control/control.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: meridian [-t] -c FILE\n"
                 "       meridian --version\n"
                 "  -c, --config FILE  configuration file (JSON)\n"
                 "  -t, --test         check the configuration and exit\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct mr_control ctl;
    const char *path = NULL;
    bool test_only = false;
    int opt;

    while ((opt = getopt_long(argc, argv, "c:thV", options, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': test_only = true; break;
        case 'V': printf("meridian %s\n", MR_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (path == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (test_only)
        return mr_control_check(path);
    if (mr_control_start(&ctl, path) != 0)
        return 1;
    mr_control_run(&ctl);
    return 0;
}
