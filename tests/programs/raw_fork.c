/* fork and copy-on-write with raw system calls (no C library, no SSE). Exit code: 0 when the parent's data survived. */
static long sys(long n, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}

static char data[3 * 4096] = {1};
static const char child_msg[] = "child wrote\n";

void _start(void)
{
    for (int i = 0; i < 3; i++) data[i * 4096] = 'P';
    long pid = sys(57, 0, 0, 0, 0); /* fork */
    if (pid == 0) {
        data[4096] = 'C'; /* copy-on-write of one page */
        sys(1, 1, (long)child_msg, sizeof child_msg - 1, 0);
        sys(60, 5, 0, 0, 0);
    }
    int status = 0;
    long w = sys(61, pid, (long)&status, 0, 0); /* wait4 */
    int ok = w == pid && status == (5 << 8) && data[0] == 'P' && data[4096] == 'P' && data[8192] == 'P';
    sys(231, ok ? 0 : 1, 0, 0, 0);
    for (;;) { }
}
