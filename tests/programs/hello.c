#include <stdio.h>
int main(int argc, char **argv)
{
    printf("hello, world\n");
    printf("argc=%d argv[0]=%s\n", argc, argv[0]);
    return 0;
}
