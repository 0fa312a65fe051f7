/* What a sync costs after a small write into a huge page of a file's page
 * cache: the probe behind `SYNCS_OFTEN_WITHIN` in src/log/appender.rs
 * (docs/bench/defaults.md, "Huge pages for the active file, again").
 *
 * Allocates a 64 MiB file, maps it shared, advises MADV_HUGEPAGE (HUGE=1)
 * or MADV_RANDOM (HUGE=0, 4 KiB pages), faults the first 8 MiB in
 * writable, then N times writes 120 bytes after the last (through the map,
 * MODE=map, or with pwrite, MODE=pwrite) and fdatasyncs. Prints the time
 * per sync and what reached the disk per sync (the device's written
 * sectors in /proc/diskstats: run it on an otherwise idle disk).
 *
 *   cc -O2 -o /tmp/huge_page_sync benches/probes/huge_page_sync.c
 *   /tmp/huge_page_sync HUGE MODE N FILE DEVICE   (DEVICE: e.g. vda)
 *
 * On this VM (Linux 6.18, ext4, N=2000): 4 KiB pages 96 us (map) and 89
 * us (pwrite), 4.1 KiB a sync; huge pages through the map 426 us and 2048
 * KiB a sync (ext4 dirties the whole 2 MiB folio at the first write after
 * a sync), by pwrite 94 us and 4.1 KiB.
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

/* Sectors written to DEVICE so far. */
static long long sectors_written(const char *device) {
    FILE *f = fopen("/proc/diskstats", "r");
    char line[512], name[64];
    long long fields[11], found = -1;
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

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HUGE(0|1) MODE(map|pwrite) N FILE DEVICE\n", argv[0]);
        return 2;
    }
    int huge = atoi(argv[1]), by_pwrite = strcmp(argv[2], "pwrite") == 0, n = atoi(argv[3]);
    const char *path = argv[4], *device = argv[5];
    size_t len = 64u << 20;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || fallocate(fd, 0, 0, len) != 0) {
        perror(path);
        return 1;
    }
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    madvise(map, len, huge ? MADV_HUGEPAGE : MADV_RANDOM);
    if (madvise(map, 8u << 20, MADV_POPULATE_WRITE) != 0) perror("MADV_POPULATE_WRITE");
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
