/*
 * test_core.c - exhaustive C test of the libbitcask Core API.
 *
 * Tests exactly the names of the "Core" section of docs/c-api.md (the shared
 * contract): version, status strings, last_error, options, open/close,
 * put/get/get_into/delete/sync. Plain C11, no framework.
 *
 * Every CHECK that fails prints file:line, the expression, the status strings
 * and bitcask_last_error(); main prints "N passed, N failed" (N = checks) and
 * exits non-zero if anything failed. Each test uses a fresh temporary
 * directory (mkdtemp under $TMPDIR or /tmp) that is removed at the end.
 *
 * Build (after `make install PREFIX=/some/prefix`):
 *   cc -std=c11 -Wall -Wextra -Werror -pedantic tests/c/test_core.c -o /tmp/t \
 *      $(PKG_CONFIG_PATH=/some/prefix/lib/pkgconfig pkg-config --cflags --libs bitcask)
 *   LD_LIBRARY_PATH=/some/prefix/lib /tmp/t
 */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700

#include <bitcask.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Minimal check machinery                                                   */
/* ------------------------------------------------------------------------ */

static int g_pass;
static int g_fail;
static const char *g_test = "?";

static const char *status_name(bitcask_status s)
{
    switch (s) {
    case BITCASK_OK: return "BITCASK_OK";
    case BITCASK_NOT_FOUND: return "BITCASK_NOT_FOUND";
    case BITCASK_INVALID_ARGUMENT: return "BITCASK_INVALID_ARGUMENT";
    case BITCASK_IO: return "BITCASK_IO";
    case BITCASK_CORRUPTION: return "BITCASK_CORRUPTION";
    case BITCASK_LOCKED: return "BITCASK_LOCKED";
    case BITCASK_BUFFER_TOO_SMALL: return "BITCASK_BUFFER_TOO_SMALL";
    case BITCASK_INTERNAL: return "BITCASK_INTERNAL";
    case BITCASK_CLOSED: return "BITCASK_CLOSED";
    default: return "(unknown code)";
    }
}

static int check_impl(int ok, const char *file, int line, const char *expr)
{
    if (ok) {
        g_pass++;
        return 1;
    }
    g_fail++;
    fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n  last_error: \"%s\"\n",
            file, line, g_test, expr, bitcask_last_error());
    return 0;
}

static int check_st_impl(bitcask_status got, bitcask_status want,
                         const char *file, int line, const char *expr)
{
    if (got == want) {
        g_pass++;
        return 1;
    }
    g_fail++;
    fprintf(stderr,
            "%s:%d: [%s] CHECK failed: %s\n"
            "  expected %s (%d, \"%s\"), got %s (%d, \"%s\")\n"
            "  last_error: \"%s\"\n",
            file, line, g_test, expr,
            status_name(want), (int)want, bitcask_status_str(want),
            status_name(got), (int)got, bitcask_status_str(got),
            bitcask_last_error());
    return 0;
}

/* CHECK(cond): counts a pass or a failure; evaluates to 1/0. */
#define CHECK(cond) check_impl(!!(cond), __FILE__, __LINE__, #cond)
/* CHECK_ST(expected_status, call): the call must return expected_status. */
#define CHECK_ST(want, call) \
    check_st_impl((call), (want), __FILE__, __LINE__, #call " == " #want)
/* REQUIRE*: like CHECK*, but jump to the test's `out:` cleanup on failure. */
#define REQUIRE(cond) do { if (!CHECK(cond)) goto out; } while (0)
#define REQUIRE_ST(want, call) do { if (!CHECK_ST(want, call)) goto out; } while (0)

/* ------------------------------------------------------------------------ */
/* Helpers: temp dirs, paths, data generation                                */
/* ------------------------------------------------------------------------ */

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb; (void)type; (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "warning: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void rm_rf(const char *path)
{
    if (path)
        nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    size_t n = strlen(base) + sizeof("/bitcask-test-XXXXXX");
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%s/bitcask-test-XXXXXX", base);
    if (!mkdtemp(p)) {
        fprintf(stderr, "mkdtemp(%s): %s\n", p, strerror(errno));
        free(p);
        return NULL;
    }
    return p;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + 1 + strlen(b) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

static bool path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Counts files named exactly NNNNNNNNN.data (9 decimal digits). */
static int count_data_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *s = e->d_name;
        if (strlen(s) != 14 || strcmp(s + 9, ".data") != 0)
            continue;
        bool digits = true;
        for (int i = 0; i < 9; i++)
            if (s[i] < '0' || s[i] > '9')
                digits = false;
        if (digits)
            n++;
    }
    closedir(d);
    return n;
}

/* Case-insensitive "does haystack contain needle". */
static bool contains_ci(const char *hay, const char *needle)
{
    size_t hn = strlen(hay), nn = strlen(needle);
    for (size_t i = 0; i + nn <= hn; i++) {
        size_t j = 0;
        while (j < nn) {
            char a = hay[i + j], b = needle[j];
            if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
            if (b >= 'A' && b <= 'Z') b = (char)(b - 'A' + 'a');
            if (a != b)
                break;
            j++;
        }
        if (j == nn)
            return true;
    }
    return false;
}

/* last_error mentions at least one of the (NULL-terminated) words. */
static bool err_mentions(const char *w1, const char *w2, const char *w3)
{
    const char *e = bitcask_last_error();
    if (!e || !*e)
        return false;
    return (w1 && contains_ci(e, w1)) || (w2 && contains_ci(e, w2)) ||
           (w3 && contains_ci(e, w3));
}

static bool err_nonempty(void)
{
    const char *e = bitcask_last_error();
    return e != NULL && e[0] != '\0';
}

/* Deterministic test data. */
static size_t gen_key(char *buf, size_t cap, int i)
{
    int n = snprintf(buf, cap, "key-%06d", i);
    return (size_t)n;
}

static size_t gen_value_len(int i, int ver)
{
    return (size_t)((i * 7 + ver * 13) % 300);
}

static void gen_value(unsigned char *buf, int i, int ver)
{
    size_t n = gen_value_len(i, ver);
    for (size_t j = 0; j < n; j++)
        buf[j] = (unsigned char)((unsigned)i * 31u + (unsigned)ver * 17u + (unsigned)j);
}

/*
 * Checks that key holds exactly the given value, through bitcask_get AND
 * bitcask_get_into (size query, then exact buffer). Reports at the caller's
 * line.
 */
static int expect_value_impl(bitcask_db *db, const void *key, size_t klen,
                             const void *val, size_t vlen,
                             const char *file, int line)
{
    int ok = 1;
    void *out = NULL;
    size_t outlen = (size_t)-1;
    bitcask_status s = bitcask_get(db, key, klen, &out, &outlen);
    ok &= check_st_impl(s, BITCASK_OK, file, line, "expect_value: bitcask_get");
    if (s == BITCASK_OK) {
        ok &= check_impl(out != NULL, file, line, "expect_value: get value_out != NULL");
        ok &= check_impl(outlen == vlen, file, line, "expect_value: get length matches");
        if (out && outlen == vlen && vlen > 0)
            ok &= check_impl(memcmp(out, val, vlen) == 0, file, line,
                             "expect_value: get bytes match");
        bitcask_free(out);
    }

    size_t need = (size_t)-1;
    s = bitcask_get_into(db, key, klen, NULL, 0, &need);
    ok &= check_st_impl(s, vlen == 0 ? BITCASK_OK : BITCASK_BUFFER_TOO_SMALL,
                        file, line, "expect_value: get_into size query");
    ok &= check_impl(need == vlen, file, line, "expect_value: size query length");
    if (vlen > 0) {
        unsigned char *buf = malloc(vlen);
        if (buf) {
            size_t got = (size_t)-1;
            s = bitcask_get_into(db, key, klen, buf, vlen, &got);
            ok &= check_st_impl(s, BITCASK_OK, file, line,
                                "expect_value: get_into exact buffer");
            ok &= check_impl(got == vlen, file, line, "expect_value: get_into length");
            if (s == BITCASK_OK && got == vlen)
                ok &= check_impl(memcmp(buf, val, vlen) == 0, file, line,
                                 "expect_value: get_into bytes match");
            free(buf);
        }
    }
    return ok;
}
/* EXPECT_VALUE(db, key, key_len, value, value_len) -- variadic so S("...") works */
#define EXPECT_VALUE(...) expect_value_impl(__VA_ARGS__, __FILE__, __LINE__)

static int expect_absent_impl(bitcask_db *db, const void *key, size_t klen,
                              const char *file, int line)
{
    void *out = NULL;
    size_t outlen = 0;
    size_t need = 0;
    int ok = check_st_impl(bitcask_get(db, key, klen, &out, &outlen), BITCASK_NOT_FOUND,
                           file, line, "expect_absent: bitcask_get");
    if (out) bitcask_free(out);
    ok &= check_st_impl(bitcask_get_into(db, key, klen, NULL, 0, &need), BITCASK_NOT_FOUND,
                        file, line, "expect_absent: bitcask_get_into");
    return ok;
}
/* EXPECT_ABSENT(db, key, key_len) */
#define EXPECT_ABSENT(...) expect_absent_impl(__VA_ARGS__, __FILE__, __LINE__)

#define S(str) (str), (sizeof(str) - 1) /* string literal -> ptr, len */

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

/* Must run first: the main thread has not failed yet. */
static void test_last_error_initially_empty(void)
{
    const char *e = bitcask_last_error();
    CHECK(e != NULL);
    CHECK(e != NULL && strcmp(e, "") == 0);
    /* Successful calls do not set it either. */
    bitcask_options *o = bitcask_options_new();
    CHECK(o != NULL);
    CHECK_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, 1u << 20));
    bitcask_options_free(o);
    CHECK(strcmp(bitcask_last_error(), "") == 0);
}

static void test_constants_and_status_strings(void)
{
    CHECK(BITCASK_OK == 0);
    CHECK(BITCASK_NOT_FOUND == 1);
    CHECK(BITCASK_INVALID_ARGUMENT == 2);
    CHECK(BITCASK_IO == 3);
    CHECK(BITCASK_CORRUPTION == 4);
    CHECK(BITCASK_LOCKED == 5);
    CHECK(BITCASK_BUFFER_TOO_SMALL == 6);
    CHECK(BITCASK_INTERNAL == 7);
    CHECK(BITCASK_CLOSED == 8);
    CHECK(sizeof(bitcask_status) == sizeof(int32_t));
    CHECK((uint64_t)BITCASK_MAX_KEY_LEN == UINT64_C(65536));
    CHECK((uint64_t)BITCASK_MAX_VALUE_LEN == UINT64_C(1073741824));

    const char *strs[9];
    for (int i = 0; i <= 8; i++) {
        strs[i] = bitcask_status_str((bitcask_status)i);
        CHECK(strs[i] != NULL);
        if (!strs[i])
            strs[i] = "";
        CHECK(strs[i][0] != '\0');
        CHECK(strcmp(strs[i], "unknown status") != 0);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(strs[i], strs[j]) != 0);
    }
    const bitcask_status unknown[] = { 9999, -1, INT32_MAX, INT32_MIN, 1000000 };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = bitcask_status_str(unknown[i]);
        if (!CHECK(s != NULL && strcmp(s, "unknown status") == 0))
            fprintf(stderr, "  bitcask_status_str(%ld) = \"%s\"\n", (long)unknown[i],
                    s ? s : "(NULL)");
    }
    /* Static strings: the same pointer contents on repeated calls. */
    CHECK(strcmp(bitcask_status_str(BITCASK_OK), strs[0]) == 0);
}

static void test_version(void)
{
    char want[64];
    snprintf(want, sizeof want, "%lu.%lu.%lu",
             (unsigned long)BITCASK_VERSION_MAJOR,
             (unsigned long)BITCASK_VERSION_MINOR,
             (unsigned long)BITCASK_VERSION_PATCH);
    const char *v = bitcask_version();
    CHECK(v != NULL);
    CHECK(v != NULL && strcmp(v, want) == 0);
    if (v && strcmp(v, want) != 0)
        fprintf(stderr, "  bitcask_version() = \"%s\", header says \"%s\"\n", v, want);

    uint64_t num = (uint64_t)BITCASK_VERSION_MAJOR * 1000000u +
                   (uint64_t)BITCASK_VERSION_MINOR * 1000u +
                   (uint64_t)BITCASK_VERSION_PATCH;
    CHECK((uint64_t)BITCASK_VERSION_NUMBER == num);
    CHECK((uint64_t)bitcask_version_number() == (uint64_t)BITCASK_VERSION_NUMBER);
    CHECK((uint64_t)BITCASK_VERSION_MINOR < 1000u);
    CHECK((uint64_t)BITCASK_VERSION_PATCH < 1000u);
}

struct thread_err_result {
    int initially_empty;
    int own_failure_set;
};

static void *fresh_thread_main(void *arg)
{
    struct thread_err_result *r = arg;
    const char *e = bitcask_last_error();
    r->initially_empty = (e != NULL && strcmp(e, "") == 0);
    /* Fail on this thread with a value error. */
    bitcask_status s = bitcask_put(NULL, "k", 1, "v", 1);
    r->own_failure_set = (s == BITCASK_INVALID_ARGUMENT && err_nonempty());
    return NULL;
}

static void test_last_error_per_thread(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));

    /* Fail on the main thread with a key error. */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, "", 0, S("v")));
    CHECK(err_mentions("key", NULL, NULL));
    size_t n = strlen(bitcask_last_error());
    char *saved = malloc(n + 1);
    REQUIRE(saved != NULL);
    memcpy(saved, bitcask_last_error(), n + 1);

    struct thread_err_result r = { 0, 0 };
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, fresh_thread_main, &r) == 0);
    pthread_join(th, NULL);
    CHECK(r.initially_empty);   /* a fresh thread sees "" */
    CHECK(r.own_failure_set);   /* and gets its own message on failure */
    /* The other thread's failure did not change this thread's message. */
    CHECK(strcmp(bitcask_last_error(), saved) == 0);
    free(saved);
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_options(void)
{
    char *dir = make_tmpdir();
    bitcask_options *o = bitcask_options_new();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE(o != NULL);

    /* data_file_size: valid range [4096, 2^31]. */
    CHECK_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, 4096));
    CHECK_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, UINT64_C(2147483648)));
    CHECK_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, 1u << 20));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_options_set_data_file_size(o, 4095));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_options_set_data_file_size(o, 0));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_options_set_data_file_size(o, 1));
    CHECK_ST(BITCASK_INVALID_ARGUMENT,
             bitcask_options_set_data_file_size(o, UINT64_C(2147483649)));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_options_set_data_file_size(o, UINT64_MAX));
    CHECK(err_nonempty());

    /* bytes_per_sync: any value, 0 = off. */
    CHECK_ST(BITCASK_OK, bitcask_options_set_bytes_per_sync(o, 0));
    CHECK_ST(BITCASK_OK, bitcask_options_set_bytes_per_sync(o, 1));
    CHECK_ST(BITCASK_OK, bitcask_options_set_bytes_per_sync(o, UINT64_MAX));
    CHECK_ST(BITCASK_OK, bitcask_options_set_bytes_per_sync(o, 1u << 20));

    /* booleans */
    CHECK_ST(BITCASK_OK, bitcask_options_set_sync_writes(o, true));
    CHECK_ST(BITCASK_OK, bitcask_options_set_sync_writes(o, false));
    CHECK_ST(BITCASK_OK, bitcask_options_set_mmap_at_startup(o, true));
    CHECK_ST(BITCASK_OK, bitcask_options_set_mmap_at_startup(o, false));

    /* NULL options object */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_options_set_data_file_size(NULL, 4096));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_options_set_sync_writes(NULL, true));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_options_set_bytes_per_sync(NULL, 0));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_options_set_mmap_at_startup(NULL, false));
    CHECK(err_nonempty());
    bitcask_options_free(NULL); /* no-op */

    /*
     * A rejected setter leaves opts unchanged: set 4096, then try bad values;
     * the database must still roll over to new data files every ~4 KiB.
     */
    CHECK_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, 4096));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_options_set_data_file_size(o, 0));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_options_set_data_file_size(o, UINT64_MAX));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_options_set_data_file_size(o, 4095));
    CHECK_ST(BITCASK_OK, bitcask_options_set_bytes_per_sync(o, 0));
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, o, &db));
    bitcask_options_free(o); /* copied at open */
    o = NULL;
    unsigned char val[1000];
    memset(val, 0xAB, sizeof val);
    for (int i = 0; i < 64; i++) { /* ~64 KB of records */
        char k[32];
        size_t kl = gen_key(k, sizeof k, i);
        CHECK_ST(BITCASK_OK, bitcask_put(db, k, kl, val, sizeof val));
    }
    CHECK_ST(BITCASK_OK, bitcask_sync(db));
    int files = count_data_files(dir);
    CHECK(files >= 8); /* 64 KB in files of at most 4 KiB (+1 record) */
    if (files < 8)
        fprintf(stderr, "  only %d data files after 64 KB with data_file_size 4096\n", files);
    for (int i = 0; i < 64; i++) {
        char k[32];
        size_t kl = gen_key(k, sizeof k, i);
        EXPECT_VALUE(db, k, kl, val, sizeof val);
    }
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    bitcask_options_free(o);
    rm_rf(dir);
    free(dir);
}

static void test_open_arguments(void)
{
    char *dir = make_tmpdir();
    char *file = NULL, *under_file = NULL, *bad_utf8 = NULL, *newdir = NULL;
    bitcask_db *db = NULL;
    static int sentinel_obj;
    bitcask_db *const SENTINEL = (bitcask_db *)(void *)&sentinel_obj;
    REQUIRE(dir != NULL);

    /* NULL dir / NULL db_out */
    bitcask_db *d2 = SENTINEL;
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_open(NULL, NULL, &d2));
    CHECK(d2 == SENTINEL);
    CHECK(err_mentions("dir", "path", NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_open(dir, NULL, NULL));
    CHECK(err_nonempty());

    /* non-UTF-8 path: rejected, nothing created */
    bad_utf8 = path_join(dir, "x\xff");
    REQUIRE(bad_utf8 != NULL);
    d2 = SENTINEL;
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_open(bad_utf8, NULL, &d2));
    CHECK(d2 == SENTINEL);
    CHECK(err_nonempty());
    CHECK(!path_exists(bad_utf8));

    /* A regular file where the directory should be: IO. */
    file = path_join(dir, "plainfile");
    REQUIRE(file != NULL);
    FILE *f = fopen(file, "w");
    REQUIRE(f != NULL);
    fputs("not a directory\n", f);
    fclose(f);
    d2 = SENTINEL;
    CHECK_ST(BITCASK_IO, bitcask_open(file, NULL, &d2));
    CHECK(d2 == SENTINEL);
    CHECK(err_nonempty());
    /* the file is untouched */
    {
        char line[64] = { 0 };
        f = fopen(file, "r");
        CHECK(f != NULL);
        if (f) {
            CHECK(fgets(line, sizeof line, f) != NULL);
            fclose(f);
        }
        CHECK(strcmp(line, "not a directory\n") == 0);
    }
    /* ... and a path below a regular file: IO as well (ENOTDIR). */
    under_file = path_join(file, "sub");
    REQUIRE(under_file != NULL);
    d2 = SENTINEL;
    CHECK_ST(BITCASK_IO, bitcask_open(under_file, NULL, &d2));
    CHECK(d2 == SENTINEL);
    CHECK(err_nonempty());

    /* A missing directory is created; opts NULL means defaults. */
    newdir = path_join(dir, "newdb");
    REQUIRE(newdir != NULL);
    CHECK(!path_exists(newdir));
    REQUIRE_ST(BITCASK_OK, bitcask_open(newdir, NULL, &db));
    CHECK(db != NULL);
    CHECK(path_exists(newdir));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("a"), S("1")));
    EXPECT_VALUE(db, S("a"), S("1"));
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;

    /* Options freed right after open: the database keeps its copy. */
    {
        bitcask_options *o = bitcask_options_new();
        REQUIRE(o != NULL);
        CHECK_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, 8192));
        CHECK_ST(BITCASK_OK, bitcask_options_set_sync_writes(o, true));
        bitcask_status s = bitcask_open(newdir, o, &db);
        bitcask_options_free(o);
        REQUIRE_ST(BITCASK_OK, s);
        EXPECT_VALUE(db, S("a"), S("1"));
        unsigned char v[512];
        memset(v, 0x5A, sizeof v);
        for (int i = 0; i < 100; i++) {
            char k[32];
            size_t kl = gen_key(k, sizeof k, i);
            CHECK_ST(BITCASK_OK, bitcask_put(db, k, kl, v, sizeof v));
        }
        for (int i = 0; i < 100; i++) {
            char k[32];
            size_t kl = gen_key(k, sizeof k, i);
            EXPECT_VALUE(db, k, kl, v, sizeof v);
        }
        /* 50 KB with 8 KiB files: the copied data_file_size was honoured */
        CHECK(count_data_files(newdir) >= 4);
    }
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
    free(file);
    free(under_file);
    free(bad_utf8);
    free(newdir);
}

static void test_lock(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL, *db2 = NULL;
    static int sentinel_obj;
    bitcask_db *const SENTINEL = (bitcask_db *)(void *)&sentinel_obj;
    REQUIRE(dir != NULL);

    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("k"), S("v1")));

    db2 = SENTINEL;
    CHECK_ST(BITCASK_LOCKED, bitcask_open(dir, NULL, &db2));
    CHECK(err_nonempty());
    CHECK(db2 == SENTINEL);
    if (db2 != SENTINEL)
        CHECK_ST(BITCASK_OK, bitcask_close(db2));
    db2 = NULL;

    /* again, with options */
    {
        bitcask_options *o = bitcask_options_new();
        CHECK(o != NULL);
        bitcask_db *d3 = SENTINEL;
        CHECK_ST(BITCASK_LOCKED, bitcask_open(dir, o, &d3));
        CHECK(d3 == SENTINEL);
        if (d3 != SENTINEL)
            CHECK_ST(BITCASK_OK, bitcask_close(d3));
        bitcask_options_free(o);
    }

    /* The first handle is unaffected. */
    EXPECT_VALUE(db, S("k"), S("v1"));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("k"), S("v2")));
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;

    /* After closing, the directory can be opened again, with the data. */
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_VALUE(db, S("k"), S("v2"));
    /* and is locked again while open */
    db2 = SENTINEL;
    CHECK_ST(BITCASK_LOCKED, bitcask_open(dir, NULL, &db2));
    CHECK(db2 == SENTINEL);
    db2 = NULL;
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_close_and_free_null(void)
{
    CHECK_ST(BITCASK_OK, bitcask_close(NULL));
    bitcask_free(NULL);
    bitcask_options_free(NULL);
    CHECK(1); /* reached without crashing */
}

static void test_reopen_many_times(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    for (int round = 0; round < 20; round++) {
        REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
        char k[32];
        size_t kl = gen_key(k, sizeof k, round);
        CHECK_ST(BITCASK_OK, bitcask_put(db, k, kl, &round, sizeof round));
        CHECK_ST(BITCASK_OK, bitcask_put(db, S("counter"), &round, sizeof round));
        for (int i = 0; i <= round; i++) {
            kl = gen_key(k, sizeof k, i);
            EXPECT_VALUE(db, k, kl, &i, sizeof i);
        }
        EXPECT_VALUE(db, S("counter"), &round, sizeof round);
        CHECK_ST(BITCASK_OK, bitcask_close(db));
        db = NULL;
    }
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_put_get_basic(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));

    EXPECT_ABSENT(db, S("hello"));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("hello"), S("world")));
    EXPECT_VALUE(db, S("hello"), S("world"));

    /* get returns a fresh copy each time, freed with bitcask_free */
    {
        void *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        CHECK_ST(BITCASK_OK, bitcask_get(db, S("hello"), &a, &al));
        CHECK_ST(BITCASK_OK, bitcask_get(db, S("hello"), &b, &bl));
        CHECK(a != NULL && b != NULL && a != b);
        CHECK(al == 5 && bl == 5);
        if (a && b && al == 5 && bl == 5) {
            memset(a, 'X', al); /* writable, and independent of b */
            CHECK(memcmp(b, "world", 5) == 0);
        }
        bitcask_free(a);
        bitcask_free(b);
    }

    /* overwrite with shorter, longer, same length */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("hello"), S("w")));
    EXPECT_VALUE(db, S("hello"), S("w"));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("hello"), S("a much longer value than before")));
    EXPECT_VALUE(db, S("hello"), S("a much longer value than before"));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("hello"), S("b much longer value than before")));
    EXPECT_VALUE(db, S("hello"), S("b much longer value than before"));

    /* keys that differ only by length or prefix are distinct */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("ab"), S("2")));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("abc"), S("3")));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("a"), S("1")));
    EXPECT_VALUE(db, S("a"), S("1"));
    EXPECT_VALUE(db, S("ab"), S("2"));
    EXPECT_VALUE(db, S("abc"), S("3"));
    EXPECT_ABSENT(db, S("abcd"));
    EXPECT_ABSENT(db, S("b"));

    /* the key buffer is borrowed only for the call */
    {
        char kbuf[16];
        memcpy(kbuf, "tmpkey", 6);
        CHECK_ST(BITCASK_OK, bitcask_put(db, kbuf, 6, S("tmpval")));
        memset(kbuf, 0, sizeof kbuf);
        EXPECT_VALUE(db, S("tmpkey"), S("tmpval"));
    }

    /* a medium-large value (1 MiB) */
    {
        size_t n = 1u << 20;
        unsigned char *big = malloc(n);
        REQUIRE(big != NULL);
        for (size_t i = 0; i < n; i++)
            big[i] = (unsigned char)(i * 2654435761u >> 13);
        CHECK_ST(BITCASK_OK, bitcask_put(db, S("big"), big, n));
        EXPECT_VALUE(db, S("big"), big, n);
        CHECK_ST(BITCASK_OK, bitcask_close(db));
        db = NULL;
        bitcask_status s = bitcask_open(dir, NULL, &db);
        CHECK_ST(BITCASK_OK, s);
        if (s == BITCASK_OK)
            EXPECT_VALUE(db, S("big"), big, n);
        free(big);
    }
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

/* A value larger than data_file_size is still a valid value. */
static void test_value_larger_than_data_file(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    bitcask_options *o = bitcask_options_new();
    unsigned char *big = NULL;
    size_t n = 100000;
    REQUIRE(dir != NULL && o != NULL);
    CHECK_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, 4096));
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, o, &db));
    big = malloc(n);
    REQUIRE(big != NULL);
    for (size_t i = 0; i < n; i++)
        big[i] = (unsigned char)(i % 251);
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("small1"), S("x")));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("big"), big, n));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("small2"), S("y")));
    EXPECT_VALUE(db, S("big"), big, n);
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, o, &db));
    EXPECT_VALUE(db, S("big"), big, n);
    EXPECT_VALUE(db, S("small1"), S("x"));
    EXPECT_VALUE(db, S("small2"), S("y"));
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    bitcask_options_free(o);
    free(big);
    rm_rf(dir);
    free(dir);
}

static void test_empty_value(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));

    /* NULL pointer with length 0 */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("e1"), NULL, 0));
    /* non-NULL pointer with length 0 */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("e2"), "ignored", 0));

    const char *keys[] = { "e1", "e2" };
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < 2; i++) {
            void *out = NULL;
            size_t len = 777;
            CHECK_ST(BITCASK_OK, bitcask_get(db, keys[i], 2, &out, &len));
            CHECK(out != NULL); /* never NULL on OK, even if empty */
            CHECK(len == 0);
            bitcask_free(out);

            size_t need = 777;
            CHECK_ST(BITCASK_OK, bitcask_get_into(db, keys[i], 2, NULL, 0, &need));
            CHECK(need == 0);
            char buf[4] = { 'Q', 'Q', 'Q', 'Q' };
            need = 777;
            CHECK_ST(BITCASK_OK, bitcask_get_into(db, keys[i], 2, buf, sizeof buf, &need));
            CHECK(need == 0);
            CHECK(buf[0] == 'Q');
        }
        /* An empty value is a value, not a deletion: survives reopen. */
        CHECK_ST(BITCASK_OK, bitcask_close(db));
        db = NULL;
        REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    }

    /* empty -> non-empty -> empty */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("e1"), S("now full")));
    EXPECT_VALUE(db, S("e1"), S("now full"));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("e1"), NULL, 0));
    EXPECT_VALUE(db, S("e1"), NULL, 0);
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_key_arguments(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    unsigned char *maxkey = NULL;
    const size_t MAXK = (size_t)BITCASK_MAX_KEY_LEN;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("k"), S("orig")));

    void *out = NULL;
    size_t len = 0;
    char buf[16];

    /* zero-length key, NULL pointer */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, NULL, 0, S("v")));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, NULL, 0, &out, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, NULL, 0, buf, sizeof buf, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(db, NULL, 0));
    CHECK(err_mentions("key", NULL, NULL));
    /* zero-length key, non-NULL pointer */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, "k", 0, S("v")));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, "k", 0, &out, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, "k", 0, buf, sizeof buf, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(db, "k", 0));
    CHECK(err_mentions("key", NULL, NULL));
    /* NULL key with non-zero length */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, NULL, 1, S("v")));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, NULL, 1, &out, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, NULL, 1, buf, sizeof buf, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(db, NULL, 1));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK(out == NULL); /* out params untouched by failures */

    /* Key of exactly MAX_KEY_LEN bytes is accepted... */
    maxkey = malloc(MAXK + 1);
    REQUIRE(maxkey != NULL);
    for (size_t i = 0; i < MAXK + 1; i++)
        maxkey[i] = (unsigned char)(i * 7 + 3);
    CHECK_ST(BITCASK_OK, bitcask_put(db, maxkey, MAXK, S("maxval")));
    EXPECT_VALUE(db, maxkey, MAXK, S("maxval"));
    /* ...a key one byte longer is not, in any operation. */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, maxkey, MAXK + 1, S("v")));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, maxkey, MAXK + 1, &out, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT,
             bitcask_get_into(db, maxkey, MAXK + 1, buf, sizeof buf, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(db, maxkey, MAXK + 1));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK(out == NULL);
    /* the over-long key was not stored under its truncated form either */
    EXPECT_VALUE(db, maxkey, MAXK, S("maxval"));
    EXPECT_VALUE(db, S("k"), S("orig"));

    /* Max key survives reopen and can be deleted. */
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_VALUE(db, maxkey, MAXK, S("maxval"));
    EXPECT_VALUE(db, S("k"), S("orig"));
    CHECK_ST(BITCASK_OK, bitcask_delete(db, maxkey, MAXK));
    EXPECT_ABSENT(db, maxkey, MAXK);
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_ABSENT(db, maxkey, MAXK);
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    free(maxkey);
    rm_rf(dir);
    free(dir);
}

static void test_value_arguments(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("k"), S("old value")));

    /* NULL value with non-zero length */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, S("k"), NULL, 5));
    CHECK(err_mentions("value", NULL, NULL));
    EXPECT_VALUE(db, S("k"), S("old value"));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, S("new"), NULL, 1));
    EXPECT_ABSENT(db, S("new"));

    /* Over-limit value: a tiny buffer with a huge length. The library must
     * check the length before touching memory (valgrind would notice). */
    {
        char tiny[8] = "tinyval";
        CHECK_ST(BITCASK_INVALID_ARGUMENT,
                 bitcask_put(db, S("k"), tiny, (size_t)BITCASK_MAX_VALUE_LEN + 1));
        CHECK(err_mentions("value", NULL, NULL));
        EXPECT_VALUE(db, S("k"), S("old value"));
        CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, S("new"), tiny, SIZE_MAX));
        CHECK(err_mentions("value", NULL, NULL));
        EXPECT_ABSENT(db, S("new"));
    }

    /* Rejected calls wrote nothing durable either. */
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_VALUE(db, S("k"), S("old value"));
    EXPECT_ABSENT(db, S("new"));
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_null_db(void)
{
    void *out = NULL;
    size_t len = 0;
    char buf[8];
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(NULL, S("k"), S("v")));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(NULL, S("k"), &out, &len));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(NULL, S("k"), buf, sizeof buf, &len));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(NULL, S("k"), NULL, 0, &len));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(NULL, S("k")));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_sync(NULL));
    CHECK(err_nonempty());
    CHECK(out == NULL && len == 0);
}

static void test_get_out_params(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    static int sentinel_obj;
    void *const SENT = &sentinel_obj;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("present"), S("value")));

    /* NOT_FOUND leaves both out params untouched */
    void *out = SENT;
    size_t len = 0xDEADBEEF;
    CHECK_ST(BITCASK_NOT_FOUND, bitcask_get(db, S("absent"), &out, &len));
    CHECK(out == SENT);
    CHECK(len == 0xDEADBEEF);

    /* NULL out params */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, S("present"), NULL, &len));
    CHECK(err_mentions("value", "out", NULL));
    CHECK(len == 0xDEADBEEF);
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, S("present"), &out, NULL));
    CHECK(err_mentions("len", "out", NULL));
    CHECK(out == SENT);
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, S("present"), NULL, NULL));
    CHECK(err_nonempty());
    /* also for an absent key: argument errors come first */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, S("absent"), NULL, &len));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, S("absent"), &out, NULL));
    CHECK(out == SENT && len == 0xDEADBEEF);

    /* An INVALID_ARGUMENT for the key also leaves them untouched */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, NULL, 0, &out, &len));
    CHECK(out == SENT && len == 0xDEADBEEF);

    /* OK writes them */
    CHECK_ST(BITCASK_OK, bitcask_get(db, S("present"), &out, &len));
    CHECK(out != SENT && out != NULL);
    CHECK(len == 5);
    if (out != SENT && out != NULL && len == 5)
        CHECK(memcmp(out, "value", 5) == 0);
    if (out != SENT)
        bitcask_free(out);
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_get_into(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    const char val[] = "0123456789abcdef"; /* 16 bytes */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("k"), val, 16));

    /* size query */
    size_t need = 0;
    CHECK_ST(BITCASK_BUFFER_TOO_SMALL, bitcask_get_into(db, S("k"), NULL, 0, &need));
    CHECK(need == 16);

    /* non-NULL buffer with length 0: too small, untouched */
    char buf[32];
    memset(buf, '#', sizeof buf);
    need = 0;
    CHECK_ST(BITCASK_BUFFER_TOO_SMALL, bitcask_get_into(db, S("k"), buf, 0, &need));
    CHECK(need == 16);
    CHECK(buf[0] == '#');

    /* too small by one: untouched */
    memset(buf, '#', sizeof buf);
    need = 0;
    CHECK_ST(BITCASK_BUFFER_TOO_SMALL, bitcask_get_into(db, S("k"), buf, 15, &need));
    CHECK(need == 16);
    {
        bool untouched = true;
        for (size_t i = 0; i < sizeof buf; i++)
            if (buf[i] != '#')
                untouched = false;
        CHECK(untouched);
    }

    /* exact size */
    memset(buf, '#', sizeof buf);
    need = 0;
    CHECK_ST(BITCASK_OK, bitcask_get_into(db, S("k"), buf, 16, &need));
    CHECK(need == 16);
    CHECK(memcmp(buf, val, 16) == 0);
    CHECK(buf[16] == '#'); /* nothing written past the value */

    /* larger buffer */
    memset(buf, '#', sizeof buf);
    need = 0;
    CHECK_ST(BITCASK_OK, bitcask_get_into(db, S("k"), buf, sizeof buf, &need));
    CHECK(need == 16);
    CHECK(memcmp(buf, val, 16) == 0);

    /* NULL value_len_out */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, S("k"), buf, sizeof buf, NULL));
    CHECK(err_mentions("len", "out", NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, S("k"), NULL, 0, NULL));
    CHECK(err_nonempty());
    /* NULL buf with non-zero buf_len */
    need = 12345;
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, S("k"), NULL, 16, &need));
    CHECK(err_mentions("buf", NULL, NULL));
    CHECK(need == 12345);

    /* NOT_FOUND: *value_len_out and the buffer untouched */
    memset(buf, '#', sizeof buf);
    need = 12345;
    CHECK_ST(BITCASK_NOT_FOUND, bitcask_get_into(db, S("absent"), buf, sizeof buf, &need));
    CHECK(need == 12345);
    CHECK(buf[0] == '#');
    CHECK_ST(BITCASK_NOT_FOUND, bitcask_get_into(db, S("absent"), NULL, 0, &need));
    CHECK(need == 12345);

    /* invalid key: untouched too */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, NULL, 0, buf, sizeof buf, &need));
    CHECK(need == 12345);
    CHECK(buf[0] == '#');
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_delete(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));

    /* absent key: OK, still absent */
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("never")));
    EXPECT_ABSENT(db, S("never"));

    CHECK_ST(BITCASK_OK, bitcask_put(db, S("a"), S("1")));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("b"), S("2")));
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("a")));
    EXPECT_ABSENT(db, S("a"));
    EXPECT_VALUE(db, S("b"), S("2"));
    /* twice: OK */
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("a")));
    EXPECT_ABSENT(db, S("a"));

    /* delete, then put again */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("b"), S("2b")));
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("b")));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("b"), S("3")));
    EXPECT_VALUE(db, S("b"), S("3"));

    /* empty value then delete */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("e"), NULL, 0));
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("e")));
    EXPECT_ABSENT(db, S("e"));

    /* all of it survives reopen */
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_ABSENT(db, S("a"));
    EXPECT_ABSENT(db, S("never"));
    EXPECT_ABSENT(db, S("e"));
    EXPECT_VALUE(db, S("b"), S("3"));
    /* delete after reopen, reopen again */
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("b")));
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_ABSENT(db, S("b"));
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_last_error_semantics(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    char *saved = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("k"), S("value")));

    /* a failure sets it */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, S("k"), NULL, 3));
    CHECK(err_mentions("value", NULL, NULL));
    size_t n = strlen(bitcask_last_error());
    saved = malloc(n + 1);
    REQUIRE(saved != NULL);
    memcpy(saved, bitcask_last_error(), n + 1);

    /* successes, NOT_FOUND and BUFFER_TOO_SMALL leave it unchanged */
    void *out = NULL;
    size_t len = 0;
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("k2"), S("v2")));
    CHECK(strcmp(bitcask_last_error(), saved) == 0);
    CHECK_ST(BITCASK_OK, bitcask_get(db, S("k2"), &out, &len));
    bitcask_free(out);
    CHECK(strcmp(bitcask_last_error(), saved) == 0);
    CHECK_ST(BITCASK_NOT_FOUND, bitcask_get(db, S("zz"), &out, &len));
    CHECK(strcmp(bitcask_last_error(), saved) == 0);
    CHECK_ST(BITCASK_NOT_FOUND, bitcask_get_into(db, S("zz"), NULL, 0, &len));
    CHECK(strcmp(bitcask_last_error(), saved) == 0);
    CHECK_ST(BITCASK_BUFFER_TOO_SMALL, bitcask_get_into(db, S("k"), NULL, 0, &len));
    CHECK(strcmp(bitcask_last_error(), saved) == 0);
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("k2")));
    CHECK(strcmp(bitcask_last_error(), saved) == 0);
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("k2")));
    CHECK(strcmp(bitcask_last_error(), saved) == 0);
    CHECK_ST(BITCASK_OK, bitcask_sync(db));
    CHECK(strcmp(bitcask_last_error(), saved) == 0);
    CHECK(strcmp(bitcask_status_str(BITCASK_IO), "") != 0);
    CHECK(strcmp(bitcask_last_error(), saved) == 0);
    {
        bitcask_options *o = bitcask_options_new();
        CHECK_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, 4096));
        bitcask_options_free(o);
    }
    CHECK(strcmp(bitcask_last_error(), saved) == 0);
    CHECK_ST(BITCASK_OK, bitcask_close(NULL));
    CHECK(strcmp(bitcask_last_error(), saved) == 0);

    /* a different failure replaces it */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(db, NULL, 0));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK(strcmp(bitcask_last_error(), saved) != 0);
    /* and a LOCKED one replaces that in turn */
    {
        free(saved);
        n = strlen(bitcask_last_error());
        saved = malloc(n + 1);
        REQUIRE(saved != NULL);
        memcpy(saved, bitcask_last_error(), n + 1);
        bitcask_db *d2 = NULL;
        CHECK_ST(BITCASK_LOCKED, bitcask_open(dir, NULL, &d2));
        CHECK(err_nonempty());
        CHECK(strcmp(bitcask_last_error(), saved) != 0);
    }
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    free(saved);
    rm_rf(dir);
    free(dir);
}

/* Writes a deterministic data set: n keys, overwrite every 3rd, delete every
 * 5th. Returns the number of failing puts/deletes. */
static int write_dataset(bitcask_db *db, int n)
{
    unsigned char v[300];
    char k[32];
    int bad = 0;
    for (int i = 0; i < n; i++) {
        size_t kl = gen_key(k, sizeof k, i);
        gen_value(v, i, 0);
        if (!CHECK_ST(BITCASK_OK, bitcask_put(db, k, kl, v, gen_value_len(i, 0))))
            bad++;
    }
    for (int i = 0; i < n; i += 3) {
        size_t kl = gen_key(k, sizeof k, i);
        gen_value(v, i, 1);
        if (!CHECK_ST(BITCASK_OK, bitcask_put(db, k, kl, v, gen_value_len(i, 1))))
            bad++;
    }
    for (int i = 0; i < n; i += 5) {
        size_t kl = gen_key(k, sizeof k, i);
        if (!CHECK_ST(BITCASK_OK, bitcask_delete(db, k, kl)))
            bad++;
    }
    /* some deleted keys come back */
    for (int i = 0; i < n; i += 25) {
        size_t kl = gen_key(k, sizeof k, i);
        gen_value(v, i, 2);
        if (!CHECK_ST(BITCASK_OK, bitcask_put(db, k, kl, v, gen_value_len(i, 2))))
            bad++;
    }
    return bad;
}

/* Verifies the data set; prints at most a few mismatches. */
static int verify_dataset_impl(bitcask_db *db, int n, const char *file, int line)
{
    unsigned char v[300];
    char k[32];
    int bad = 0;
    for (int i = 0; i < n; i++) {
        size_t kl = gen_key(k, sizeof k, i);
        int ver = (i % 25 == 0) ? 2 : (i % 5 == 0) ? -1 : (i % 3 == 0) ? 1 : 0;
        int ok;
        if (ver < 0) {
            ok = expect_absent_impl(db, k, kl, file, line);
        } else {
            gen_value(v, i, ver);
            ok = expect_value_impl(db, k, kl, v, gen_value_len(i, ver), file, line);
        }
        if (!ok && ++bad >= 5) {
            fprintf(stderr, "  (stopping dataset verification after 5 bad keys)\n");
            break;
        }
    }
    return bad == 0;
}
#define VERIFY_DATASET(db, n) verify_dataset_impl((db), (n), __FILE__, __LINE__)

static void test_persistence_many_files(void)
{
    char *dir = make_tmpdir();
    char *first = NULL;
    bitcask_db *db = NULL;
    bitcask_options *o = bitcask_options_new();
    const int N = 2000;
    REQUIRE(dir != NULL && o != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, 4096));
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, o, &db));
    CHECK(write_dataset(db, N) == 0);
    CHECK(VERIFY_DATASET(db, N));
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;

    /* ~300 KB of records in 4 KiB files: many data files on disk */
    int files = count_data_files(dir);
    CHECK(files >= 20);
    fprintf(stderr, "  [persistence] %d data files\n", files);
    first = path_join(dir, "000000001.data");
    REQUIRE(first != NULL);
    CHECK(path_exists(first));

    /* reopen with defaults (mmap setting default), then explicit mmap on/off */
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    CHECK(VERIFY_DATASET(db, N));
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    for (int m = 0; m < 2; m++) {
        CHECK_ST(BITCASK_OK, bitcask_options_set_mmap_at_startup(o, m == 1));
        REQUIRE_ST(BITCASK_OK, bitcask_open(dir, o, &db));
        CHECK(VERIFY_DATASET(db, N));
        CHECK_ST(BITCASK_OK, bitcask_close(db));
        db = NULL;
    }

    /* more changes after a reopen survive the next reopen */
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, o, &db));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("key-000001"), S("changed after reopen")));
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("key-000002")));
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, o, &db));
    EXPECT_VALUE(db, S("key-000001"), S("changed after reopen"));
    EXPECT_ABSENT(db, S("key-000002"));
    {
        unsigned char v[300];
        gen_value(v, 4, 0); /* key 4 was written once (version 0) */
        EXPECT_VALUE(db, S("key-000004"), v, gen_value_len(4, 0));
        gen_value(v, 3, 1); /* key 3 was overwritten (version 1) */
        EXPECT_VALUE(db, S("key-000003"), v, gen_value_len(3, 1));
    }
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    bitcask_options_free(o);
    free(first);
    rm_rf(dir);
    free(dir);
}

static void test_binary_keys_values(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));

    static const unsigned char k1[] = { 0x00 };
    static const unsigned char k2[] = { 0xFF };
    static const unsigned char k3[] = { 0x00, 0x00 };
    static const unsigned char k4[] = { 0x00, 0xFF, 0x00 };
    static const unsigned char k5[] = { 0xFF, 0xFF, 0xFF, 0xFF };
    static const unsigned char k6[] = { 'a', 0x00, 'b' };
    static const unsigned char k7[] = { 'a' };
    static const unsigned char v1[] = { 0x00 };
    static const unsigned char v2[] = { 0xFF, 0x00, 0xFF };
    static const unsigned char v3[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };
    static const unsigned char v4[] = { 0xFF };
    static const unsigned char v5[] = { 0x0A, 0x0D, 0x00, 0x1A, 0xFE, 0xFF };
    static const unsigned char v6[] = { 0x00, 'x' };
    static const unsigned char v7[] = { 'a' };
    struct { const unsigned char *k; size_t kl; const unsigned char *v; size_t vl; } kv[] = {
        { k1, sizeof k1, v1, sizeof v1 }, { k2, sizeof k2, v2, sizeof v2 },
        { k3, sizeof k3, v3, sizeof v3 }, { k4, sizeof k4, v4, sizeof v4 },
        { k5, sizeof k5, v5, sizeof v5 }, { k6, sizeof k6, v6, sizeof v6 },
        { k7, sizeof k7, v7, sizeof v7 },
    };
    const size_t n = sizeof kv / sizeof kv[0];
    for (size_t i = 0; i < n; i++)
        CHECK_ST(BITCASK_OK, bitcask_put(db, kv[i].k, kv[i].kl, kv[i].v, kv[i].vl));
    /* all 256 byte values as a value, and as one-byte keys "\x01"+b */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("all-bytes"), all, sizeof all));
    for (int i = 0; i < 256; i++) {
        unsigned char k[2] = { 0x01, (unsigned char)i };
        unsigned char v[3] = { (unsigned char)i, 0x00, (unsigned char)(255 - i) };
        CHECK_ST(BITCASK_OK, bitcask_put(db, k, 2, v, 3));
    }

    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++)
            EXPECT_VALUE(db, kv[i].k, kv[i].kl, kv[i].v, kv[i].vl);
        EXPECT_VALUE(db, S("all-bytes"), all, sizeof all);
        int bad = 0;
        for (int i = 0; i < 256 && bad < 3; i++) {
            unsigned char k[2] = { 0x01, (unsigned char)i };
            unsigned char v[3] = { (unsigned char)i, 0x00, (unsigned char)(255 - i) };
            if (!EXPECT_VALUE(db, k, 2, v, 3))
                bad++;
        }
        /* near-misses are absent */
        static const unsigned char m1[] = { 0x00, 0x00, 0x00 };
        static const unsigned char m2[] = { 0xFF, 0xFF };
        static const unsigned char m3[] = { 'a', 0x00 };
        EXPECT_ABSENT(db, m1, sizeof m1);
        EXPECT_ABSENT(db, m2, sizeof m2);
        EXPECT_ABSENT(db, m3, sizeof m3);
        CHECK_ST(BITCASK_OK, bitcask_close(db));
        db = NULL;
        REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    }
    /* delete binary keys, survive reopen */
    CHECK_ST(BITCASK_OK, bitcask_delete(db, k1, sizeof k1));
    CHECK_ST(BITCASK_OK, bitcask_delete(db, k4, sizeof k4));
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_ABSENT(db, k1, sizeof k1);
    EXPECT_ABSENT(db, k4, sizeof k4);
    EXPECT_VALUE(db, k3, sizeof k3, v3, sizeof v3);
    EXPECT_VALUE(db, k2, sizeof k2, v2, sizeof v2);
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

/* Every option combination gives the same data after reopen. */
static void test_option_variants(void)
{
    struct cfg {
        const char *name;
        bool sync_writes;
        uint64_t bytes_per_sync;
        int mmap; /* -1 = leave default */
        uint64_t file_size; /* 0 = leave default */
    } cfgs[] = {
        { "defaults", false, 0, -1, 0 },
        { "sync_writes", true, 0, -1, 4096 },
        { "bytes_per_sync=4096", false, 4096, -1, 4096 },
        { "bytes_per_sync=1", false, 1, -1, 0 },
        { "mmap_on", false, 0, 1, 4096 },
        { "mmap_off", false, 0, 0, 4096 },
        { "all", true, 65536, 1, 8192 },
    };
    const int N = 400;
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        char *dir = make_tmpdir();
        bitcask_options *o = bitcask_options_new();
        bitcask_db *db = NULL;
        g_test = cfgs[c].name;
        if (!CHECK(dir != NULL && o != NULL))
            goto next;
        CHECK_ST(BITCASK_OK, bitcask_options_set_sync_writes(o, cfgs[c].sync_writes));
        CHECK_ST(BITCASK_OK, bitcask_options_set_bytes_per_sync(o, cfgs[c].bytes_per_sync));
        if (cfgs[c].mmap >= 0)
            CHECK_ST(BITCASK_OK, bitcask_options_set_mmap_at_startup(o, cfgs[c].mmap == 1));
        if (cfgs[c].file_size)
            CHECK_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, cfgs[c].file_size));
        if (!CHECK_ST(BITCASK_OK, bitcask_open(dir, o, &db)))
            goto next;
        CHECK(write_dataset(db, N) == 0);
        CHECK_ST(BITCASK_OK, bitcask_sync(db));
        CHECK(VERIFY_DATASET(db, N));
        CHECK_ST(BITCASK_OK, bitcask_close(db));
        db = NULL;
        /* reopen with the same options, then with mmap on and off */
        for (int pass = 0; pass < 3; pass++) {
            if (pass > 0)
                CHECK_ST(BITCASK_OK, bitcask_options_set_mmap_at_startup(o, pass == 1));
            if (!CHECK_ST(BITCASK_OK, bitcask_open(dir, o, &db)))
                break;
            CHECK(VERIFY_DATASET(db, N));
            CHECK_ST(BITCASK_OK, bitcask_close(db));
            db = NULL;
        }
    next:
        CHECK_ST(BITCASK_OK, bitcask_close(db));
        bitcask_options_free(o);
        rm_rf(dir);
        free(dir);
    }
}

static void test_sync(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    CHECK_ST(BITCASK_OK, bitcask_sync(db)); /* nothing written yet */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("k"), S("v")));
    CHECK_ST(BITCASK_OK, bitcask_sync(db));
    CHECK_ST(BITCASK_OK, bitcask_sync(db));
    EXPECT_VALUE(db, S("k"), S("v"));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_sync(NULL));
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

/* ------------------------------------------------------------------------ */

#define RUN(fn) do { g_test = #fn; fn(); } while (0)

int main(void)
{
    RUN(test_last_error_initially_empty); /* must be first */
    RUN(test_constants_and_status_strings);
    RUN(test_version);
    RUN(test_last_error_per_thread);
    RUN(test_options);
    RUN(test_open_arguments);
    RUN(test_lock);
    RUN(test_close_and_free_null);
    RUN(test_reopen_many_times);
    RUN(test_put_get_basic);
    RUN(test_value_larger_than_data_file);
    RUN(test_empty_value);
    RUN(test_key_arguments);
    RUN(test_value_arguments);
    RUN(test_null_db);
    RUN(test_get_out_params);
    RUN(test_get_into);
    RUN(test_delete);
    RUN(test_last_error_semantics);
    RUN(test_persistence_many_files);
    RUN(test_binary_keys_values);
    RUN(test_option_variants);
    RUN(test_sync);

    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}
