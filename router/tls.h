/*
 * router/tls.h: TLS termination contexts, one per TLS listener per snapshot.
 *
 * mr_tls_attach() reads every listener's certificates, keys and OCSP
 * responses when a snapshot is built, so a certificate that is unreadable,
 * expired or does not match its key is a configuration error naming its
 * JSON path and the running snapshot keeps serving. Each certificate gets
 * its own SSL_CTX; the ClientHello's SNI picks one by the names in the
 * certificates' subjectAltName (exact, then one-label wildcard), else the
 * first certificate. Session ticket keys are process-wide, so tickets
 * survive reloads; they rotate every ticket_rotate_s and stay accepted for
 * one more period. A connection holds a reference on its listener's
 * server, so a reload during its handshake frees nothing it uses.
 */
#ifndef MR_ROUTER_TLS_H
#define MR_ROUTER_TLS_H

#include <openssl/ssl.h>

#include "common/err.h"
#include "conf/snapshot.h"

/* Builds and attaches a server to every listener with "tls"; 0, or -1
 * with errs filled ("listeners[0].tls.certificates[1].key: ..."). Before
 * publish only. */
int mr_tls_attach(struct mr_snapshot *snap, struct mr_errors *errs);

/* A new server-side SSL for one accepted connection (default certificate
 * until SNI says otherwise); it holds a reference on srv until SSL_free().
 * NULL when out of memory. Any thread. */
SSL *mr_tls_new_ssl(struct mr_tls_server *srv);

#endif
