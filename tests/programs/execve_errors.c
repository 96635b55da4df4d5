/* execve of files that are not programs: the error comes back to the caller, whose image keeps running. Each
 * argument is a path to try; the program prints the result for each (by position, so that host paths and sandbox
 * paths give the same output) and then says that it is still running. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *name(int e)
{
    switch (e)
    {
    case ENOEXEC: return "ENOEXEC";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    default: return strerror(e);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
    {
        char *args[] = { argv[i], 0 };
        char *envp[] = { 0 };
        errno = 0;
        int r = execve(argv[i], args, envp);
        printf("argument %d: execve = %d %s\n", i, r, name(errno));
    }
    puts("still running");
    return 0;
}
