/* What concurrent readers see, from C (issue 13): a committed batch all at
   once, and iterators and folds as point-in-time snapshots, on both index
   types, with sync_writes off and on, one configuration with a merge
   running meanwhile.

   A writer thread moves a group of keys from generation g to g + 1 with one
   batch each: every key gets the value "g" (8 bytes, then filler), except
   that every fourth batch deletes a fifth of the keys instead, and every
   sixteenth has 4 KiB values, larger than a data file (64 KiB files). A
   reader thread checks every iterator (forward and reverse) and every fold:
   one generation, with exactly its keys, never older than the reader's
   last; another does gets of every key in key order: never a key newer
   than a later one. The work is a number of snapshots, not a time.

   Last line: "N passed, N failed". */
#define _DEFAULT_SOURCE
#include <bitcask.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP 32
#define SNAPSHOTS 120
#define GET_PASSES 120
#define BIG 4096
#define SMALL 24

static atomic_int passed, failed;
static char dir[64];

static void fail(const char *config, const char *what) {
    if (atomic_fetch_add(&failed, 1) < 20)
        fprintf(stderr, "%s: %s (last error: %s)\n", config, what, bitcask_last_error());
}

static void make_key(int i, char *out) { snprintf(out, 16, "grp-%05d", i); }

static int deleted(uint64_t g, int i) { return g % 4 == 3 && (i + g) % 5 == 0; }

static size_t value_len(uint64_t g) { return 8 + (g % 16 == 15 ? BIG : SMALL); }

static void make_value(uint64_t g, unsigned char *out) {
    memcpy(out, &g, 8);
    memset(out + 8, (int)(g % 251), value_len(g) - 8);
}

/* The generation of a value, or UINT64_MAX if the value is not one the
   writer wrote. */
static uint64_t generation_of(const void *v, size_t len) {
    uint64_t g;
    if (len < 8) return UINT64_MAX;
    memcpy(&g, v, 8);
    if (len != value_len(g)) return UINT64_MAX;
    for (size_t i = 8; i < len; i++)
        if (((const unsigned char *)v)[i] != (unsigned char)(g % 251)) return UINT64_MAX;
    return g;
}

struct config {
    const char *name;
    bitcask_index_type index;
    bool sync;
    bool merge;
};

struct shared {
    const struct config *config;
    bitcask_db *db;
    atomic_bool stop;
    atomic_long snapshots, reads;
    uint64_t generations;
};

static void *writer(void *arg) {
    struct shared *sh = arg;
    static unsigned char v[8 + BIG];
    uint64_t g = 0;
    while (!atomic_load(&sh->stop)) {
        g++;
        bitcask_batch *b = NULL;
        if (bitcask_batch_new(sh->db, &b) != BITCASK_OK) { fail(sh->config->name, "batch_new"); break; }
        make_value(g, v);
        for (int i = 0; i < GROUP; i++) {
            char k[16];
            make_key(i, k);
            bitcask_status s = deleted(g, i) ? bitcask_batch_delete(b, k, strlen(k))
                                             : bitcask_batch_put(b, k, strlen(k), v, value_len(g));
            if (s != BITCASK_OK) fail(sh->config->name, "batch put/delete");
        }
        if (bitcask_batch_commit(b) != BITCASK_OK) fail(sh->config->name, "batch commit");
        bitcask_batch_free(b);
    }
    sh->generations = g;
    return NULL;
}

static void *merger(void *arg) {
    struct shared *sh = arg;
    while (!atomic_load(&sh->stop))
        if (bitcask_merge(sh->db) != BITCASK_OK) { fail(sh->config->name, "merge"); break; }
    return NULL;
}

/* One snapshot, collected as generations by key index (-1: absent). */
struct snap {
    long gen[GROUP];
    int count;
    bool bad;
};

static void snap_init(struct snap *sn) {
    memset(sn, 0, sizeof *sn);
    for (int i = 0; i < GROUP; i++) sn->gen[i] = -1;
}

static void snap_add(struct snap *sn, const void *key, size_t klen, const void *v, size_t vlen) {
    char k[16];
    int i;
    if (klen != 9 || sscanf((const char *)key + 4, "%5d", &i) != 1 || i < 0 || i >= GROUP) {
        sn->bad = true;
        return;
    }
    make_key(i, k);
    uint64_t g = generation_of(v, vlen);
    if (memcmp(k, key, 9) != 0 || g == UINT64_MAX || sn->gen[i] != -1) sn->bad = true;
    else sn->gen[i] = (long)g;
    sn->count++;
}

/* Checks a snapshot: one generation, with exactly its keys, not older than
   *seen. */
static void check_snap(struct shared *sh, const struct snap *sn, uint64_t *seen) {
    long g = -1;
    for (int i = 0; i < GROUP && g < 0; i++) g = sn->gen[i];
    if (sn->bad || g < 0) { fail(sh->config->name, "snapshot with a foreign, damaged or no key"); return; }
    for (int i = 0; i < GROUP; i++) {
        if (sn->gen[i] >= 0 && sn->gen[i] != g) { fail(sh->config->name, "mixed generations in one snapshot"); return; }
        if ((sn->gen[i] < 0) != (deleted((uint64_t)g, i) != 0)) { fail(sh->config->name, "a snapshot lacks a key of its generation, or has one it deletes"); return; }
    }
    if ((uint64_t)g < *seen) { fail(sh->config->name, "snapshot older than the reader's last read"); return; }
    *seen = (uint64_t)g;
    atomic_fetch_add(&passed, 1);
}

static int fold_cb(void *ctx, const void *key, size_t klen, const void *v, size_t vlen) {
    snap_add(ctx, key, klen, v, vlen);
    return 0;
}

static void *snapshot_reader(void *arg) {
    struct shared *sh = arg;
    uint64_t seen = 0;
    for (int n = 0; n < SNAPSHOTS; n++) {
        struct snap sn;
        snap_init(&sn);
        if (n % 3 == 2) {
            if (bitcask_fold(sh->db, "grp-", 4, fold_cb, &sn) != BITCASK_OK) { fail(sh->config->name, "fold"); continue; }
        } else {
            bitcask_iter *it = NULL;
            if (bitcask_iter_new(sh->db, "grp-", 4, n % 3 == 1, &it) != BITCASK_OK) { fail(sh->config->name, "iter_new"); continue; }
            for (; bitcask_iter_valid(it); bitcask_iter_next(it)) {
                size_t klen, vlen;
                const void *v;
                const void *k = bitcask_iter_key(it, &klen);
                if (bitcask_iter_value(it, &v, &vlen) != BITCASK_OK) { sn.bad = true; break; }
                snap_add(&sn, k, klen, v, vlen);
            }
            bitcask_iter_free(it);
        }
        atomic_fetch_add(&sh->reads, sn.count);
        check_snap(sh, &sn, &seen);
        atomic_fetch_add(&sh->snapshots, 1);
    }
    return NULL;
}

/* Gets of every key in key order: generations never go down along the
   pass (nor from one pass to the next); an absent key moves the reader on
   to the first generation that deletes it. */
static void *get_reader(void *arg) {
    struct shared *sh = arg;
    static unsigned char buf[8 + BIG];
    uint64_t seen = 0;
    for (int n = 0; n < GET_PASSES; n++) {
        int ok = 1;
        for (int i = 0; i < GROUP && ok; i++) {
            char k[16];
            size_t len = 0;
            make_key(i, k);
            bitcask_status s = bitcask_get_into(sh->db, k, strlen(k), buf, sizeof buf, &len);
            atomic_fetch_add(&sh->reads, 1);
            if (s == BITCASK_NOT_FOUND) {
                while (!deleted(seen, i)) seen++;
            } else if (s != BITCASK_OK) {
                fail(sh->config->name, "get_into");
                ok = 0;
            } else {
                uint64_t g = generation_of(buf, len);
                if (g == UINT64_MAX || deleted(g, i)) { fail(sh->config->name, "get: a value no generation has there"); ok = 0; }
                else if (g < seen) { fail(sh->config->name, "get: a key older than one read before it (out of order)"); ok = 0; }
                else seen = g;
            }
        }
        if (ok) atomic_fetch_add(&passed, 1);
    }
    return NULL;
}

static void run(const struct config *c) {
    static unsigned char v[8 + BIG];
    struct shared sh;
    memset(&sh, 0, sizeof sh);
    sh.config = c;
    strcpy(dir, "/tmp/bitcask-ctest-snapshot-XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    bitcask_options *o = bitcask_options_new();
    if (bitcask_options_set_index_type(o, c->index) != BITCASK_OK
        || bitcask_options_set_sync_writes(o, c->sync) != BITCASK_OK
        || bitcask_options_set_data_file_size(o, 64 << 10) != BITCASK_OK
        || bitcask_options_set_auto_merge_ratio(o, 0.0) != BITCASK_OK
        || bitcask_open(dir, o, &sh.db) != BITCASK_OK) {
        fprintf(stderr, "%s: open: %s\n", c->name, bitcask_last_error());
        exit(2);
    }
    bitcask_options_free(o);
    make_value(0, v);
    for (int i = 0; i < GROUP; i++) {
        char k[16];
        make_key(i, k);
        if (bitcask_put(sh.db, k, strlen(k), v, value_len(0)) != BITCASK_OK) fail(c->name, "put");
    }
    pthread_t w, m, r1, r2;
    pthread_create(&w, NULL, writer, &sh);
    if (c->merge) pthread_create(&m, NULL, merger, &sh);
    pthread_create(&r1, NULL, snapshot_reader, &sh);
    pthread_create(&r2, NULL, get_reader, &sh);
    pthread_join(r1, NULL);
    pthread_join(r2, NULL);
    atomic_store(&sh.stop, true);
    pthread_join(w, NULL);
    if (c->merge) pthread_join(m, NULL);
    if (bitcask_close(sh.db) != BITCASK_OK) fail(c->name, "close");
    printf("%s: %ld snapshots and %d get passes checked (%ld reads), over %llu generations\n",
           c->name, atomic_load(&sh.snapshots), GET_PASSES, atomic_load(&sh.reads),
           (unsigned long long)sh.generations);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", dir);
}

/* The control: the checks fail on a torn batch and on reads going back. */
static void control(void) {
    struct config c = {"control", BITCASK_INDEX_HASH, false, false};
    struct shared sh;
    memset(&sh, 0, sizeof sh);
    sh.config = &c;
    struct snap sn;
    unsigned char v[8 + BIG];
    uint64_t seen = 0;
    int before = atomic_load(&failed);
    snap_init(&sn);
    for (int i = 0; i < GROUP; i++) {
        char k[16];
        make_key(i, k);
        make_value(i < GROUP / 2 ? 5 : 4, v); /* half the batch applied */
        snap_add(&sn, k, 9, v, value_len(i < GROUP / 2 ? 5 : 4));
    }
    fprintf(stderr, "control, expected to fail: ");
    check_snap(&sh, &sn, &seen);
    snap_init(&sn);
    for (int i = 0; i < GROUP; i++) {
        char k[16];
        make_key(i, k);
        make_value(2, v);
        snap_add(&sn, k, 9, v, value_len(2));
    }
    seen = 9;
    fprintf(stderr, "control, expected to fail: ");
    check_snap(&sh, &sn, &seen); /* generation 2 after 9 */
    int caught = atomic_load(&failed) - before;
    atomic_store(&failed, before);
    if (caught == 2) atomic_fetch_add(&passed, 1);
    else { atomic_fetch_add(&failed, 1); fprintf(stderr, "the controls were not caught (%d of 2)\n", caught); }
}

int main(void) {
    static const struct config configs[] = {
        {"ordered index, sync_writes off", BITCASK_INDEX_ORDERED, false, false},
        {"hash index, sync_writes off", BITCASK_INDEX_HASH, false, false},
        {"ordered index, sync_writes on, merging", BITCASK_INDEX_ORDERED, true, true},
        {"hash index, sync_writes on, merging", BITCASK_INDEX_HASH, true, true},
    };
    control();
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) run(&configs[i]);
    printf("%d passed, %d failed\n", atomic_load(&passed), atomic_load(&failed));
    return atomic_load(&failed) == 0 ? 0 : 1;
}
