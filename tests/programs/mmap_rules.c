/* mmap, munmap and mprotect rules, checked against Linux's errno values. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHECK(cond) do { if (!(cond)) { printf("FAIL line %d: %s (errno %d)\n", __LINE__, #cond, errno); return 1; } } while (0)

int main(void)
{
    /* zero length, bad flags, unaligned fixed address and offset */
    errno = 0; CHECK(mmap(0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL);
    errno = 0; CHECK(mmap(0, 4096, PROT_READ, MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL);
    errno = 0; CHECK(mmap((void *)0x10001000 + 1, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED && errno == EINVAL);
    errno = 0; CHECK(mmap(0, 4096, PROT_READ, MAP_PRIVATE, 99, 0) == MAP_FAILED && errno == EBADF);
    /* beyond the address-space limit */
    errno = 0; CHECK(mmap((void *)0x7ffffffff000, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED && errno == ENOMEM);
    errno = 0; CHECK(mmap(0, 1UL << 46, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == ENOMEM);
    /* a mapping, written, made read-only, then partly unmapped */
    char *p = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    memset(p, 'x', 3 * 4096);
    CHECK(mprotect(p + 4096, 4096, PROT_READ) == 0);
    CHECK(mprotect(p + 4096 + 1, 100, PROT_READ) == 0); /* musl rounds the start down to the page */
    CHECK(munmap(p + 2 * 4096, 4096) == 0);
    errno = 0; CHECK(mprotect(p, 3 * 4096, PROT_READ) == -1 && errno == ENOMEM);
    errno = 0; CHECK(munmap(p + 1, 4096) == -1 && errno == EINVAL);
    CHECK(p[0] == 'x' && p[4096] == 'x');
    /* MAP_FIXED_NOREPLACE over an existing mapping */
    errno = 0; CHECK(mmap(p, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED && errno == EEXIST);
    /* MADV_DONTNEED gives zero pages back */
    CHECK(madvise(p, 4096, MADV_DONTNEED) == 0);
    CHECK(p[0] == 0 && p[4095] == 0);
    errno = 0; CHECK(madvise(p, 4096, 12345) == -1 && errno == EINVAL);
    /* a shared anonymous mapping */
    int *s = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(s != MAP_FAILED);
    s[10] = 42;
    CHECK(munmap(p, 2 * 4096) == 0 && munmap(s, 4096) == 0);
    puts("mmap rules ok");
    return 0;
}
