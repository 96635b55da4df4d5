/* fork, then execve of another program in the sandbox in the child; the parent waits and reports. */
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
    if (argc < 2) { puts("usage: spawn PROGRAM"); return 2; }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *args[] = { argv[1], "from-child", 0 };
        char *env[] = { "HOME=/", 0 };
        execve(argv[1], args, env);
        perror("execve");
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child %d exited with %d\n", (int)pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
