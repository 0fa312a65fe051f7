/*
 * batch.c - all-or-nothing writes with a libbitcask write batch.
 *
 * Build and run (after `make install PREFIX=$HOME/.local`, for example):
 *   cc -std=c11 batch.c -o batch $(pkg-config --cflags --libs bitcask)
 *   ./batch ./batch-db
 *
 * The puts and deletes of a batch become visible, and durable, together or
 * not at all, also across a crash: open applies a batch only if its commit
 * record was written. Here a transfer between two accounts changes both
 * balances and removes a pending-transfer key in one batch.
 */
#include <bitcask.h>

#include <stdio.h>
#include <stdlib.h>
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

/* Reads a balance stored as decimal text; returns 1 on failure. */
static int balance(bitcask_db *db, const char *account, long *out)
{
    char buf[32];
    size_t len = 0;
    bitcask_status s = bitcask_get_into(db, account, strlen(account), buf, sizeof buf - 1, &len);
    if (failed(account, s))
        return 1;
    buf[len] = '\0';
    *out = strtol(buf, NULL, 10);
    return 0;
}

static void print_balances(bitcask_db *db, const char *when)
{
    long a = 0, b = 0;
    if (balance(db, "account:alice", &a) == 0 && balance(db, "account:bob", &b) == 0)
        printf("%s: alice %ld, bob %ld, pending transfer %s\n", when, a, b,
               bitcask_get_into(db, "transfer:1", 10, NULL, 0, &(size_t){0}) == BITCASK_NOT_FOUND
                   ? "none"
                   : "present");
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "./batch-db";
    bitcask_db *db = NULL;
    bitcask_batch *batch = NULL;
    int rc = 1;

    /* sync_writes: a committed batch is on stable storage when commit returns. */
    bitcask_options *opts = bitcask_options_new();
    if (opts == NULL || failed("set_sync_writes", bitcask_options_set_sync_writes(opts, true))) {
        bitcask_options_free(opts);
        return 1;
    }
    bitcask_status s = bitcask_open(dir, opts, &db);
    bitcask_options_free(opts);
    if (failed("open", s))
        return 1;

    if (failed("put", bitcask_put(db, "account:alice", 13, "100", 3)) ||
        failed("put", bitcask_put(db, "account:bob", 11, "20", 2)) ||
        failed("put", bitcask_put(db, "transfer:1", 10, "alice->bob 30", 13)))
        goto done;
    print_balances(db, "before");

    /* 1. Build the batch: nothing is written until commit. */
    if (failed("batch_new", bitcask_batch_new(db, &batch)) ||
        failed("batch_put", bitcask_batch_put(batch, "account:alice", 13, "70", 2)) ||
        failed("batch_put", bitcask_batch_put(batch, "account:bob", 11, "50", 2)) ||
        failed("batch_delete", bitcask_batch_delete(batch, "transfer:1", 10)))
        goto done;
    print_balances(db, "batch built, not committed");

    /* 2. A bad operation is refused and leaves the batch as it was. */
    s = bitcask_batch_put(batch, "", 0, "x", 1);
    printf("an empty key is refused: ");
    fflush(stdout);
    failed("batch_put", s); /* prints the library's detail, once */

    /* 3. Commit: the three changes become visible together. */
    if (failed("batch_commit", bitcask_batch_commit(batch)))
        goto done;
    print_balances(db, "after commit");

    /* 4. A batch freed without commit changes nothing. Commit empties a
     *    batch for reuse; it is still freed with bitcask_batch_free. */
    if (failed("batch_put", bitcask_batch_put(batch, "account:alice", 13, "0", 1)))
        goto done;
    bitcask_batch_free(batch);
    batch = NULL;
    print_balances(db, "after a batch dropped without commit");
    rc = 0;

done:
    bitcask_batch_free(batch); /* NULL is a no-op */
    if (failed("close", bitcask_close(db)))
        rc = 1;
    return rc;
}
