/* C tests of write batches: commit, last operation wins (put then delete of
   one key), reuse after commit, the max_batch_bytes limit, persistence,
   NULL and edge cases, and a batch outliving its database.
   Last line: "N passed, N failed". */
#define _DEFAULT_SOURCE
#include <bitcask.h>
#include <stdio.h>
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
    bitcask_batch *b = NULL;
    CHECK(bitcask_batch_new(NULL, &b) == BITCASK_INVALID_ARGUMENT && b == NULL);
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
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
