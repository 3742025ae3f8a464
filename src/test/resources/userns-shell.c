/*
 * What a hostile command can do without help: make a user namespace (its uid there 0, mapped to
 * its own), then a mount and a cgroup namespace, and run argv[1..] in them. There it may mount
 * cgroupfs, whose root is the cgroup it is in. CgroupIT gives it to a sandbox with limits.
 * Refused a user namespace (bwrap's --disable-userns) it says so on stderr and goes on without
 * one: a sandbox granted CAP_SYS_ADMIN may still make the other two.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int put(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    int ok = fd >= 0 && write(fd, text, strlen(text)) == (ssize_t) strlen(text);
    if (fd >= 0) close(fd);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    char map[64];
    unsigned uid = getuid(), gid = getgid();
    if (argc < 2) return 2;
    if (unshare(CLONE_NEWUSER) != 0) {
        perror("unshare user");
    } else {
        snprintf(map, sizeof map, "0 %u 1", uid);
        if (put("/proc/self/uid_map", map) != 0) { perror("uid_map"); return 1; }
        put("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "0 %u 1", gid);
        if (put("/proc/self/gid_map", map) != 0) { perror("gid_map"); return 1; }
    }
    if (unshare(CLONE_NEWNS | CLONE_NEWCGROUP) != 0) { perror("unshare mount, cgroup"); return 1; }
    execvp(argv[1], argv + 1);
    perror("exec");
    return 1;
}
