/* SeccompIT's probe: tries each system call named on its command line, prints NAME=ok or NAME=ERRNONAME. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/utsname.h>
#include <unistd.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char c = 'x';
        long r = -1;
        const char *what = argv[i];
        if (!strcmp(what, "tiocsti")) r = ioctl(0, TIOCSTI, &c);
        else if (!strcmp(what, "unshare-user")) r = unshare(CLONE_NEWUSER);
        else if (!strcmp(what, "unshare-mount")) r = unshare(CLONE_NEWNS);
        else if (!strcmp(what, "mount")) r = mount("none", "/tmp", "tmpfs", 0, NULL);
        else if (!strcmp(what, "personality-linux32")) r = personality(PER_LINUX32);
        else if (!strcmp(what, "personality-linux")) r = personality(PER_LINUX);
        else if (!strcmp(what, "personality-norandom")) r = personality(PER_LINUX | ADDR_NO_RANDOMIZE);
        else if (!strcmp(what, "getpid")) r = getpid();
        else if (!strcmp(what, "uname")) { struct utsname u; r = uname(&u); }
        else if (!strcmp(what, "fork")) { pid_t p = fork(); if (p == 0) _exit(0); r = p > 0 ? 0 : -1; }
        printf("%s=%s\n", what, r == -1 ? strerrorname_np(errno) : "ok");
        fflush(stdout);
    }
    return 0;
}
