/* C tests of the iterator and fold: order with 0x00/0xFF bytes, prefix,
   reverse, seek before/between/after in both directions, rewind, snapshot
   isolation against later puts and deletes (snapshots across a merge: test_maint.c),
   fold early stop and fold calling get, NULL and edge cases, and an
   iterator outliving its database. Last line: "N passed, N failed". */
#define _DEFAULT_SOURCE
#include <bitcask.h>
#include <stdio.h>
#include "guard.h"
#include <stdlib.h>
#include <string.h>

static int passed, failed;
#define CHECK(cond) do { if (cond) passed++; else { failed++; \
    fprintf(stderr, "%s:%d: CHECK(%s) failed (%s)\n", __FILE__, __LINE__, #cond, \
            bitcask_last_error()); } } while (0)

static char dir[64];

static bitcask_db *open_fresh(void) {
    strcpy(dir, "/tmp/bitcask-ctest-iter-XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    bitcask_db *db = NULL;
    if (bitcask_open(dir, NULL, &db) != BITCASK_OK) { fprintf(stderr, "open failed\n"); exit(2); }
    return db;
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", dir);
}

/* Whether the iterator is at exactly this key. */
static int at(const bitcask_iter *it, const void *key, size_t len) {
    size_t got_len = 99;
    const void *got = bitcask_iter_key(it, &got_len);
    return got != NULL && got_len == len && memcmp(got, key, len) == 0;
}

static const unsigned char K[][3] = {
    {0x00}, {0x00, 0x00}, {0x00, 0xFF}, {'a'}, {'a', 0x00}, {'a', 'b'}, {'a', 0xFF}, {0x7F}, {0xFF}, {0xFF, 0xFF},
};
static const size_t KLEN[] = {1, 2, 2, 1, 2, 2, 2, 1, 1, 2};
#define NK 10

static void test_order_prefix_reverse(void) {
    bitcask_db *db = open_fresh();
    for (int i = NK - 1; i >= 0; i--) CHECK(bitcask_put(db, K[i], KLEN[i], K[i], KLEN[i]) == BITCASK_OK);
    bitcask_iter *it = NULL;
    CHECK(bitcask_iter_new(db, NULL, 0, false, &it) == BITCASK_OK);
    int n = 0;
    for (; bitcask_iter_valid(it); bitcask_iter_next(it), n++) {
        CHECK(n < NK && at(it, K[n], KLEN[n]));
        const void *v; size_t vlen;
        CHECK(bitcask_iter_value(it, &v, &vlen) == BITCASK_OK && vlen == KLEN[n] && memcmp(v, K[n], vlen) == 0);
    }
    CHECK(n == NK);
    size_t klen = 7;
    CHECK(bitcask_iter_key(it, &klen) == NULL && klen == 0);
    const void *v = (const void *)1; size_t vlen = 5;
    CHECK(bitcask_iter_value(it, &v, &vlen) == BITCASK_NOT_FOUND && v == (const void *)1 && vlen == 5);
    bitcask_iter_next(it); /* exhausted: does nothing */
    CHECK(!bitcask_iter_valid(it));
    bitcask_iter_rewind(it);
    CHECK(at(it, K[0], KLEN[0]));
    bitcask_iter_free(it);

    CHECK(bitcask_iter_new(db, NULL, 0, true, &it) == BITCASK_OK);
    n = NK - 1;
    for (; bitcask_iter_valid(it); bitcask_iter_next(it), n--) CHECK(n >= 0 && at(it, K[n], KLEN[n]));
    CHECK(n == -1);
    bitcask_iter_free(it);

    /* prefix "a": a, a\0, ab, a\xff; forward and reverse */
    CHECK(bitcask_iter_new(db, "a", 1, false, &it) == BITCASK_OK);
    for (n = 3; bitcask_iter_valid(it); bitcask_iter_next(it), n++) CHECK(at(it, K[n], KLEN[n]));
    CHECK(n == 7);
    bitcask_iter_free(it);
    CHECK(bitcask_iter_new(db, "a", 1, true, &it) == BITCASK_OK);
    for (n = 6; bitcask_iter_valid(it); bitcask_iter_next(it), n--) CHECK(at(it, K[n], KLEN[n]));
    CHECK(n == 2);
    bitcask_iter_free(it);
    unsigned char ff = 0xFF;
    CHECK(bitcask_iter_new(db, &ff, 1, false, &it) == BITCASK_OK);
    CHECK(at(it, K[8], 1));
    bitcask_iter_next(it);
    CHECK(at(it, K[9], 2));
    bitcask_iter_next(it);
    CHECK(!bitcask_iter_valid(it));
    bitcask_iter_free(it);
    CHECK(bitcask_iter_new(db, "zz", 2, false, &it) == BITCASK_OK);
    CHECK(!bitcask_iter_valid(it));
    bitcask_iter_free(it);
    CHECK(bitcask_close(db) == BITCASK_OK);
    remove_dir();
}

static void test_seek(void) {
    bitcask_db *db = open_fresh();
    CHECK(bitcask_put(db, "b", 1, "1", 1) == BITCASK_OK);
    CHECK(bitcask_put(db, "d", 1, "2", 1) == BITCASK_OK);
    CHECK(bitcask_put(db, "f", 1, "3", 1) == BITCASK_OK);
    bitcask_iter *it = NULL;
    CHECK(bitcask_iter_new(db, NULL, 0, false, &it) == BITCASK_OK);
    bitcask_iter_seek(it, "a", 1); CHECK(at(it, "b", 1));      /* before */
    bitcask_iter_seek(it, "c", 1); CHECK(at(it, "d", 1));      /* between */
    bitcask_iter_seek(it, "d", 1); CHECK(at(it, "d", 1));      /* exact */
    bitcask_iter_seek(it, "g", 1); CHECK(!bitcask_iter_valid(it)); /* after */
    bitcask_iter_seek(it, NULL, 0); CHECK(at(it, "b", 1));     /* empty key: first */
    bitcask_iter_seek(it, NULL, 3); CHECK(!bitcask_iter_valid(it)); /* bad key: exhausted */
    bitcask_iter_rewind(it); CHECK(at(it, "b", 1));
    bitcask_iter_free(it);
    CHECK(bitcask_iter_new(db, NULL, 0, true, &it) == BITCASK_OK);
    CHECK(at(it, "f", 1));
    bitcask_iter_seek(it, "a", 1); CHECK(!bitcask_iter_valid(it)); /* before all: none <= */
    bitcask_iter_seek(it, "e", 1); CHECK(at(it, "d", 1));      /* between */
    bitcask_iter_next(it); CHECK(at(it, "b", 1));
    bitcask_iter_seek(it, "f", 1); CHECK(at(it, "f", 1));      /* exact */
    bitcask_iter_seek(it, "z", 1); CHECK(at(it, "f", 1));      /* after all: the largest */
    bitcask_iter_seek(it, NULL, 0); CHECK(!bitcask_iter_valid(it));
    bitcask_iter_rewind(it); CHECK(at(it, "f", 1));
    bitcask_iter_free(it);
    CHECK(bitcask_close(db) == BITCASK_OK);
    remove_dir();
}

static void test_snapshot_and_close(void) {
    bitcask_db *db = open_fresh();
    char key[16], val[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        snprintf(val, sizeof val, "old%d", i);
        CHECK(bitcask_put(db, key, strlen(key), val, strlen(val)) == BITCASK_OK);
    }
    bitcask_iter *it = NULL, *it2 = NULL;
    CHECK(bitcask_iter_new(db, "k", 1, false, &it) == BITCASK_OK);
    CHECK(bitcask_iter_new(db, NULL, 0, true, &it2) == BITCASK_OK);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        if (i % 2) CHECK(bitcask_delete(db, key, strlen(key)) == BITCASK_OK);
        else CHECK(bitcask_put(db, key, strlen(key), "new", 3) == BITCASK_OK);
    }
    CHECK(bitcask_put(db, "k999", 4, "x", 1) == BITCASK_OK);
    int n = 0;
    for (; bitcask_iter_valid(it); bitcask_iter_next(it), n++) {
        const void *v; size_t vlen;
        snprintf(val, sizeof val, "old%d", n);
        CHECK(bitcask_iter_value(it, &v, &vlen) == BITCASK_OK && vlen == strlen(val) && memcmp(v, val, vlen) == 0);
    }
    CHECK(n == 100);
    /* the iterator outlives its database */
    CHECK(bitcask_iter_valid(it2));
    CHECK(bitcask_close(db) == BITCASK_OK);
    CHECK(!bitcask_iter_valid(it2));
    size_t klen = 3;
    CHECK(bitcask_iter_key(it2, &klen) == NULL && klen == 0);
    const void *v; size_t vlen;
    CHECK(bitcask_iter_value(it2, &v, &vlen) == BITCASK_CLOSED);
    bitcask_iter_next(it2); bitcask_iter_rewind(it2); bitcask_iter_seek(it2, "k", 1);
    CHECK(!bitcask_iter_valid(it2));
    /* the directory is unlocked at close, though iterators are alive */
    bitcask_db *again = NULL;
    CHECK(bitcask_open(dir, NULL, &again) == BITCASK_OK);
    CHECK(bitcask_close(again) == BITCASK_OK);
    bitcask_iter_free(it2);
    bitcask_iter_free(it);
    remove_dir();
}

/* A pointer no call writes, to see that a failing call left an
   out-parameter alone (NULL would not tell). */
static int sentinel_object;
#define SENT ((void *)&sentinel_object)
#define SENT_LEN ((size_t)0x5e5e5e5e)

/* Sets the thread's last error to a text no call below produces, so that a
   check of last_error after a failing call sees that call's own text. */
static char primed[256];
static void prime_last_error(void) {
    bitcask_options_set_index_type(NULL, BITCASK_INDEX_HASH);
    snprintf(primed, sizeof primed, "%s", bitcask_last_error());
}

/* The failing call replaced the primed last error by one that mentions word. */
static int fresh_error_mentions(const char *word) {
    return strcmp(bitcask_last_error(), primed) != 0 && strstr(bitcask_last_error(), word) != NULL;
}

/* Every argument check of bitcask_iter_new, bitcask_iter_value,
   bitcask_iter_seek and bitcask_fold, each with its last error set and the
   out-parameters untouched; over-long prefixes and keys are passed as
   MAX_KEY_LEN + 1 readable bytes followed by an unmapped page, so that a
   read past the limit kills the test. */
static void test_arguments_and_last_error(void) {
    bitcask_db *db = open_fresh();
    CHECK(bitcask_put(db, "a", 1, "1", 1) == BITCASK_OK);
    size_t over = (size_t)BITCASK_MAX_KEY_LEN + 1;
    unsigned char *long_key = guarded_bytes(over);
    CHECK(long_key != NULL);
    bitcask_iter *it = SENT;
    prime_last_error();
    CHECK(bitcask_iter_new(NULL, NULL, 0, false, &it) == BITCASK_INVALID_ARGUMENT && it == SENT);
    CHECK(fresh_error_mentions("db is NULL"));
    prime_last_error();
    CHECK(bitcask_iter_new(db, NULL, 0, false, NULL) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("iter_out is NULL"));
    prime_last_error();
    CHECK(bitcask_iter_new(db, NULL, 1, false, &it) == BITCASK_INVALID_ARGUMENT && it == SENT);
    CHECK(fresh_error_mentions("prefix"));
    prime_last_error();
    CHECK(bitcask_iter_new(db, long_key, over, false, &it) == BITCASK_INVALID_ARGUMENT && it == SENT);
    CHECK(fresh_error_mentions("prefix"));
    /* the longest prefix is fine */
    it = NULL;
    CHECK(bitcask_iter_new(db, long_key + 1, over - 1, true, &it) == BITCASK_OK && it != NULL);
    CHECK(!bitcask_iter_valid(it));
    bitcask_iter_free(it);

    struct { int calls; } ctx = {0};
    prime_last_error();
    CHECK(bitcask_fold(db, long_key, over, NULL, &ctx) == BITCASK_INVALID_ARGUMENT);
    prime_last_error();
    CHECK(bitcask_fold(NULL, NULL, 0, NULL, &ctx) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("db is NULL"));

    /* iter_value: NULL arguments, exhausted, closed; outputs untouched */
    CHECK(bitcask_iter_new(db, NULL, 0, false, &it) == BITCASK_OK);
    const void *v = SENT;
    size_t vlen = SENT_LEN;
    prime_last_error();
    CHECK(bitcask_iter_value(NULL, &v, &vlen) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("it is NULL"));
    prime_last_error();
    CHECK(bitcask_iter_value(it, NULL, &vlen) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("value is NULL"));
    prime_last_error();
    CHECK(bitcask_iter_value(it, &v, NULL) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("value_len is NULL"));
    CHECK(v == SENT && vlen == SENT_LEN);
    /* seek with an over-long key leaves the iterator exhausted */
    CHECK(bitcask_iter_valid(it));
    bitcask_iter_seek(it, long_key, over);
    CHECK(!bitcask_iter_valid(it));
    CHECK(bitcask_iter_value(it, &v, &vlen) == BITCASK_NOT_FOUND && v == SENT && vlen == SENT_LEN);
    bitcask_iter_rewind(it);
    CHECK(bitcask_iter_valid(it));
    CHECK(bitcask_close(db) == BITCASK_OK);
    prime_last_error();
    CHECK(bitcask_iter_value(it, &v, &vlen) == BITCASK_CLOSED);
    CHECK(fresh_error_mentions("closed"));
    CHECK(v == SENT && vlen == SENT_LEN);
    bitcask_iter_free(it);
    free_guarded(long_key, over);
    remove_dir();
}

static void test_null_and_edges(void) {
    bitcask_db *db = open_fresh();
    bitcask_iter *it = SENT;
    CHECK(bitcask_iter_new(NULL, NULL, 0, false, &it) == BITCASK_INVALID_ARGUMENT && it == SENT);
    CHECK(bitcask_iter_new(db, NULL, 0, false, NULL) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_iter_new(db, NULL, 1, false, &it) == BITCASK_INVALID_ARGUMENT && it == SENT);
    CHECK(!bitcask_iter_valid(NULL));
    size_t klen = 4;
    CHECK(bitcask_iter_key(NULL, &klen) == NULL && klen == 0);
    CHECK(bitcask_iter_key(NULL, NULL) == NULL);
    bitcask_iter_next(NULL); bitcask_iter_rewind(NULL); bitcask_iter_seek(NULL, "a", 1);
    const void *v; size_t vlen;
    CHECK(bitcask_iter_value(NULL, &v, &vlen) == BITCASK_INVALID_ARGUMENT);
    bitcask_iter_free(NULL);
    /* empty database; empty value */
    CHECK(bitcask_iter_new(db, NULL, 0, false, &it) == BITCASK_OK);
    CHECK(!bitcask_iter_valid(it));
    bitcask_iter_free(it);
    CHECK(bitcask_put(db, "e", 1, NULL, 0) == BITCASK_OK);
    CHECK(bitcask_iter_new(db, NULL, 0, false, &it) == BITCASK_OK);
    CHECK(bitcask_iter_value(it, NULL, &vlen) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_iter_value(it, &v, NULL) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_iter_value(it, &v, &vlen) == BITCASK_OK && v != NULL && vlen == 0);
    CHECK(at(it, "e", 1));
    bitcask_iter_free(it);
    CHECK(bitcask_close(db) == BITCASK_OK);
    remove_dir();
}

struct fold_ctx { bitcask_db *db; int calls; int stop_at; int get_ok; };

static int fold_cb(void *ctx, const void *key, size_t key_len, const void *value, size_t value_len) {
    struct fold_ctx *c = ctx;
    c->calls++;
    /* reentrant calls: a get and a put on the same database */
    void *got; size_t got_len;
    if (bitcask_get(c->db, key, key_len, &got, &got_len) == BITCASK_OK) {
        c->get_ok += got_len == value_len && memcmp(got, value, value_len) == 0;
        bitcask_free(got);
    }
    char k2[32];
    snprintf(k2, sizeof k2, "zz%d", c->calls);
    if (bitcask_put(c->db, k2, strlen(k2), "f", 1) != BITCASK_OK) c->get_ok = -1000;
    return c->calls == c->stop_at;
}

static void test_fold(void) {
    bitcask_db *db = open_fresh();
    char key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        CHECK(bitcask_put(db, key, strlen(key), key, strlen(key)) == BITCASK_OK);
    }
    struct fold_ctx c = {db, 0, -1, 0};
    CHECK(bitcask_fold(db, "k", 1, fold_cb, &c) == BITCASK_OK);
    CHECK(c.calls == 20 && c.get_ok == 20); /* the puts made by the callback are not seen */
    struct fold_ctx s = {db, 0, 3, 0};
    CHECK(bitcask_fold(db, NULL, 0, fold_cb, &s) == BITCASK_OK);
    CHECK(s.calls == 3 && s.get_ok == 3);
    prime_last_error();
    CHECK(bitcask_fold(NULL, NULL, 0, fold_cb, &c) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("db is NULL"));
    prime_last_error();
    CHECK(bitcask_fold(db, NULL, 0, NULL, &c) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("fn is NULL"));
    prime_last_error();
    CHECK(bitcask_fold(db, NULL, 2, fold_cb, &c) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("prefix"));
    {
        size_t over = (size_t)BITCASK_MAX_KEY_LEN + 1;
        unsigned char *long_prefix = guarded_bytes(over);
        CHECK(long_prefix != NULL);
        struct fold_ctx none = {db, 0, -1, 0};
        prime_last_error();
        CHECK(bitcask_fold(db, long_prefix, over, fold_cb, &none) == BITCASK_INVALID_ARGUMENT);
        CHECK(fresh_error_mentions("prefix") && none.calls == 0);
        free_guarded(long_prefix, over);
    }
    struct fold_ctx none = {db, 0, -1, 0};
    CHECK(bitcask_fold(db, "nothing", 7, fold_cb, &none) == BITCASK_OK && none.calls == 0);
    CHECK(bitcask_close(db) == BITCASK_OK);
    remove_dir();
}

int main(void) {
    test_order_prefix_reverse();
    test_seek();
    test_snapshot_and_close();
    test_null_and_edges();
    test_arguments_and_last_error();
    test_fold();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
