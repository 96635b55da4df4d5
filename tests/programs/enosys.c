/* A system call the model does not implement returns -1 ENOSYS, every time; the program carries on. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
    for (int i = 0; i < 2; i++)
    {
        errno = 0;
        long r = syscall(SYS_io_uring_setup, 1, 0);
        printf("io_uring_setup: %ld %s\n", r, errno == ENOSYS ? "ENOSYS" : "other");
    }
    return 0;
}
