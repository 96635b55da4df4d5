/* Reads a file from the sandbox with stdio, then maps it privately and reads it again. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <errno.h>

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/data/greeting.txt";
    FILE *f = fopen(path, "r");
    if (!f) { printf("fopen %s: errno %d\n", path, errno); return 1; }
    char line[256];
    if (!fgets(line, sizeof line, f)) { puts("empty"); return 1; }
    fclose(f);
    printf("read: %s", line);
    int fd = open(path, O_RDONLY);
    char *m = mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) { printf("mmap errno %d\n", errno); return 1; }
    printf("mapped: %.9s\n", m);
    int w = open(path, O_WRONLY);
    int e = errno;
    printf("open for writing: %d %s\n", w, w >= 0 ? "ok" : e == EROFS ? "EROFS" : strerror(e));
    int missing = open("/no/such/file", O_RDONLY);
    e = errno;
    printf("missing: %d %s\n", missing, e == ENOENT ? "ENOENT" : strerror(e));
    close(fd);
    return 0;
}
