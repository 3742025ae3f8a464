package bwrapd

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// sendable are the signals sandbox/signal accepts, by the names the protocol uses.
var sendable = map[syscall.Signal]string{
	syscall.SIGSTOP: "SIGSTOP", syscall.SIGCONT: "SIGCONT", syscall.SIGTERM: "SIGTERM",
	syscall.SIGKILL: "SIGKILL", syscall.SIGINT: "SIGINT", syscall.SIGHUP: "SIGHUP",
	syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2", syscall.SIGQUIT: "SIGQUIT",
}

// signalNames are the Linux signal names a result may report, besides SIGRTMIN+n.
var signalNames = map[string]syscall.Signal{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGBUS": 7,
	"SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13,
	"SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19,
	"SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25,
	"SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29, "SIGPWR": 30, "SIGSYS": 31,
}

const sigRTMin = 34

// signalName is the protocol's name for sig, or an error for a signal it does not accept.
func signalName(sig syscall.Signal) (string, error) {
	if name, ok := sendable[sig]; ok {
		return name, nil
	}
	return "", fmt.Errorf("bwrapd: signal %d (%v) cannot be sent to a sandbox", int(sig), sig)
}

// signalNumber reads a signal name from a result: 0 when empty or unknown.
func signalNumber(name string) syscall.Signal {
	if n, ok := signalNames[name]; ok {
		return n
	}
	switch {
	case strings.HasPrefix(name, "SIGRTMIN+"):
		if n, err := strconv.Atoi(name[len("SIGRTMIN+"):]); err == nil && n >= 0 {
			return syscall.Signal(sigRTMin + n)
		}
	case strings.HasPrefix(name, "SIG"): // "SIG33": a number the server has no name for
		if n, err := strconv.Atoi(name[len("SIG"):]); err == nil && n > 0 {
			return syscall.Signal(n)
		}
	}
	return 0
}
