/*
 * conf/secrets.h: readers for session.keys_file and admin.token_file.
 *
 * keys_file: one key per line, "KID:BASE64SECRET", secret >= 32 bytes once
 * decoded, '#' starts a comment, blank lines ignored; the first key signs.
 * token_file: one line, the bearer token (surrounding whitespace trimmed).
 * Errors go to errs prefixed with json_path (the key that named the file); a
 * file readable by group or others is a warning.
 */
#ifndef MR_CONF_SECRETS_H
#define MR_CONF_SECRETS_H

#include <stddef.h>

#include "common/err.h"
#include "conf/snapshot.h"

#define MR_SECRETS_MIN_KEY_BYTES 32

/* Reads file into *keys / *n_keys (owned by the caller, free with
 * mr_secrets_free_keys); 0, or -1 with errors added. */
int mr_secrets_read_keys(const char *file, const char *json_path, struct mr_session_key **keys,
                         size_t *n_keys, struct mr_errors *errs);

void mr_secrets_free_keys(struct mr_session_key *keys, size_t n_keys);

/* Returns the token (malloc'd), or NULL with an error added. */
char *mr_secrets_read_token(const char *file, const char *json_path, struct mr_errors *errs);

#endif
