/*
 * An LD_PRELOAD shim that makes the I/O calls of a process fail on demand,
 * for libbitcask's fault tests (tests/faults.rs and others; built by them
 * with `cc`, see tests/faultshim/mod.rs). It wraps each I/O function the
 * library imports (tests/faults.rs checks the list against `nm -D` of
 * libbitcask.so) and passes every call on to the real one
 * (dlsym(RTLD_NEXT)), except:
 *
 * - Scope: only calls on the database's files count, that is a path under
 *   BITCASK_FAULT_SCOPE, or a descriptor opened on one (so the test
 *   harness's own output, the dynamic loader and /proc are never touched).
 * - Failure: the BITCASK_FAULT_NTH-th call in scope of BITCASK_FAULT_FN
 *   fails with errno BITCASK_FAULT_ERRNO, and so do the next
 *   BITCASK_FAULT_TIMES - 1 calls (default 1: once; -1: from then on).
 *   BITCASK_FAULT_PARTIAL=1 makes the first failing fallocate allocate half
 *   of the range first (as ext4 does when it runs out of space part-way),
 *   and the first failing write/pwrite write half and return that short
 *   count (the calls after it then fail).
 * - Counting: BITCASK_FAULT_COUNTS=path writes, at exit, how many calls in
 *   scope each function had ("name count" lines).
 * - BITCASK_FAULT_LOG=path appends one line per failure injected.
 * - Crash backend: with BITCASK_FAULT_SHADOW=dir, each successful fsync or
 *   fdatasync of a file in scope copies the file's bytes to dir/<inode>,
 *   and of a directory writes its listing ("inode name" lines) to
 *   dir/dir-<inode>.list: what a power cut would leave of each, at the
 *   least. A test builds the legal power-loss states from them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* The functions wrapped, in one list: name, and whether a failure means
 * returning a pointer (NULL or MAP_FAILED) rather than -1. */
#define FUNCTIONS(X)                                                         \
    X(open) X(open64) X(openat) X(openat64) X(read) X(pread) X(pread64)      \
    X(write) X(writev) X(pwrite) X(pwrite64) X(fsync) X(fdatasync)           \
    X(fallocate) X(fallocate64) X(ftruncate) X(ftruncate64) X(mmap)          \
    X(mmap64) X(rename) X(unlink) X(linkat) X(mkdir) X(rmdir) X(opendir)     \
    X(readdir) X(readdir64) X(statx) X(stat) X(stat64) X(fstat) X(fstat64)   \
    X(fstatat) X(fstatat64) X(lseek) X(lseek64) X(copy_file_range)           \
    X(sendfile) X(sendfile64) X(splice) X(sync_file_range) X(flock)          \
    X(fcntl) X(fcntl64) X(close) X(realpath)

#define ENUM(name) FN_##name,
enum { FUNCTIONS(ENUM) FN_COUNT };
#define NAME(name) #name,
static const char *const fn_names[FN_COUNT] = {FUNCTIONS(NAME)};

#define MAX_TRACKED 65536
static unsigned char tracked[MAX_TRACKED];
static long counts[FN_COUNT];

static char scope[4096];
static size_t scope_len;
static int fail_fn = -1;
static long fail_nth;
static long fail_times = 1;
static int fail_errno = EIO;
static int partial;
static char counts_path[4096];
static char log_path[4096];
static char shadow_dir[4096];

/* The real functions. */
static void *real(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        static const char msg[] = "fault shim: a wrapped function is missing\n";
        ssize_t ignored = syscall(1, 2, msg, sizeof msg - 1);
        (void)ignored;
        abort();
    }
    return f;
}
#define REAL(name, type) ((type)real(#name))

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*fd_fn)(int);
typedef int (*fallocate_fn)(int, int, off_t, off_t);
typedef int (*ftruncate_fn)(int, off_t);
typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*path_fn)(const char *);
typedef int (*linkat_fn)(int, const char *, int, const char *, int);
typedef int (*mkdir_fn)(const char *, mode_t);
typedef DIR *(*opendir_fn)(const char *);
typedef struct dirent *(*readdir_fn)(DIR *);
typedef struct dirent64 *(*readdir64_fn)(DIR *);
typedef int (*statx_fn)(int, const char *, int, unsigned, struct statx *);
typedef int (*fstat_fn)(int, struct stat *);
typedef off_t (*lseek_fn)(int, off_t, int);
typedef ssize_t (*cfr_fn)(int, off_t *, int, off_t *, size_t, unsigned);
typedef ssize_t (*sendfile_fn)(int, int, off_t *, size_t);
typedef ssize_t (*splice_fn)(int, off_t *, int, off_t *, size_t, unsigned);
typedef int (*sfr_fn)(int, off_t, off_t, unsigned);
typedef int (*flock_fn)(int, int);
typedef int (*fcntl_fn)(int, int, ...);
typedef int (*closedir_fn)(DIR *);

static void copy_env(const char *name, char *to, size_t size) {
    const char *v = getenv(name);
    if (v && strlen(v) < size) strcpy(to, v);
}

__attribute__((constructor)) static void init(void) {
    copy_env("BITCASK_FAULT_SCOPE", scope, sizeof scope);
    scope_len = strlen(scope);
    while (scope_len > 1 && scope[scope_len - 1] == '/') scope[--scope_len] = 0;
    const char *fn = getenv("BITCASK_FAULT_FN");
    for (int i = 0; fn && i < FN_COUNT; i++)
        if (strcmp(fn, fn_names[i]) == 0) fail_fn = i;
    if (fn && fail_fn < 0) {
        fprintf(stderr, "fault shim: BITCASK_FAULT_FN=%s is not a wrapped function\n", fn);
        abort();
    }
    const char *v;
    if ((v = getenv("BITCASK_FAULT_NTH"))) fail_nth = atol(v);
    if ((v = getenv("BITCASK_FAULT_TIMES"))) fail_times = atol(v);
    if ((v = getenv("BITCASK_FAULT_ERRNO"))) fail_errno = atoi(v);
    if ((v = getenv("BITCASK_FAULT_PARTIAL"))) partial = atoi(v);
    copy_env("BITCASK_FAULT_COUNTS", counts_path, sizeof counts_path);
    copy_env("BITCASK_FAULT_LOG", log_path, sizeof log_path);
    copy_env("BITCASK_FAULT_SHADOW", shadow_dir, sizeof shadow_dir);
}

static void write_all(int fd, const char *buf, size_t len) {
    write_fn w = REAL(write, write_fn);
    while (len > 0) {
        ssize_t n = w(fd, buf, len);
        if (n <= 0) return;
        buf += n;
        len -= (size_t)n;
    }
}

__attribute__((destructor)) static void report_counts(void) {
    if (!counts_path[0]) return;
    int fd = REAL(open, open_fn)(counts_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char line[128];
    for (int i = 0; i < FN_COUNT; i++) {
        long n = __atomic_load_n(&counts[i], __ATOMIC_SEQ_CST);
        if (n > 0) write_all(fd, line, (size_t)snprintf(line, sizeof line, "%s %ld\n", fn_names[i], n));
    }
    REAL(close, fd_fn)(fd);
}

/* glibc declares path and DIR* arguments non-null, so the compiler drops
 * checks for NULL on them; but callers do pass NULL (Rust's std probes
 * statx with a null path). Passed through an empty asm, a pointer is one
 * the compiler knows nothing about. */
static const void *launder(const void *p) {
    __asm__("" : "+r"(p));
    return p;
}

static int path_in_scope(const char *path) {
    path = launder(path);
    return scope_len > 0 && path && strncmp(path, scope, scope_len) == 0 &&
           (path[scope_len] == '/' || path[scope_len] == 0);
}

static int fd_in_scope(int fd);

/* A path given to an *at function: absolute, or relative to `dirfd`. */
static int at_in_scope(int dirfd, const char *path) {
    path = launder(path);
    return path_in_scope(path) || (path && path[0] != '/' && fd_in_scope(dirfd));
}

static int dir_in_scope(DIR *d) {
    d = (DIR *)launder(d);
    return d && fd_in_scope(dirfd(d));
}

static int fd_in_scope(int fd) {
    return fd >= 0 && fd < MAX_TRACKED && __atomic_load_n(&tracked[fd], __ATOMIC_RELAXED);
}

static void track(int fd, int on) {
    if (fd >= 0 && fd < MAX_TRACKED) __atomic_store_n(&tracked[fd], (unsigned char)on, __ATOMIC_RELAXED);
}

/* Counts a call in scope; returns the call's number (from 1) if it is to
 * fail, else 0. */
static long fails(int fn) {
    long n = __atomic_add_fetch(&counts[fn], 1, __ATOMIC_SEQ_CST);
    if (fn != fail_fn || n < fail_nth) return 0;
    if (fail_times >= 0 && n >= fail_nth + fail_times) return 0;
    if (log_path[0]) {
        int fd = REAL(open, open_fn)(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            char line[160];
            write_all(fd, line, (size_t)snprintf(line, sizeof line, "%s %ld errno %d\n", fn_names[fn], n, fail_errno));
            REAL(close, fd_fn)(fd);
        }
    }
    return n;
}

#define FAIL_INT(fn) do { errno = fail_errno; return -1; } while (0)

/* ---- crash backend ---------------------------------------------------- */

static void copy_to(int from, const char *final_path) {
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", final_path, (int)gettid());
    int out = REAL(open, open_fn)(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) return;
    static __thread char buf[1 << 16];
    off_t at = 0;
    ssize_t n;
    while ((n = REAL(pread, pread_fn)(from, buf, sizeof buf, at)) > 0) {
        write_all(out, buf, (size_t)n);
        at += n;
    }
    REAL(close, fd_fn)(out);
    REAL(rename, rename_fn)(tmp, final_path);
}

static void snapshot_dir(int dir_fd, ino_t ino, const char *final_path) {
    DIR *d = fdopendir(dir_fd);
    if (!d) return;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", final_path, (int)gettid());
    int out = REAL(open, open_fn)(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out >= 0) {
        readdir64_fn next = REAL(readdir64, readdir64_fn);
        struct dirent64 *e;
        char line[512];
        while ((e = next(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            write_all(out, line, (size_t)snprintf(line, sizeof line, "%lu %s\n", (unsigned long)e->d_ino, e->d_name));
        }
        REAL(close, fd_fn)(out);
        REAL(rename, rename_fn)(tmp, final_path);
    }
    (void)ino;
    REAL(closedir, closedir_fn)(d);
}

/* After a successful sync of `fd`: what the disk holds of it now. */
static void snapshot(int fd) {
    if (!shadow_dir[0]) return;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int copy = REAL(open, open_fn)(proc, O_RDONLY | O_CLOEXEC);
    if (copy < 0) return;
    struct stat st;
    if (REAL(fstat, fstat_fn)(copy, &st) != 0) {
        REAL(close, fd_fn)(copy);
        return;
    }
    char path[4200];
    if (S_ISDIR(st.st_mode)) {
        snprintf(path, sizeof path, "%s/dir-%lu.list", shadow_dir, (unsigned long)st.st_ino);
        snapshot_dir(copy, st.st_ino, path); /* closes `copy` */
        return;
    }
    if (S_ISREG(st.st_mode)) {
        snprintf(path, sizeof path, "%s/%lu", shadow_dir, (unsigned long)st.st_ino);
        copy_to(copy, path);
    }
    REAL(close, fd_fn)(copy);
}

/* ---- the wrappers ----------------------------------------------------- */

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

#define OPEN_WRAPPER(name)                                                   \
    int name(const char *path, int flags, ...) {                             \
        va_list ap;                                                          \
        va_start(ap, flags);                                                 \
        mode_t mode = mode_arg(flags, ap);                                   \
        va_end(ap);                                                          \
        int in = path_in_scope(path);                                        \
        if (in && fails(FN_##name)) FAIL_INT(name);                          \
        int fd = REAL(name, open_fn)(path, flags, mode);                     \
        if (fd >= 0) track(fd, in);                                          \
        return fd;                                                           \
    }
OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

#define OPENAT_WRAPPER(name)                                                 \
    int name(int dirfd, const char *path, int flags, ...) {                  \
        va_list ap;                                                          \
        va_start(ap, flags);                                                 \
        mode_t mode = mode_arg(flags, ap);                                   \
        va_end(ap);                                                          \
        int in = at_in_scope(dirfd, path);                                   \
        if (in && fails(FN_##name)) FAIL_INT(name);                          \
        int fd = REAL(name, openat_fn)(dirfd, path, flags, mode);            \
        if (fd >= 0) track(fd, in);                                          \
        return fd;                                                           \
    }
OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)

ssize_t read(int fd, void *buf, size_t len) {
    if (fd_in_scope(fd) && fails(FN_read)) FAIL_INT(read);
    return REAL(read, read_fn)(fd, buf, len);
}

#define PREAD_WRAPPER(name)                                                  \
    ssize_t name(int fd, void *buf, size_t len, off_t at) {                  \
        if (fd_in_scope(fd) && fails(FN_##name)) FAIL_INT(name);             \
        return REAL(name, pread_fn)(fd, buf, len, at);                       \
    }
PREAD_WRAPPER(pread)
PREAD_WRAPPER(pread64)

ssize_t write(int fd, const void *buf, size_t len) {
    long n;
    if (fd_in_scope(fd) && (n = fails(FN_write))) {
        if (partial && n == fail_nth && len > 1) return REAL(write, write_fn)(fd, buf, len / 2);
        FAIL_INT(write);
    }
    return REAL(write, write_fn)(fd, buf, len);
}

ssize_t writev(int fd, const struct iovec *iov, int count) {
    if (fd_in_scope(fd) && fails(FN_writev)) FAIL_INT(writev);
    return REAL(writev, writev_fn)(fd, iov, count);
}

#define PWRITE_WRAPPER(name)                                                 \
    ssize_t name(int fd, const void *buf, size_t len, off_t at) {            \
        long n;                                                              \
        if (fd_in_scope(fd) && (n = fails(FN_##name))) {                     \
            if (partial && n == fail_nth && len > 1)                         \
                return REAL(name, pwrite_fn)(fd, buf, len / 2, at);          \
            FAIL_INT(name);                                                  \
        }                                                                    \
        return REAL(name, pwrite_fn)(fd, buf, len, at);                      \
    }
PWRITE_WRAPPER(pwrite)
PWRITE_WRAPPER(pwrite64)

#define SYNC_WRAPPER(name)                                                   \
    int name(int fd) {                                                       \
        int in = fd_in_scope(fd);                                            \
        if (in && fails(FN_##name)) FAIL_INT(name);                          \
        int r = REAL(name, fd_fn)(fd);                                       \
        if (r == 0 && in) snapshot(fd);                                      \
        return r;                                                            \
    }
SYNC_WRAPPER(fsync)
SYNC_WRAPPER(fdatasync)

#define FALLOCATE_WRAPPER(name)                                              \
    int name(int fd, int mode, off_t at, off_t len) {                        \
        long n;                                                              \
        if (fd_in_scope(fd) && (n = fails(FN_##name))) {                     \
            off_t half = (len / 2) & ~(off_t)4095;                           \
            if (partial && n == fail_nth && half > 0)                        \
                REAL(name, fallocate_fn)(fd, mode, at, half);                \
            FAIL_INT(name);                                                  \
        }                                                                    \
        return REAL(name, fallocate_fn)(fd, mode, at, len);                  \
    }
FALLOCATE_WRAPPER(fallocate)
FALLOCATE_WRAPPER(fallocate64)

#define FTRUNCATE_WRAPPER(name)                                              \
    int name(int fd, off_t len) {                                            \
        if (fd_in_scope(fd) && fails(FN_##name)) FAIL_INT(name);             \
        return REAL(name, ftruncate_fn)(fd, len);                            \
    }
FTRUNCATE_WRAPPER(ftruncate)
FTRUNCATE_WRAPPER(ftruncate64)

#define MMAP_WRAPPER(name)                                                   \
    void *name(void *addr, size_t len, int prot, int flags, int fd, off_t at) { \
        if (!(flags & MAP_ANONYMOUS) && fd_in_scope(fd) && fails(FN_##name)) { \
            errno = fail_errno;                                              \
            return MAP_FAILED;                                               \
        }                                                                    \
        return REAL(name, mmap_fn)(addr, len, prot, flags, fd, at);          \
    }
MMAP_WRAPPER(mmap)
MMAP_WRAPPER(mmap64)

int rename(const char *from, const char *to) {
    if ((path_in_scope(from) || path_in_scope(to)) && fails(FN_rename)) FAIL_INT(rename);
    return REAL(rename, rename_fn)(from, to);
}

int unlink(const char *path) {
    if (path_in_scope(path) && fails(FN_unlink)) FAIL_INT(unlink);
    return REAL(unlink, path_fn)(path);
}

int rmdir(const char *path) {
    if (path_in_scope(path) && fails(FN_rmdir)) FAIL_INT(rmdir);
    return REAL(rmdir, path_fn)(path);
}

int linkat(int from_dir, const char *from, int to_dir, const char *to, int flags) {
    if ((path_in_scope(from) || path_in_scope(to)) && fails(FN_linkat)) FAIL_INT(linkat);
    return REAL(linkat, linkat_fn)(from_dir, from, to_dir, to, flags);
}

int mkdir(const char *path, mode_t mode) {
    if (path_in_scope(path) && fails(FN_mkdir)) FAIL_INT(mkdir);
    return REAL(mkdir, mkdir_fn)(path, mode);
}

DIR *opendir(const char *path) {
    int in = path_in_scope(path);
    if (in && fails(FN_opendir)) {
        errno = fail_errno;
        return NULL;
    }
    DIR *d = REAL(opendir, opendir_fn)(path);
    if (d) track(dirfd(d), in);
    return d;
}

int closedir(DIR *d) {
    if (launder(d)) track(dirfd(d), 0);
    return REAL(closedir, closedir_fn)(d);
}

struct dirent *readdir(DIR *d) {
    if (dir_in_scope(d) && fails(FN_readdir)) {
        errno = fail_errno;
        return NULL;
    }
    return REAL(readdir, readdir_fn)(d);
}

struct dirent64 *readdir64(DIR *d) {
    if (dir_in_scope(d) && fails(FN_readdir64)) {
        errno = fail_errno;
        return NULL;
    }
    return REAL(readdir64, readdir64_fn)(d);
}

int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out) {
    if (at_in_scope(dirfd, path) && fails(FN_statx)) FAIL_INT(statx);
    return REAL(statx, statx_fn)(dirfd, path, flags, mask, out);
}

#define STAT_WRAPPER(name, type)                                             \
    int name(const char *path, type *out) {                                  \
        if (path_in_scope(path) && fails(FN_##name)) FAIL_INT(name);         \
        return REAL(name, int (*)(const char *, type *))(path, out);         \
    }
STAT_WRAPPER(stat, struct stat)
STAT_WRAPPER(stat64, struct stat64)

#define FSTAT_WRAPPER(name, type)                                            \
    int name(int fd, type *out) {                                            \
        if (fd_in_scope(fd) && fails(FN_##name)) FAIL_INT(name);             \
        return REAL(name, int (*)(int, type *))(fd, out);                    \
    }
FSTAT_WRAPPER(fstat, struct stat)
FSTAT_WRAPPER(fstat64, struct stat64)

#define FSTATAT_WRAPPER(name, type)                                          \
    int name(int dirfd, const char *path, type *out, int flags) {            \
        if (at_in_scope(dirfd, path) && fails(FN_##name)) FAIL_INT(name);    \
        return REAL(name, int (*)(int, const char *, type *, int))(dirfd, path, out, flags); \
    }
FSTATAT_WRAPPER(fstatat, struct stat)
FSTATAT_WRAPPER(fstatat64, struct stat64)

#define LSEEK_WRAPPER(name)                                                  \
    off_t name(int fd, off_t at, int whence) {                               \
        if (fd_in_scope(fd) && fails(FN_##name)) FAIL_INT(name);             \
        return REAL(name, lseek_fn)(fd, at, whence);                         \
    }
LSEEK_WRAPPER(lseek)
LSEEK_WRAPPER(lseek64)

ssize_t copy_file_range(int in, off_t *in_at, int out, off_t *out_at, size_t len, unsigned flags) {
    if ((fd_in_scope(in) || fd_in_scope(out)) && fails(FN_copy_file_range)) FAIL_INT(copy_file_range);
    return REAL(copy_file_range, cfr_fn)(in, in_at, out, out_at, len, flags);
}

#define SENDFILE_WRAPPER(name)                                               \
    ssize_t name(int out, int in, off_t *at, size_t len) {                   \
        if ((fd_in_scope(in) || fd_in_scope(out)) && fails(FN_##name)) FAIL_INT(name); \
        return REAL(name, sendfile_fn)(out, in, at, len);                    \
    }
SENDFILE_WRAPPER(sendfile)
SENDFILE_WRAPPER(sendfile64)

ssize_t splice(int in, off_t *in_at, int out, off_t *out_at, size_t len, unsigned flags) {
    if ((fd_in_scope(in) || fd_in_scope(out)) && fails(FN_splice)) FAIL_INT(splice);
    return REAL(splice, splice_fn)(in, in_at, out, out_at, len, flags);
}

int sync_file_range(int fd, off_t at, off_t len, unsigned flags) {
    if (fd_in_scope(fd) && fails(FN_sync_file_range)) FAIL_INT(sync_file_range);
    return REAL(sync_file_range, sfr_fn)(fd, at, len, flags);
}

int flock(int fd, int op) {
    if (fd_in_scope(fd) && fails(FN_flock)) FAIL_INT(flock);
    return REAL(flock, flock_fn)(fd, op);
}

/* The third argument is an int or a pointer; on x86-64 and aarch64 both
 * travel in one register, so it is passed on as a pointer-sized word. */
#define FCNTL_WRAPPER(name)                                                  \
    int name(int fd, int cmd, ...) {                                         \
        va_list ap;                                                          \
        va_start(ap, cmd);                                                   \
        void *arg = va_arg(ap, void *);                                      \
        va_end(ap);                                                          \
        if (fd_in_scope(fd) && fails(FN_##name)) FAIL_INT(name);             \
        return REAL(name, fcntl_fn)(fd, cmd, arg);                           \
    }
FCNTL_WRAPPER(fcntl)
FCNTL_WRAPPER(fcntl64)

char *realpath(const char *path, char *resolved) {
    if (path_in_scope(path) && fails(FN_realpath)) {
        errno = fail_errno;
        return NULL;
    }
    return REAL(realpath, char *(*)(const char *, char *))(path, resolved);
}

int close(int fd) {
    int in = fd_in_scope(fd);
    track(fd, 0);
    if (in && fails(FN_close)) {
        /* A close that fails still releases the descriptor (Linux). */
        REAL(close, fd_fn)(fd);
        FAIL_INT(close);
    }
    return REAL(close, fd_fn)(fd);
}
