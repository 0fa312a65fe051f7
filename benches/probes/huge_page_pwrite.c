/* What a pwrite append costs into a file's page cache faulted in ahead in
 * huge pages, against 4 KiB pages: the probe behind the rule that only a
 * writer appending mostly through the map gets huge pages
 * (`Appender::huge_ahead` in src/log/appender.rs; docs/bench/defaults.md,
 * "Huge pages for the active file, again").
 *
 * Allocates a 256 MiB file, maps it shared, advises MADV_HUGEPAGE
 * (HUGE=1) or MADV_RANDOM (HUGE=0), faults it all in writable
 * (MADV_POPULATE_WRITE; HUGE=-1: not faulted in), then appends 200 MiB
 * by pwrite in SIZE-byte writes, no syncs, and prints the time per write.
 *
 *   cc -O2 -o /tmp/huge_page_pwrite benches/probes/huge_page_pwrite.c
 *   /tmp/huge_page_pwrite HUGE SIZE FILE
 *
 * On this VM (Linux 6.18, ext4): SIZE 4112: 1.55 us (4 KiB pages), 4.38 us
 * (huge pages), 3.26 us (not faulted in); SIZE 2100: 1.15, 3.98, 1.99 us;
 * SIZE 16384: 3.52, 5.44, 4.89 us.
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

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s HUGE(1|0|-1) SIZE FILE\n", argv[0]);
        return 2;
    }
    int huge = atoi(argv[1]);
    size_t size = strtoul(argv[2], NULL, 10), len = 256u << 20, total = 200u << 20;
    const char *path = argv[3];
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || size == 0 || fallocate(fd, 0, 0, len) != 0) {
        perror(path);
        return 1;
    }
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    madvise(map, len, huge == 1 ? MADV_HUGEPAGE : MADV_RANDOM);
    if (huge >= 0 && madvise(map, len, MADV_POPULATE_WRITE) != 0) perror("MADV_POPULATE_WRITE");
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
    munmap(map, len);
    close(fd);
    unlink(path);
    return 0;
}
