// Command bwrapd-run runs one command in a bwrapd sandbox and prints the result.
//
//	go run ./cmd/bwrapd-run [-root /] [-stream] [-timeout 10s] [-network] -- COMMAND [ARG...]
//
// The helper is found as bwrapd.Start does: -helper, else $BWRAPD, else bwrapd on PATH.
// By default the host root "/" is mounted read-only at "/" in the sandbox.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	bwrapd "bwrapd.dev/client"
)

func main() {
	root := flag.String("root", "/", "host directory mounted at / in the sandbox")
	stream := flag.Bool("stream", false, "stream stdout and stderr as they come instead of capturing them")
	timeout := flag.Duration("timeout", 0, "time limit for the command (0: none)")
	network := flag.Bool("network", false, "share the host network")
	cwd := flag.String("cwd", "/", "working directory inside the sandbox")
	verbose := flag.Bool("v", false, "show the helper's stderr")
	helperPath := flag.String("helper", "", "the bwrapd executable (default: $BWRAPD, else bwrapd on PATH)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] -- COMMAND [ARG...]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}

	// Ctrl-C cancels the run (the helper terminates the sandbox) instead of killing us.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := bwrapd.Options{Path: *helperPath}
	if *verbose {
		opts.Stderr = os.Stderr
	}
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	h, err := bwrapd.Start(startCtx, opts)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer h.Close()

	req := bwrapd.RunRequest{
		Command: flag.Args(),
		Root:    *root,
		Cwd:     *cwd,
		Network: *network,
	}
	if *timeout > 0 {
		req.TimeoutMs = bwrapd.Millis(*timeout)
	}
	if *stream {
		req.Stdout, req.Stderr = bwrapd.StreamTo(os.Stdout), bwrapd.StreamTo(os.Stderr)
	}
	res, err := h.Run(ctx, req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		h.Close()
		os.Exit(1)
	}
	os.Stdout.Write(res.Stdout)
	os.Stderr.Write(res.Stderr)

	fmt.Fprintf(os.Stderr, "sandbox %s: %s", res.SandboxID, res.Status)
	if res.ExitCode != nil {
		fmt.Fprintf(os.Stderr, ", exit code %d", *res.ExitCode)
	}
	if res.Signal != "" { // res.SignalNumber() is the syscall.Signal
		fmt.Fprintf(os.Stderr, ", signal %s", res.Signal)
	}
	if res.SetupError != "" {
		fmt.Fprintf(os.Stderr, ", setup error: %s", res.SetupError)
	}
	fmt.Fprintf(os.Stderr, ", %v (user %v, system %v, max RSS %d KiB)\n", res.Duration().Round(time.Millisecond),
		res.Usage.UserCPU().Round(time.Microsecond), res.Usage.SystemCPU().Round(time.Microsecond), res.Usage.MaxRSSKiB)

	code := 1
	if res.Status == bwrapd.StatusExited && res.ExitCode != nil {
		code = *res.ExitCode
	}
	h.Close()
	os.Exit(code)
}
