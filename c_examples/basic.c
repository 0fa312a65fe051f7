/*
 * basic.c - a first program with libbitcask.
 *
 * Build and run (after `make install PREFIX=$HOME/.local`, for example):
 *   cc -std=c11 basic.c -o basic $(pkg-config --cflags --libs bitcask)
 *   ./basic ./example-db
 *
 * Every fallible bitcask_* call returns a bitcask_status; BITCASK_OK (0) is
 * success. On failure, bitcask_last_error() tells you what went wrong.
 */
#include <bitcask.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints a failed call's status and detail; returns 1 if s is not OK. */
static int failed(const char *what, bitcask_status s)
{
    if (s == BITCASK_OK)
        return 0;
    fprintf(stderr, "%s failed: %s (%s)\n", what, bitcask_status_str(s),
            bitcask_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "./example-db";
    bitcask_db *db = NULL;
    bitcask_status s;
    int rc = 1;

    printf("libbitcask %s\n", bitcask_version());

    /* 1. Options: start from the defaults and change what you need. */
    bitcask_options *opts = bitcask_options_new();
    if (opts == NULL)
        return 1; /* only on out-of-memory */
    if (failed("set_sync_writes", bitcask_options_set_sync_writes(opts, true)) ||
        failed("set_data_file_size",
               bitcask_options_set_data_file_size(opts, 64 * 1024 * 1024))) {
        bitcask_options_free(opts);
        return 1;
    }

    /* 2. Open (the directory is created if missing). The options are copied,
     *    so we can free them right away. Passing NULL means "all defaults". */
    s = bitcask_open(dir, opts, &db);
    bitcask_options_free(opts);
    if (failed("open", s))
        return 1; /* BITCASK_LOCKED if another opener holds the directory */
    printf("opened %s\n", dir);

    /* 3. Put: keys and values are byte strings with explicit lengths. */
    const char *key = "greeting";
    const char *value = "hello, bitcask";
    if (failed("put", bitcask_put(db, key, strlen(key), value, strlen(value))))
        goto done;
    printf("put %s = %s\n", key, value);

    /* 4a. Get: the library allocates a copy; release it with bitcask_free. */
    void *got = NULL;
    size_t got_len = 0;
    if (failed("get", bitcask_get(db, key, strlen(key), &got, &got_len)))
        goto done;
    printf("get %s -> %.*s (%zu bytes)\n", key, (int)got_len, (const char *)got, got_len);
    bitcask_free(got); /* never plain free() */

    /* 4b. Get into your own buffer. First ask for the size with (NULL, 0):
     *     BITCASK_BUFFER_TOO_SMALL means "here is the size you need". */
    size_t need = 0;
    s = bitcask_get_into(db, key, strlen(key), NULL, 0, &need);
    if (s != BITCASK_BUFFER_TOO_SMALL && failed("get_into (size)", s))
        goto done;
    printf("get_into size query: %zu bytes needed\n", need);
    char *buf = malloc(need + 1);
    if (buf == NULL)
        goto done;
    size_t len = 0;
    s = bitcask_get_into(db, key, strlen(key), buf, need, &len);
    if (failed("get_into", s)) {
        free(buf); /* our own buffer: plain free */
        goto done;
    }
    buf[len] = '\0';
    printf("get_into -> %s\n", buf);
    free(buf);

    /* 5. Delete, then show that the key is gone (NOT_FOUND is not an error). */
    if (failed("delete", bitcask_delete(db, key, strlen(key))))
        goto done;
    s = bitcask_get(db, key, strlen(key), &got, &got_len);
    printf("after delete, get %s -> %s\n", key, bitcask_status_str(s));
    if (s == BITCASK_OK) { /* would be a bug: still there */
        bitcask_free(got);
        goto done;
    }
    if (s != BITCASK_NOT_FOUND && failed("get after delete", s))
        goto done;

    /* 6. Sync: flush everything to disk (close does this too). */
    if (failed("sync", bitcask_sync(db)))
        goto done;
    printf("synced\n");
    rc = 0;

done:
    /* 7. Close: syncs, unlocks and frees the handle, even if it reports an
     *    error. Do not use db afterwards. */
    s = bitcask_close(db);
    if (failed("close", s))
        rc = 1;
    else
        printf("closed\n");
    return rc;
}
