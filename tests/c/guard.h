/*
 * guard.h - buffers that end where readable memory ends, for the C tests
 * that check the library looks at a length before it reads a buffer.
 */
#ifndef BITCASK_TEST_GUARD_H
#define BITCASK_TEST_GUARD_H

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * A buffer of n readable bytes that ends where memory ends: the page after
 * it is mapped PROT_NONE, so a read even one byte past it kills the process
 * with SIGSEGV, under any build (plain, valgrind, sanitizers). For checking
 * that the library looks at a length before it reads a buffer. Release with
 * free_guarded. Returns NULL if the mapping fails.
 */
static inline unsigned char *guarded_bytes(size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (n + (size_t)page - 1) / (size_t)page + 1;
    unsigned char *base = mmap(NULL, pages * (size_t)page, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    unsigned char *guard = base + (pages - 1) * (size_t)page;
    if (mprotect(guard, (size_t)page, PROT_NONE) != 0) {
        munmap(base, pages * (size_t)page);
        return NULL;
    }
    memset(guard - n, 'g', n);
    return guard - n;
}

static inline void free_guarded(unsigned char *p, size_t n)
{
    if (!p)
        return;
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (n + (size_t)page - 1) / (size_t)page + 1;
    unsigned char *base = p + n - (pages - 1) * (size_t)page;
    munmap(base, pages * (size_t)page);
}

#endif
