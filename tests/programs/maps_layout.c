/* A known sequence of mappings, then /proc/self/maps. argv[1]: the path of greeting.txt. Where /proc is not
 * there (the model's sandbox has no /proc), the program says so and spins, so that a debugger or a test can read the
 * maps of the stopped process. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) { puts("usage: maps_layout GREETING"); return 2; }
    char *a = mmap(0, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    a[0] = 1;
    char *b = mmap(0, 2 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = open(argv[1], O_RDONLY);
    char *f = mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    int *s = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    s[0] = f[0] + b[0];
    munmap(a + 2 * 4096, 4096);          /* a splits in two */
    mprotect(a, 4096, PROT_READ);        /* and its first page becomes read-only */
    unsigned long brk0 = syscall(SYS_brk, 0);
    syscall(SYS_brk, brk0 + 3 * 4096);   /* the heap: three pages */
    int maps = open("/proc/self/maps", O_RDONLY);
    if (maps < 0)
    {
        puts("no /proc: spinning");
        fflush(stdout);
        for (;;) { }
    }
    char buf[4096];
    long n;
    while ((n = read(maps, buf, sizeof buf)) > 0) write(1, buf, n);
    return 0;
}
