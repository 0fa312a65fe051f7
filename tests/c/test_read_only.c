/* C tests of read-only opens: bitcask_options_set_read_only (NULL), opening
   read-only beside a writer in the same process (twice, no BITCASK_LOCKED),
   reads, an iterator and a fold, every write call returning
   BITCASK_READ_ONLY (9) with bitcask_last_error() saying why, the status's
   name, bitcask_refresh catching up with puts, deletes, rollovers and a
   merge of the writer, refresh on a writable handle and on NULL, and
   read-only opens of a missing directory and of one without a database.
   Last line: "N passed, N failed". */
#define _DEFAULT_SOURCE
#include <bitcask.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int passed, failed;
#define CHECK(cond) do { if (cond) passed++; else { failed++; \
    fprintf(stderr, "%s:%d: CHECK(%s) failed (%s)\n", __FILE__, __LINE__, #cond, \
            bitcask_last_error()); } } while (0)

static char root[64];

static bitcask_options *read_only_options(void) {
    bitcask_options *o = bitcask_options_new();
    CHECK(bitcask_options_set_read_only(o, true) == BITCASK_OK);
    return o;
}

/* Whether `db` holds `value` under `key` (NULL value: the key is absent). */
static int holds(bitcask_db *db, const char *key, const char *value) {
    void *v = NULL;
    size_t len = 0;
    bitcask_status s = bitcask_get(db, key, strlen(key), &v, &len);
    if (value == NULL) return s == BITCASK_NOT_FOUND;
    int same = s == BITCASK_OK && len == strlen(value) && memcmp(v, value, len) == 0;
    if (s == BITCASK_OK) bitcask_free(v);
    return same;
}

static int count_keys(bitcask_db *db) {
    bitcask_iter *it = NULL;
    if (bitcask_iter_new(db, NULL, 0, false, &it) != BITCASK_OK) return -1;
    int n = 0;
    for (; bitcask_iter_valid(it); bitcask_iter_next(it)) {
        const void *v;
        size_t vlen;
        if (bitcask_iter_value(it, &v, &vlen) != BITCASK_OK) n = -1000;
        n++;
    }
    bitcask_iter_free(it);
    return n;
}

static int fold_count(void *ctx, const void *k, size_t kl, const void *v, size_t vl) {
    (void)k; (void)kl; (void)v; (void)vl;
    (*(int *)ctx)++;
    return 0;
}

static void test_option_and_status(void) {
    CHECK(bitcask_options_set_read_only(NULL, true) == BITCASK_INVALID_ARGUMENT);
    CHECK(strstr(bitcask_last_error(), "opts is NULL") != NULL);
    CHECK(BITCASK_READ_ONLY == 9);
    CHECK(strcmp(bitcask_status_str(BITCASK_READ_ONLY), "read-only handle") == 0);
    CHECK(strcmp(bitcask_status_str(10), "unknown status") == 0);
    CHECK(bitcask_refresh(NULL) == BITCASK_INVALID_ARGUMENT);
}

static void test_beside_a_writer(void) {
    char dir[128];
    snprintf(dir, sizeof dir, "%s/db", root);
    bitcask_options *wo = bitcask_options_new();
    bitcask_options_set_data_file_size(wo, 4096);
    bitcask_options_set_auto_merge_ratio(wo, 0);
    bitcask_db *w = NULL;
    CHECK(bitcask_open(dir, wo, &w) == BITCASK_OK);
    bitcask_options_free(wo);
    CHECK(bitcask_put(w, "a", 1, "1", 1) == BITCASK_OK);
    CHECK(bitcask_put(w, "b", 1, "2", 1) == BITCASK_OK);

    bitcask_options *ro = read_only_options();
    bitcask_db *r = NULL, *r2 = NULL;
    CHECK(bitcask_open(dir, ro, &r) == BITCASK_OK);
    CHECK(bitcask_open(dir, ro, &r2) == BITCASK_OK);
    bitcask_options_free(ro);
    if (!r || !r2) { bitcask_close(w); return; }
    CHECK(holds(r, "a", "1") && holds(r, "b", "2") && holds(r2, "a", "1"));
    CHECK(count_keys(r) == 2);
    int folded = 0;
    CHECK(bitcask_fold(r, NULL, 0, fold_count, &folded) == BITCASK_OK && folded == 2);

    /* Every write is refused, says why, and changes nothing. */
    CHECK(bitcask_put(r, "x", 1, "y", 1) == BITCASK_READ_ONLY);
    CHECK(strstr(bitcask_last_error(), "read-only") != NULL);
    CHECK(strstr(bitcask_last_error(), "put") != NULL);
    CHECK(bitcask_delete(r, "a", 1) == BITCASK_READ_ONLY);
    CHECK(strstr(bitcask_last_error(), "delete") != NULL);
    CHECK(bitcask_sync(r) == BITCASK_READ_ONLY);
    CHECK(bitcask_merge(r) == BITCASK_READ_ONLY);
    char dest[160];
    snprintf(dest, sizeof dest, "%s/copy", root);
    CHECK(bitcask_backup(r, dest) == BITCASK_READ_ONLY);
    struct stat st;
    CHECK(stat(dest, &st) != 0);
    bitcask_batch *b = NULL;
    CHECK(bitcask_batch_new(r, &b) == BITCASK_READ_ONLY && b == NULL);
    CHECK(holds(r, "a", "1") && holds(r, "x", NULL));

    /* The writer goes on: puts, a delete, rollovers (4 KiB files), a merge. */
    CHECK(bitcask_put(w, "c", 1, "3", 1) == BITCASK_OK);
    CHECK(bitcask_delete(w, "a", 1) == BITCASK_OK);
    CHECK(holds(r, "c", NULL) && holds(r, "a", "1"));   /* as of its open */
    CHECK(bitcask_refresh(r) == BITCASK_OK);
    CHECK(holds(r, "c", "3") && holds(r, "a", NULL));
    char key[32], value[64];
    for (int i = 0; i < 300; i++) {
        int kl = snprintf(key, sizeof key, "k%03d", i % 100);
        int vl = snprintf(value, sizeof value, "value %d of key %d", i, i % 100);
        CHECK(bitcask_put(w, key, (size_t)kl, value, (size_t)vl) == BITCASK_OK);
    }
    CHECK(bitcask_merge(w) == BITCASK_OK);
    CHECK(bitcask_put(w, "d", 1, "4", 1) == BITCASK_OK);
    CHECK(bitcask_refresh(r) == BITCASK_OK);
    CHECK(holds(r, "d", "4") && holds(r, "k007", "value 207 of key 7"));
    CHECK(count_keys(r) == 103);
    bitcask_stats rs, ws;
    CHECK(bitcask_get_stats(r, &rs) == BITCASK_OK && bitcask_get_stats(w, &ws) == BITCASK_OK);
    CHECK(rs.key_count == ws.key_count && rs.data_file_count == ws.data_file_count);
    /* The second handle was not refreshed: it still sees its open. */
    CHECK(holds(r2, "a", "1") && holds(r2, "d", NULL));

    CHECK(bitcask_refresh(w) == BITCASK_OK);            /* a writable handle: no-op */
    CHECK(bitcask_close(r) == BITCASK_OK);
    CHECK(bitcask_close(r2) == BITCASK_OK);
    CHECK(bitcask_close(w) == BITCASK_OK);
}

static void test_no_database(void) {
    char dir[128];
    bitcask_options *ro = read_only_options();
    bitcask_db *db = NULL;
    snprintf(dir, sizeof dir, "%s/missing", root);
    CHECK(bitcask_open(dir, ro, &db) == BITCASK_IO && db == NULL);
    struct stat st;
    CHECK(stat(dir, &st) != 0);                         /* not created */
    snprintf(dir, sizeof dir, "%s/empty", root);
    CHECK(mkdir(dir, 0755) == 0);
    CHECK(bitcask_open(dir, ro, &db) == BITCASK_INVALID_ARGUMENT && db == NULL);
    CHECK(strstr(bitcask_last_error(), "no libbitcask data file") != NULL);
    bitcask_options_free(ro);
}

int main(void) {
    strcpy(root, "/tmp/bitcask-ctest-ro-XXXXXX");
    if (!mkdtemp(root)) { perror("mkdtemp"); return 2; }
    test_option_and_status();
    test_beside_a_writer();
    test_no_database();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", root);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
