/*
 * tests/preload/faildirsync.c: an LD_PRELOAD library for integration tests
 * that makes fsync() of a directory fail with EIO, as a failing disk would
 * (root bypasses permissions, so no real condition does it on demand).
 * Every other fsync() is the real one.
 */
#include <dlfcn.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

int fsync(int fd)
{
    static int (*real_fsync)(int);
    struct stat st;

    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        errno = EIO;
        return -1;
    }
    if (real_fsync == NULL)
        real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real_fsync != NULL ? real_fsync(fd) : -1;
}
