package bwrapd_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bwrapd "bwrapd.dev/client"
)

// A request over the helper's maxMessageBytes is skipped by the helper and answered
// with id null: the client refuses it before sending, or Run would never return.
func TestRequestOverMaxMessageBytesFailsAtOnce(t *testing.T) {
	const limit = 4096
	h, err := startHelper(bwrapd.Options{Args: []string{"--max-message-bytes", "4096"}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := h.ServerInfo().Limits.MaxMessageBytes; got != limit {
		t.Fatalf("limits.maxMessageBytes: %d", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	_, err = h.Run(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"cat"}, Stdin: bwrapd.StdinBytes(bytes.Repeat([]byte("x"), limit))})
	if !errors.Is(err, bwrapd.ErrMessageTooLarge) {
		t.Fatalf("want ErrMessageTooLarge, got %v after %v", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), "StdinFile") {
		t.Errorf("the error does not say what to do instead: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused after %v", d)
	}
	// Nothing was sent: the next request is served normally.
	res, err := h.Run(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"cat"}, Stdin: bwrapd.StdinText("small")})
	if err != nil || string(res.Stdout) != "small" {
		t.Fatalf("the next run: %v %s", err, describe(res))
	}
}

// encoding/json replaces invalid UTF-8 with U+FFFD: a different argument, or another
// host file. Such a request is refused, naming the field.
func TestInvalidUTF8IsRefusedNamingTheField(t *testing.T) {
	h := helper(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	cases := []struct {
		field string
		req   bwrapd.RunRequest
	}{
		{"command[2]", bwrapd.RunRequest{Command: []string{"printf", "%s", "a\xffb"}}},
		{"stdout.file", bwrapd.RunRequest{Command: []string{"echo", "written"}, Stdout: bwrapd.ToFile(filepath.Join(dir, "out\xff"), false)}},
		{`env["A\xff"] (the key)`, bwrapd.RunRequest{Command: []string{"true"}, Env: map[string]string{"A\xff": "x"}}},
		{`env["A"]`, bwrapd.RunRequest{Command: []string{"true"}, Env: map[string]string{"A": "\xc3"}}},
		{"mounts[0].source", bwrapd.RunRequest{Command: []string{"true"}, Mounts: []bwrapd.Mount{{Source: dir + "/\xfe", Target: "/m"}}}},
		{"cwd", bwrapd.RunRequest{Command: []string{"true"}, Cwd: "/\xff"}},
		{"stdin.text", bwrapd.RunRequest{Command: []string{"cat"}, Stdin: bwrapd.StdinText("\xff")}},
		{"stdin.file", bwrapd.RunRequest{Command: []string{"cat"}, Stdin: bwrapd.StdinFile(dir + "/\xff")}},
		{"sandboxId", bwrapd.RunRequest{Command: []string{"true"}, SandboxID: "go-\xff"}},
	}
	for _, c := range cases {
		c.req.Root = rootfs
		res, err := h.Run(ctx, c.req)
		if !errors.Is(err, bwrapd.ErrInvalidUTF8) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: want ErrInvalidUTF8 naming %s, got %v %s", c.field, c.field, err, describe(res))
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a file was written: %v", ents)
	}
	if _, err := h.Signal(ctx, "go-\xff", 15); !errors.Is(err, bwrapd.ErrInvalidUTF8) || !strings.Contains(err.Error(), "sandboxId") {
		t.Errorf("Signal with an invalid id: %v", err)
	}
	// Valid UTF-8 beyond ASCII goes through unchanged; bytes go with StdinBytes.
	res, err := h.Run(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"printf", "%s", "é€"}})
	if err != nil || string(res.Stdout) != "é€" {
		t.Fatalf("UTF-8 argument: %v %s", err, describe(res))
	}
	res, err = h.Run(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"cat"}, Stdin: bwrapd.StdinBytes([]byte("a\xffb"))})
	if err != nil || string(res.Stdout) != "a\xffb" {
		t.Fatalf("binary stdin: %v %s", err, describe(res))
	}
}

// blockingWriter holds every Write until release is closed.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	buf     lockedBuffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	<-w.release
	return w.buf.Write(p)
}

// Output is routed by sandbox id. A run whose answer came but whose output is still
// being delivered holds its id: a second run with that id is refused by the client
// (the server, where the first has ended, would accept it, and its output would go to
// the first run's writer).
func TestDuplicateSandboxIDRefusedWhileTheFirstIsDelivered(t *testing.T) {
	h := helper(t)
	ctx := testCtx(t)
	w := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	first, err := h.Start(ctx, bwrapd.RunRequest{Root: rootfs, SandboxID: "go-dup-delivery", Command: []string{"echo", "first"}, Stdout: bwrapd.StreamTo(w)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		close(w.release)
		if res, err := first.Wait(); err != nil || w.buf.String() != "first\n" {
			t.Errorf("the first run: %v %s, its writer got %q", err, describe(res), w.buf.String())
		}
	}()
	<-w.entered
	waitFor(t, 20*time.Second, "the first run to end on the server", func() bool {
		l, err := h.List(ctx)
		return err == nil && len(l) == 0
	})
	c := newCollector()
	second, err := h.Start(ctx, bwrapd.RunRequest{Root: rootfs, SandboxID: "go-dup-delivery", Command: []string{"echo", "second"}, Stdout: bwrapd.Stream(), OnOutput: c.onOutput})
	if err == nil {
		second.Wait()
		t.Fatalf("a second run with the id of one still being delivered was started (its own output: %q)", c.get("stdout"))
	}
	wantCode(t, err, bwrapd.ErrSandboxIDInUse)
}
