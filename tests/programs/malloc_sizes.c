/* malloc of many sizes (musl's mallocng: brk and mmap underneath), filled with a pattern, checksummed, freed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    static char *blocks[400];
    unsigned long sum = 0;
    size_t total = 0;
    for (int i = 0; i < 400; i++) {
        size_t n = (size_t)(i * 37 % 3000) + 1 + (i % 50 == 0 ? 300000 : 0);
        blocks[i] = malloc(n);
        if (!blocks[i]) { printf("malloc(%zu) failed\n", n); return 1; }
        for (size_t k = 0; k < n; k++) blocks[i][k] = (char)(i + k);
        total += n;
    }
    for (int i = 0; i < 400; i += 2) { free(blocks[i]); blocks[i] = 0; }
    for (int i = 0; i < 400; i += 2) {
        size_t n = (size_t)(i * 53 % 5000) + 1;
        blocks[i] = malloc(n);
        memset(blocks[i], i & 0x7f, n);
        total += n;
    }
    for (int i = 0; i < 400; i++) {
        size_t n = i % 2 ? (size_t)(i * 37 % 3000) + 1 + (i % 50 == 0 ? 300000 : 0) : (size_t)(i * 53 % 5000) + 1;
        for (size_t k = 0; k < n; k++) sum = sum * 31 + (unsigned char)blocks[i][k];
        free(blocks[i]);
    }
    printf("bytes=%zu checksum=%lu\n", total, sum);
    return 0;
}
