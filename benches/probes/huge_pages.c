/* What huge pages in a file's page cache do to writes: the probe behind
 * the appender's huge page rules (`SYNCS_OFTEN_WITHIN` and
 * `Appender::huge_ahead` in src/log/appender.rs; docs/bench/defaults.md,
 * "Huge pages for the active file, again").
 *
 *   cc -O2 -o /tmp/huge_pages benches/probes/huge_pages.c
 *   /tmp/huge_pages sync HUGE MODE N FILE DEVICE   (DEVICE: e.g. vda)
 *   /tmp/huge_pages pwrite HUGE SIZE FILE
 *
 * Both allocate FILE, map it shared and advise MADV_HUGEPAGE (HUGE=1) or
 * MADV_RANDOM (HUGE=0: 4 KiB pages), and fault it in writable
 * (MADV_POPULATE_WRITE; HUGE=-1, pwrite only: not faulted in).
 *
 * sync: a 64 MiB file, its first 8 MiB faulted in; then N times 120 bytes
 * written after the last (through the map, MODE=map, or by pwrite,
 * MODE=pwrite) and an fdatasync. Prints the time per sync and what reached
 * the disk per sync (the device's written sectors in /proc/diskstats: run
 * it on an otherwise idle disk). On this VM (Linux 6.18, ext4, N=2000):
 * 4 KiB pages 95.9 us (map) and 89.3 us (pwrite), 4.1 KiB a sync; huge
 * pages through the map 425.9 us and 2048.4 KiB a sync (ext4 dirties the
 * whole 2 MiB folio at the first write after a sync), by pwrite 94.4 us
 * and 4.1 KiB.
 *
 * pwrite: a 256 MiB file, all faulted in; then 200 MiB appended by pwrite
 * in SIZE-byte writes, no syncs. Prints the time per write. On this VM:
 * SIZE 4112: 1.55 us (4 KiB pages), 4.38 us (huge pages: ext4 walks the
 * folio's 512 blocks), 3.26 us (not faulted in); SIZE 2100: 1.15, 3.98,
 * 1.99 us; SIZE 16384: 3.52, 5.44, 4.89 us.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Sectors written to DEVICE so far, or -1. */
static long long sectors_written(const char *device) {
    FILE *f = fopen("/proc/diskstats", "r");
    char line[512], name[64];
    long long fields[7], found = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%*d %*d %63s %lld %lld %lld %lld %lld %lld %lld", name, &fields[0],
                   &fields[1], &fields[2], &fields[3], &fields[4], &fields[5], &fields[6]) == 8 &&
            strcmp(name, device) == 0)
            found = fields[6];
    }
    fclose(f);
    return found;
}

/* FILE allocated to LEN bytes, mapped shared, advised per HUGE, its first
 * FAULT bytes faulted in writable (none when HUGE is -1). */
static char *map_file(const char *path, size_t len, int huge, size_t fault, int *fd) {
    *fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (*fd < 0 || fallocate(*fd, 0, 0, (off_t)len) != 0) {
        perror(path);
        exit(1);
    }
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    madvise(map, len, huge == 1 ? MADV_HUGEPAGE : MADV_RANDOM);
    if (huge >= 0 && madvise(map, fault, MADV_POPULATE_WRITE) != 0) perror("MADV_POPULATE_WRITE");
    return map;
}

static int probe_sync(int huge, int by_pwrite, int n, const char *path, const char *device) {
    size_t len = 64u << 20;
    int fd;
    char *map = map_file(path, len, huge, 8u << 20, &fd);
    fsync(fd);
    char record[120];
    memset(record, 'x', sizeof record);
    long long before = sectors_written(device);
    double start = now();
    for (int i = 0; i < n; i++) {
        if (by_pwrite) {
            if (pwrite(fd, record, sizeof record, (off_t)i * 128) != (ssize_t)sizeof record) {
                perror("pwrite");
                return 1;
            }
        } else {
            memcpy(map + (size_t)i * 128, record, sizeof record);
        }
        if (fdatasync(fd) != 0) {
            perror("fdatasync");
            return 1;
        }
    }
    double elapsed = now() - start;
    long long after = sectors_written(device);
    printf("huge=%d %s: %.1f us a sync, %.1f KiB to the disk a sync\n", huge,
           by_pwrite ? "pwrite" : "map", elapsed / n * 1e6,
           before < 0 || after < 0 ? -1.0 : (after - before) / 2.0 / n);
    munmap(map, len);
    close(fd);
    unlink(path);
    return 0;
}

static int probe_pwrite(int huge, size_t size, const char *path) {
    size_t len = 256u << 20, total = 200u << 20;
    int fd;
    char *map = map_file(path, len, huge, len, &fd);
    char *buf = malloc(size);
    memset(buf, 'y', size);
    size_t n = total / size;
    double start = now();
    for (size_t i = 0; i < n; i++) {
        if (pwrite(fd, buf, size, (off_t)(i * size)) != (ssize_t)size) {
            perror("pwrite");
            return 1;
        }
    }
    printf("huge=%d size=%zu: %.2f us a pwrite\n", huge, size, (now() - start) / n * 1e6);
    free(buf);
    munmap(map, len);
    close(fd);
    unlink(path);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 7 && strcmp(argv[1], "sync") == 0)
        return probe_sync(atoi(argv[2]), strcmp(argv[3], "pwrite") == 0, atoi(argv[4]), argv[5],
                          argv[6]);
    if (argc == 5 && strcmp(argv[1], "pwrite") == 0 && strtoul(argv[3], NULL, 10) > 0)
        return probe_pwrite(atoi(argv[2]), strtoul(argv[3], NULL, 10), argv[4]);
    fprintf(stderr,
            "usage: %s sync HUGE(0|1) MODE(map|pwrite) N FILE DEVICE\n"
            "       %s pwrite HUGE(1|0|-1) SIZE FILE\n",
            argv[0], argv[0]);
    return 2;
}
