/* An access against a mapping's protection: SIGSEGV. argv[1] chooses the access:
 *   none      - a written page made PROT_NONE by mprotect, then read
 *   readonly  - a read-only anonymous page, read first (mapped), then written
 *   untouched - a read-only anonymous page never touched, written
 * With argv[2] = "handler" a SIGSEGV handler prints the page-fault error code the kernel saved (uc_mcontext's ERR)
 * and si_code instead of dying: that is how the host kernel shows it to a program. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    printf("SIGSEGV %s error %llx\n", si->si_code == SEGV_ACCERR ? "SEGV_ACCERR" : si->si_code == SEGV_MAPERR ? "SEGV_MAPERR" : "other",
           (unsigned long long)uc->uc_mcontext.gregs[REG_ERR]);
    fflush(stdout);
    _exit(0);
    (void)sig;
}

int main(int argc, char **argv)
{
    if (argc < 2) { puts("usage: prot_fault none|readonly|untouched [handler]"); return 2; }
    if (argc > 2 && strcmp(argv[2], "handler") == 0)
    {
        struct sigaction sa = { 0 };
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, 0);
    }
    volatile char *p;
    if (strcmp(argv[1], "none") == 0)
    {
        p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p[0] = 1;
        mprotect((void *)p, 4096, PROT_NONE);
        puts("reading a PROT_NONE page");
        fflush(stdout);
        return p[0];
    }
    p = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (strcmp(argv[1], "readonly") == 0) printf("read %d, ", p[0]);
    puts("writing a read-only page");
    fflush(stdout);
    p[0] = 1;
    puts("not reached");
    return 1;
}
