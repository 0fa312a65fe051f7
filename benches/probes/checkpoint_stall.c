/* What a large file written beside a writer does to the writer's I/O: the
 * probe behind src/log/bulk_write.rs (docs/bench/defaults.md, "Checkpoints
 * that do not stall the writer").
 *
 * One thread writes a file of SIZE MiB three times over, the way a
 * checkpoint writes its keydir file (1 MiB writes, fdatasync, rename over
 * the last one), two seconds apart. The main thread meanwhile appends
 * 128 KiB at a time at about 140 MB/s (a writer's pace at 50M keys),
 * starting writeback every 8 MiB, and seals a file every 64 MiB (ftruncate,
 * fdatasync, fsync of the directory): the longest append and seal are
 * what a writer would wait.
 *
 *   cc -O2 -pthread -o /tmp/checkpoint_stall benches/probes/checkpoint_stall.c
 *   /tmp/checkpoint_stall MODE SIZE_MIB DIR      (DIR: an empty directory)
 *
 * MODE, how the big file is written and what replaces the old one:
 *   none    no big file (the control: the writer alone)
 *   plain   buffered writes; rename frees the old file at once
 *   paced   writeback of every 8 MiB started, the step before waited for
 *   direct  O_DIRECT writes
 *   stepped plain writes; the old file kept open over the rename, then cut
 *           32 MiB at a time
 *   both    paced and stepped (what bulk_write.rs does)
 * Environment: PACE_STEP_MIB (default 8), the paced writes' step;
 * FREE_STEP_MIB (default 32), how much a stepped cut frees;
 * FREE_PAUSE_MS (default 0), a pause after each cut.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1L << 20)
#define STEP (8 * MIB) /* the appender's writeback step */

static const char *mode, *dir;
static long big_size;
static volatile int done;
static double t_start;
static long free_step = 32 * MIB, free_pause_ms = 0, pace_step = 8 * MIB;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int is(const char *m) { return strcmp(mode, m) == 0; }

static void path(char *out, const char *name) { snprintf(out, 4096, "%s/%s", dir, name); }

static void *big_writer(void *arg) {
    (void)arg;
    if (is("none")) {
        sleep(20);
        done = 1;
        return NULL;
    }
    int paced = is("paced") || is("both"), stepped = is("stepped") || is("both");
    char *buf = aligned_alloc(4096, MIB);
    memset(buf, 7, MIB);
    char tmp[4096], final[4096];
    path(tmp, "BIG.tmp");
    path(final, "BIG");
    for (int round = 0; round < 3; round++) {
        double t0 = now();
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | (is("direct") ? O_DIRECT : 0), 0644);
        if (fd < 0) { perror("open"); exit(1); }
        for (long off = 0; off < big_size; off += MIB) {
            if (pwrite(fd, buf, MIB, off) != MIB) { perror("pwrite"); exit(1); }
            long end = off + MIB;
            if (paced && end % pace_step == 0) {
                sync_file_range(fd, end - pace_step, pace_step, SYNC_FILE_RANGE_WRITE);
                if (end >= 2 * pace_step)
                    sync_file_range(fd, end - 2 * pace_step, pace_step,
                                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                        SYNC_FILE_RANGE_WAIT_AFTER);
            }
        }
        double t1 = now();
        fdatasync(fd);
        close(fd);
        double t2 = now();
        int old = stepped ? open(final, O_WRONLY) : -1;
        rename(tmp, final);
        if (old >= 0) {
            for (off_t len = lseek(old, 0, SEEK_END); len > 0;) {
                len = len > free_step ? len - free_step : 0;
                ftruncate(old, len);
                if (free_pause_ms) usleep(free_pause_ms * 1000);
            }
            close(old);
        }
        double t3 = now();
        fprintf(stderr, "big file %d: written %.2f-%.2f s, synced by %.2f, replaced by %.2f\n",
                round, t0 - t_start, t1 - t_start, t2 - t_start, t3 - t_start);
        sleep(2);
    }
    done = 1;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s none|plain|paced|direct|stepped|both SIZE_MIB DIR\n", argv[0]);
        return 2;
    }
    mode = argv[1];
    big_size = atol(argv[2]) * MIB;
    dir = argv[3];
    if (getenv("FREE_STEP_MIB")) free_step = atol(getenv("FREE_STEP_MIB")) * MIB;
    if (getenv("PACE_STEP_MIB")) pace_step = atol(getenv("PACE_STEP_MIB")) * MIB;
    if (getenv("FREE_PAUSE_MS")) free_pause_ms = atol(getenv("FREE_PAUSE_MS"));
    t_start = now();
    pthread_t th;
    pthread_create(&th, NULL, big_writer, NULL);
    char *buf = malloc(128 << 10);
    memset(buf, 1, 128 << 10);
    double worst_append = 0, worst_seal = 0;
    int appends = 0, over20 = 0;
    char name[4096], dirname[4096];
    path(dirname, ".");
    for (int file_no = 0; !done; file_no++) {
        char leaf[64];
        snprintf(leaf, sizeof leaf, "data%d", file_no);
        path(name, leaf);
        int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
        fallocate(fd, 0, 0, 64 * MIB);
        for (long off = 0; off < 64 * MIB && !done; off += 128 << 10) {
            double a = now();
            pwrite(fd, buf, 128 << 10, off);
            long end = off + (128 << 10);
            if (end % STEP == 0) sync_file_range(fd, end - STEP, STEP, SYNC_FILE_RANGE_WRITE);
            double took = now() - a;
            if (took > worst_append) worst_append = took;
            if (took > 0.02) over20++;
            appends++;
            usleep(700);
        }
        double a = now();
        ftruncate(fd, 64 * MIB);
        fdatasync(fd);
        close(fd);
        int dfd = open(dirname, O_RDONLY);
        fsync(dfd);
        close(dfd);
        double took = now() - a;
        if (took > worst_seal) worst_seal = took;
        if (took > 0.02) {
            over20++;
            fprintf(stderr, "  a seal of %.1f ms at %.2f s\n", took * 1e3, a - t_start);
        }
        unlink(name);
    }
    pthread_join(th, NULL);
    printf("%s: longest append %.1f ms, longest seal %.1f ms, %d of %d operations over 20 ms\n",
           mode, worst_append * 1e3, worst_seal * 1e3, over20, appends);
    return 0;
}
