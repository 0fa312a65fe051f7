/* C tests of the index type option: the setter and its checks, and a
   database opened with BITCASK_INDEX_HASH: gets, deletes, batches, ordered
   iteration (0x00/0xFF bytes, prefix, reverse, seek), fold order, reopen
   with either index type. Last line: "N passed, N failed". */
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

static bitcask_db *open_with(bitcask_index_type index_type) {
    bitcask_options *opts = bitcask_options_new();
    if (!opts || bitcask_options_set_index_type(opts, index_type) != BITCASK_OK) {
        fprintf(stderr, "options failed\n");
        exit(2);
    }
    bitcask_db *db = NULL;
    bitcask_status s = bitcask_open(dir, opts, &db);
    bitcask_options_free(opts);
    if (s != BITCASK_OK) { fprintf(stderr, "open failed: %s\n", bitcask_last_error()); exit(2); }
    return db;
}

static void make_dir(void) {
    strcpy(dir, "/tmp/bitcask-ctest-index-XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", dir);
}

static void test_setter(void) {
    bitcask_options *opts = bitcask_options_new();
    CHECK(opts != NULL);
    CHECK(BITCASK_INDEX_ORDERED == 0 && BITCASK_INDEX_HASH == 1);
    CHECK(bitcask_options_set_index_type(opts, BITCASK_INDEX_HASH) == BITCASK_OK);
    CHECK(bitcask_options_set_index_type(opts, BITCASK_INDEX_ORDERED) == BITCASK_OK);
    const bitcask_index_type bad[] = {2, -1, 1000};
    const char *named[] = {"index_type 2 ", "index_type -1 ", "index_type 1000 "};
    for (int i = 0; i < 3; i++) {
        CHECK(bitcask_options_set_index_type(opts, bad[i]) == BITCASK_INVALID_ARGUMENT);
        CHECK(strstr(bitcask_last_error(), named[i]) != NULL);
    }
    CHECK(bitcask_options_set_index_type(NULL, BITCASK_INDEX_HASH) == BITCASK_INVALID_ARGUMENT);
    bitcask_options_free(opts);
}

static const unsigned char K[][3] = {
    {0x00}, {0x00, 0x00}, {0x00, 0xFF}, {'a'}, {'a', 0x00}, {'a', 'b'}, {'a', 0xFF}, {0x7F}, {0xFF}, {0xFF, 0xFF},
};
static const size_t KLEN[] = {1, 2, 2, 1, 2, 2, 2, 1, 1, 2};
#define NK 10
#define NMANY 20000

/* Whether the iterator is at exactly this key. */
static int at(const bitcask_iter *it, const void *key, size_t len) {
    size_t got_len = 99;
    const void *got = bitcask_iter_key(it, &got_len);
    return got != NULL && got_len == len && memcmp(got, key, len) == 0;
}

/* Keys "m00000".."m19999" with their number as value; the odd ones deleted. */
static void fill(bitcask_db *db) {
    for (int i = NK - 1; i >= 0; i--) CHECK(bitcask_put(db, K[i], KLEN[i], K[i], KLEN[i]) == BITCASK_OK);
    char key[16];
    int ok = 1;
    for (int i = NMANY - 1; i >= 0; i--) {
        snprintf(key, sizeof key, "m%05d", i);
        ok &= bitcask_put(db, key, 6, key, 6) == BITCASK_OK;
    }
    for (int i = 1; i < NMANY; i += 2) {
        snprintf(key, sizeof key, "m%05d", i);
        ok &= bitcask_delete(db, key, 6) == BITCASK_OK;
    }
    CHECK(ok);
    bitcask_batch *b = NULL;
    CHECK(bitcask_batch_new(db, &b) == BITCASK_OK);
    CHECK(bitcask_batch_put(b, "m00001", 6, "batched", 7) == BITCASK_OK);
    CHECK(bitcask_batch_delete(b, "m00000", 6) == BITCASK_OK);
    CHECK(bitcask_batch_commit(b) == BITCASK_OK);
    bitcask_batch_free(b);
}

struct fold_ctx { unsigned char last[8]; size_t last_len; int calls; int in_order; };

static int fold_cb(void *ctx, const void *key, size_t key_len, const void *value, size_t value_len) {
    struct fold_ctx *c = ctx;
    (void)value; (void)value_len;
    size_t common = key_len < c->last_len ? key_len : c->last_len;
    int cmp = memcmp(c->last, key, common);
    if (c->calls > 0 && !(cmp < 0 || (cmp == 0 && c->last_len < key_len))) c->in_order = 0;
    c->last_len = key_len < sizeof c->last ? key_len : sizeof c->last;
    memcpy(c->last, key, c->last_len);
    c->calls++;
    return 0;
}

/* What fill() leaves, checked through gets, iterators and fold. */
static void check_contents(bitcask_db *db) {
    void *v = NULL; size_t vlen = 0;
    CHECK(bitcask_get(db, "m00000", 6, &v, &vlen) == BITCASK_NOT_FOUND);
    /* v and vlen are read only once the get has set them */
    bitcask_status s = bitcask_get(db, "m00001", 6, &v, &vlen);
    CHECK(s == BITCASK_OK);
    if (s == BITCASK_OK) {
        CHECK(vlen == 7 && memcmp(v, "batched", 7) == 0);
        bitcask_free(v);
    }
    CHECK(bitcask_get(db, "m00003", 6, &v, &vlen) == BITCASK_NOT_FOUND);
    char buf[8];
    CHECK(bitcask_get_into(db, "m19998", 6, buf, sizeof buf, &vlen) == BITCASK_OK && vlen == 6 && memcmp(buf, "m19998", 6) == 0);
    for (int i = 0; i < NK; i++)
        CHECK(bitcask_get_into(db, K[i], KLEN[i], buf, sizeof buf, &vlen) == BITCASK_OK && vlen == KLEN[i]);

    /* All keys, ascending: 'm' (0x6D) sorts between "a\xff" and 0x7F. */
    bitcask_iter *it = NULL;
    CHECK(bitcask_iter_new(db, NULL, 0, false, &it) == BITCASK_OK);
    int n, ok = 1;
    for (n = 0; n < 7; n++, bitcask_iter_next(it)) ok &= at(it, K[n], KLEN[n]);
    ok &= at(it, "m00001", 6);
    for (int i = 0; i < NMANY / 2; i++) bitcask_iter_next(it);
    for (n = 7; n < NK; n++, bitcask_iter_next(it)) ok &= at(it, K[n], KLEN[n]);
    CHECK(ok);
    CHECK(!bitcask_iter_valid(it));
    bitcask_iter_free(it);

    CHECK(bitcask_iter_new(db, "m", 1, false, &it) == BITCASK_OK);
    CHECK(at(it, "m00001", 6));
    bitcask_iter_next(it);
    char key[16];
    int count = 1;
    ok = 1;
    for (int i = 2; i < NMANY; i += 2, count++, bitcask_iter_next(it)) {
        snprintf(key, sizeof key, "m%05d", i);
        ok &= at(it, key, 6);
    }
    CHECK(ok);
    CHECK(!bitcask_iter_valid(it));
    CHECK(count == NMANY / 2);
    bitcask_iter_free(it);

    /* Reverse over prefix "a", and seek. */
    CHECK(bitcask_iter_new(db, "a", 1, true, &it) == BITCASK_OK);
    for (n = 6; bitcask_iter_valid(it); bitcask_iter_next(it), n--) CHECK(at(it, K[n], KLEN[n]));
    CHECK(n == 2);
    bitcask_iter_seek(it, "a\x01", 2);
    CHECK(at(it, K[4], KLEN[4]));
    bitcask_iter_free(it);
    CHECK(bitcask_iter_new(db, NULL, 0, false, &it) == BITCASK_OK);
    bitcask_iter_seek(it, "m10001", 6);
    CHECK(at(it, "m10002", 6));
    bitcask_iter_free(it);

    struct fold_ctx c = {{0}, 0, 0, 1};
    CHECK(bitcask_fold(db, NULL, 0, fold_cb, &c) == BITCASK_OK);
    CHECK(c.calls == NK + NMANY / 2 && c.in_order);
}

static void test_hash_database(void) {
    make_dir();
    bitcask_db *db = open_with(BITCASK_INDEX_HASH);
    fill(db);
    check_contents(db);
    CHECK(bitcask_close(db) == BITCASK_OK);
    /* Reopened with either index type, the same database. */
    db = open_with(BITCASK_INDEX_HASH);
    check_contents(db);
    CHECK(bitcask_close(db) == BITCASK_OK);
    db = open_with(BITCASK_INDEX_ORDERED);
    check_contents(db);
    CHECK(bitcask_close(db) == BITCASK_OK);
    remove_dir();
}

int main(void) {
    test_setter();
    test_hash_database();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
