package dev.bwrapd.process;

import org.jboss.logging.Logger;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

/**
 * Covers the one moment --die-with-parent does not: bwrap arms it in the sandbox's init only at
 * the end of its setup, so a sandbox being set up when bwrapd is killed would run on (or hang in
 * its setup forever). A small shell process, in a session of its own, keeps the process groups of
 * the sandboxes still alive; bwrapd tells it of each group as it appears and goes. When its input
 * ends — bwrapd exited or was killed, the kernel closes the pipe either way — it kills every group
 * it still holds that is still a sandbox's: a group id is never reused while the group has members,
 * and each group it is told of has a member with this helper's mark (bwrap, or the sandbox's init,
 * which keeps bwrap's command line) for as long as it has any; a group it was told of but whose
 * members carry no mark is empty and was renumbered (bwrapd reaps bwrap a moment before it tells
 * the watchdog to forget its group), and is left alone. It also holds the sandboxes' cgroups: killing a cgroup reaches every process
 * of the sandbox, however it left its group or session, and the cgroups are removed afterwards.
 */
public final class Watchdog {
    private static final Logger LOG = Logger.getLogger(Watchdog.class);

    /**
     * "+ID" adds process group ID, "-ID" drops it; an ID starting with "/" is a sandbox's cgroup
     * directory, one starting with "=" a group whose processes carry no mark (killed as told), one
     * "ID@START" a group killed while its leader is the process that started at START (field 22 of
     * its stat); "-ID" drops that too (a cgroup's path, which may hold an '@', is taken whole). The lines are followed by awk where there is one: sh's {@code read} takes a pipe a
     * byte at a time, a system call per byte, ~150 per run (0.3–0.4 ms of CPU per run here); awk
     * reads them in blocks. At end of input every cgroup left is killed (cgroup.kill; on v1, SIGKILL to each
     * member of it and of the cgroups below it, each cgroup thawed, until it is empty) and every group left told as unmarked; then, after one look
     * at /proc for processes marked with $1, every other group left that has a marked member (every
     * group left, without a mark or should the look not finish within 5 s: a process whose memory is
     * locked can hold up a read of its command line, grep's and the check of each candidate's argv[0]
     * alike; each look is so bounded where `timeout` is),
     * the cgroups are removed (all of them in each round, for up to 5 s: a v1 memory or pids
     * cgroup of a frozen sandbox empties only once its freezer cgroup is thawed), then every process whose
     * command line begins with the mark, $2 (found by $1: see {@link #pattern}), is killed. The look for marked processes is
     * repeated until a hundred in a row (over a second) find none: a marked bwrap the watchdog was
     * never told of may clone its init between one look's listing of /proc and its kill, and a bwrap
     * spawned the moment before bwrapd died takes the mark only once it has exec'd, which a loaded
     * machine can delay by a good part of a second (CI found held inits that ten looks, some
     * 100 ms, missed).
     */
    static final String SCRIPT = """
            if command -v awk >/dev/null; then
              live=$(awk '{ id = substr($0, 2); key = id; if (id !~ /^[/]/) sub(/@.*/, "", key) } /^[+]/ { live[key] = id } /^-/ { delete live[key] } END { for (key in live) print live[key] }')
            else
              live=' '
              while read -r line; do
                id=${line#?}
                case $line in
                  +*) live="$live$id " ;;
                  -/*) case $live in *" $id "*) live="${live%%" $id "*} ${live#*" $id "}" ;; esac ;;
                  -*) case $live in
                        *" $id "*) live="${live%%" $id "*} ${live#*" $id "}" ;;
                        *" $id@"*) rest=${live#*" $id@"}; live="${live%%" $id@"*} ${rest#* }" ;;
                      esac ;;
                esac
              done
            fi
            held=' '
            for id in $live; do
              case $id in
                /*) [ ! -e "$id/cgroup.kill" ] || echo 1 > "$id/cgroup.kill" ;;
                =*) kill -9 "-${id#=}" ;;
                *) held="$held$id " ;;
              esac
            done 2>/dev/null
            third() { echo "$3"; }
            started() { shift 19; echo "$1"; }
            below() { for d in "$2"/*/ "$2"/.[!.]*/ "$2"/..?*/; do [ ! -d "$d" ] || below "$1" "${d%/}"; done; "$1" "$2"; }
            killone() { kill -9 $(cat "$1/cgroup.procs"); [ ! -e "$1/freezer.state" ] || echo THAWED > "$1/freezer.state"; }
            filter='found=$(grep -l -a -s "$1" /proc/[0-9]*/cmdline); looked=$?
              for f in $found; do [ "$(head -c ${#2} "$f")" != "$2" ] || echo "$f"; done; exit $looked'
            look() {
              if command -v timeout >/dev/null; then timeout -s KILL 5 /bin/sh -c "$filter" look "$1" "$2"
              else /bin/sh -c "$filter" look "$1" "$2"; fi
            }
            ours=
            if [ -n "$1" ] && [ "$held" != ' ' ]; then
              found=$(look "$1" "$2")
              if [ $? -lt 124 ]; then
                ours=' '
                for f in $found; do
                  s=$(cat "${f%/cmdline}/stat") && ours="$ours$(third ${s##*') '}) "
                done
              fi
            fi 2>/dev/null
            for id in $held; do
              case $id in
                *@*) read -r s < "/proc/${id%@*}/stat" && [ "$(started ${s##*') '})" = "${id#*@}" ] && kill -9 "-${id%@*}" ;;
                *) case $ours in ''|*" $id "*) kill -9 "-$id" ;; esac ;;
              esac
            done 2>/dev/null
            n=0
            while [ $n -lt 500 ]; do
              left=
              for id in $live; do
                case $id in /*)
                  if [ -d "$id" ] && ! below rmdir "$id"; then
                    left=1
                    [ -e "$id/cgroup.kill" ] || below killone "$id"
                  fi ;;
                esac
              done
              [ -n "$left" ] || break
              sleep 0.01; n=$((n+1))
            done 2>/dev/null
            if [ -n "$1" ]; then
              quiet=0; n=0
              while [ $quiet -lt 100 ] && [ $n -lt 2000 ]; do
                found=$(look "$1" "$2")
                if [ -n "$found" ]; then quiet=0; else quiet=$((quiet+1)); fi
                for f in $found; do
                  p=${f#/proc/}; kill -9 "${p%/cmdline}"
                done
                sleep 0.01; n=$((n+1))
              done 2>/dev/null
            fi
            """;

    private final Spawner spawner;
    /** The write end of the shell's input; 0 before the first use, -1 if the shell could not start. */
    private int pipe;
    /**
     * What the shell holds, as it keeps it (its awk's {@code live}: by group number, or a cgroup's
     * whole path), so that a shell that died (killed by someone, the OOM killer) is replaced by one
     * told all of it again at the next line: otherwise nobody would cover a later death of bwrapd.
     */
    private final java.util.Map<String, String> held = new java.util.HashMap<>();
    /** Which shell this is (one more each start). */
    private int generation;
    /**
     * The last shell known to have ended: its exit, which the reaper sees with its own lock held
     * (so it is told without this object's, which a restart holds while it spawns through the
     * reaper), or a write it refused.
     */
    private final java.util.concurrent.atomic.AtomicInteger ended = new java.util.concurrent.atomic.AtomicInteger();
    /** bwrap's argv[0] for this helper's sandboxes ({@link #mark}), passed to the shell as $1. */
    final String mark;

    /** Whether this helper's bwraps show {@link #mark} in their command line: known from the first one looked at. */
    private volatile Boolean markShown;

    /** Made in Main; the shell starts at the first {@link #mark} or {@link #watch}, so a helper that runs nothing starts none. */
    public Watchdog(Spawner spawner) {
        this.spawner = spawner;
        this.mark = "bwrapd-held-" + ProcessHandle.current().pid() + "-" + Long.toHexString(new java.security.SecureRandom().nextLong() >>> 1) + ":";
    }

    /**
     * The grep pattern for command lines with an argument starting with {@code mark} (GNU grep
     * takes the NULs between arguments as line ends): spelled so that grep's own command line does
     * not match it. Marks end with ':', so no mark is a prefix of another. What grep finds is only
     * a candidate: the shell (given the mark itself as $2) kills a process only if its command line
     * begins with the mark, its argv[0]. A sandbox reads the mark in its init's command line, and a
     * host process with an argument it made (a file name with a newline and the mark) matched too.
     */
    static String pattern(String mark) {
        return "^" + mark.replaceFirst("-", "[-]");
    }

    /**
     * The name this helper's bwraps run under (their argv[0]; bwrap's messages still say "bwrap:").
     * A sandbox's init keeps bwrap's command line until it ends, so when bwrapd dies the watchdog
     * finds, by this name, every sandbox it was not yet told of — one whose bwrap had just been
     * spawned — and kills it: its init is still held, in bwrap's session, never past its setup.
     * Starts the watchdog if it is not running yet, so that it exists before the first spawn.
     */
    public synchronized String mark() {
        if (pipe == 0) pipe = start();
        return mark;
    }

    /**
     * Whether bwrap {@code pid}, just spawned with {@link #mark} as its argv[0], shows it in its
     * command line where the watchdog reads it: not when the configured bwrap is a script (the
     * kernel gives its interpreter the script's path instead) or /proc hides it. Looked at once,
     * when the first bwrap is spawned (false, and looked at again next time, should it be gone).
     */
    public boolean showsMark(int pid) {
        Boolean shown = markShown;
        if (shown != null) return shown;
        byte[] expected = mark.getBytes(StandardCharsets.US_ASCII);
        byte[] head = head("/proc/" + pid + "/cmdline", expected.length);
        if (head == null || head.length == 0) return false; // it ended meanwhile: its command line is empty
        markShown = shown = java.util.Arrays.equals(head, expected);
        return shown;
    }

    /** The first {@code max} bytes of a /proc file (fewer if it is shorter), or null if it cannot be read. */
    private static byte[] head(String path, int max) {
        byte[] head = new byte[max];
        int fd = Libc.openat(Libc.AT_FDCWD, path, Libc.O_RDONLY);
        if (fd < 0) return null;
        int n = 0;
        try {
            for (int got; n < head.length && (got = Libc.read(fd, head, n, head.length - n)) > 0; ) n += got;
        } catch (Libc.Error e) {
            return null;
        } finally {
            Libc.close(fd);
        }
        return java.util.Arrays.copyOf(head, n);
    }

    private int start() {
        try {
            int[] input = Libc.pipe();
            int devNull = Libc.open("/dev/null", Libc.O_RDWR, 0);
            try {
                Reaper.Child shell = spawner.spawn(new Spawner.Spec("/bin/sh", List.of("bwrapd-watchdog", "-c", SCRIPT, "bwrapd-watchdog", pattern(mark), mark),
                        List.of("PATH=/usr/bin:/bin"), new int[] {input[0], devNull, devNull}));
                int started = ++generation;
                // Its awk may outlive it, still reading: the write would not fail, and nobody would kill anything.
                shell.exit().whenComplete((status, error) -> ended.accumulateAndGet(started, Math::max));
            } finally {
                Libc.close(input[0]);
                Libc.close(devNull);
            }
            return input[1];
        } catch (Libc.Error e) {
            LOG.warnf("no watchdog (%s): a sandbox still being set up when bwrapd is killed may outlive it", e.getMessage());
            return -1;
        }
    }

    /**
     * From now on, kill process group {@code pgid} (0: none) and every process in {@code cgroups},
     * and remove those, should bwrapd die. {@code marked}: the group's bwrap runs under {@link #mark},
     * and the group is killed only while a marked process is in it; unmarked (under linux32, which
     * names bwrap itself), it is killed as told. One write for all: each write wakes the watchdog.
     */
    public void watch(int pgid, boolean marked, List<Path> cgroups) {
        send('+', ids(cgroups, marked, pgid));
    }

    /**
     * From now on, kill the group process {@code leader} leads (the sandbox's init, after its
     * setsid), should bwrapd die, for as long as {@code leader} itself is alive, told by its start
     * time. Not by the mark: the init's command line is the sandbox's to overwrite (its command is
     * uid 0 in the init's user namespace and may write /proc/1/mem); its start time nothing can
     * change. And once the init is gone, so is every process of its PID namespace, its group's too.
     * Should it be gone already, the group is told as {@link #watch} tells one.
     */
    public void watchLeader(int leader, boolean marked) {
        String start = startTime(leader);
        if (start == null) {
            watch(leader, marked, List.of());
        } else {
            send('+', List.of(leader + "@" + start));
        }
    }

    /** Field 22 of /proc/PID/stat (after the command's name, which may hold anything but ends at the last ')'), or null. */
    static String startTime(int pid) {
        byte[] stat = head("/proc/" + pid + "/stat", 1024);
        if (stat == null) return null;
        String line = new String(stat, StandardCharsets.ISO_8859_1);
        String[] fields = line.substring(line.lastIndexOf(')') + 2).trim().split(" ");
        return fields.length > 19 ? fields[19] : null; // fields[0] is field 3, the state
    }

    /** Group {@code pgids} and {@code cgroups} are gone (or about to be): forget them, in one write. */
    public void forget(List<Path> cgroups, boolean marked, int... pgids) {
        send('-', ids(cgroups, marked, pgids));
    }

    /** What the script's lines name after their sign: a group ("=" when unmarked), a cgroup's directory. */
    private static List<String> ids(List<Path> cgroups, boolean marked, int... pgids) {
        List<String> ids = new java.util.ArrayList<>(pgids.length + cgroups.size());
        for (int pgid : pgids) if (pgid != 0) ids.add(marked ? Integer.toString(pgid) : "=" + pgid);
        for (Path dir : cgroups) ids.add(dir.toString());
        return ids;
    }

    /** Ends the watchdog's input as bwrapd's exit does: it kills what it holds. bwrapd never calls it (its death does); tests do. */
    public synchronized void closeInput() {
        if (pipe > 0) Libc.close(pipe);
        pipe = -1;
    }

    /** Tells the watchdog to hold ({@code sign} '+') or let go of ('-') each of {@code ids}, in one write. */
    private synchronized void send(char sign, List<String> ids) {
        if (ids.isEmpty()) return;
        StringBuilder lines = new StringBuilder();
        for (String id : ids) {
            int at = id.indexOf('@');
            String key = at < 0 || id.startsWith("/") ? id : id.substring(0, at); // as the script keys it
            if (sign == '+') held.put(key, id);
            else held.remove(key);
            lines.append(sign).append(id).append('\n');
        }
        if (pipe == 0) pipe = start();
        if (pipe < 0) return;
        if (ended.get() != generation) {
            try {
                Libc.writeFully(pipe, lines.toString().getBytes(StandardCharsets.UTF_8));
                return;
            } catch (Libc.Error e) { // its input closed: only its death does that (EPIPE; SIGPIPE is ignored)
                ended.accumulateAndGet(generation, Math::max);
            }
        }
        LOG.warnf("the watchdog ended: starting another, told all it held");
        Libc.close(pipe); // an awk of the old one still reading it reads its end, and ends
        pipe = start();
        if (pipe < 0) return;
        StringBuilder all = new StringBuilder();
        for (String id : held.values()) all.append('+').append(id).append('\n');
        try {
            if (!all.isEmpty()) Libc.writeFully(pipe, all.toString().getBytes(StandardCharsets.UTF_8));
        } catch (Libc.Error e) {
            LOG.warnf("the new watchdog refused its input too (%s)", e.getMessage());
        }
    }
}
