/*
 * test_core_open.c - bitcask_open's arguments (NULL, empty, non-UTF-8 paths,
 * a file in the way, missing directories, options copied at open), the
 * directory lock, and many reopens.
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

    /* an empty path: rejected, the current directory untouched */
    d2 = SENTINEL;
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_open("", NULL, &d2));
    CHECK(d2 == SENTINEL);
    CHECK(err_mentions("dir", NULL, NULL) && err_mentions("empty", NULL, NULL));
    CHECK(!path_exists("LOCK") && !path_exists("000000001.data"));

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


int main(void)
{
    RUN(test_open_arguments);
    RUN(test_lock);
    RUN(test_reopen_many_times);
    return summary();
}
