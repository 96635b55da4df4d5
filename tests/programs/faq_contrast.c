/* A 64 KiB malloc'd buffer, written page by page, then the program stops with its buffer address on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *buf = malloc(64 * 1024);
    for (int i = 0; i < 16; i++) {
        char *spacer = malloc(4000); /* interleaved allocations scatter the physical pages */
        spacer[0] = 1;
        buf[i * 4096] = (char)i;
    }
    printf("%p\n", (void *)buf);
    fflush(stdout);
    for (;;) { __asm__ volatile("" ::: "memory"); } /* the test inspects the address space, then stops the run */
}
