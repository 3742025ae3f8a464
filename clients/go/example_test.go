package bwrapd_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"syscall"
	"time"

	bwrapd "bwrapd.dev/client"
)

// The README's example (compiled, not run: it needs the helper).
func Example() {
	ctx := context.Background()
	h, err := bwrapd.Start(ctx, bwrapd.Options{}) // $BWRAPD, else bwrapd on PATH
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close() // shutdown, exit, end of input; killed after 10 s

	// Run and wait. Cancelling ctx cancels the run ($/cancelRequest).
	res, err := h.Run(ctx, bwrapd.RunRequest{
		Command:   []string{"/bin/sh", "-c", "echo hello from $(hostname)"},
		Root:      "/", // the host root, mounted read-only
		TimeoutMs: bwrapd.Millis(10 * time.Second),
	})
	if err != nil {
		log.Fatal(err) // *bwrapd.RPCError, *bwrapd.HelperExitedError or a ctx error
	}
	fmt.Printf("%s %d %q\n", res.Status, *res.ExitCode, res.Stdout) // exited 0 "hello from sandbox\n"

	// Start returns a handle to control a running sandbox; output can be streamed.
	sb, err := h.Start(ctx, bwrapd.RunRequest{
		Command: []string{"/bin/sh", "-c", "while :; do date; sleep 1; done"},
		Stdout:  bwrapd.StreamTo(os.Stdout), // or Stream() with OnOutput
	})
	if err != nil {
		log.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	_, _ = sb.Suspend(ctx)
	_, _ = sb.Signal(ctx, syscall.SIGUSR1) // delivered or not, and an error
	_, _ = sb.Resume(ctx)
	_, _ = sb.Terminate(ctx, time.Second) // SIGTERM, then SIGKILL after 1 s
	res, _ = sb.Wait()
	fmt.Println(sb.ID(), res.Status) // go-<pid>-2 signaled
}
