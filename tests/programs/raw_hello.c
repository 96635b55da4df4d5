/* A program with no C library: raw system calls only, general-purpose registers only (no SSE). */
static long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static const char msg[] = "hello from user space\n";
static char bss[8192];

void _start(void)
{
    sys3(1, 1, (long)msg, sizeof msg - 1);
    bss[5000] = 1; /* a write fault on a bss page */
    char *heap = (char *)sys3(12, 0, 0, 0);
    char *end = (char *)sys3(12, (long)(heap + 3 * 4096), 0, 0);
    for (char *p = heap; p < end; p += 4096) *p = 7;
    sys3(231, bss[5000] + heap[4096] + 40, 0, 0); /* exit_group(48) */
    for (;;) { }
}
