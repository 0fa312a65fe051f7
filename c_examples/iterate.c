/*
 * iterate.c - walking the keys of a libbitcask database in order.
 *
 * Build and run (after `make install PREFIX=$HOME/.local`, for example):
 *   cc -std=c11 iterate.c -o iterate $(pkg-config --cflags --libs bitcask)
 *   ./iterate ./iterate-db
 *
 * An iterator sees the database as it was when it was made (later writes do
 * not change it), in ascending byte order of the keys, or descending; a
 * prefix limits it to the keys that start with it. bitcask_fold walks the
 * same kind of snapshot with a callback.
 */
#include <bitcask.h>

#include <stdio.h>
#include <string.h>

/* Prints why a call failed; returns 1 if s is not OK. bitcask_last_error()
 * already starts with the kind of failure, so it is printed alone;
 * BITCASK_NOT_FOUND and BITCASK_BUFFER_TOO_SMALL leave it unset, so for
 * those the status name is printed. */
static int failed(const char *what, bitcask_status s)
{
    if (s == BITCASK_OK)
        return 0;
    if (s == BITCASK_NOT_FOUND || s == BITCASK_BUFFER_TOO_SMALL)
        fprintf(stderr, "%s: %s\n", what, bitcask_status_str(s));
    else
        fprintf(stderr, "%s: %s\n", what, bitcask_last_error());
    return 1;
}

/* Prints every key (and value) an iterator has left, then frees it. */
static int walk(const char *title, bitcask_iter *it)
{
    int rc = 0;
    printf("%s:\n", title);
    for (; bitcask_iter_valid(it); bitcask_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const void *key = bitcask_iter_key(it, &klen); /* borrowed until the next move */
        const void *value = NULL;
        /* The value is read from its data file now, on demand. */
        if (failed("iter_value", bitcask_iter_value(it, &value, &vlen))) {
            rc = 1;
            break;
        }
        printf("  %.*s = %.*s\n", (int)klen, (const char *)key, (int)vlen, (const char *)value);
    }
    bitcask_iter_free(it);
    return rc;
}

/* A bitcask_fold callback: adds up the value bytes; ctx is a size_t. */
static int add_value_bytes(void *ctx, const void *key, size_t key_len, const void *value,
                           size_t value_len)
{
    (void)key;
    (void)key_len;
    (void)value;
    *(size_t *)ctx += value_len;
    return 0; /* 0: go on; anything else stops the walk */
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "./iterate-db";
    bitcask_db *db = NULL;
    bitcask_iter *it = NULL;
    int rc = 1;

    if (failed("open", bitcask_open(dir, NULL, &db)))
        return 1;

    const char *pairs[][2] = {
        {"user:3", "carol"}, {"user:1", "alice"}, {"group:admins", "user:1"},
        {"user:2", "bob"},   {"user:10", "judy"}, {"group:all", "user:1,user:2,user:3,user:10"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (failed("put", bitcask_put(db, pairs[i][0], strlen(pairs[i][0]), pairs[i][1],
                                      strlen(pairs[i][1]))))
            goto done;
    }

    /* 1. Every key, ascending: bytes compare, so "user:10" sorts before "user:2". */
    if (failed("iter_new", bitcask_iter_new(db, NULL, 0, false, &it)) ||
        walk("all keys, ascending", it))
        goto done;

    /* 2. Only the keys starting with "user:", descending. */
    if (failed("iter_new", bitcask_iter_new(db, "user:", 5, true, &it)) ||
        walk("prefix \"user:\", descending", it))
        goto done;

    /* 3. Seek: go to the first key >= "user:2" (a key need not exist to seek to it). */
    if (failed("iter_new", bitcask_iter_new(db, "user:", 5, false, &it)))
        goto done;
    bitcask_iter_seek(it, "user:2", 6);
    if (walk("prefix \"user:\", from \"user:2\" on", it))
        goto done;

    /* 4. A snapshot: a write after the iterator was made is not in it. */
    if (failed("iter_new", bitcask_iter_new(db, "group:", 6, false, &it)))
        goto done;
    if (failed("put", bitcask_put(db, "group:new", 9, "user:2", 6))) {
        bitcask_iter_free(it);
        goto done;
    }
    if (walk("prefix \"group:\", made before group:new was put", it))
        goto done;

    /* 5. Fold: a callback for each key and value, here adding up the value bytes. */
    size_t bytes = 0;
    if (failed("fold", bitcask_fold(db, "user:", 5, add_value_bytes, &bytes)))
        goto done;
    printf("fold over \"user:\": %zu value bytes\n", bytes);
    rc = 0;

done:
    if (failed("close", bitcask_close(db)))
        rc = 1;
    return rc;
}
