/* System calls a C program uses, with results that are the same on any Linux: writev/readv, lseek, fstat, uname,
 * clock_gettime, getpid/gettid/getppid, brk. argv[1]: the path of greeting.txt (45 bytes). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long ns(clockid_t c)
{
    struct timespec ts;
    if (clock_gettime(c, &ts) != 0) return -1;
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) { puts("usage: syscalls GREETING"); return 2; }
    fflush(stdout);
    struct iovec out[3] = { { "writev: ", 8 }, { "three ", 6 }, { "parts\n", 6 } };
    long n = writev(1, out, 3);
    printf("writev returned %ld\n", n);

    int fd = open(argv[1], O_RDONLY);
    char a[10], b[64];
    memset(b, 0, sizeof b);
    struct iovec in[2] = { { a, sizeof a }, { b, sizeof b - 1 } };
    n = readv(fd, in, 2);
    printf("readv returned %ld: [%.10s] [%s", n, a, b);
    printf("lseek end %ld, ", (long)lseek(fd, 0, SEEK_END));
    printf("set %ld, ", (long)lseek(fd, 4, SEEK_SET));
    char w[6] = { 0 };
    n = read(fd, w, 5);
    printf("read %ld [%s], cur %ld\n", n, w, (long)lseek(fd, 0, SEEK_CUR));
    errno = 0;
    long r = lseek(fd, -1, SEEK_SET);
    printf("lseek to -1: %ld %s\n", r, errno == EINVAL ? "EINVAL" : strerror(errno));
    errno = 0;
    r = lseek(1, 0, SEEK_CUR);
    printf("lseek on a pipe or terminal: %ld %s\n", r, errno == ESPIPE ? "ESPIPE" : strerror(errno));

    struct stat st;
    int rc = fstat(fd, &st);
    printf("fstat: %d, size %ld, regular file %s, has blocks %s\n", rc, (long)st.st_size, S_ISREG(st.st_mode) ? "yes" : "no", st.st_blocks > 0 ? "yes" : "no");
    close(fd);
    errno = 0;
    r = read(fd, w, 1);
    printf("read after close: %ld %s\n", r, errno == EBADF ? "EBADF" : strerror(errno));

    struct utsname u;
    rc = uname(&u);
    printf("uname: %d %s %s\n", rc, u.sysname, u.machine);

    long t0 = ns(CLOCK_MONOTONIC);
    volatile long spin = 0;
    for (int i = 0; i < 100000; i++) spin += i;
    long t1 = ns(CLOCK_MONOTONIC);
    printf("monotonic clock increases: %s\n", t1 > t0 && t0 >= 0 ? "yes" : "no");
    printf("realtime clock after 2025: %s\n", ns(CLOCK_REALTIME) / 1000000000L > 1735689600L ? "yes" : "no");

    pid_t pid = getpid();
    printf("gettid == getpid: %s, getppid differs: %s\n", syscall(SYS_gettid) == pid ? "yes" : "no", getppid() != pid && getppid() > 0 ? "yes" : "no");
    fflush(stdout);
    pid_t child = fork();
    if (child == 0)
    {
        printf("child: getppid == parent's getpid: %s, own pid differs: %s\n", getppid() == pid ? "yes" : "no", getpid() != pid ? "yes" : "no");
        fflush(stdout);
        _exit(0);
    }
    int status;
    printf("waitpid returned the child: %s\n", waitpid(child, &status, 0) == child && WIFEXITED(status) ? "yes" : "no");

    unsigned long start = syscall(SYS_brk, 0);
    unsigned long up = syscall(SYS_brk, start + 100000);
    volatile char *top = (char *)start + 99999;
    *top = 'x';
    unsigned long down = syscall(SYS_brk, start + 4096);
    unsigned long below = syscall(SYS_brk, start - 4096);
    printf("brk: page aligned %s, grew by %lu, shrank to +%lu, below start refused: %s\n", (start & 4095) == 0 ? "yes" : "no",
           up - start, down - start, below == start + 4096 ? "yes" : "no");
    return 0;
}
