package dev.bwrapd.process;

/** How a reaped process ended, with its resource usage (its own plus its reaped descendants'). */
public record ExitStatus(int pid, int rawStatus, long userCpuMicros, long systemCpuMicros, long maxRssKiB) {

    public boolean exited() {
        return (rawStatus & 0x7f) == 0;
    }

    public int exitCode() {
        return (rawStatus >> 8) & 0xff;
    }

    public boolean signaled() {
        int low = rawStatus & 0x7f;
        return low != 0 && low != 0x7f;
    }

    public int termSignal() {
        return rawStatus & 0x7f;
    }

    /**
     * The sandbox's usage: bwrap's CPU plus its init's (which includes the command, reaped by the
     * init). Peak memory is the init's: bwrap's own figure is inflated by the server's memory,
     * which the kernel carries over to a vforked child at exec.
     */
    public static ExitStatus sandboxUsage(ExitStatus bwrap, ExitStatus init) {
        if (init == null) return bwrap;
        return new ExitStatus(bwrap.pid, bwrap.rawStatus, bwrap.userCpuMicros + init.userCpuMicros,
                bwrap.systemCpuMicros + init.systemCpuMicros, init.maxRssKiB);
    }
}
