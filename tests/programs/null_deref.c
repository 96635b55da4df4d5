/* A deliberate NULL dereference: SIGSEGV and the kernel's segfault line. */
#include <stdio.h>

int main(void)
{
    volatile int *p = 0;
    puts("about to dereference NULL");
    fflush(stdout);
    return *p;
}
