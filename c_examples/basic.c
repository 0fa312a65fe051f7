/*
 * basic.c - a first program with libbitcask.
 *
 * Build and run (after `make install PREFIX=$HOME/.local`, for example):
 *   cc -std=c11 basic.c -o basic $(pkg-config --cflags --libs bitcask)
 *   ./basic ./example-db
 *
 * It also makes a backup into "<dir>-backup" (./example-db-backup here),
 * which must not exist yet, or be empty: remove both to run it again.
 *
 * Every fallible bitcask_* call returns a bitcask_status; BITCASK_OK (0) is
 * success. On failure, bitcask_last_error() tells you what went wrong.
 *
 * The other examples: iterate.c (ordered iteration, prefixes, seek, fold),
 * batch.c (all-or-nothing write batches), threads.c (one handle shared by
 * several threads).
 */
#include <bitcask.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints why a call failed; returns 1 if s is not OK. bitcask_last_error()
 * already starts with the kind of failure ("locked: ...", "I/O error: ..."),
 * so it is printed alone. BITCASK_NOT_FOUND and BITCASK_BUFFER_TOO_SMALL
 * leave it unset (they are answers more than failures): for those, the
 * status name says it all. */
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

/* Prints what bitcask_get_stats reports. */
static void print_stats(const char *when, const bitcask_stats *st)
{
    printf("%s: key_count %llu, data_file_count %llu, reclaimable_bytes %llu, disk_bytes %llu\n",
           when, (unsigned long long)st->key_count, (unsigned long long)st->data_file_count,
           (unsigned long long)st->reclaimable_bytes, (unsigned long long)st->disk_bytes);
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

    /* 7. Merge. An overwrite or delete only appends: the old record stays in
     *    the data files until a merge rewrites the live records and deletes
     *    the old files. bitcask_get_stats says how much a merge would free.
     *    Here 5 keys are written 10 times each, so 45 values are dead. */
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 5; i++) {
            char k[16], v[200];
            int klen = snprintf(k, sizeof k, "counter:%d", i);
            memset(v, 'a' + round, sizeof v); /* the last round writes "jjj..." */
            if (failed("put", bitcask_put(db, k, (size_t)klen, v, sizeof v)))
                goto done;
        }
    }
    bitcask_stats st;
    if (failed("get_stats", bitcask_get_stats(db, &st)))
        goto done;
    print_stats("before merge", &st);
    /* Merge runs online: other threads may go on reading and writing. The
     * database also merges by itself, in the background, when enough of it
     * is reclaimable: see bitcask_options_set_auto_merge_ratio. */
    if (failed("merge", bitcask_merge(db)))
        goto done;
    if (failed("get_stats", bitcask_get_stats(db, &st)))
        goto done;
    print_stats("after merge", &st);

    /* 8. Backup: a consistent copy, made while the database stays open, that
     *    opens as a database of its own. The destination must be missing (it
     *    is created) or an empty directory. */
    char backup_dir[4096];
    if (snprintf(backup_dir, sizeof backup_dir, "%s-backup", dir) >= (int)sizeof backup_dir)
        goto done;
    if (failed("backup", bitcask_backup(db, backup_dir)))
        goto done;
    printf("backed up to %s\n", backup_dir);
    bitcask_db *copy = NULL;
    if (failed("open backup", bitcask_open(backup_dir, NULL, &copy)))
        goto done;
    s = bitcask_get(copy, "counter:0", 9, &got, &got_len);
    if (s == BITCASK_OK) {
        printf("in the backup, counter:0 -> %zu bytes of '%c'\n", got_len, *(const char *)got);
        bitcask_free(got);
    }
    if (failed("get from backup", s)) {
        bitcask_close(copy);
        goto done;
    }
    if (failed("close backup", bitcask_close(copy)))
        goto done;
    rc = 0;

done:
    /* 9. Close: syncs, unlocks and frees the handle, even if it reports an
     *    error. Do not use db afterwards. */
    s = bitcask_close(db);
    if (failed("close", s))
        rc = 1;
    else
        printf("closed\n");
    return rc;
}
