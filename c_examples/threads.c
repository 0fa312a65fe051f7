/*
 * threads.c - one libbitcask handle shared by several threads.
 *
 * Build and run (after `make install PREFIX=$HOME/.local`, for example):
 *   cc -std=c11 -pthread threads.c -o threads $(pkg-config --cflags --libs bitcask)
 *   ./threads ./threads-db
 *
 * Any number of threads may call any function on one bitcask_db at once
 * (gets run in parallel with each other and with writes; writes are
 * serialized), except bitcask_close, which must be the last call: here
 * main closes after joining every thread. bitcask_last_error() is per
 * thread, so each thread reports its own failures.
 */
#include <bitcask.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { WRITERS = 4, READERS = 2, KEYS_PER_WRITER = 2000, SHARED_KEYS = 100 };

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

struct job {
    bitcask_db *db;
    int id;
    int errors;  /* calls that failed */
    long checked; /* reader: values found as written */
};

/* A writer puts its own keys "w<id>:<n>" = "<n>". */
static void *writer(void *arg)
{
    struct job *job = arg;
    for (int n = 0; n < KEYS_PER_WRITER; n++) {
        char key[32], value[32];
        int klen = snprintf(key, sizeof key, "w%d:%06d", job->id, n);
        int vlen = snprintf(value, sizeof value, "%d", n);
        if (failed("put", bitcask_put(job->db, key, (size_t)klen, value, (size_t)vlen)))
            job->errors++;
    }
    return NULL;
}

/* A reader gets the shared keys, written before the threads started, over
 * and over while the writers write, and checks each value. */
static void *reader(void *arg)
{
    struct job *job = arg;
    for (int round = 0; round < 50; round++) {
        for (int n = 0; n < SHARED_KEYS; n++) {
            char key[32], want[32], got[32];
            size_t len = 0;
            int klen = snprintf(key, sizeof key, "shared:%03d", n);
            int wlen = snprintf(want, sizeof want, "value %d", n);
            bitcask_status s = bitcask_get_into(job->db, key, (size_t)klen, got, sizeof got, &len);
            if (failed("get_into", s))
                job->errors++;
            else if (len == (size_t)wlen && memcmp(got, want, len) == 0)
                job->checked++;
            else
                job->errors++;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "./threads-db";
    bitcask_db *db = NULL;
    pthread_t threads[WRITERS + READERS];
    struct job jobs[WRITERS + READERS];
    int started = 0, rc = 1;

    if (failed("open", bitcask_open(dir, NULL, &db)))
        return 1;
    for (int n = 0; n < SHARED_KEYS; n++) {
        char key[32], value[32];
        int klen = snprintf(key, sizeof key, "shared:%03d", n);
        int vlen = snprintf(value, sizeof value, "value %d", n);
        if (failed("put", bitcask_put(db, key, (size_t)klen, value, (size_t)vlen)))
            goto done;
    }

    for (int t = 0; t < WRITERS + READERS; t++) {
        jobs[t] = (struct job){.db = db, .id = t};
        if (pthread_create(&threads[t], NULL, t < WRITERS ? writer : reader, &jobs[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            break;
        }
        started++;
    }
    int errors = 0;
    long checked = 0;
    for (int t = 0; t < started; t++) { /* every thread ends before close */
        pthread_join(threads[t], NULL);
        errors += jobs[t].errors;
        checked += jobs[t].checked;
    }
    if (started < WRITERS + READERS || errors > 0)
        goto done;
    printf("%d writers put %d keys each while %d readers checked %ld values\n", WRITERS,
           KEYS_PER_WRITER, READERS, checked);

    bitcask_stats st;
    if (failed("get_stats", bitcask_get_stats(db, &st)))
        goto done;
    printf("key_count %llu (expected %d)\n", (unsigned long long)st.key_count,
           WRITERS * KEYS_PER_WRITER + SHARED_KEYS);
    if (st.key_count == (unsigned long long)(WRITERS * KEYS_PER_WRITER + SHARED_KEYS))
        rc = 0;

done:
    if (failed("close", bitcask_close(db))) /* the last call on the handle */
        rc = 1;
    return rc;
}
