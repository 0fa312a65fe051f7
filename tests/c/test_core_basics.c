/*
 * test_core_basics.c - the C core API's constants, version, status strings,
 * bitcask_last_error (per thread, which calls set it and which leave it),
 * options and their checks, close and free of NULL, and sync.
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


static void test_close_and_free_null(void)
{
    CHECK_ST(BITCASK_OK, bitcask_close(NULL));
    bitcask_free(NULL);
    bitcask_options_free(NULL);
    CHECK(1); /* reached without crashing */
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


int main(void)
{
    RUN(test_last_error_initially_empty);
    RUN(test_constants_and_status_strings);
    RUN(test_version);
    RUN(test_last_error_per_thread);
    RUN(test_options);
    RUN(test_close_and_free_null);
    RUN(test_last_error_semantics);
    RUN(test_sync);
    return summary();
}
