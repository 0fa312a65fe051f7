/*
 * check.h - what the C tests of the core API (test_core_*.c) share: the
 * CHECK machinery, temporary directories, and helpers that read a key back
 * through both bitcask_get and bitcask_get_into. Plain C11, no framework.
 *
 * Every CHECK that fails prints file:line, the expression, the status strings
 * and bitcask_last_error(); each test program's main prints "N passed, N
 * failed" (N = checks) and exits non-zero if anything failed. Each test uses
 * a fresh temporary directory (mkdtemp under $TMPDIR or /tmp) that is
 * removed at the end.
 */
#ifndef BITCASK_TEST_CHECK_H
#define BITCASK_TEST_CHECK_H

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

#include "guard.h"

/* ------------------------------------------------------------------------ */
/* Minimal check machinery                                                   */
/* ------------------------------------------------------------------------ */

static int g_pass;
static int g_fail;
static const char *g_test = "?";

static inline const char *status_name(bitcask_status s)
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

static inline int check_impl(int ok, const char *file, int line, const char *expr)
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

static inline int check_st_impl(bitcask_status got, bitcask_status want,
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

static inline int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb; (void)type; (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "warning: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

static inline void rm_rf(const char *path)
{
    if (path)
        nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline char *make_tmpdir(void)
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

static inline char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + 1 + strlen(b) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

static inline bool path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Counts files named exactly NNNNNNNNN.data (9 decimal digits). */
static inline int count_data_files(const char *dir)
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
static inline bool contains_ci(const char *hay, const char *needle)
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
static inline bool err_mentions(const char *w1, const char *w2, const char *w3)
{
    const char *e = bitcask_last_error();
    if (!e || !*e)
        return false;
    return (w1 && contains_ci(e, w1)) || (w2 && contains_ci(e, w2)) ||
           (w3 && contains_ci(e, w3));
}

static inline bool err_nonempty(void)
{
    const char *e = bitcask_last_error();
    return e != NULL && e[0] != '\0';
}

/* Deterministic test data. */
static inline size_t gen_key(char *buf, size_t cap, int i)
{
    int n = snprintf(buf, cap, "key-%06d", i);
    return (size_t)n;
}

static inline size_t gen_value_len(int i, int ver)
{
    return (size_t)((i * 7 + ver * 13) % 300);
}

static inline void gen_value(unsigned char *buf, int i, int ver)
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
static inline int expect_value_impl(bitcask_db *db, const void *key, size_t klen,
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

static inline int expect_absent_impl(bitcask_db *db, const void *key, size_t klen,
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

/* A pointer no call of the library would ever write: checks that a failing
   call left an out-parameter alone (NULL would not tell: a call might write
   NULL). */
static inline void *out_sentinel(void)
{
    static int object;
    return &object;
}
#define OUT_SENTINEL (out_sentinel())
/* A length no call would write. */
#define OUT_SENTINEL_LEN ((size_t)0x5e5e5e5e)

#define RUN(fn) do { g_test = #fn; fn(); } while (0)

static inline int summary(void)
{
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}

#endif
