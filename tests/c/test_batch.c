/* C tests of write batches: commit, last operation wins (put then delete of
   one key), reuse after commit, the max_batch_bytes limit, persistence,
   NULL and edge cases, and a batch outliving its database.
   Last line: "N passed, N failed". */
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

static bitcask_db *open_dir(const bitcask_options *opts) {
    bitcask_db *db = NULL;
    if (bitcask_open(dir, opts, &db) != BITCASK_OK) { fprintf(stderr, "open failed\n"); exit(2); }
    return db;
}

static bitcask_db *open_fresh(const bitcask_options *opts) {
    strcpy(dir, "/tmp/bitcask-ctest-batch-XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    return open_dir(opts);
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", dir);
}

static int holds(bitcask_db *db, const char *key, const char *want) {
    void *v; size_t len;
    bitcask_status s = bitcask_get(db, key, strlen(key), &v, &len);
    if (want == NULL) return s == BITCASK_NOT_FOUND;
    int ok = s == BITCASK_OK && len == strlen(want) && memcmp(v, want, len) == 0;
    if (s == BITCASK_OK) bitcask_free(v);
    return ok;
}

/* A pointer no call writes, to see that a failing call left an
   out-parameter alone (NULL would not tell). */
static int sentinel_object;
#define SENT ((void *)&sentinel_object)

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

/* The bytes of dir/name, in a malloc'd buffer (NULL if unreadable). */
static unsigned char *file_bytes(const char *name, long *len) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0 && (*len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)*len + 1)) != NULL && fread(buf, 1, (size_t)*len, f) != (size_t)*len) {
        free(buf);
        buf = NULL;
    }
    if (f) fclose(f);
    return buf;
}

/* Committing an empty batch (fresh, emptied by a commit, or holding only
   deletes of absent keys) writes nothing: the data file is byte for byte
   what it was. */
static void test_empty_commit_writes_nothing(void) {
    bitcask_options *o = bitcask_options_new();
    CHECK(bitcask_options_set_sync_writes(o, true) == BITCASK_OK);
    bitcask_db *db = open_fresh(o);
    bitcask_batch *b = NULL;
    CHECK(bitcask_put(db, "k", 1, "v", 1) == BITCASK_OK);
    CHECK(bitcask_batch_new(db, &b) == BITCASK_OK);
    CHECK(bitcask_batch_put(b, "x", 1, "1", 1) == BITCASK_OK);
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);
    bitcask_batch_free(b);
    CHECK(bitcask_close(db) == BITCASK_OK);
    long before_len = -1, after_len = -2;
    unsigned char *before = file_bytes("000000001.data", &before_len);
    CHECK(before != NULL);
    db = open_dir(o);
    CHECK(bitcask_batch_new(db, &b) == BITCASK_OK);
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);               /* fresh */
    CHECK(bitcask_batch_put(b, "y", 1, "2", 1) == BITCASK_OK);
    CHECK(bitcask_batch_delete(b, "y", 1) == BITCASK_OK);       /* put then delete: nothing */
    CHECK(bitcask_batch_delete(b, "absent", 6) == BITCASK_OK);
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);               /* deletes of absent keys */
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);               /* emptied by that commit */
    bitcask_batch_free(b);
    CHECK(bitcask_close(db) == BITCASK_OK);
    unsigned char *after = file_bytes("000000001.data", &after_len);
    CHECK(after != NULL && after_len == before_len);
    CHECK(after != NULL && before != NULL && after_len == before_len &&
          memcmp(after, before, (size_t)before_len) == 0);
    free(before);
    free(after);
    bitcask_options_free(o);
    remove_dir();
}

/* Every argument check of the batch functions, each with its last error
   set and the batch unchanged; over-long keys and values are passed as
   readable bytes followed by an unmapped page, so that a read past the
   limit kills the test. */
static void test_arguments_and_last_error(void) {
    bitcask_options *o = bitcask_options_new();
    CHECK(bitcask_options_set_max_batch_bytes(o, 4096) == BITCASK_OK);
    bitcask_db *db = open_fresh(o);
    bitcask_options_free(o);
    bitcask_batch *b = SENT;
    prime_last_error();
    CHECK(bitcask_batch_new(NULL, &b) == BITCASK_INVALID_ARGUMENT && b == SENT);
    CHECK(fresh_error_mentions("db is NULL"));
    prime_last_error();
    CHECK(bitcask_batch_new(db, NULL) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("batch_out is NULL"));
    prime_last_error();
    CHECK(bitcask_batch_put(NULL, "k", 1, "v", 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("batch is NULL"));
    prime_last_error();
    CHECK(bitcask_batch_delete(NULL, "k", 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("batch is NULL"));
    prime_last_error();
    CHECK(bitcask_batch_commit(NULL) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("batch is NULL"));

    size_t long_key_len = (size_t)BITCASK_MAX_KEY_LEN + 1, long_value_len = 16;
    unsigned char *long_key = guarded_bytes(long_key_len), *value = guarded_bytes(long_value_len);
    CHECK(long_key != NULL && value != NULL);
    CHECK(bitcask_batch_new(db, &b) == BITCASK_OK && b != SENT);
    CHECK(bitcask_batch_put(b, "kept", 4, "1", 1) == BITCASK_OK);
    prime_last_error();
    CHECK(bitcask_batch_put(b, long_key, long_key_len, "v", 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("key"));
    prime_last_error();
    CHECK(bitcask_batch_delete(b, long_key, long_key_len) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("key"));
    prime_last_error();
    CHECK(bitcask_batch_put(b, "k", 1, value, (size_t)BITCASK_MAX_VALUE_LEN + 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("value"));
    prime_last_error();
    CHECK(bitcask_batch_put(b, "k", 1, NULL, 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("value is NULL"));
    /* past max_batch_bytes (4096): a put, and a delete, refused */
    static char big[4000];
    memset(big, 'b', sizeof big);
    CHECK(bitcask_batch_put(b, "big", 3, big, sizeof big) == BITCASK_OK);
    prime_last_error();
    CHECK(bitcask_batch_put(b, "more", 4, big, 100) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("max_batch_bytes"));
    prime_last_error();
    CHECK(bitcask_batch_delete(b, "kept-too-far-to-fit-in-what-is-left", 35) == BITCASK_INVALID_ARGUMENT);
    CHECK(fresh_error_mentions("max_batch_bytes"));
    CHECK(bitcask_put(db, "k", 1, "old", 3) == BITCASK_OK);
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);
    /* the batch held exactly its two good puts */
    CHECK(holds(db, "kept", "1") && holds(db, "k", "old") && holds(db, "more", NULL));
    void *v; size_t len;
    CHECK(bitcask_get(db, "big", 3, &v, &len) == BITCASK_OK && len == sizeof big);
    if (len == sizeof big) bitcask_free(v);
    /* once the database is closed */
    CHECK(bitcask_close(db) == BITCASK_OK);
    prime_last_error();
    CHECK(bitcask_batch_put(b, "k", 1, "v", 1) == BITCASK_CLOSED);
    CHECK(fresh_error_mentions("closed"));
    prime_last_error();
    CHECK(bitcask_batch_delete(b, "k", 1) == BITCASK_CLOSED);
    CHECK(fresh_error_mentions("closed"));
    prime_last_error();
    CHECK(bitcask_batch_commit(b) == BITCASK_CLOSED);
    CHECK(fresh_error_mentions("closed"));
    bitcask_batch_free(b);
    free_guarded(long_key, long_key_len);
    free_guarded(value, long_value_len);
    remove_dir();
}

static void test_commit_and_reuse(void) {
    bitcask_options *o = bitcask_options_new();
    CHECK(bitcask_options_set_sync_writes(o, true) == BITCASK_OK);
    bitcask_db *db = open_fresh(o);
    CHECK(bitcask_put(db, "old", 3, "x", 1) == BITCASK_OK);
    bitcask_batch *b = NULL;
    CHECK(bitcask_batch_new(db, &b) == BITCASK_OK && b != NULL);
    CHECK(bitcask_batch_put(b, "a", 1, "1", 1) == BITCASK_OK);
    CHECK(bitcask_batch_put(b, "e", 1, NULL, 0) == BITCASK_OK);
    CHECK(bitcask_batch_delete(b, "old", 3) == BITCASK_OK);
    CHECK(bitcask_batch_put(b, "pd", 2, "gone", 4) == BITCASK_OK);
    CHECK(bitcask_batch_delete(b, "pd", 2) == BITCASK_OK);   /* put then delete: deleted */
    CHECK(bitcask_batch_delete(b, "dp", 2) == BITCASK_OK);
    CHECK(bitcask_batch_put(b, "dp", 2, "back", 4) == BITCASK_OK); /* delete then put: put */
    CHECK(holds(db, "a", NULL));                               /* not visible before commit */
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);
    CHECK(holds(db, "a", "1") && holds(db, "e", "") && holds(db, "old", NULL));
    CHECK(holds(db, "pd", NULL) && holds(db, "dp", "back"));
    /* reuse: the batch was emptied by the commit */
    CHECK(bitcask_batch_put(b, "a", 1, "2", 1) == BITCASK_OK);
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);
    CHECK(holds(db, "a", "2") && holds(db, "dp", "back"));
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);              /* empty: no-op */
    bitcask_batch_free(b);
    CHECK(bitcask_close(db) == BITCASK_OK);
    db = open_dir(o);
    CHECK(holds(db, "a", "2") && holds(db, "e", "") && holds(db, "old", NULL));
    CHECK(holds(db, "pd", NULL) && holds(db, "dp", "back"));
    CHECK(bitcask_close(db) == BITCASK_OK);
    bitcask_options_free(o);
    remove_dir();
}

static void test_max_batch_bytes(void) {
    bitcask_options *o = bitcask_options_new();
    CHECK(bitcask_options_set_max_batch_bytes(o, 4095) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_options_set_max_batch_bytes(o, 2147483649ULL) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_options_set_max_batch_bytes(NULL, 8192) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_options_set_max_batch_bytes(o, 4096) == BITCASK_OK);
    bitcask_db *db = open_fresh(o);
    bitcask_options_free(o);
    static char big[3000];
    memset(big, 'b', sizeof big);
    bitcask_batch *b = NULL;
    CHECK(bitcask_batch_new(db, &b) == BITCASK_OK);
    CHECK(bitcask_batch_put(b, "k1", 2, big, sizeof big) == BITCASK_OK);
    CHECK(bitcask_batch_put(b, "k2", 2, big, sizeof big) == BITCASK_INVALID_ARGUMENT);
    CHECK(strstr(bitcask_last_error(), "max_batch_bytes") != NULL);
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);              /* k1 alone */
    CHECK(bitcask_batch_put(b, "k2", 2, big, sizeof big) == BITCASK_OK);
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);
    void *v; size_t len;
    CHECK(bitcask_get(db, "k2", 2, &v, &len) == BITCASK_OK && len == sizeof big);
    bitcask_free(v);
    bitcask_batch_free(b);
    CHECK(bitcask_close(db) == BITCASK_OK);
    remove_dir();
}

static void test_null_edges_and_closed(void) {
    bitcask_db *db = open_fresh(NULL);
    bitcask_batch *b = SENT;
    CHECK(bitcask_batch_new(NULL, &b) == BITCASK_INVALID_ARGUMENT && b == SENT);
    CHECK(bitcask_batch_new(db, NULL) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_batch_put(NULL, "k", 1, "v", 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_batch_delete(NULL, "k", 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_batch_commit(NULL) == BITCASK_INVALID_ARGUMENT);
    bitcask_batch_free(NULL);
    CHECK(bitcask_batch_new(db, &b) == BITCASK_OK);
    CHECK(bitcask_batch_put(b, NULL, 1, "v", 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_batch_put(b, "k", 0, "v", 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_batch_put(b, "k", 1, NULL, 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_batch_put(b, "k", BITCASK_MAX_KEY_LEN + 1, "v", 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_batch_delete(b, NULL, 1) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_batch_delete(b, "k", 0) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);              /* nothing was added */
    CHECK(holds(db, "k", NULL));
    /* a batch outliving its database */
    CHECK(bitcask_batch_put(b, "k", 1, "v", 1) == BITCASK_OK);
    CHECK(bitcask_close(db) == BITCASK_OK);
    CHECK(bitcask_batch_put(b, "k2", 2, "v", 1) == BITCASK_CLOSED);
    CHECK(bitcask_batch_delete(b, "k", 1) == BITCASK_CLOSED);
    CHECK(bitcask_batch_commit(b) == BITCASK_CLOSED);
    bitcask_batch_free(b);
    db = open_dir(NULL);
    CHECK(holds(db, "k", NULL));                               /* never committed */
    CHECK(bitcask_close(db) == BITCASK_OK);
    remove_dir();
}

int main(void) {
    test_commit_and_reuse();
    test_max_batch_bytes();
    test_null_edges_and_closed();
    test_arguments_and_last_error();
    test_empty_commit_writes_nothing();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
