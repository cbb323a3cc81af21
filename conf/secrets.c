/* conf/secrets.c: see secrets.h. */
#include "conf/secrets.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "common/file.h"

#define KID_MAX 32
/* A token or key file larger than this is certainly a wrong path. */
#define SECRET_FILE_MAX (64 * 1024)

static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes standard base64 (padding optional, nothing else allowed) into a
 * new buffer of the true decoded length; 0 or -1. */
static int decode_base64(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    unsigned char *buf;
    size_t pad = 0, n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    while (pad < 2 && len > 0 && in[len - 1] == '=') {
        len--;
        pad++;
    }
    /* With padding the whole must be a multiple of 4; a lone sextet never is. */
    if (len == 0 || len % 4 == 1 || (pad > 0 && (len + pad) % 4 != 0))
        return -1;
    buf = malloc(len * 3 / 4 + 1);
    if (buf == NULL)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = base64_value((unsigned char)in[i]);

        if (v < 0) {
            OPENSSL_cleanse(buf, len * 3 / 4 + 1);
            free(buf);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
        }
    }
    OPENSSL_cleanse(&acc, sizeof(acc));
    *out = buf;
    *out_len = n;
    return 0;
}

static bool valid_kid(const char *kid, size_t len)
{
    if (len == 0 || len > KID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = kid[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trims [*s, *s + *len) of surrounding whitespace in place. */
static void trim(char **s, size_t *len)
{
    while (*len > 0 && is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_space((*s)[*len - 1]))
        (*len)--;
}

/* Reads a whole small file into a NUL-terminated buffer; NULL with errno.
 * A file that group or others may read is a warning: the secret is still
 * used, but the operator should know it leaks. */
static char *slurp(const char *file, const char *json_path, struct mr_errors *errs, size_t *len)
{
    struct stat st;
    char *buf = mr_file_read(file, SECRET_FILE_MAX, 0, &st, len);
    int saved = errno;

    if (S_ISREG(st.st_mode) && (st.st_mode & (S_IRGRP | S_IROTH)))
        mr_errors_warn(errs, "%s: %s is readable by group or others (mode %04o; chmod 600 it)",
                       json_path, file, (unsigned)(st.st_mode & 07777));
    errno = saved;
    return buf;
}

static void wipe(char *buf, size_t len)
{
    if (buf == NULL)
        return;
    OPENSSL_cleanse(buf, len);
    free(buf);
}

void mr_secrets_free_keys(struct mr_session_key *keys, size_t n_keys)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < n_keys; i++) {
        free(keys[i].kid);
        if (keys[i].secret != NULL) {
            OPENSSL_cleanse(keys[i].secret, keys[i].secret_len);
            free(keys[i].secret);
        }
    }
    free(keys);
}

/* Parses one non-comment line into key (kid and secret set); 0, or -1 with
 * an error added. key_lines[i] is the line keys[i] came from. */
static int parse_key_line(char *line, size_t len, const char *file, const char *json_path,
                          size_t lineno, const struct mr_session_key *keys, const size_t *key_lines,
                          size_t n_keys, struct mr_session_key *key, struct mr_errors *errs)
{
    char *colon = memchr(line, ':', len);
    char *secret_text;
    size_t kid_len, secret_len;
    unsigned char *secret;
    size_t decoded_len;

    if (colon == NULL) {
        mr_errors_add(errs, "%s: %s line %zu: expected KID:BASE64SECRET", json_path, file, lineno);
        return -1;
    }
    kid_len = (size_t)(colon - line);
    while (kid_len > 0 && is_space(line[kid_len - 1]))
        kid_len--;
    if (!valid_kid(line, kid_len)) {
        mr_errors_add(errs,
                      "%s: %s line %zu: key id \"%.*s\" must be 1-%d characters of "
                      "A-Z a-z 0-9 _ -",
                      json_path, file, lineno, (int)(kid_len > 64 ? 64 : kid_len), line, KID_MAX);
        return -1;
    }
    for (size_t i = 0; i < n_keys; i++) {
        if (strlen(keys[i].kid) == kid_len && memcmp(keys[i].kid, line, kid_len) == 0) {
            mr_errors_add(errs, "%s: %s line %zu: duplicate key id \"%.*s\" (first on line %zu)",
                          json_path, file, lineno, (int)kid_len, line, key_lines[i]);
            return -1;
        }
    }
    secret_text = colon + 1;
    secret_len = len - (size_t)(secret_text - line);
    trim(&secret_text, &secret_len);
    if (decode_base64(secret_text, secret_len, &secret, &decoded_len) < 0) {
        mr_errors_add(errs, "%s: %s line %zu: secret is not valid base64", json_path, file, lineno);
        return -1;
    }
    if (decoded_len < MR_SECRETS_MIN_KEY_BYTES) {
        mr_errors_add(errs, "%s: %s line %zu: secret is %zu bytes, at least %d required", json_path,
                      file, lineno, decoded_len, MR_SECRETS_MIN_KEY_BYTES);
        OPENSSL_cleanse(secret, decoded_len);
        free(secret);
        return -1;
    }
    key->kid = strndup(line, kid_len);
    if (key->kid == NULL) {
        OPENSSL_cleanse(secret, decoded_len);
        free(secret);
        mr_errors_add(errs, "%s: %s: out of memory", json_path, file);
        return -1;
    }
    key->secret = secret;
    key->secret_len = decoded_len;
    return 0;
}

int mr_secrets_read_keys(const char *file, const char *json_path, struct mr_session_key **keys,
                         size_t *n_keys, struct mr_errors *errs)
{
    struct mr_session_key *list = NULL;
    size_t *lines = NULL;
    size_t n = 0, len = 0, lineno = 0;
    char *text, *p;
    int failed = 0;

    *keys = NULL;
    *n_keys = 0;
    text = slurp(file, json_path, errs, &len);
    if (text == NULL) {
        mr_errors_add(errs, "%s: cannot read %s: %s", json_path, file, strerror(errno));
        return -1;
    }
    p = text;
    while (p < text + len) {
        char *eol = memchr(p, '\n', (size_t)(text + len - p));
        char *line = p;
        size_t line_len = eol != NULL ? (size_t)(eol - p) : (size_t)(text + len - p);
        char *hash;
        struct mr_session_key *grown_keys;
        size_t *grown_lines;

        p = eol != NULL ? eol + 1 : text + len;
        lineno++;
        /* Base64 and key ids never contain '#', so it always starts a comment. */
        hash = memchr(line, '#', line_len);
        if (hash != NULL)
            line_len = (size_t)(hash - line);
        trim(&line, &line_len);
        if (line_len == 0)
            continue;

        grown_keys = realloc(list, (n + 1) * sizeof(*list));
        if (grown_keys == NULL) {
            failed = 1;
            mr_errors_add(errs, "%s: %s: out of memory", json_path, file);
            break;
        }
        list = grown_keys;
        grown_lines = realloc(lines, (n + 1) * sizeof(*lines));
        if (grown_lines == NULL) {
            failed = 1;
            mr_errors_add(errs, "%s: %s: out of memory", json_path, file);
            break;
        }
        lines = grown_lines;
        memset(&list[n], 0, sizeof(list[n]));
        /* Keep going after a bad line so every bad line is reported. */
        if (parse_key_line(line, line_len, file, json_path, lineno, list, lines, n, &list[n],
                           errs) < 0) {
            failed = 1;
            continue;
        }
        lines[n++] = lineno;
    }
    wipe(text, len);
    free(lines);
    if (!failed && n == 0) {
        mr_errors_add(errs, "%s: %s has no key", json_path, file);
        failed = 1;
    }
    if (failed) {
        mr_secrets_free_keys(list, n);
        return -1;
    }
    *keys = list;
    *n_keys = n;
    return 0;
}

char *mr_secrets_read_token(const char *file, const char *json_path, struct mr_errors *errs)
{
    size_t len = 0, token_len;
    char *text, *token, *copy;

    text = slurp(file, json_path, errs, &len);
    if (text == NULL) {
        mr_errors_add(errs, "%s: cannot read %s: %s", json_path, file, strerror(errno));
        return NULL;
    }
    token = text;
    token_len = len;
    trim(&token, &token_len);
    if (token_len == 0) {
        mr_errors_add(errs, "%s: %s has no token", json_path, file);
        wipe(text, len);
        return NULL;
    }
    /* It travels as "Authorization: Bearer TOKEN": visible ASCII only. */
    for (size_t i = 0; i < token_len; i++) {
        unsigned char c = (unsigned char)token[i];

        if (c < 0x21 || c > 0x7e) {
            mr_errors_add(errs,
                          "%s: %s: the token must be one line of visible ASCII characters "
                          "without spaces",
                          json_path, file);
            wipe(text, len);
            return NULL;
        }
    }
    copy = strndup(token, token_len);
    wipe(text, len);
    if (copy == NULL)
        mr_errors_add(errs, "%s: %s: out of memory", json_path, file);
    return copy;
}
