/* Writes a database for test_bitcask.py's cross-language test: keys
 * "c:00000".."c:00999" with binary values (every byte value, NUL included),
 * one key deleted, two keys written by a batch. Usage: c_writer DIR */
#include <bitcask.h>

#include <stdio.h>

static int check(const char *what, bitcask_status s)
{
    if (s != BITCASK_OK)
        fprintf(stderr, "%s: %s\n", what, bitcask_last_error());
    return s != BITCASK_OK;
}

int main(int argc, char **argv)
{
    bitcask_db *db = NULL;
    bitcask_batch *batch = NULL;
    if (argc != 2 || check("open", bitcask_open(argv[1], NULL, &db)))
        return 1;
    int failed = 0;
    for (int i = 0; i < 1000 && !failed; i++) {
        char key[16];
        unsigned char value[300];
        int klen = snprintf(key, sizeof key, "c:%05d", i);
        for (int j = 0; j < (int)sizeof value; j++)
            value[j] = (unsigned char)((i + j) % 256);
        failed = check("put", bitcask_put(db, key, (size_t)klen, value, (size_t)(i % 300)));
    }
    failed = failed || check("delete", bitcask_delete(db, "c:00500", 7));
    failed = failed || check("batch_new", bitcask_batch_new(db, &batch)) ||
             check("batch_put", bitcask_batch_put(batch, "batch:a", 7, "A", 1)) ||
             check("batch_put", bitcask_batch_put(batch, "batch:b", 7, "", 0)) ||
             check("batch_commit", bitcask_batch_commit(batch));
    bitcask_batch_free(batch);
    if (check("close", bitcask_close(db)))
        failed = 1;
    return failed;
}
