/* Writes a line to standard output and one to standard error, then exits with the status given as argv[1]. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int status = argc > 1 ? atoi(argv[1]) : 0;
    printf("to stdout, exiting with %d\n", status);
    fprintf(stderr, "to stderr\n");
    return status;
}
