/*
 * posix_spawn against a child of one's own (clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD), which
 * resets only the signals that have a handler or are ignored, where glibc's child resets all 64):
 * what an own spawn would save bwrapd a run (docs/performance.md, "A new machine, and three more
 * measurements"). A process with a JVM's dozen handlers spawns `bwrap --version` N times each way,
 * interleaved, and prints the mean time until the spawn returns and until the child's exit.
 *
 *   gcc -O2 -o /tmp/spawn_bench bench/floor/spawn_bench.c && /tmp/spawn_bench 300
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/close_range.h>
extern char **environ;
static void handler(int s) { (void)s; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static char *argv_[] = {"/usr/bin/bwrap", "--version", NULL};
static int resets[64], nresets;
struct args { int devnull; int err; };
static int child(void *p) {
    struct args *a = p;
    if (setsid() < 0) goto fail;
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = SIG_DFL;
    for (int i = 0; i < nresets; i++) sigaction(resets[i], &sa, NULL);
    if (dup2(a->devnull, 1) < 0) goto fail;
    syscall(SYS_close_range, 3, ~0U, 0);
    sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
    execve(argv_[0], argv_, environ);
fail:
    a->err = 1; _exit(127);
}
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    /* a JVM-like process: handlers and an ignored signal or two */
    int handled[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGQUIT, SIGHUP, SIGINT, SIGTERM, SIGUSR2, SIGTRAP, SIGXFSZ};
    for (unsigned i = 0; i < sizeof handled / sizeof *handled; i++) signal(handled[i], handler);
    signal(SIGPIPE, SIG_IGN);
    for (int s = 1; s < 65; s++) { struct sigaction o; if (sigaction(s, NULL, &o) == 0 && o.sa_handler != SIG_DFL) resets[nresets++] = s; }
    int devnull = open("/dev/null", 1);
    posix_spawnattr_t attr; posix_spawnattr_init(&attr);
    sigset_t all, none; sigfillset(&all); sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all); posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    posix_spawn_file_actions_t fa; posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, devnull, 1);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    size_t stack_size = 64 * 1024;
    char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    double tp = 0, tc = 0, wp = 0, wc = 0;
    for (int i = 0; i < n; i++) {
        for (int which = 0; which < 2; which++) {
            double t0 = now(); pid_t pid;
            if (which == 0) { posix_spawn(&pid, argv_[0], &fa, &attr, argv_, environ); }
            else {
                struct args a = {devnull, 0}; int pidfd = -1;
                sigset_t old; pthread_sigmask(SIG_SETMASK, &all, &old);
                pid = clone(child, stack + stack_size, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &a, &pidfd);
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                close(pidfd);
            }
            double t1 = now();
            int st; waitpid(pid, &st, 0);
            double t2 = now();
            if (which == 0) { tp += t1 - t0; wp += t2 - t0; } else { tc += t1 - t0; wc += t2 - t0; }
        }
    }
    printf("resets %d; spawn returns: posix_spawn %.1f us, clone %.1f us; to exit: %.1f vs %.1f us\n", nresets, tp / n, tc / n, wp / n, wc / n);
}
