/*
 * The least a helper must do per sandbox run for what bwrapd reports, in C, for bench/bench.py:
 * the floor under "helper CPU per run" on this machine. Not part of bwrapd.
 *
 *   run_floor CGROUP_BASE|- EXECUTABLE ARGV0 ARG...
 *
 * For every line read on stdin it runs the given bwrap argv once, with the environment it was
 * started with, and answers one line: "ok EXIT" or "error WHAT". Per run, as bwrapd does:
 *   - a cgroup of its own under CGROUP_BASE ("-": none), the sandbox's init moved into it;
 *   - posix_spawn in a new session, bwrap's status pipe as descriptor 3, stdio on /dev/null;
 *   - bwrap's status lines read to their end (the init's pid, the command's exit code);
 *   - bwrap reaped, then the init (this process is a child subreaper), with its rusage;
 *   - the cgroup's cpu.stat read, the cgroup killed and removed.
 * What bwrapd does on top and this does not: JSON-RPC framing and parsing, the checks of every
 * path it is given (the root, mount sources and destinations, the command), the root's lease and
 * cleanup report, a watchdog that outlives it, timers, stdin and output handling.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void read_file(const char *path, char *buf, size_t size) {
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, size - 1);
    if (n > 0) buf[n] = 0;
    close(fd);
}

/* One run; returns the command's exit code, or -1 with *what set. */
static int run(const char *base, long seq, int devnull, char **argv, const char **what) {
    char cg[4096] = "", path[4200], status[8192], line[64];
    if (strcmp(base, "-") != 0) {
        snprintf(cg, sizeof cg, "%s/run-floor-%d-%ld", base, (int)getpid(), seq);
        if (mkdir(cg, 0755) != 0) { *what = "mkdir cgroup"; return -1; }
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) { *what = "pipe"; return -1; }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none;
    sigemptyset(&none);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, devnull, 0);
    posix_spawn_file_actions_adddup2(&fa, devnull, 1);
    posix_spawn_file_actions_adddup2(&fa, devnull, 2);
    posix_spawn_file_actions_adddup2(&fa, p[1], 3);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setsigmask(&at, &none);
    pid_t bwrap;
    int rc = posix_spawn(&bwrap, argv[0], &fa, &at, argv + 1, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[1]);
    if (rc != 0) { close(p[0]); *what = "posix_spawn"; return -1; }

    size_t used = 0;
    pid_t init = 0;
    for (;;) {
        ssize_t n = read(p[0], status + used, sizeof status - 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        used += n;
        status[used] = 0;
        char *child = init ? NULL : strstr(status, "\"child-pid\":");
        if (child) {
            init = (pid_t)atol(child + strlen("\"child-pid\":"));
            if (cg[0]) {
                snprintf(path, sizeof path, "%s/cgroup.procs", cg);
                snprintf(line, sizeof line, "%d", (int)init);
                write_file(path, line);
            }
        }
        if (used == sizeof status - 1) used = 0; /* only the first and last lines matter */
    }
    close(p[0]);
    int ws, exit_code = -1;
    while (waitpid(bwrap, &ws, 0) < 0 && errno == EINTR) {}
    char *code = strstr(status, "\"exit-code\":");
    if (code) exit_code = atoi(code + strlen("\"exit-code\":"));
    struct rusage usage;
    if (init > 0) while (wait4(init, &ws, 0, &usage) < 0 && errno == EINTR) {} /* ECHILD: bwrap reaped it */
    if (cg[0]) {
        snprintf(path, sizeof path, "%s/cpu.stat", cg);
        read_file(path, status, sizeof status);
        snprintf(path, sizeof path, "%s/cgroup.kill", cg);
        write_file(path, "1");
        for (int i = 0; rmdir(cg) != 0 && errno == EBUSY && i < 1000; i++) usleep(100);
    }
    if (exit_code < 0) *what = "no exit code";
    return exit_code;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: run_floor CGROUP_BASE|- EXECUTABLE ARGV0 ARG...\n");
        return 2;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    /* The first open parks the lowest free descriptor (3 when started with stdio only), so no
     * pipe is ever 3 itself: dup2(3, 3) would leave it close-on-exec and bwrap without its pipe. */
    int parked = open("/dev/null", O_RDWR | O_CLOEXEC);
    int devnull = fcntl(parked, F_DUPFD_CLOEXEC, 10);
    char *spawn_argv[argc];
    spawn_argv[0] = argv[2];
    for (int i = 3; i < argc; i++) spawn_argv[i - 2] = argv[i];
    spawn_argv[argc - 2] = NULL;
    char request[4096];
    long seq = 0;
    while (fgets(request, sizeof request, stdin)) {
        const char *what = "";
        int code = run(argv[1], ++seq, devnull, spawn_argv, &what);
        if (code < 0) printf("error %s\n", what);
        else printf("ok %d\n", code);
        fflush(stdout);
    }
    return 0;
}
