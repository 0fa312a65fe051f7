/*
 * test_core_data.c - what a reopen brings back: a data set over many small
 * files, binary keys and values, every option combination; and damage,
 * which is BITCASK_CORRUPTION with the file and offset, at open and at get.
 * Plain C11 (shared machinery: check.h). Last line: "N passed, N failed".
 *
 * Build (after `make install PREFIX=/some/prefix`):
 *   cc -std=c11 -Wall -Wextra -Werror -pedantic tests/c/THIS.c -o /tmp/t -pthread \
 *      $(PKG_CONFIG_PATH=/some/prefix/lib/pkgconfig pkg-config --cflags --libs bitcask)
 *   LD_LIBRARY_PATH=/some/prefix/lib /tmp/t
 */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include "check.h"

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


static int count_keys(void *ctx, const void *key, size_t key_len, const void *value,
                      size_t value_len)
{
    (void)key; (void)key_len; (void)value; (void)value_len;
    ++*(int *)ctx;
    return 0;
}

/* Reads a whole file into a malloc'd buffer; *len its size. */
static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
            *len = fread(buf, 1, (size_t)n, f);
            if (*len != (size_t)n) {
                free(buf);
                buf = NULL;
            }
        }
    }
    fclose(f);
    return buf;
}

/* Damage inside a data file is BITCASK_CORRUPTION, never wrong data, with
 * the file and the record's offset in bitcask_last_error(): at the get
 * that reads it (the file loaded from its hint file), at an iterator's
 * value and in a fold; and at open once open has to scan the file. */
static void test_corruption_at_get_and_open(void)
{
    char *dir = make_tmpdir();
    char *first = NULL, *hint = NULL;
    unsigned char *bytes = NULL;
    bitcask_db *db = NULL;
    bitcask_iter *it = NULL;
    bitcask_options *o = bitcask_options_new();
    char want[64];
    REQUIRE(dir != NULL && o != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, 4096));
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, o, &db));
    for (int i = 0; i < 400; i++) {
        char k[32], v[64];
        size_t kl = gen_key(k, sizeof k, i);
        int vl = snprintf(v, sizeof v, "value of key %d, to be damaged or not", i);
        CHECK_ST(BITCASK_OK, bitcask_put(db, k, kl, v, (size_t)vl));
    }
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    CHECK(count_data_files(dir) > 3);

    /* Flip one byte of key-000003's value, in the first (not the newest) file. */
    first = path_join(dir, "000000001.data");
    hint = path_join(dir, "000000001.hint");
    REQUIRE(first != NULL && hint != NULL);
    size_t len = 0;
    bytes = read_file(first, &len);
    REQUIRE(bytes != NULL);
    const char needle[] = "value of key 3,";
    size_t at = 0;
    while (at + sizeof needle - 1 <= len && memcmp(bytes + at, needle, sizeof needle - 1) != 0)
        at++;
    REQUIRE(at + sizeof needle - 1 <= len);
    {
        FILE *f = fopen(first, "r+b");
        REQUIRE(f != NULL);
        CHECK(fseek(f, (long)at + 3, SEEK_SET) == 0 && fputc('X', f) == 'X');
        CHECK(fclose(f) == 0);
    }
    /* The record starts 11 header bytes and the 10-byte key before its value. */
    snprintf(want, sizeof want, "at offset %zu;", at - 11 - 10);

    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, o, &db)); /* loads the file from its hint */
    void *v = OUT_SENTINEL;
    size_t vlen = OUT_SENTINEL_LEN;
    CHECK_ST(BITCASK_CORRUPTION, bitcask_get(db, S("key-000003"), &v, &vlen));
    CHECK(strstr(bitcask_last_error(), "000000001.data") != NULL);
    CHECK(strstr(bitcask_last_error(), want) != NULL);
    CHECK(v == OUT_SENTINEL && vlen == OUT_SENTINEL_LEN);
    char buf[128];
    CHECK_ST(BITCASK_CORRUPTION, bitcask_get_into(db, S("key-000003"), buf, sizeof buf, &vlen));
    CHECK(strstr(bitcask_last_error(), want) != NULL);
    EXPECT_VALUE(db, S("key-000004"), S("value of key 4, to be damaged or not"));
    REQUIRE_ST(BITCASK_OK, bitcask_iter_new(db, S("key-000003"), false, &it));
    const void *iv = OUT_SENTINEL;
    CHECK_ST(BITCASK_CORRUPTION, bitcask_iter_value(it, &iv, &vlen));
    CHECK(strstr(bitcask_last_error(), want) != NULL);
    CHECK(iv == OUT_SENTINEL);
    bitcask_iter_free(it);
    it = NULL;
    CHECK_ST(BITCASK_CORRUPTION, bitcask_fold(db, NULL, 0, count_keys, &(int){0}));
    CHECK(strstr(bitcask_last_error(), want) != NULL);
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;

    /* Without the hint file, open scans the file and refuses it. */
    CHECK(remove(hint) == 0);
    bitcask_db *d2 = OUT_SENTINEL;
    CHECK_ST(BITCASK_CORRUPTION, bitcask_open(dir, o, &d2));
    CHECK(d2 == OUT_SENTINEL);
    CHECK(strstr(bitcask_last_error(), "000000001.data") != NULL);
    CHECK(strstr(bitcask_last_error(), "offset") != NULL);
out:
    bitcask_iter_free(it);
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    bitcask_options_free(o);
    free(bytes);
    free(first);
    free(hint);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    RUN(test_persistence_many_files);
    RUN(test_binary_keys_values);
    RUN(test_option_variants);
    RUN(test_corruption_at_get_and_open);
    return summary();
}
