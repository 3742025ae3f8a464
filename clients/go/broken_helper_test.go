package bwrapd_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	bwrapd "bwrapd.dev/client"
)

// A helper that stops reading its input, with a write stuck in the pipe (a run with
// 4 MiB of stdin): Close keeps to CloseTimeout all the same, killing the helper.
func TestCloseKeepsToItsTimeoutWithAWriteStuck(t *testing.T) {
	h := startFake(t, "noread", bwrapd.Options{CloseTimeout: 2 * time.Second})
	runErr := make(chan error, 1)
	go func() {
		_, err := h.Start(context.Background(), bwrapd.RunRequest{Command: []string{"cat"},
			Stdin: bwrapd.StdinBytes(bytes.Repeat([]byte("a"), 4<<20))})
		runErr <- err
	}()
	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- h.Close() }()
	select {
	case err := <-closed:
		if err == nil {
			t.Errorf("Close of a helper that had to be killed returned no error")
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("Close took %v with CloseTimeout 2s", d)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Close (CloseTimeout 2s) still blocked after 60s")
	}
	select {
	case err := <-runErr:
		if err == nil {
			t.Errorf("the stuck run did not fail")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run whose write was stuck still blocked after the helper was killed")
	}
}
