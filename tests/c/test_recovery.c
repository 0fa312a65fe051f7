/* C tests of recovery: bitcask_get_recovery_report and
   bitcask_get_recovery_text after a clean open and after garbage appended
   to the newest data file (cut into a quarantine file, every record kept),
   bitcask_options_set_strict_recovery (refuses that tail, cuts zeros),
   bitcask_verify (a clean database, a flipped byte in a sealed file found
   with its file and offset and counted as refused at open, and beside a
   handle that has the database open), bitcask_repair (after which the
   database opens with every intact record, and verify is clean),
   bitcask_options_set_checkpoint_bytes (a writer killed after a checkpoint:
   the next open loads it, reads what followed, and every key is there),
   and every NULL or bad argument. Last line: "N passed, N failed". */
#define _DEFAULT_SOURCE
#include <bitcask.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
#define CHECK(cond) do { if (cond) passed++; else { failed++; \
    fprintf(stderr, "%s:%d: CHECK(%s) failed (%s)\n", __FILE__, __LINE__, #cond, \
            bitcask_last_error()); } } while (0)

static char root[64];

static void fresh_root(void) {
    strcpy(root, "/tmp/bitcask-ctest-recovery-XXXXXX");
    if (!mkdtemp(root)) { perror("mkdtemp"); exit(2); }
}

static void remove_root(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", root);
}

static const char *path_in(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", root, name);
    return buf;
}

/* The name of the n-th data file (in name order), or NULL. */
static const char *data_file(int n) {
    static char names[64][256];
    int count = 0;
    DIR *d = opendir(root);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && count < 64) {
        size_t len = strlen(e->d_name);
        if (len > 5 && len < 64 && strcmp(e->d_name + len - 5, ".data") == 0)
            snprintf(names[count++], sizeof names[0], "%s", e->d_name);
    }
    if (d) closedir(d);
    qsort(names, (size_t)count, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    if (n < 0) n += count;
    return n >= 0 && n < count ? names[n] : NULL;
}

static int count_suffix(const char *suffix) {
    int count = 0;
    DIR *d = opendir(root);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name), m = strlen(suffix);
        if (n >= m && strcmp(e->d_name + n - m, suffix) == 0) count++;
    }
    if (d) closedir(d);
    return count;
}

static long file_size(const char *name) {
    struct stat st;
    return stat(path_in(name), &st) == 0 ? (long)st.st_size : -1;
}

static void append_bytes(const char *name, const void *bytes, size_t n) {
    FILE *f = fopen(path_in(name), "ab");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) { perror("append"); exit(2); }
}

static void write_byte(const char *name, long at, unsigned char byte) {
    FILE *f = fopen(path_in(name), "r+b");
    if (!f || fseek(f, at, SEEK_SET) != 0 || fputc(byte, f) == EOF || fclose(f) != 0) {
        perror("write byte");
        exit(2);
    }
}

static bitcask_options *small_files(void) {
    bitcask_options *o = bitcask_options_new();
    bitcask_options_set_data_file_size(o, 4096);
    bitcask_options_set_auto_merge_ratio(o, 0.0);
    return o;
}

#define KEYS 200

static void fill(bitcask_db *db) {
    for (int i = 0; i < KEYS; i++) {
        char key[16], value[64];
        snprintf(key, sizeof key, "key-%03d", i);
        snprintf(value, sizeof value, "value of key %03d, some padding", i);
        CHECK(bitcask_put(db, key, strlen(key), value, strlen(value)) == BITCASK_OK);
    }
}

/* How many keys hold their value; the rest must be absent (never wrong). */
static int intact_keys(bitcask_db *db) {
    int intact = 0;
    for (int i = 0; i < KEYS; i++) {
        char key[16], value[64];
        snprintf(key, sizeof key, "key-%03d", i);
        snprintf(value, sizeof value, "value of key %03d, some padding", i);
        void *got = NULL;
        size_t len = 0;
        bitcask_status s = bitcask_get(db, key, strlen(key), &got, &len);
        if (s == BITCASK_OK) {
            CHECK(len == strlen(value) && memcmp(got, value, len) == 0);
            intact++;
            bitcask_free(got);
        } else {
            CHECK(s == BITCASK_NOT_FOUND);
        }
    }
    return intact;
}

static void test_report_after_a_clean_open_and_after_a_garbage_tail(void) {
    fresh_root();
    bitcask_options *o = small_files();
    bitcask_db *db = NULL;
    CHECK(bitcask_open(root, o, &db) == BITCASK_OK);
    bitcask_recovery_report r;
    memset(&r, 0xFF, sizeof r);
    CHECK(bitcask_get_recovery_report(db, &r) == BITCASK_OK);
    CHECK(r.tail_file_id == 0 && r.tail_bytes_cut == 0 && r.zero_bytes_cut == 0);
    CHECK(r.header_rewritten == 0);
    fill(db);
    CHECK(bitcask_close(db) == BITCASK_OK);

    const char *newest = data_file(-1);
    CHECK(newest != NULL);
    char name[64];
    snprintf(name, sizeof name, "%s", newest);
    long len = file_size(name);
    append_bytes(name, "\x17garbage after a clean close", 28);

    /* strict_recovery refuses, naming the file; nothing is cut. */
    bitcask_options_set_strict_recovery(o, true);
    db = NULL;
    CHECK(bitcask_open(root, o, &db) == BITCASK_CORRUPTION);
    CHECK(db == NULL);
    CHECK(strstr(bitcask_last_error(), name) != NULL);
    CHECK(strstr(bitcask_last_error(), "strict_recovery") != NULL);
    CHECK(file_size(name) == len + 28);

    bitcask_options_set_strict_recovery(o, false);
    CHECK(bitcask_open(root, o, &db) == BITCASK_OK);
    CHECK(bitcask_get_recovery_report(db, &r) == BITCASK_OK);
    CHECK(r.tail_file_id == (uint64_t)strtoull(name, NULL, 10));
    CHECK(r.tail_offset == (uint64_t)len && r.tail_bytes_cut == 28);
    CHECK(r.tail_quarantined_bytes == 28);
    CHECK(r.files_scanned >= 1);
    CHECK(count_suffix(".quarantine") == 1);
    CHECK(intact_keys(db) == KEYS);

    /* The text: a size query, too small a buffer, then the whole text. */
    size_t needed = 0;
    CHECK(bitcask_get_recovery_text(db, NULL, 0, &needed) == BITCASK_BUFFER_TOO_SMALL);
    CHECK(needed > 1);
    char small[4] = "abc";
    size_t len_out = 0;
    CHECK(bitcask_get_recovery_text(db, small, sizeof small, &len_out) == BITCASK_BUFFER_TOO_SMALL);
    CHECK(len_out == needed && strcmp(small, "abc") == 0);
    char *text = malloc(needed);
    CHECK(bitcask_get_recovery_text(db, text, needed, &len_out) == BITCASK_OK);
    CHECK(len_out == needed - 1 && strlen(text) == len_out);
    CHECK(strstr(text, "quarantine") != NULL && strstr(text, name) != NULL);
    free(text);

    /* Bad arguments. */
    CHECK(bitcask_get_recovery_report(NULL, &r) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_get_recovery_report(db, NULL) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_get_recovery_text(db, NULL, 5, &len_out) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_get_recovery_text(db, small, sizeof small, NULL) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_get_recovery_text(NULL, small, sizeof small, &len_out) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_options_set_strict_recovery(NULL, true) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_close(db) == BITCASK_OK);
    bitcask_options_free(o);
    remove_root();
}

static void test_verify_and_repair_a_flipped_byte_in_a_sealed_file(void) {
    fresh_root();
    bitcask_options *o = small_files();
    bitcask_db *db = NULL;
    CHECK(bitcask_open(root, o, &db) == BITCASK_OK);
    fill(db);
    CHECK(bitcask_close(db) == BITCASK_OK);

    bitcask_verify_report v;
    memset(&v, 0xFF, sizeof v);
    CHECK(bitcask_verify(root, &v) == BITCASK_OK);
    CHECK(v.damaged_ranges == 0 && v.hint_problems == 0 && v.lost_values == 0);
    CHECK(v.records == KEYS && v.data_files >= 3);
    CHECK(v.first_damaged_file_id == 0 && v.first_damaged_offset == 0);

    /* A flipped byte in the second data file, its hint file gone. */
    char name[64], hint[64];
    snprintf(name, sizeof name, "%s", data_file(1));
    snprintf(hint, sizeof hint, "%.9s.hint", name);
    CHECK(remove(path_in(hint)) == 0);
    long at = file_size(name) / 2;
    write_byte(name, at, 0xA5);

    db = NULL;
    CHECK(bitcask_open(root, o, &db) == BITCASK_CORRUPTION);
    CHECK(strstr(bitcask_last_error(), name) != NULL);
    CHECK(strstr(bitcask_last_error(), "repair") != NULL);

    CHECK(bitcask_verify(root, &v) == BITCASK_OK);
    CHECK(v.damaged_ranges == 1 && v.ranges_refused_at_open == 1);
    CHECK(v.first_damaged_file_id == (uint64_t)strtoull(name, NULL, 10));
    CHECK(v.first_damaged_offset <= (uint64_t)at);
    CHECK(v.first_damaged_offset + v.damaged_bytes > (uint64_t)at);

    /* Repair: the database opens, every key but the damaged one's intact. */
    bitcask_repair_report rep;
    CHECK(bitcask_repair(root, 2, &rep) == BITCASK_INVALID_ARGUMENT);
    CHECK(strstr(bitcask_last_error(), "flags") != NULL);
    CHECK(bitcask_repair(root, 0, NULL) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_repair(NULL, 0, &rep) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_repair(path_in("missing"), 0, &rep) == BITCASK_IO);
    memset(&rep, 0xFF, sizeof rep);
    CHECK(bitcask_repair(root, 0, &rep) == BITCASK_OK);
    CHECK(rep.damaged_ranges == 1 && rep.files_rewritten == 1);
    CHECK(rep.quarantine_files_written == 1 && rep.bytes_quarantined > 0);
    CHECK(rep.records_kept == KEYS - 1);
    CHECK(rep.records_restored == 0 && rep.lost_values == 0);
    CHECK(count_suffix(".quarantine") == 1);
    CHECK(bitcask_open(root, o, &db) == BITCASK_OK);
    CHECK(intact_keys(db) == KEYS - 1);

    /* Repair refuses an open database; verify runs beside it, and finds
       every record the open database holds, and no damage. */
    CHECK(bitcask_repair(root, 0, &rep) == BITCASK_LOCKED);
    memset(&v, 0xFF, sizeof v);
    CHECK(bitcask_verify(root, &v) == BITCASK_OK);
    CHECK(v.damaged_ranges == 0 && v.hint_problems == 0 && v.lost_values == 0);
    CHECK(v.records == KEYS - 1);
    CHECK(bitcask_close(db) == BITCASK_OK);

    CHECK(bitcask_verify(root, &v) == BITCASK_OK);
    CHECK(v.damaged_ranges == 0 && v.hint_problems == 0 && v.quarantine_files == 1);
    CHECK(bitcask_verify(NULL, &v) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_verify(root, NULL) == BITCASK_INVALID_ARGUMENT);
    bitcask_options_free(o);
    remove_root();
}

/* A child writes half the keys with a checkpoint every 4 KiB, waits for
   the checkpoint (the KEYDIR file), writes the rest and is killed; the next open loads the checkpoint, reads what followed it and
   finds every key. */
static void test_a_checkpoint_then_a_crash(void) {
    fresh_root();
    bitcask_options *o = bitcask_options_new();
    CHECK(bitcask_options_set_checkpoint_bytes(NULL, 4096) == BITCASK_INVALID_ARGUMENT);
    CHECK(bitcask_last_error()[0] != '\0');
    CHECK(bitcask_options_set_checkpoint_bytes(o, 4096) == BITCASK_OK);
    CHECK(bitcask_options_set_auto_merge_ratio(o, 0.0) == BITCASK_OK);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        bitcask_db *db = NULL;
        if (bitcask_open(root, o, &db) != BITCASK_OK) _exit(3);
        for (int i = 0; i < KEYS; i++) {
            char key[16], value[64];
            snprintf(key, sizeof key, "key-%03d", i);
            snprintf(value, sizeof value, "value of key %03d, some padding", i);
            if (bitcask_put(db, key, strlen(key), value, strlen(value)) != BITCASK_OK) _exit(4);
            if (i == KEYS / 2) {
                /* The checkpoint, taken by the background thread. */
                struct stat st;
                int waited = 0;
                while (stat(path_in("KEYDIR"), &st) != 0 && waited++ < 1000) {
                    struct timespec ms = {0, 10 * 1000 * 1000};
                    nanosleep(&ms, NULL);
                }
                if (waited > 1000) _exit(5);
            }
        }
        /* No close: killed, as a crash leaves it (and before valgrind,
           when it runs the test, counts the handle never freed). */
        kill(getpid(), SIGKILL);
        _exit(6);
    }
    int status = 0;
    CHECK(child > 0 && waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    bitcask_db *db = NULL;
    CHECK(bitcask_open(root, o, &db) == BITCASK_OK);
    CHECK(intact_keys(db) == KEYS);
    char text[1024];
    size_t len_out = 0;
    CHECK(bitcask_get_recovery_text(db, text, sizeof text, &len_out) == BITCASK_OK);
    CHECK(strstr(text, "KEYDIR") != NULL && strstr(text, "written after it") != NULL);
    CHECK(bitcask_close(db) == BITCASK_OK);
    bitcask_options_free(o);
    remove_root();
}

int main(void) {
    test_report_after_a_clean_open_and_after_a_garbage_tail();
    test_a_checkpoint_then_a_crash();
    test_verify_and_repair_a_flipped_byte_in_a_sealed_file();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
