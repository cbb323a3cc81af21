/* geo/geoip.c: see geoip.h. */
#include "geo/geoip.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <maxminddb.h>

#include "geo/countries.h"

struct mr_geoip {
    MMDB_s mmdb;
};

/* Used when a snapshot was built without paths (conf/ always sets them). */
static const char *const default_country[] = {"country", "iso_code", NULL};
static const char *const default_latitude[] = {"location", "latitude", NULL};
static const char *const default_longitude[] = {"location", "longitude", NULL};
/* Not configurable: GeoIP2 puts it there, and country-only databases have
 * none, in which case the country table answers. */
static const char *const continent_path[] = {"continent", "code", NULL};

static void close_geoip(struct mr_snapshot *snap)
{
    if (snap->geo != NULL) {
        MMDB_close(&snap->geo->mmdb);
        free(snap->geo);
        snap->geo = NULL;
    }
}

/* Explains a failed MMDB_open: errno says more than "IO error" for the
 * file-level failures (missing file, permission), except for the two a user
 * makes most, where mmap's EINVAL / ENODEV would only puzzle. */
static const char *open_error(const char *path, int status, int saved_errno)
{
    struct stat st;

    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            return "is a directory";
        }
        if (S_ISREG(st.st_mode) && st.st_size == 0) {
            return "empty file";
        }
    }
    if ((status == MMDB_FILE_OPEN_ERROR || status == MMDB_IO_ERROR) && saved_errno != 0) {
        return strerror(saved_errno);
    }
    return MMDB_strerror(status);
}

int mr_geoip_attach(struct mr_snapshot *snap, struct mr_errors *errs)
{
    const char *path = snap->geoip.database;
    struct mr_geoip *geo;
    int status;

    if (path == NULL || snap->geo != NULL) {
        return 0;
    }
    geo = calloc(1, sizeof(*geo));
    if (geo == NULL) {
        mr_errors_add(errs, "geoip.database: cannot open %s: %s", path, strerror(ENOMEM));
        return -1;
    }
    errno = 0;
    status = MMDB_open(path, MMDB_MODE_MMAP, &geo->mmdb);
    if (status != MMDB_SUCCESS) {
        int saved_errno = errno;

        mr_errors_add(errs, "geoip.database: cannot open %s: %s", path,
                      open_error(path, status, saved_errno));
        free(geo);
        return -1;
    }
    /* libmaxminddb already refuses unknown record sizes and bad metadata;
     * this only catches a database with no search tree to walk. */
    if (geo->mmdb.metadata.node_count == 0 ||
        (geo->mmdb.metadata.ip_version != 4 && geo->mmdb.metadata.ip_version != 6)) {
        mr_errors_add(errs, "geoip.database: cannot open %s: not an IPv4 or IPv6 lookup database",
                      path);
        MMDB_close(&geo->mmdb);
        free(geo);
        return -1;
    }
    snap->geo = geo;
    if (mr_snap_on_release(snap, close_geoip) != 0) {
        mr_errors_add(errs, "geoip.database: cannot open %s: no release hook left", path);
        close_geoip(snap);
        return -1;
    }
    return 0;
}

/* Reads a two-letter string at path into out (upper case); false when the
 * path is missing, not a string, or not two ASCII letters. */
static bool get_code(MMDB_entry_s *entry, const char *const *path, char out[3])
{
    MMDB_entry_data_s data;
    char code[3];

    if (MMDB_aget_value(entry, &data, path) != MMDB_SUCCESS || !data.has_data ||
        data.type != MMDB_DATA_TYPE_UTF8_STRING || data.data_size != 2) {
        return false;
    }
    for (int i = 0; i < 2; i++) {
        char c = data.utf8_string[i];

        if (c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        if (c < 'A' || c > 'Z') {
            return false;
        }
        code[i] = c;
    }
    code[2] = '\0';
    memcpy(out, code, sizeof(code));
    return true;
}

/* Reads a double or float at path within [-limit, limit]; false otherwise. */
static bool get_degrees(MMDB_entry_s *entry, const char *const *path, double limit, double *out)
{
    MMDB_entry_data_s data;
    double v;

    if (MMDB_aget_value(entry, &data, path) != MMDB_SUCCESS || !data.has_data) {
        return false;
    }
    if (data.type == MMDB_DATA_TYPE_DOUBLE) {
        v = data.double_value;
    } else if (data.type == MMDB_DATA_TYPE_FLOAT) {
        v = data.float_value;
    } else {
        return false;
    }
    if (!isfinite(v) || v < -limit || v > limit) {
        return false;
    }
    *out = v;
    return true;
}

/* An IPv4-mapped IPv6 address becomes its IPv4 address in v4, so a
 * dual-stack listener's clients find their IPv4 records in any database. */
static const struct sockaddr *unmap_v4(const struct sockaddr *addr, struct sockaddr_in *v4)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;

    if (addr->sa_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        return addr;
    }
    memset(v4, 0, sizeof(*v4));
    v4->sin_family = AF_INET;
    v4->sin_port = in6->sin6_port;
    memcpy(&v4->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
    return (const struct sockaddr *)v4;
}

static const char *const *path_or(char **configured, const char *const *fallback)
{
    return configured != NULL ? (const char *const *)configured : fallback;
}

void mr_geoip_lookup(const struct mr_snapshot *snap, const struct sockaddr *addr,
                     struct mr_location *out)
{
    struct sockaddr_in v4;
    MMDB_lookup_result_s res;
    int mmdb_error = MMDB_SUCCESS;
    bool has_lat, has_lon;
    double lat = 0, lon = 0;

    memset(out, 0, sizeof(*out));
    if (snap == NULL || snap->geo == NULL || addr == NULL ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
        return;
    }
    addr = unmap_v4(addr, &v4);
    /* An IPv6 address in an IPv4-only database is an error here: not found. */
    res = MMDB_lookup_sockaddr(&snap->geo->mmdb, addr, &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS || !res.found_entry) {
        return;
    }

    get_code(&res.entry, path_or(snap->geoip.country, default_country), out->country);
    if (!get_code(&res.entry, continent_path, out->continent) && out->country[0] != '\0') {
        mr_countries_continent(out->country, out->continent);
    }
    has_lat = get_degrees(&res.entry, path_or(snap->geoip.latitude, default_latitude), 90, &lat);
    has_lon = get_degrees(&res.entry, path_or(snap->geoip.longitude, default_longitude), 180, &lon);
    if (has_lat && has_lon) {
        out->has_coords = true;
        out->lat = lat;
        out->lon = lon;
    } else if (out->country[0] != '\0') {
        out->has_coords = mr_countries_centroid(out->country, &out->lat, &out->lon);
    }
    out->found = out->country[0] != '\0' || out->continent[0] != '\0' || out->has_coords;
}
