/*
 * common/file.h: reading a whole small file into memory.
 *
 * For configuration, state, key and token files, read once at load or
 * reload: never on the data path. Errors are an errno, so each caller keeps
 * its own wording. Every buffer that held the file's bytes and is given up
 * here (grown, or freed on failure) is wiped first, so secrets read through
 * it leave no copy behind; the caller wipes the one it gets.
 */
#ifndef MR_COMMON_FILE_H
#define MR_COMMON_FILE_H

#include <stddef.h>
#include <sys/stat.h>

/* A read error ends the text where it happened instead of failing: the
 * configuration's historic reading (a directory reads as empty). */
#define MR_FILE_SHORT_READ_OK 0x1

/*
 * Reads path (symlinks followed) into a new NUL-terminated buffer, *len
 * bytes before the NUL (NULs inside are kept). max_bytes > 0 refuses a
 * longer file with EFBIG; 0 is no limit. st, when not NULL, receives
 * fstat() of the file opened, even when reading it fails afterwards, so a
 * caller checks the file it read and not what the path names by then; it is
 * zeroed (st_mode 0) when open or fstat fails. Returns the buffer (the
 * caller frees it), or NULL with errno set: ENOENT when there is no such
 * file, EISDIR for a directory, EFBIG, ENOMEM.
 */
char *mr_file_read(const char *path, size_t max_bytes, int flags, struct stat *st, size_t *len);

#endif
