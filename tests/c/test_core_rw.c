/*
 * test_core_rw.c - put, get, get_into and delete: values of every size up to
 * larger than a data file, empty values, every key and value argument check
 * (a length is looked at before the buffer is read), NULL handles, and
 * out-parameters left alone on failure.
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

static void test_put_get_basic(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));

    EXPECT_ABSENT(db, S("hello"));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("hello"), S("world")));
    EXPECT_VALUE(db, S("hello"), S("world"));

    /* get returns a fresh copy each time, freed with bitcask_free */
    {
        void *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        CHECK_ST(BITCASK_OK, bitcask_get(db, S("hello"), &a, &al));
        CHECK_ST(BITCASK_OK, bitcask_get(db, S("hello"), &b, &bl));
        CHECK(a != NULL && b != NULL && a != b);
        CHECK(al == 5 && bl == 5);
        if (a && b && al == 5 && bl == 5) {
            memset(a, 'X', al); /* writable, and independent of b */
            CHECK(memcmp(b, "world", 5) == 0);
        }
        bitcask_free(a);
        bitcask_free(b);
    }

    /* overwrite with shorter, longer, same length */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("hello"), S("w")));
    EXPECT_VALUE(db, S("hello"), S("w"));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("hello"), S("a much longer value than before")));
    EXPECT_VALUE(db, S("hello"), S("a much longer value than before"));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("hello"), S("b much longer value than before")));
    EXPECT_VALUE(db, S("hello"), S("b much longer value than before"));

    /* keys that differ only by length or prefix are distinct */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("ab"), S("2")));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("abc"), S("3")));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("a"), S("1")));
    EXPECT_VALUE(db, S("a"), S("1"));
    EXPECT_VALUE(db, S("ab"), S("2"));
    EXPECT_VALUE(db, S("abc"), S("3"));
    EXPECT_ABSENT(db, S("abcd"));
    EXPECT_ABSENT(db, S("b"));

    /* the key buffer is borrowed only for the call */
    {
        char kbuf[16];
        memcpy(kbuf, "tmpkey", 6);
        CHECK_ST(BITCASK_OK, bitcask_put(db, kbuf, 6, S("tmpval")));
        memset(kbuf, 0, sizeof kbuf);
        EXPECT_VALUE(db, S("tmpkey"), S("tmpval"));
    }

    /* a medium-large value (1 MiB) */
    {
        size_t n = 1u << 20;
        unsigned char *big = malloc(n);
        REQUIRE(big != NULL);
        for (size_t i = 0; i < n; i++)
            big[i] = (unsigned char)(i * 2654435761u >> 13);
        CHECK_ST(BITCASK_OK, bitcask_put(db, S("big"), big, n));
        EXPECT_VALUE(db, S("big"), big, n);
        CHECK_ST(BITCASK_OK, bitcask_close(db));
        db = NULL;
        bitcask_status s = bitcask_open(dir, NULL, &db);
        CHECK_ST(BITCASK_OK, s);
        if (s == BITCASK_OK)
            EXPECT_VALUE(db, S("big"), big, n);
        free(big);
    }
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

/* A value larger than data_file_size is still a valid value. */
static void test_value_larger_than_data_file(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    bitcask_options *o = bitcask_options_new();
    unsigned char *big = NULL;
    size_t n = 100000;
    REQUIRE(dir != NULL && o != NULL);
    CHECK_ST(BITCASK_OK, bitcask_options_set_data_file_size(o, 4096));
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, o, &db));
    big = malloc(n);
    REQUIRE(big != NULL);
    for (size_t i = 0; i < n; i++)
        big[i] = (unsigned char)(i % 251);
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("small1"), S("x")));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("big"), big, n));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("small2"), S("y")));
    EXPECT_VALUE(db, S("big"), big, n);
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, o, &db));
    EXPECT_VALUE(db, S("big"), big, n);
    EXPECT_VALUE(db, S("small1"), S("x"));
    EXPECT_VALUE(db, S("small2"), S("y"));
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    bitcask_options_free(o);
    free(big);
    rm_rf(dir);
    free(dir);
}

static void test_empty_value(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));

    /* NULL pointer with length 0 */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("e1"), NULL, 0));
    /* non-NULL pointer with length 0 */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("e2"), "ignored", 0));

    const char *keys[] = { "e1", "e2" };
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < 2; i++) {
            void *out = NULL;
            size_t len = 777;
            CHECK_ST(BITCASK_OK, bitcask_get(db, keys[i], 2, &out, &len));
            CHECK(out != NULL); /* never NULL on OK, even if empty */
            CHECK(len == 0);
            bitcask_free(out);

            size_t need = 777;
            CHECK_ST(BITCASK_OK, bitcask_get_into(db, keys[i], 2, NULL, 0, &need));
            CHECK(need == 0);
            char buf[4] = { 'Q', 'Q', 'Q', 'Q' };
            need = 777;
            CHECK_ST(BITCASK_OK, bitcask_get_into(db, keys[i], 2, buf, sizeof buf, &need));
            CHECK(need == 0);
            CHECK(buf[0] == 'Q');
        }
        /* An empty value is a value, not a deletion: survives reopen. */
        CHECK_ST(BITCASK_OK, bitcask_close(db));
        db = NULL;
        REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    }

    /* empty -> non-empty -> empty */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("e1"), S("now full")));
    EXPECT_VALUE(db, S("e1"), S("now full"));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("e1"), NULL, 0));
    EXPECT_VALUE(db, S("e1"), NULL, 0);
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_key_arguments(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    unsigned char *maxkey = NULL;
    const size_t MAXK = (size_t)BITCASK_MAX_KEY_LEN;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("k"), S("orig")));

    /* Out-parameters start as values no call writes: every failure below
       must leave them alone. */
    void *out = OUT_SENTINEL;
    size_t len = OUT_SENTINEL_LEN;
    char buf[16];

    /* zero-length key, NULL pointer */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, NULL, 0, S("v")));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, NULL, 0, &out, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, NULL, 0, buf, sizeof buf, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(db, NULL, 0));
    CHECK(err_mentions("key", NULL, NULL));
    /* zero-length key, non-NULL pointer */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, "k", 0, S("v")));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, "k", 0, &out, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, "k", 0, buf, sizeof buf, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(db, "k", 0));
    CHECK(err_mentions("key", NULL, NULL));
    /* NULL key with non-zero length */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, NULL, 1, S("v")));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, NULL, 1, &out, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, NULL, 1, buf, sizeof buf, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(db, NULL, 1));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK(out == OUT_SENTINEL && len == OUT_SENTINEL_LEN); /* untouched by failures */

    /* Key of exactly MAX_KEY_LEN bytes is accepted... */
    maxkey = malloc(MAXK + 1);
    REQUIRE(maxkey != NULL);
    for (size_t i = 0; i < MAXK + 1; i++)
        maxkey[i] = (unsigned char)(i * 7 + 3);
    CHECK_ST(BITCASK_OK, bitcask_put(db, maxkey, MAXK, S("maxval")));
    EXPECT_VALUE(db, maxkey, MAXK, S("maxval"));
    /* ...a key one byte longer is not, in any operation. */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, maxkey, MAXK + 1, S("v")));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, maxkey, MAXK + 1, &out, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT,
             bitcask_get_into(db, maxkey, MAXK + 1, buf, sizeof buf, &len));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(db, maxkey, MAXK + 1));
    CHECK(err_mentions("key", NULL, NULL));
    CHECK(out == OUT_SENTINEL && len == OUT_SENTINEL_LEN);
    /* the over-long key was not stored under its truncated form either */
    EXPECT_VALUE(db, maxkey, MAXK, S("maxval"));
    EXPECT_VALUE(db, S("k"), S("orig"));

    /* Max key survives reopen and can be deleted. */
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_VALUE(db, maxkey, MAXK, S("maxval"));
    EXPECT_VALUE(db, S("k"), S("orig"));
    CHECK_ST(BITCASK_OK, bitcask_delete(db, maxkey, MAXK));
    EXPECT_ABSENT(db, maxkey, MAXK);
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_ABSENT(db, maxkey, MAXK);
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    free(maxkey);
    rm_rf(dir);
    free(dir);
}

static void test_value_arguments(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("k"), S("old value")));

    /* NULL value with non-zero length */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, S("k"), NULL, 5));
    CHECK(err_mentions("value", NULL, NULL));
    EXPECT_VALUE(db, S("k"), S("old value"));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, S("new"), NULL, 1));
    EXPECT_ABSENT(db, S("new"));

    /* Over-limit value: 8 readable bytes with a huge length. The library
     * must look at the length before it reads the buffer: the page after
     * the 8 bytes is unmapped, so a read past them kills the test. */
    {
        unsigned char *tiny = guarded_bytes(8);
        REQUIRE(tiny != NULL);
        CHECK_ST(BITCASK_INVALID_ARGUMENT,
                 bitcask_put(db, S("k"), tiny, (size_t)BITCASK_MAX_VALUE_LEN + 1));
        CHECK(err_mentions("value", NULL, NULL));
        EXPECT_VALUE(db, S("k"), S("old value"));
        CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, S("new"), tiny, SIZE_MAX));
        CHECK(err_mentions("value", NULL, NULL));
        EXPECT_ABSENT(db, S("new"));
        /* And a key, for every call that takes one. */
        void *out = OUT_SENTINEL;
        size_t len = OUT_SENTINEL_LEN;
        size_t klen = (size_t)BITCASK_MAX_KEY_LEN + 1;
        CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(db, tiny, klen, S("v")));
        CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, tiny, klen, &out, &len));
        CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, tiny, klen, NULL, 0, &len));
        CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(db, tiny, klen));
        CHECK(err_mentions("key", NULL, NULL));
        CHECK(out == OUT_SENTINEL && len == OUT_SENTINEL_LEN);
        free_guarded(tiny, 8);
    }

    /* Rejected calls wrote nothing durable either. */
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_VALUE(db, S("k"), S("old value"));
    EXPECT_ABSENT(db, S("new"));
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_null_db(void)
{
    void *out = OUT_SENTINEL;
    size_t len = OUT_SENTINEL_LEN;
    char buf[8];
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_put(NULL, S("k"), S("v")));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(NULL, S("k"), &out, &len));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(NULL, S("k"), buf, sizeof buf, &len));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(NULL, S("k"), NULL, 0, &len));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_delete(NULL, S("k")));
    CHECK(err_nonempty());
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_sync(NULL));
    CHECK(err_nonempty());
    CHECK(out == OUT_SENTINEL && len == OUT_SENTINEL_LEN);
}

static void test_get_out_params(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    static int sentinel_obj;
    void *const SENT = &sentinel_obj;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("present"), S("value")));

    /* NOT_FOUND leaves both out params untouched */
    void *out = SENT;
    size_t len = 0xDEADBEEF;
    CHECK_ST(BITCASK_NOT_FOUND, bitcask_get(db, S("absent"), &out, &len));
    CHECK(out == SENT);
    CHECK(len == 0xDEADBEEF);

    /* NULL out params */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, S("present"), NULL, &len));
    CHECK(err_mentions("value", "out", NULL));
    CHECK(len == 0xDEADBEEF);
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, S("present"), &out, NULL));
    CHECK(err_mentions("len", "out", NULL));
    CHECK(out == SENT);
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, S("present"), NULL, NULL));
    CHECK(err_nonempty());
    /* also for an absent key: argument errors come first */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, S("absent"), NULL, &len));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, S("absent"), &out, NULL));
    CHECK(out == SENT && len == 0xDEADBEEF);

    /* An INVALID_ARGUMENT for the key also leaves them untouched */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get(db, NULL, 0, &out, &len));
    CHECK(out == SENT && len == 0xDEADBEEF);

    /* OK writes them */
    CHECK_ST(BITCASK_OK, bitcask_get(db, S("present"), &out, &len));
    CHECK(out != SENT && out != NULL);
    CHECK(len == 5);
    if (out != SENT && out != NULL && len == 5)
        CHECK(memcmp(out, "value", 5) == 0);
    if (out != SENT)
        bitcask_free(out);
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_get_into(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    const char val[] = "0123456789abcdef"; /* 16 bytes */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("k"), val, 16));

    /* size query */
    size_t need = 0;
    CHECK_ST(BITCASK_BUFFER_TOO_SMALL, bitcask_get_into(db, S("k"), NULL, 0, &need));
    CHECK(need == 16);

    /* non-NULL buffer with length 0: too small, untouched */
    char buf[32];
    memset(buf, '#', sizeof buf);
    need = 0;
    CHECK_ST(BITCASK_BUFFER_TOO_SMALL, bitcask_get_into(db, S("k"), buf, 0, &need));
    CHECK(need == 16);
    CHECK(buf[0] == '#');

    /* too small by one: untouched */
    memset(buf, '#', sizeof buf);
    need = 0;
    CHECK_ST(BITCASK_BUFFER_TOO_SMALL, bitcask_get_into(db, S("k"), buf, 15, &need));
    CHECK(need == 16);
    {
        bool untouched = true;
        for (size_t i = 0; i < sizeof buf; i++)
            if (buf[i] != '#')
                untouched = false;
        CHECK(untouched);
    }

    /* exact size */
    memset(buf, '#', sizeof buf);
    need = 0;
    CHECK_ST(BITCASK_OK, bitcask_get_into(db, S("k"), buf, 16, &need));
    CHECK(need == 16);
    CHECK(memcmp(buf, val, 16) == 0);
    CHECK(buf[16] == '#'); /* nothing written past the value */

    /* larger buffer */
    memset(buf, '#', sizeof buf);
    need = 0;
    CHECK_ST(BITCASK_OK, bitcask_get_into(db, S("k"), buf, sizeof buf, &need));
    CHECK(need == 16);
    CHECK(memcmp(buf, val, 16) == 0);

    /* NULL value_len_out */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, S("k"), buf, sizeof buf, NULL));
    CHECK(err_mentions("len", "out", NULL));
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, S("k"), NULL, 0, NULL));
    CHECK(err_nonempty());
    /* NULL buf with non-zero buf_len */
    need = 12345;
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, S("k"), NULL, 16, &need));
    CHECK(err_mentions("buf", NULL, NULL));
    CHECK(need == 12345);

    /* NOT_FOUND: *value_len_out and the buffer untouched */
    memset(buf, '#', sizeof buf);
    need = 12345;
    CHECK_ST(BITCASK_NOT_FOUND, bitcask_get_into(db, S("absent"), buf, sizeof buf, &need));
    CHECK(need == 12345);
    CHECK(buf[0] == '#');
    CHECK_ST(BITCASK_NOT_FOUND, bitcask_get_into(db, S("absent"), NULL, 0, &need));
    CHECK(need == 12345);

    /* invalid key: untouched too */
    CHECK_ST(BITCASK_INVALID_ARGUMENT, bitcask_get_into(db, NULL, 0, buf, sizeof buf, &need));
    CHECK(need == 12345);
    CHECK(buf[0] == '#');
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}

static void test_delete(void)
{
    char *dir = make_tmpdir();
    bitcask_db *db = NULL;
    REQUIRE(dir != NULL);
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));

    /* absent key: OK, still absent */
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("never")));
    EXPECT_ABSENT(db, S("never"));

    CHECK_ST(BITCASK_OK, bitcask_put(db, S("a"), S("1")));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("b"), S("2")));
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("a")));
    EXPECT_ABSENT(db, S("a"));
    EXPECT_VALUE(db, S("b"), S("2"));
    /* twice: OK */
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("a")));
    EXPECT_ABSENT(db, S("a"));

    /* delete, then put again */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("b"), S("2b")));
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("b")));
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("b"), S("3")));
    EXPECT_VALUE(db, S("b"), S("3"));

    /* empty value then delete */
    CHECK_ST(BITCASK_OK, bitcask_put(db, S("e"), NULL, 0));
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("e")));
    EXPECT_ABSENT(db, S("e"));

    /* all of it survives reopen */
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_ABSENT(db, S("a"));
    EXPECT_ABSENT(db, S("never"));
    EXPECT_ABSENT(db, S("e"));
    EXPECT_VALUE(db, S("b"), S("3"));
    /* delete after reopen, reopen again */
    CHECK_ST(BITCASK_OK, bitcask_delete(db, S("b")));
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    db = NULL;
    REQUIRE_ST(BITCASK_OK, bitcask_open(dir, NULL, &db));
    EXPECT_ABSENT(db, S("b"));
out:
    CHECK_ST(BITCASK_OK, bitcask_close(db));
    rm_rf(dir);
    free(dir);
}


int main(void)
{
    RUN(test_put_get_basic);
    RUN(test_value_larger_than_data_file);
    RUN(test_empty_value);
    RUN(test_key_arguments);
    RUN(test_value_arguments);
    RUN(test_null_db);
    RUN(test_get_out_params);
    RUN(test_get_into);
    RUN(test_delete);
    return summary();
}
