/* fork with copy-on-write: the child changes its copy; the parent's data stays as it was. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

static char data[16384] = "parent data";

int main(void)
{
    char *heap = malloc(20000);
    strcpy(heap, "parent heap");
    pid_t pid = fork();
    if (pid < 0) { puts("fork failed"); return 1; }
    if (pid == 0) {
        strcpy(data, "child data");
        strcpy(heap, "child heap");
        printf("child: %s, %s, pid %d ppid %d\n", data, heap, (int)getpid(), (int)getppid());
        _exit(7);
    }
    int status = 0;
    pid_t w = waitpid(pid, &status, 0);
    printf("parent: %s, %s; child %d exited with %d\n", data, heap, (int)(w == pid ? pid : -1), WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
