/*
 * control/dashboard.h: the operator dashboard, GET / of the admin listener.
 *
 * One self-contained page (control/dashboard/index.html with dashboard.css
 * and dashboard.js inlined, no external resources) compiled into the binary
 * by tools/embed.py, so the edge serves it with no files to deploy beside it.
 */
#ifndef MR_ROUTER_DASHBOARD_H
#define MR_ROUTER_DASHBOARD_H

#include <stddef.h>

extern const char mr_dashboard_html[];
extern const size_t mr_dashboard_html_len;

#endif
