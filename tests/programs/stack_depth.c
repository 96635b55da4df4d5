/* Recursion that uses argv[1] KiB of stack: the stack VMA grows on demand up to RLIMIT_STACK (8 MiB); beyond it the
 * process gets SIGSEGV. */
#include <stdio.h>
#include <stdlib.h>

static int depth(long n)
{
    volatile char frame[1024];
    frame[0] = (char)n;
    frame[1023] = (char)n;
    if (n <= 1) return frame[0];
    return depth(n - 1) + frame[1023];
}

int main(int argc, char **argv)
{
    long kib = argc > 1 ? atol(argv[1]) : 256;
    printf("recursing through %ld KiB of stack\n", kib);
    fflush(stdout);
    int r = depth(kib);
    printf("returned %d\n", r & 1);
    return 0;
}
