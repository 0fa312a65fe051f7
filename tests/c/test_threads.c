/*
 * test_threads.c - many pthreads on one bitcask_db handle.
 *
 * 8 threads share one handle. Each thread owns a range of keys (which only it
 * writes, so it knows their exact current value) and also writes, reads and
 * deletes a set of shared keys, and reads the other threads' keys. Every value
 * carries its key, its writer and a sequence number, plus a padding whose
 * length and byte are derived from those, so a reader can tell that any value
 * it sees for a key is one that was written for that key, and not torn.
 *
 * Phase 1: concurrent put/get/get_into/delete/sync (with small data files, so
 *          file rollover happens under concurrency).
 * Phase 2: main thread verifies every key; close; reopen.
 * Phase 3: concurrent readers verify the reopened database against the final
 *          per-thread models.
 * Also checks that bitcask_last_error() is per thread.
 *
 * Prints "N passed, N failed" (N = checks) and exits non-zero on failure.
 * Build: cc -std=c11 -Wall -Wextra -Werror -pedantic -pthread tests/c/test_threads.c \
 *           -o /tmp/tt $(pkg-config --cflags --libs bitcask)
 */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700

#include <bitcask.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NTHREADS 8
#define OPS_PER_THREAD 3000
#define OWN_KEYS 64
#define SHARED_KEYS 16
#define MAX_VAL 512

/* ------------------------------------------------------------------------ */
/* Checks (thread-safe counters)                                             */
/* ------------------------------------------------------------------------ */

static atomic_int g_pass;
static atomic_int g_fail;

static int check_impl(int ok, const char *file, int line, const char *expr,
                      const char *detail)
{
    if (ok) {
        atomic_fetch_add(&g_pass, 1);
        return 1;
    }
    int n = atomic_fetch_add(&g_fail, 1);
    if (n < 30) /* do not flood the output */
        fprintf(stderr, "%s:%d: CHECK failed: %s%s%s\n  last_error: \"%s\"\n", file, line,
                expr, detail ? " -- " : "", detail ? detail : "", bitcask_last_error());
    return 0;
}

static int check_st_impl(bitcask_status got, bitcask_status want, const char *file,
                         int line, const char *expr)
{
    char detail[160];
    if (got == want)
        return check_impl(1, file, line, expr, NULL);
    snprintf(detail, sizeof detail, "expected %d (\"%s\"), got %d (\"%s\")", (int)want,
             bitcask_status_str(want), (int)got, bitcask_status_str(got));
    return check_impl(0, file, line, expr, detail);
}

#define CHECK(cond) check_impl(!!(cond), __FILE__, __LINE__, #cond, NULL)
#define CHECK_MSG(cond, msg) check_impl(!!(cond), __FILE__, __LINE__, #cond, (msg))
#define CHECK_ST(want, call) \
    check_st_impl((call), (want), __FILE__, __LINE__, #call " == " #want)

/* ------------------------------------------------------------------------ */
/* Keys and self-describing values                                           */
/* ------------------------------------------------------------------------ */

static size_t own_key(char *buf, size_t cap, int tid, int k)
{
    return (size_t)snprintf(buf, cap, "t%d-own-%03d", tid, k);
}

static size_t shared_key(char *buf, size_t cap, int k)
{
    return (size_t)snprintf(buf, cap, "shared-%02d", k);
}

static size_t pad_len(int writer, int seq)
{
    return (size_t)(((unsigned)writer * 131u + (unsigned)seq * 37u) % 300u);
}

static unsigned char pad_byte(int writer, int seq)
{
    return (unsigned char)(((unsigned)writer * 7u + (unsigned)seq * 13u) & 0xFFu);
}

/* value = key "|w" writer "|n" seq "|" padding */
static size_t make_value(unsigned char *out, const char *key, size_t klen, int writer,
                         int seq)
{
    char head[96];
    int h = snprintf(head, sizeof head, "%.*s|w%d|n%d|", (int)klen, key, writer, seq);
    size_t pl = pad_len(writer, seq);
    memcpy(out, head, (size_t)h);
    memset(out + h, pad_byte(writer, seq), pl);
    return (size_t)h + pl;
}

/*
 * Is val a value that was written for key? Returns true and sets writer/seq.
 */
static bool parse_value(const unsigned char *val, size_t vlen, const char *key,
                        size_t klen, int *writer, int *seq)
{
    if (vlen < klen + 1 || memcmp(val, key, klen) != 0 || val[klen] != '|')
        return false;
    char head[96];
    size_t hl = vlen - klen < sizeof head - 1 ? vlen - klen : sizeof head - 1;
    memcpy(head, val + klen, hl);
    head[hl] = '\0';
    int w = -1, s = -1, consumed = 0;
    if (sscanf(head, "|w%d|n%d|%n", &w, &s, &consumed) != 2 || consumed <= 0)
        return false;
    if (w < 0 || w >= NTHREADS || s < 0)
        return false;
    unsigned char expect[MAX_VAL];
    size_t el = make_value(expect, key, klen, w, s);
    if (el != vlen || memcmp(expect, val, vlen) != 0)
        return false;
    *writer = w;
    *seq = s;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Shared state                                                              */
/* ------------------------------------------------------------------------ */

static bitcask_db *g_db;
static pthread_barrier_t g_barrier;

struct worker {
    int tid;
    pthread_t th;
    int model[OWN_KEYS]; /* -1 = absent, else seq of the current value */
    uint64_t rng;
    int verify_only;     /* phase 3 */
};

static struct worker g_workers[NTHREADS];

static uint32_t rnd(struct worker *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return (uint32_t)(w->rng >> 16);
}

/*
 * Reads key with bitcask_get (use_into = 0) or bitcask_get_into (1, with a
 * size query first and retry when the value grew in between). Returns the
 * status (OK or NOT_FOUND expected); on OK copies the value to out/outlen.
 */
static bitcask_status read_key(const char *key, size_t klen, int use_into,
                               unsigned char *out, size_t *outlen)
{
    if (!use_into) {
        void *v = NULL;
        size_t vl = 0;
        bitcask_status s = bitcask_get(g_db, key, klen, &v, &vl);
        if (s == BITCASK_OK) {
            CHECK(v != NULL);
            if (!CHECK(vl <= MAX_VAL))
                vl = MAX_VAL;
            if (v && vl)
                memcpy(out, v, vl);
            *outlen = vl;
            bitcask_free(v);
        }
        return s;
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        size_t need = 0;
        bitcask_status s = bitcask_get_into(g_db, key, klen, NULL, 0, &need);
        if (s == BITCASK_NOT_FOUND)
            return s;
        if (s == BITCASK_OK) { /* empty value (never written by this test) */
            *outlen = need;
            return s;
        }
        if (!CHECK_ST(BITCASK_BUFFER_TOO_SMALL, s))
            return s;
        if (!CHECK(need > 0 && need <= MAX_VAL))
            return BITCASK_INTERNAL;
        size_t got = 0;
        s = bitcask_get_into(g_db, key, klen, out, need, &got);
        if (s == BITCASK_OK) {
            CHECK(got <= need);
            *outlen = got;
            return s;
        }
        if (s == BITCASK_NOT_FOUND)
            return s;
        if (!CHECK_ST(BITCASK_BUFFER_TOO_SMALL, s))
            return s;
        /* grew in between: retry */
    }
    CHECK_MSG(0, "get_into kept reporting BUFFER_TOO_SMALL");
    return BITCASK_INTERNAL;
}

/* Checks an own key against the model (exact). */
static void verify_own(int tid, int k, int expected_seq, int use_into)
{
    char key[32];
    size_t kl = own_key(key, sizeof key, tid, k);
    unsigned char val[MAX_VAL];
    size_t vl = 0;
    bitcask_status s = read_key(key, kl, use_into, val, &vl);
    if (expected_seq < 0) {
        CHECK_MSG(s == BITCASK_NOT_FOUND, key);
        return;
    }
    if (!CHECK_MSG(s == BITCASK_OK, key))
        return;
    unsigned char want[MAX_VAL];
    size_t wl = make_value(want, key, kl, tid, expected_seq);
    CHECK_MSG(vl == wl && memcmp(val, want, wl) == 0, key);
}

/* Checks that whatever a key holds (if anything) was written for it. */
static void verify_any(const char *key, size_t kl, int use_into, int must_writer)
{
    unsigned char val[MAX_VAL];
    size_t vl = 0;
    bitcask_status s = read_key(key, kl, use_into, val, &vl);
    if (s == BITCASK_NOT_FOUND)
        return;
    if (!CHECK_MSG(s == BITCASK_OK, key))
        return;
    int w = -1, seq = -1;
    CHECK_MSG(parse_value(val, vl, key, kl, &w, &seq), key);
    if (must_writer >= 0)
        CHECK_MSG(w == must_writer, key);
}

/* ------------------------------------------------------------------------ */
/* Worker                                                                    */
/* ------------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char key[32];
    unsigned char val[MAX_VAL];

    if (w->verify_only) {
        for (int round = 0; round < 3; round++) {
            for (int t = 0; t < NTHREADS; t++)
                for (int k = 0; k < OWN_KEYS; k++)
                    verify_own(t, k, g_workers[t].model[k], (k + round + w->tid) & 1);
            for (int k = 0; k < SHARED_KEYS; k++) {
                size_t kl = shared_key(key, sizeof key, k);
                verify_any(key, kl, round & 1, -1);
            }
        }
        return NULL;
    }

    /* last_error is per thread: a fresh thread sees "". */
    const char *e = bitcask_last_error();
    CHECK(e != NULL && strcmp(e, "") == 0);
    /* Fail in a thread-specific way, wait for all others to fail too, then
     * check that this thread's message is still its own. */
    if (w->tid % 2 == 0)
        CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(g_db, "", 0, "v", 1));
    else
        CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(g_db, "k", 1, NULL, 7));
    pthread_barrier_wait(&g_barrier);
    {
        const char *mine = bitcask_last_error();
        CHECK(mine != NULL && mine[0] != '\0');
        if (w->tid % 2 == 0)
            CHECK(strstr(mine, "key") != NULL || strstr(mine, "Key") != NULL);
        else
            CHECK(strstr(mine, "value") != NULL || strstr(mine, "Value") != NULL);
    }
    pthread_barrier_wait(&g_barrier);

    for (int op = 0; op < OPS_PER_THREAD; op++) {
        uint32_t r = rnd(w) % 100;
        int k = (int)(rnd(w) % OWN_KEYS);
        int use_into = (int)(rnd(w) & 1);
        if (r < 30) {                       /* put own */
            size_t kl = own_key(key, sizeof key, w->tid, k);
            size_t vl = make_value(val, key, kl, w->tid, op);
            if (CHECK_ST(BITCASK_OK, bitcask_put(g_db, key, kl, val, vl)))
                w->model[k] = op;
        } else if (r < 40) {                /* delete own */
            size_t kl = own_key(key, sizeof key, w->tid, k);
            if (CHECK_ST(BITCASK_OK, bitcask_delete(g_db, key, kl)))
                w->model[k] = -1;
        } else if (r < 60) {                /* read own: exact */
            verify_own(w->tid, k, w->model[k], use_into);
        } else if (r < 70) {                /* put shared */
            size_t kl = shared_key(key, sizeof key, k % SHARED_KEYS);
            size_t vl = make_value(val, key, kl, w->tid, op);
            CHECK_ST(BITCASK_OK, bitcask_put(g_db, key, kl, val, vl));
        } else if (r < 85) {                /* read shared */
            size_t kl = shared_key(key, sizeof key, k % SHARED_KEYS);
            verify_any(key, kl, use_into, -1);
        } else if (r < 88) {                /* delete shared */
            size_t kl = shared_key(key, sizeof key, k % SHARED_KEYS);
            CHECK_ST(BITCASK_OK, bitcask_delete(g_db, key, kl));
        } else if (r < 98) {                /* read another thread's key */
            int other = (int)(rnd(w) % NTHREADS);
            size_t kl = own_key(key, sizeof key, other, k);
            verify_any(key, kl, use_into, other);
        } else if (r < 99) {                /* sync */
            CHECK_ST(BITCASK_OK, bitcask_sync(g_db));
        } else {                            /* absent key */
            void *v = NULL;
            size_t vl = 0;
            CHECK_ST(BITCASK_NOT_FOUND, bitcask_get(g_db, "never-written", 13, &v, &vl));
        }
    }

    /* final self-check of own keys */
    for (int k = 0; k < OWN_KEYS; k++)
        verify_own(w->tid, k, w->model[k], k & 1);
    return NULL;
}

/* ------------------------------------------------------------------------ */

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb; (void)type; (void)ftw;
    remove(path);
    return 0;
}

static void verify_all_from_main(void)
{
    char key[32];
    for (int t = 0; t < NTHREADS; t++)
        for (int k = 0; k < OWN_KEYS; k++)
            verify_own(t, k, g_workers[t].model[k], k & 1);
    for (int k = 0; k < SHARED_KEYS; k++) {
        size_t kl = shared_key(key, sizeof key, k);
        verify_any(key, kl, 0, -1);
        verify_any(key, kl, 1, -1);
    }
}

static void run_workers(int verify_only)
{
    for (int t = 0; t < NTHREADS; t++) {
        g_workers[t].verify_only = verify_only;
        int rc = pthread_create(&g_workers[t].th, NULL, worker_main, &g_workers[t]);
        if (!CHECK(rc == 0)) {
            fprintf(stderr, "pthread_create: %s\n", strerror(rc));
            exit(2);
        }
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(g_workers[t].th, NULL);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/bitcask-threads-XXXXXX", (base && *base) ? base : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 2;
    }

    CHECK(strcmp(bitcask_last_error(), "") == 0);

    for (int t = 0; t < NTHREADS; t++) {
        g_workers[t].tid = t;
        g_workers[t].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1);
        for (int k = 0; k < OWN_KEYS; k++)
            g_workers[t].model[k] = -1;
    }
    pthread_barrier_init(&g_barrier, NULL, NTHREADS);

    bitcask_options *o = bitcask_options_new();
    CHECK(o != NULL);
    CHECK_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, 16384));
    CHECK_ST(BITCASK_OK, bitcask_options_set_bytes_per_sync(o, 8192));
    bitcask_status s = bitcask_open(dir, o, &g_db);
    bitcask_options_free(o);
    if (!CHECK_ST(BITCASK_OK, s))
        goto out;

    /* Phase 1: concurrent mixed workload */
    run_workers(0);

    /* Phase 2: verify from main, close, reopen */
    verify_all_from_main();
    CHECK_ST(BITCASK_OK, bitcask_close(g_db));
    g_db = NULL;
    o = bitcask_options_new();
    CHECK_ST(BITCASK_OK, bitcask_options_set_mmap_at_startup(o, true));
    s = bitcask_open(dir, o, &g_db);
    bitcask_options_free(o);
    if (!CHECK_ST(BITCASK_OK, s))
        goto out;
    verify_all_from_main();

    /* Phase 3: concurrent readers of the reopened database */
    run_workers(1);
    CHECK_ST(BITCASK_OK, bitcask_close(g_db));
    g_db = NULL;

    /* Main never failed a call: its last_error is still "". */
    CHECK(strcmp(bitcask_last_error(), "") == 0);
out:
    if (g_db)
        bitcask_close(g_db);
    pthread_barrier_destroy(&g_barrier);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed\n", atomic_load(&g_pass), atomic_load(&g_fail));
    return atomic_load(&g_fail) == 0 ? 0 : 1;
}
