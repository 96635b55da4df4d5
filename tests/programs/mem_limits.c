/* Requests beyond the address-space limit or larger than RAM fail with ENOMEM and leave the process running.
 * argv[1]: a size in bytes larger than RAM (and swap). With argv[2] = "touch", the program then maps that size with
 * MAP_NORESERVE (no accounting, so the mmap succeeds) and writes every page: the kernel runs out of memory. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *what, void *p)
{
    if (p == MAP_FAILED) printf("%s: %s\n", what, errno == ENOMEM ? "ENOMEM" : strerror(errno));
    else printf("%s: ok\n", what);
}

int main(int argc, char **argv)
{
    if (argc < 2) { puts("usage: mem_limits BYTES [touch]"); return 2; }
    unsigned long big = strtoul(argv[1], 0, 0);
    const int anon = MAP_PRIVATE | MAP_ANONYMOUS;
    void *p;

    errno = 0; p = mmap(0, 1UL << 47, PROT_READ, anon, -1, 0);
    report("mmap of 128 TiB (the whole user half)", p);
    errno = 0; p = mmap((void *)0x7ffffffff000UL - 4096, 3 * 4096, PROT_READ, anon | MAP_FIXED, -1, 0);
    report("MAP_FIXED across TASK_SIZE", p);
    errno = 0; p = mmap((void *)0x800000000000UL, 4096, PROT_READ, anon, -1, 0);
    report("hint above TASK_SIZE (ignored)", p);
    if (p != MAP_FAILED) printf("  placed below TASK_SIZE: %s\n", (unsigned long)p < 0x7ffffffff000UL ? "yes" : "no");
    if (p != MAP_FAILED) munmap(p, 4096);

    errno = 0; p = mmap(0, big, PROT_READ | PROT_WRITE, anon, -1, 0);
    report("private writable mapping larger than RAM", p);
    errno = 0; p = mmap(0, big, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    report("shared anonymous mapping larger than RAM", p);
    if (p != MAP_FAILED) munmap(p, big);
    errno = 0; p = mmap(0, big, PROT_READ, anon, -1, 0);
    report("read-only mapping larger than RAM (not accounted)", p);
    if (p != MAP_FAILED) munmap(p, big);
    errno = 0; p = mmap(0, big, PROT_READ | PROT_WRITE, anon | MAP_NORESERVE, -1, 0);
    report("MAP_NORESERVE mapping larger than RAM", p);
    if (p != MAP_FAILED) munmap(p, big);

    unsigned long start = syscall(SYS_brk, 0);
    unsigned long got = syscall(SYS_brk, start + big);
    printf("brk beyond RAM: %s\n", got == start ? "unchanged" : "moved");
    got = syscall(SYS_brk, 0x800000000000UL);
    printf("brk beyond TASK_SIZE: %s\n", got == start ? "unchanged" : "moved");

    if (argc > 2 && strcmp(argv[2], "touch") == 0)
    {
        char *q = mmap(0, big, PROT_READ | PROT_WRITE, anon | MAP_NORESERVE, -1, 0);
        if (q == MAP_FAILED) { puts("touch: mmap failed"); return 1; }
        puts("touching every page");
        fflush(stdout);
        for (unsigned long i = 0; i < big; i += 4096) q[i] = 1;
        puts("all pages touched");
    }
    puts("still running");
    return 0;
}
