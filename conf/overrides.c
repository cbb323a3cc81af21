/* conf/overrides.c: see overrides.h.
 *
 * The set is a plain array kept sorted by cluster name, so lookups are a
 * binary search and the state file lists clusters in a stable order (a
 * diff between two saves shows only what changed).
 *
 * The state file is validated like the configuration: every problem is
 * reported with its JSON path and the load carries on. A malformed cluster
 * entry is skipped as a whole: applying half of it (a weight without the
 * drain written beside it) would be a state nobody asked for.
 */
#include "conf/overrides.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/file.h"
#include "conf/jpath.h"

#define STATE_VERSION 1
/* 15 significant digits print weights as typed ("0.1", not
 * "0.10000000000000001") and still read back the same for any weight that
 * was itself written with 15 digits or fewer. */
#define WEIGHT_PRECISION 15
/* Integral weights are written as JSON integers ("25", not "25.0") below
 * this, where every integer is exact in a double. */
#define WEIGHT_INT_MAX 9007199254740992.0 /* 2^53 */

/* ---- the sorted set ---- */

/* The index of cluster in ov, or where it would be inserted (*found false). */
static size_t find_index(const struct mr_overrides *ov, const char *cluster, bool *found)
{
    size_t lo = 0, hi = ov->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(ov->items[mid].cluster, cluster);

        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Returns cluster's entry, inserting an empty one when absent; NULL on
 * allocation failure, with ov unchanged. */
static struct mr_override *get_or_insert(struct mr_overrides *ov, const char *cluster)
{
    struct mr_override *grown;
    bool found;
    size_t i = find_index(ov, cluster, &found);
    char *name;

    if (found)
        return &ov->items[i];
    name = strdup(cluster);
    if (name == NULL)
        return NULL;
    grown = realloc(ov->items, (ov->n + 1) * sizeof(*grown));
    if (grown == NULL) {
        free(name);
        return NULL;
    }
    ov->items = grown;
    memmove(&ov->items[i + 1], &ov->items[i], (ov->n - i) * sizeof(*grown));
    ov->n++;
    memset(&ov->items[i], 0, sizeof(ov->items[i]));
    ov->items[i].cluster = name;
    return &ov->items[i];
}

/* Drops entry i when it no longer overrides anything. */
static void remove_if_empty(struct mr_overrides *ov, size_t i)
{
    if (ov->items[i].has_drain || ov->items[i].has_weight)
        return;
    free(ov->items[i].cluster);
    memmove(&ov->items[i], &ov->items[i + 1], (ov->n - i - 1) * sizeof(ov->items[0]));
    ov->n--;
    if (ov->n == 0) {
        free(ov->items);
        ov->items = NULL;
    }
}

void mr_overrides_clear(struct mr_overrides *ov)
{
    if (ov == NULL)
        return;
    for (size_t i = 0; i < ov->n; i++)
        free(ov->items[i].cluster);
    free(ov->items);
    ov->items = NULL;
    ov->n = 0;
}

int mr_overrides_copy(struct mr_overrides *dst, const struct mr_overrides *src)
{
    assert(dst != src);
    mr_overrides_clear(dst);
    if (src->n == 0)
        return 0;
    dst->items = calloc(src->n, sizeof(*dst->items));
    if (dst->items == NULL)
        return -1;
    for (size_t i = 0; i < src->n; i++) {
        dst->items[i] = src->items[i];
        dst->items[i].cluster = strdup(src->items[i].cluster);
        if (dst->items[i].cluster == NULL) {
            dst->n = i;
            mr_overrides_clear(dst);
            return -1;
        }
    }
    dst->n = src->n;
    return 0;
}

const struct mr_override *mr_overrides_get(const struct mr_overrides *ov, const char *cluster)
{
    bool found;
    size_t i = find_index(ov, cluster, &found);

    return found ? &ov->items[i] : NULL;
}

int mr_overrides_set_drain(struct mr_overrides *ov, const char *cluster, int mode,
                           int64_t deadline_s, int64_t now_s)
{
    struct mr_override *o;

    /* "Set to no drain" is the admin's undrain: the same as clearing. */
    if (mode == MR_DRAIN_NONE)
        return mr_overrides_clear_drain(ov, cluster);
    assert(mode == MR_DRAIN_SOFT || mode == MR_DRAIN_HARD);
    o = get_or_insert(ov, cluster);
    if (o == NULL)
        return -1;
    /* A changed mode or deadline does not restart the drain: "since" keeps
     * telling how long the cluster has been out of rotation. */
    if (!o->has_drain)
        o->drained_at_s = now_s;
    o->has_drain = true;
    o->drain = mode;
    o->drain_deadline_s = deadline_s > 0 ? deadline_s : 0;
    return 0;
}

int mr_overrides_clear_drain(struct mr_overrides *ov, const char *cluster)
{
    bool found;
    size_t i = find_index(ov, cluster, &found);

    if (!found)
        return 0;
    ov->items[i].has_drain = false;
    ov->items[i].drain = MR_DRAIN_NONE;
    ov->items[i].drain_deadline_s = 0;
    ov->items[i].drained_at_s = 0;
    remove_if_empty(ov, i);
    return 0;
}

int mr_overrides_set_weight(struct mr_overrides *ov, const char *cluster, double weight)
{
    struct mr_override *o;

    /* The admin API validates input; a bad weight here is a caller bug. */
    assert(isfinite(weight) && weight >= 0);
    o = get_or_insert(ov, cluster);
    if (o == NULL)
        return -1;
    o->has_weight = true;
    o->weight = weight;
    return 0;
}

int mr_overrides_clear_weight(struct mr_overrides *ov, const char *cluster)
{
    bool found;
    size_t i = find_index(ov, cluster, &found);

    if (!found)
        return 0;
    ov->items[i].has_weight = false;
    ov->items[i].weight = 0;
    remove_if_empty(ov, i);
    return 0;
}

/* ---- apply ---- */

void mr_overrides_apply(const struct mr_overrides *ov, struct mr_snapshot *snap,
                        struct mr_errors *warnings)
{
    for (size_t i = 0; i < ov->n; i++) {
        const struct mr_override *o = &ov->items[i];
        /* Not yet published, so still ours to write. */
        struct mr_cluster *c = (struct mr_cluster *)mr_snap_cluster(snap, o->cluster);

        if (c == NULL) {
            mr_errors_warn(warnings,
                           "state_file: cluster \"%s\" does not exist in the configuration; "
                           "its override is kept but not applied",
                           o->cluster);
            continue;
        }
        if (o->has_drain) {
            c->drain = o->drain;
            c->drain_deadline_s = o->drain_deadline_s;
        }
        if (o->has_weight)
            c->weight = o->weight;
    }
}

/* ---- load ---- */

/* obj.key as unix seconds (absent: 0); false with an error when invalid. */
static bool read_time(struct mr_jpath *jp, json_t *obj, const char *parent, const char *key,
                      int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    char p[MR_JPATH_MAX];

    *out = 0;
    if (v == NULL)
        return true;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return true;
    }
    mr_jpath_key(p, parent, key);
    mr_jpath_error(jp, p, "expected an integer >= 0 (unix seconds)");
    return false;
}

/* {"mode": "soft"|"hard", "deadline": N, "since": N} into o; false with
 * every problem reported when invalid. Unlike the configuration, a JSON
 * null here is a wrong value, not an absent one. */
static bool read_drain(struct mr_jpath *jp, json_t *v, const char *path, struct mr_override *o)
{
    static const char *const keys[] = {"mode", "deadline", "since", NULL};
    const char *mode;
    char p[MR_JPATH_MAX];
    bool ok = true;
    json_t *m;

    if (!mr_jpath_read_object(jp, v, path))
        return false;
    mr_jpath_check_keys(jp, v, path, keys);
    mr_jpath_key(p, path, "mode");
    m = json_object_get(v, "mode");
    mode = json_string_value(m);
    if (m == NULL) {
        mr_jpath_error(jp, p, "required");
        ok = false;
    } else if (mode != NULL && strcmp(mode, "soft") == 0) {
        o->drain = MR_DRAIN_SOFT;
    } else if (mode != NULL && strcmp(mode, "hard") == 0) {
        o->drain = MR_DRAIN_HARD;
    } else {
        mr_jpath_error(jp, p, "expected \"soft\" or \"hard\"");
        ok = false;
    }
    /* Non-short-circuit, so every field's problem is reported. */
    ok &= read_time(jp, v, path, "deadline", &o->drain_deadline_s);
    ok &= read_time(jp, v, path, "since", &o->drained_at_s);
    o->has_drain = ok;
    return ok;
}

/* One member of "clusters"; false when anything in it was reported. */
static bool read_entry(struct mr_jpath *jp, const char *name, json_t *v, struct mr_override *o)
{
    static const char *const keys[] = {"drain", "weight", NULL};
    char path[MR_JPATH_MAX], p[MR_JPATH_MAX];
    bool ok = true;
    json_t *d, *w;

    if (name[0] == '\0') {
        mr_jpath_error(jp, "clusters", "empty cluster name");
        return false;
    }
    mr_jpath_key(path, "clusters", name);
    if (!mr_jpath_read_object(jp, v, path))
        return false;
    mr_jpath_check_keys(jp, v, path, keys);
    if ((d = json_object_get(v, "drain")) != NULL) {
        mr_jpath_key(p, path, "drain");
        ok &= read_drain(jp, d, p, o);
    }
    if ((w = json_object_get(v, "weight")) != NULL) {
        /* The parser refuses inf and nan; only the sign needs checking. */
        mr_jpath_key(p, path, "weight");
        if (mr_jpath_read_number(jp, w, p, 0, DBL_MAX, false, ">= 0", &o->weight))
            o->has_weight = true;
        else
            ok = false;
    }
    if (ok && d == NULL && w == NULL)
        mr_jpath_warn(jp, path, "neither drain nor weight, ignored");
    return ok;
}

int mr_overrides_load(struct mr_overrides *ov, const char *path, struct mr_errors *errs)
{
    static const char *const keys[] = {"version", "saved", "clusters", NULL};
    struct mr_jpath jp = {.errs = errs, .prefix = "state_file: "};
    size_t errors_before = errs->n_errors, len = 0;
    json_t *root, *version, *clusters, *v;
    json_error_t je;
    const char *name;
    char *text;

    mr_overrides_clear(ov);
    text = mr_file_read(path, 0, 0, NULL, &len);
    if (text == NULL) {
        /* No file yet: the first start, or nothing was ever overridden. */
        if (errno == ENOENT)
            return 0;
        mr_errors_add(errs, "state_file: cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (root == NULL) {
        mr_errors_add(errs, "state_file: %s: line %d, column %d: %s", path, je.line, je.column,
                      je.text);
        return -1;
    }
    if (!json_is_object(root)) {
        mr_errors_add(errs, "state_file: %s: expected a JSON object", path);
        json_decref(root);
        return -1;
    }
    mr_jpath_check_keys(&jp, root, "", keys);
    /* Another version may mean other things by the same keys: read none. */
    version = json_object_get(root, "version");
    if (!json_is_integer(version) || json_integer_value(version) != STATE_VERSION) {
        mr_jpath_error(&jp, "version", "expected %d", STATE_VERSION);
        json_decref(root);
        return -1;
    }
    v = json_object_get(root, "saved");
    if (v != NULL && !json_is_string(v))
        mr_jpath_warn(&jp, "saved", "expected a string, ignored");
    clusters = json_object_get(root, "clusters");
    if (clusters != NULL && !mr_jpath_read_object(&jp, clusters, "clusters"))
        clusters = NULL;
    json_object_foreach(clusters, name, v) {
        struct mr_override o = {0};
        struct mr_override *slot;

        if (!read_entry(&jp, name, v, &o) || (!o.has_drain && !o.has_weight))
            continue;
        slot = get_or_insert(ov, name);
        if (slot == NULL) {
            mr_errors_add(errs, "state_file: out of memory");
            break;
        }
        o.cluster = slot->cluster;
        *slot = o;
    }
    json_decref(root);
    return errs->n_errors > errors_before ? -1 : 0;
}

/* ---- save ---- */

/* The state file as a JSON document; NULL on allocation failure. */
static json_t *build_document(const struct mr_overrides *ov)
{
    json_t *root = json_object(), *clusters = json_object();
    char saved[32];
    struct tm tm;
    time_t now = time(NULL);
    bool ok = root != NULL && clusters != NULL;

    if (gmtime_r(&now, &tm) == NULL ||
        strftime(saved, sizeof(saved), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(saved, sizeof(saved), "unknown");
    ok = ok && json_object_set_new(root, "version", json_integer(STATE_VERSION)) == 0;
    ok = ok && json_object_set_new(root, "saved", json_string(saved)) == 0;
    for (size_t i = 0; ok && i < ov->n; i++) {
        const struct mr_override *o = &ov->items[i];
        json_t *entry = json_object();

        ok = entry != NULL && json_object_set_new(clusters, o->cluster, entry) == 0;
        if (ok && o->has_drain) {
            json_t *drain = json_object();

            ok = drain != NULL && json_object_set_new(entry, "drain", drain) == 0;
            ok = ok &&
                 json_object_set_new(drain, "mode",
                                     json_string(o->drain == MR_DRAIN_HARD ? "hard" : "soft")) == 0;
            if (ok && o->drain_deadline_s > 0)
                ok = json_object_set_new(drain, "deadline", json_integer(o->drain_deadline_s)) == 0;
            if (ok && o->drained_at_s > 0)
                ok = json_object_set_new(drain, "since", json_integer(o->drained_at_s)) == 0;
        }
        if (ok && o->has_weight) {
            json_t *w = o->weight == floor(o->weight) && o->weight < WEIGHT_INT_MAX
                            ? json_integer((json_int_t)o->weight)
                            : json_real(o->weight);

            ok = json_object_set_new(entry, "weight", w) == 0;
        }
    }
    if (ok && json_object_set_new(root, "clusters", clusters) == 0)
        return root;
    if (!ok)
        json_decref(clusters);
    json_decref(root);
    return NULL;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* fsync of the directory holding path, so the rename itself survives a
 * crash; 0 or -1 with errno set. */
static int sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd, rc, saved;

    if (slash == NULL)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL)
        return -1;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    saved = errno;
    /* Some filesystems cannot sync a directory at all: nothing more to do. */
    if (rc < 0 && saved == EINVAL)
        rc = 0;
    close(fd);
    errno = saved;
    return rc;
}

int mr_overrides_save(const struct mr_overrides *ov, const char *path, char *err, size_t err_len)
{
    char *text = NULL, *tmp = NULL;
    bool created = false;
    json_t *doc;
    int fd = -1, saved;

    doc = build_document(ov);
    if (doc != NULL) {
        text = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(WEIGHT_PRECISION));
        json_decref(doc);
    }
    if (text == NULL || asprintf(&tmp, "%s.XXXXXX", path) < 0) {
        free(text);
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(ENOMEM));
        return -1;
    }
    /* Same directory as path, so rename() replaces it in one step and a
     * crash leaves either the old file or the new one, never a mix. */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        goto fail;
    created = true;
    /* mkstemp creates 0600; the file holds nothing secret and operators
     * read it to see what is drained. */
    if (fchmod(fd, 0644) < 0 || write_all(fd, text, strlen(text)) < 0 ||
        write_all(fd, "\n", 1) < 0 || fsync(fd) < 0)
        goto fail;
    /* close() can be the first to report a failed write (NFS). */
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto fail;
    free(tmp);
    free(text);
    /* The new file is in place, but its name may not be on disk yet. */
    if (sync_parent(path) < 0) {
        snprintf(err, err_len, "cannot sync the directory of %s: %s", path, strerror(errno));
        return 1;
    }
    return 0;
fail:
    saved = errno;
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    snprintf(err, err_len, "cannot write %s: %s", path, strerror(saved));
    free(tmp);
    free(text);
    return -1;
}
