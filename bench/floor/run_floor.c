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
 *
 *   run_floor --rules ROOT CGROUP_BASE|- EXECUTABLE ARGV0 ARG...
 *
 * The same, plus what bwrapd's rules ask of every run (docs/architecture.md), done the plain way
 * in C: a floor under a helper built to those rules, whatever its language (the plain way's: a
 * spawn of one's own and fewer hand-offs go ~0.2 ms lower, docs/performance.md). Three threads as in
 * bwrapd: one reads requests (it must go on reading while runs go on), one runs each sandbox, one
 * writes (no run waits for a client that does not read). Per run, beyond the above:
 *   - the root opened once (openat2, no symlinks) and checked on its descriptor; the command
 *     looked up along PATH inside the root through it (RESOLVE_IN_ROOT), each candidate checked;
 *   - the places bwrap mounts on (/proc, /tmp, /dev and its five devices) looked at in the root,
 *     and again for the root's lease (what bwrap may create, and so must remove);
 *   - bwrap given the root's and the kept devices' descriptors, its status pipe, the hold pipe
 *     (--block-fd, --sync-fd) and stderr on a pipe that is read (bwrap's own message comes there),
 *     every signal at its default;
 *   - a watchdog (awk, reading a pipe, as bwrapd's) told of the run at its spawn and at its end;
 *   - the cgroup made after the spawn, the held init moved into it, its open-files limit set, and
 *     released; bwrap's and the init's pidfds, the status and stderr pipes, a wake-up pipe and the
 *     hold pipe followed in one poll loop; sandbox/started once the init has forked the command;
 *   - both reaped when their pidfds say so; cpu.stat read, the cgroup removed (killed only if that
 *     fails); the answer written as a JSON line by the writer thread.
 * Left out still: parsing the request's JSON and checking its members (a few microseconds of C).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <linux/openat2.h>
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

static int rules_main(int argc, char **argv);

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--rules") == 0) return rules_main(argc, argv);
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

/* ----- the floor under bwrapd's rules (--rules) ----- */

/* A hand-off between two threads: lines in order, as bwrapd's run queue and outbox. */
struct queue {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    char *items[256];
    unsigned head, tail;
};

static void put(struct queue *q, char *item) {
    pthread_mutex_lock(&q->lock);
    while (q->tail - q->head == 256) pthread_cond_wait(&q->ready, &q->lock); /* full: one side waits at a time */
    q->items[q->tail++ % 256] = item;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->lock);
}

static char *take(struct queue *q) {
    pthread_mutex_lock(&q->lock);
    while (q->head == q->tail) pthread_cond_wait(&q->ready, &q->lock);
    char *item = q->items[q->head++ % 256];
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->lock);
    return item;
}

static struct queue requests = {.lock = PTHREAD_MUTEX_INITIALIZER, .ready = PTHREAD_COND_INITIALIZER};
static struct queue answers = {.lock = PTHREAD_MUTEX_INITIALIZER, .ready = PTHREAD_COND_INITIALIZER};

static const char *rules_root, *rules_base;
static char **rules_argv;
static const char *rules_command; /* the sandbox's command: what follows "--" in bwrap's argv */
static int devnull_fd, watchdog_fd, device_fds[5];
static struct rlimit client_files;
static const char *places[] = {"proc", "tmp", "dev", "dev/full", "dev/null", "dev/urandom", "dev/random", "dev/zero"};

static int openat2_(int dirfd, const char *path, int flags, unsigned long long resolve) {
    struct open_how how = {.flags = flags | O_CLOEXEC, .resolve = resolve};
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static int pidfd_open_(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static char *line_of(const char *format, ...) __attribute__((format(printf, 1, 2)));
static char *line_of(const char *format, ...) {
    char *text;
    va_list args;
    va_start(args, format);
    if (vasprintf(&text, format, args) < 0) text = NULL;
    va_end(args);
    return text;
}

/* A regular, executable file at `rel` inside the root, resolved as the sandbox will see it. */
static int executable_in_root(int root, const char *rel) {
    int fd = openat2_(root, rel, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    if (fd < 0) return 0;
    struct statx st;
    int ok = statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_MODE, &st) == 0 && S_ISREG(st.stx_mode) && (st.stx_mode & 0111);
    close(fd);
    return ok;
}

/* The sandbox's command inside the root: as it is if it has a slash, else along the sandbox's PATH (this process's). */
static int find_command(int root, const char *command) {
    if (strchr(command, '/')) return executable_in_root(root, command) ? 0 : -1;
    const char *path = getenv("PATH");
    char rel[4096];
    for (const char *dir = path; dir && *dir;) {
        size_t length = strcspn(dir, ":");
        snprintf(rel, sizeof rel, "%.*s/%s", (int)length, dir, command);
        if (executable_in_root(root, rel)) return 0;
        dir += length + (dir[length] == ':');
    }
    return -1;
}

static void look_at_places(int root) {
    struct statx st;
    for (size_t i = 0; i < sizeof places / sizeof *places; i++) statx(root, places[i], AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO, &st);
}

static void rules_run(long seq, const char *request_id) {
    const char *what = "";
    char cg[4096] = "", path[4200], status[8192], line[64];
    int root = openat2_(AT_FDCWD, rules_root, O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS);
    struct statx rootst;
    struct statfs fs;
    if (root < 0 || statx(root, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &rootst) != 0 || fstatfs(root, &fs) != 0) { what = "root"; goto refused; }
    if (find_command(root, rules_command) != 0) { what = "command not found"; goto refused; }
    look_at_places(root); /* the mount points */
    int err[2], st[2], hold[2], wake[2];
    if (pipe2(err, O_CLOEXEC) || pipe2(st, O_CLOEXEC) || pipe2(hold, O_CLOEXEC) || pipe2(wake, O_CLOEXEC)) { what = "pipe"; goto refused; }
    look_at_places(root); /* the lease */

    /* The file actions and attributes kept from one spawn to the next while the descriptors are
     * the same (as bwrapd keeps them: glibc checks every dup2 action with two getrlimit calls). */
    static posix_spawn_file_actions_t fa;
    static posix_spawnattr_t at;
    static int kept[12] = {-1};
    int child[12] = {devnull_fd, devnull_fd, err[1], st[1], hold[0], hold[1], root,
                     device_fds[0], device_fds[1], device_fds[2], device_fds[3], device_fds[4]};
    if (memcmp(kept, child, sizeof child) != 0) {
        if (kept[0] >= 0) {
            posix_spawn_file_actions_destroy(&fa);
            posix_spawnattr_destroy(&at);
        }
        sigset_t none, all;
        sigemptyset(&none);
        memset(&all, 0xff, sizeof all); /* every signal at its default, glibc's own two too */
        posix_spawn_file_actions_init(&fa);
        for (int i = 0; i < 12; i++) posix_spawn_file_actions_adddup2(&fa, child[i], i);
        posix_spawnattr_init(&at);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setsigdefault(&at, &all);
        memcpy(kept, child, sizeof child);
    }
    pid_t bwrap;
    int rc = posix_spawn(&bwrap, rules_argv[0], &fa, &at, rules_argv + 1, environ);
    close(err[1]);
    close(st[1]);
    close(hold[0]);
    if (rc != 0) { what = "posix_spawn"; goto refused; }
    if (strcmp(rules_base, "-") != 0) snprintf(cg, sizeof cg, "%s/run-rules-%d-%ld", rules_base, (int)getpid(), seq);
    int n = snprintf(line, sizeof line, "+%d %ld\n", (int)bwrap, seq);
    write(watchdog_fd, line, n);
    if (cg[0] && mkdir(cg, 0755) != 0) { what = "mkdir cgroup"; cg[0] = 0; }

    enum { STATUS, ERR, BWRAP, INIT, WAKE, HOLD, SLOTS };
    struct pollfd fds[SLOTS] = {{st[0], POLLIN, 0}, {err[0], POLLIN, 0}, {pidfd_open_(bwrap), POLLIN, 0}, {-1, POLLIN, 0}, {wake[0], POLLIN, 0}, {-1, 0, 0}};
    size_t used = 0;
    pid_t init = 0;
    int children = -1, started = 0, bwrap_ended = 0, init_ended = 0;
    char buf[65536];
    while (fds[STATUS].fd >= 0 || fds[ERR].fd >= 0 || !bwrap_ended || (init && !init_ended)) {
        if (poll(fds, SLOTS, init && !started ? 8 : -1) < 0 && errno != EINTR) break;
        if (fds[STATUS].revents) {
            ssize_t got = read(st[0], status + used, sizeof status - 1 - used);
            if (got <= 0) { close(st[0]); fds[STATUS].fd = -1; }
            else {
                used += got;
                status[used] = 0;
                char *pid = init ? NULL : strstr(status, "\"child-pid\":");
                if (pid) {
                    init = (pid_t)atol(pid + strlen("\"child-pid\":"));
                    fds[INIT].fd = pidfd_open_(init);
                    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)init, (int)init);
                    children = open(path, O_RDONLY | O_CLOEXEC);
                    if (cg[0]) {
                        snprintf(path, sizeof path, "%s/cgroup.procs", cg);
                        snprintf(line, sizeof line, "%d", (int)init);
                        write_file(path, line);
                    }
                    prlimit(init, RLIMIT_NOFILE, &client_files, NULL); /* the client's soft limit, as bwrapd */
                    write(hold[1], "\1", 1);
                    fds[HOLD].fd = hold[1]; /* POLLERR once the init has read it and closed its end */
                }
            }
        }
        if (fds[ERR].revents && read(err[0], buf, sizeof buf) <= 0) { close(err[0]); fds[ERR].fd = -1; }
        if (fds[BWRAP].revents) { bwrap_ended = 1; close(fds[BWRAP].fd); fds[BWRAP].fd = -1; }
        if (fds[INIT].revents) { init_ended = 1; close(fds[INIT].fd); fds[INIT].fd = -1; }
        if (fds[HOLD].revents) { close(hold[1]); hold[1] = -1; fds[HOLD].fd = -1; }
        if (init && !started && fds[HOLD].fd < 0 && children >= 0) {
            ssize_t got = pread(children, buf, sizeof buf, 0);
            if (got > 0 || init_ended) {
                started = 1;
                put(&answers, line_of("{\"jsonrpc\":\"2.0\",\"method\":\"sandbox/started\",\"params\":{\"sandboxId\":\"sb-%ld\",\"pid\":%d,\"requestId\":%s}}\n",
                                      seq, (int)init, request_id));
            }
        }
    }
    int ws, exit_code = -1;
    while (waitpid(bwrap, &ws, 0) < 0 && errno == EINTR) {}
    char *code = strstr(status, "\"exit-code\":");
    if (code) exit_code = atoi(code + strlen("\"exit-code\":"));
    struct rusage usage = {0};
    if (init > 0) while (wait4(init, &ws, 0, &usage) < 0 && errno == EINTR) {}
    if (cg[0]) {
        snprintf(path, sizeof path, "%s/cpu.stat", cg);
        read_file(path, status, sizeof status);
        if (rmdir(cg) != 0) {
            snprintf(path, sizeof path, "%s/cgroup.kill", cg);
            write_file(path, "1");
            for (int i = 0; rmdir(cg) != 0 && errno == EBUSY && i < 1000; i++) usleep(100);
        }
    }
    n = snprintf(line, sizeof line, "-%d %ld\n", (int)bwrap, seq);
    write(watchdog_fd, line, n);
    if (hold[1] >= 0) close(hold[1]);
    if (children >= 0) close(children);
    close(wake[0]);
    close(wake[1]);
    close(root);
    put(&answers, line_of("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"sandboxId\":\"sb-%ld\",\"status\":\"exited\",\"exitCode\":%d,"
                          "\"usage\":{\"userMs\":%ld,\"systemMs\":%ld,\"maxRssKiB\":%ld},\"cleanup\":{\"ok\":true,\"removed\":[]}}}\n",
                          request_id, seq, exit_code, usage.ru_utime.tv_sec * 1000 + usage.ru_utime.tv_usec / 1000,
                          usage.ru_stime.tv_sec * 1000 + usage.ru_stime.tv_usec / 1000, usage.ru_maxrss));
    return;
refused:
    if (root >= 0) close(root);
    put(&answers, line_of("{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":-32603,\"message\":\"%s\"}}\n", request_id, what));
}

static void *run_thread(void *unused) {
    (void)unused;
    long seq = 0;
    for (char *request; (request = take(&requests)) != NULL; free(request)) rules_run(++seq, "1");
    put(&answers, NULL);
    return NULL;
}

static void *writer_thread(void *unused) {
    (void)unused;
    for (char *text; (text = take(&answers)) != NULL; free(text)) {
        for (size_t at = 0, length = strlen(text); at < length;) {
            ssize_t n = write(1, text + at, length - at);
            if (n <= 0) exit(1);
            at += n;
        }
    }
    return NULL;
}

static int rules_main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: run_floor --rules ROOT CGROUP_BASE|- EXECUTABLE ARGV0 ARG...\n");
        return 2;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    rules_root = argv[2];
    rules_base = argv[3];
    getrlimit(RLIMIT_NOFILE, &client_files);
    /* Descriptors 3 to 19 parked: every one opened from here on is above bwrap's 0 to 11, so
     * dup2(child[i], i) never overwrites a source before it is used. */
    while (open("/dev/null", O_RDONLY | O_CLOEXEC) < 19) {}
    devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    const char *devices[] = {"/dev/full", "/dev/null", "/dev/urandom", "/dev/random", "/dev/zero"};
    for (int i = 0; i < 5; i++) device_fds[i] = openat2_(AT_FDCWD, devices[i], O_PATH, RESOLVE_NO_SYMLINKS); /* kept, as bwrapd */
    int watchdog[2];
    pipe2(watchdog, O_CLOEXEC);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, watchdog[0], 0);
    char *awk[] = {"awk", "{ id = substr($0, 2) } /^[+]/ { live[id] = 1 } /^-/ { delete live[id] }", NULL};
    pid_t watcher;
    if (posix_spawnp(&watcher, "awk", &fa, NULL, awk, environ) != 0) { perror("awk"); return 1; }
    posix_spawn_file_actions_destroy(&fa);
    close(watchdog[0]);
    watchdog_fd = watchdog[1];
    static char *spawn_argv[4096];
    spawn_argv[0] = argv[4];
    for (int i = 5; i < argc && i - 3 < 4095; i++) spawn_argv[i - 4] = argv[i];
    rules_argv = spawn_argv;
    for (int i = 1; spawn_argv[i]; i++) if (strcmp(spawn_argv[i], "--") == 0) rules_command = spawn_argv[i + 1];
    if (!rules_command) { fprintf(stderr, "run_floor: no \"--\" in bwrap's argv\n"); return 2; }
    pthread_t runner, writer;
    pthread_create(&runner, NULL, run_thread, NULL);
    pthread_create(&writer, NULL, writer_thread, NULL);
    char request[65536];
    while (fgets(request, sizeof request, stdin)) put(&requests, strdup(request));
    put(&requests, NULL);
    pthread_join(runner, NULL);
    pthread_join(writer, NULL);
    close(watchdog_fd);
    waitpid(watcher, NULL, 0);
    return 0;
}
