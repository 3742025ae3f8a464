"""Runs a command on a new pseudo-terminal and plays a script against it, as a user at
a terminal would (Python's standard library; Node has no pseudo-terminals of its own).

    pty-driver.py ROWS COLS SCRIPT -- COMMAND [ARG...]

SCRIPT is a JSON list of steps: ["expect", text] waits (30 s at most) until the terminal
shows text after what earlier expects matched; ["send", text] types text;
["resize", rows, cols] resizes the terminal (its foreground process group gets SIGWINCH);
["running", argv0, arg...] waits (30 s at most) until a process runs with exactly that argv
(argv0 compared by its base name), say the shell's job; ["sleep", seconds]. Everything the terminal showed goes to stdout; the exit status is the
command's, or 99 when an expect timed out (then the command is killed).
"""

import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import time


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def running(argv):
    """Whether a live process has exactly argv (its argv[0] compared by its base name)."""
    wanted = [a.encode() for a in argv]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                args = f.read().split(b"\0")[:-1]
        except OSError:
            continue
        if args and os.path.basename(args[0]) == wanted[0] and args[1:] == wanted[1:]:
            return True
    return False


def main():
    rows, cols, script = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    command = sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the session leader, the terminal its controlling one
        set_size(0, rows, cols)
        os.execvp(command[0], command)
    shown, matched = b"", 0

    def read(timeout):
        """What the terminal showed next: b"" once it closed, None after timeout seconds."""
        nonlocal shown
        if not select.select([fd], [], [], max(timeout, 0))[0]:
            return None
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the command and everything it started closed the terminal
            data = b""
        shown += data
        return data

    for step in script:
        if step[0] == "expect":
            wanted, deadline = step[1].encode(), time.monotonic() + 30
            while shown.find(wanted, matched) < 0:
                if read(deadline - time.monotonic()) == b"" or time.monotonic() > deadline:
                    sys.stdout.buffer.write(shown)
                    sys.stderr.write("pty-driver: no %r on the terminal\n" % step[1])
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    return 99
            matched = shown.find(wanted, matched) + len(wanted)
        elif step[0] == "send":
            os.write(fd, step[1].encode())
        elif step[0] == "resize":
            set_size(fd, step[1], step[2])
        elif step[0] == "running":
            deadline = time.monotonic() + 30
            while not running(step[1:]):
                if read(0.05) == b"" or time.monotonic() > deadline:
                    sys.stdout.buffer.write(shown)
                    sys.stderr.write("pty-driver: no process %r\n" % (step[1:],))
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    return 99
        elif step[0] == "sleep":
            time.sleep(step[1])
    while read(60):
        pass
    _, status = os.waitpid(pid, 0)
    sys.stdout.buffer.write(shown)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
