/* Touches N pages of one anonymous mapping with a write each: exactly N demand-zero faults on that mapping. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
    long pages = argc > 1 ? atol(argv[1]) : 1000;
    char *p = mmap(0, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { puts("mmap failed"); return 1; }
    for (long i = 0; i < pages; i++) p[i * 4096 + (i % 4096)] = (char)i;
    long sum = 0;
    for (long i = 0; i < pages; i++) sum += p[i * 4096 + (i % 4096)];
    printf("%ld pages at %p, sum %ld\n", pages, (void *)p, sum);
    return 0;
}
