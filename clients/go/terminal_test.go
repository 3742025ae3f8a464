package bwrapd_test

// Terminal sessions (OpenTerminal) and streamed stdin (StdinStream), driven as an
// editor's terminal would: a busybox shell on the pseudo-terminal, keystrokes in, what
// it prints out.

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bwrapd "bwrapd.dev/client"
)

var _ io.ReadWriteCloser = (*bwrapd.TerminalSession)(nil)

// screen collects what a terminal session printed (a goroutine reads it to the end).
type screen struct {
	t        *testing.T
	mu       sync.Mutex
	seen     []byte
	consumed int
	readErr  error // how reading ended: io.EOF at the run's end
	changed  chan struct{}
}

func watch(t *testing.T, r io.Reader) *screen {
	s := &screen{t: t, changed: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			s.mu.Lock()
			s.seen = append(s.seen, buf[:n]...)
			if err != nil {
				s.readErr = err
			}
			s.mu.Unlock()
			select {
			case s.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

// expect waits until text has been printed since the last expect and returns what was
// printed up to it.
func (s *screen) expect(text string) string {
	s.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		s.mu.Lock()
		rest, readErr := string(s.seen[s.consumed:]), s.readErr
		if at := strings.Index(rest, text); at >= 0 {
			s.consumed += at + len(text)
			s.mu.Unlock()
			return rest[:at+len(text)]
		}
		s.mu.Unlock()
		if readErr != nil {
			s.t.Fatalf("no %q on the terminal before %v; it printed %q", text, readErr, rest)
		}
		select {
		case <-s.changed:
		case <-deadline:
			s.t.Fatalf("no %q on the terminal; it printed %q", text, rest)
		}
	}
}

// end waits for the reader's end and returns what it read since the last expect and
// the error it ended with.
func (s *screen) end() (string, error) {
	s.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		s.mu.Lock()
		readErr, rest := s.readErr, string(s.seen[s.consumed:])
		s.mu.Unlock()
		if readErr != nil {
			return rest, readErr
		}
		select {
		case <-s.changed:
		case <-deadline:
			s.t.Fatal("Read did not end with the run")
		}
	}
}

// shellAtPrompt opens a busybox shell on a rows x cols terminal and waits for its prompt.
func shellAtPrompt(t *testing.T, rows, cols int) (*bwrapd.TerminalSession, *screen) {
	t.Helper()
	term, err := helper(t).OpenTerminal(testCtx(t), bwrapd.RunRequest{
		Command:   []string{"sh"},
		Root:      rootfs,
		Terminal:  &bwrapd.Terminal{Rows: rows, Cols: cols},
		TimeoutMs: bwrapd.Millis(2 * time.Minute),
	})
	if err != nil {
		t.Fatalf("OpenTerminal: %v", err)
	}
	t.Cleanup(func() { term.Close() })
	s := watch(t, term)
	s.expect("# ")
	return term, s
}

// allBytes is every byte value, in order.
func allBytes() []byte {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	return all
}

func typeKeys(t *testing.T, w io.Writer, keys string) {
	t.Helper()
	if n, err := io.WriteString(w, keys); err != nil || n != len(keys) {
		t.Fatalf("typing %q: %d, %v", keys, n, err)
	}
}

func TestTerminalShellSession(t *testing.T) {
	term, s := shellAtPrompt(t, 24, 80)
	typeKeys(t, term, "echo typed-$((6 * 7))\n")
	s.expect("typed-42\r\n")

	typeKeys(t, term, "stty size; tty\n")
	s.expect("24 80\r\n")
	if tty := s.expect("\r\n"); !regexp.MustCompile(`^(/dev/console|/dev/pts/\d+)\r\n$`).MatchString(tty) {
		t.Errorf("tty printed %q", tty)
	}
	typeKeys(t, term, "stat -c major=%t $(tty)\n")
	s.expect("major=88\r\n") // 136: a Unix 98 pseudo-terminal

	if err := term.Resize(40, 132); err != nil {
		t.Fatal(err)
	}
	typeKeys(t, term, "stty size\n")
	s.expect("40 132\r\n")

	arg := uniqueSleepArg(100)
	typeKeys(t, term, "sleep "+arg+"; echo after-sleep\n")
	s.expect("after-sleep\r\n") // the echo of the line: the shell read it
	// and the job runs: a Ctrl-C before it would reach the shell, and sleep 100 outlast the wait
	waitFor(t, 30*time.Second, "the job's sleep", func() bool { return running("sleep", arg) })
	typeKeys(t, term, "\x03") // Ctrl-C: SIGINT to the foreground job
	typeKeys(t, term, "echo shell-alive\n")
	if printed := s.expect("shell-alive\r\n"); !strings.Contains(printed, "^C") {
		t.Errorf("no ^C echoed: %q", printed)
	}

	typeKeys(t, term, "exit 3\n")
	res, err := term.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != bwrapd.StatusExited || res.ExitCode == nil || *res.ExitCode != 3 {
		t.Fatalf("result %+v", res)
	}
	if res.Stdout != nil || res.Stderr != nil {
		t.Errorf("a terminal run captures nothing: %q %q", res.Stdout, res.Stderr)
	}
	if rest, readErr := s.end(); readErr != io.EOF || !strings.Contains(rest, "exit 3") {
		t.Errorf("Read ended with %v after %q", readErr, rest)
	}
	if n, err := term.Write([]byte("late\n")); n != 0 || !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Write after the end: %d, %v", n, err)
	}
	if err := term.Resize(10, 10); err != nil {
		t.Errorf("Resize after the end: %v", err)
	}
}

func TestTerminalColoursAndEveryByteValue(t *testing.T) {
	term, err := helper(t).OpenTerminal(testCtx(t), bwrapd.RunRequest{
		Command: []string{"sh", "-c", `echo term=$TERM; printf '\033[31mred\033[0m\n'; ` +
			`stty raw -echo; echo ready; head -c 256 | od -An -v -tx1`},
		Root:     rootfs,
		Terminal: &bwrapd.Terminal{Rows: 24, Cols: 80, Term: "vt100"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := watch(t, term)
	s.expect("term=vt100\r\n")
	s.expect("\x1b[31mred\x1b[0m\r\n")
	s.expect("ready")
	all := allBytes()
	if n, err := term.Write(all); n != 256 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if res, err := term.Wait(); err != nil || !res.Success() {
		t.Fatalf("%+v, %v", res, err)
	}
	rest, _ := s.end()
	var want []string
	for _, b := range all {
		want = append(want, fmt.Sprintf("%02x", b))
	}
	if got := strings.Fields(rest); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("od printed %q", rest)
	}
}

func TestTerminalCloseEndsTheSession(t *testing.T) {
	term, s := shellAtPrompt(t, 24, 80)
	arg := uniqueSleepArg(100)
	typeKeys(t, term, "sleep "+arg+"; echo status=$?\n")
	s.expect("echo status=$?\r\n")
	// the job runs: a SIGTERM before it would go to the shell, which ignores it
	waitFor(t, 30*time.Second, "the job's sleep", func() bool { return running("sleep", arg) })
	if ok, err := term.Signal(testCtx(t), syscall.SIGTERM); !ok || err != nil {
		t.Fatalf("Signal: %v, %v", ok, err)
	}
	s.expect("status=143\r\n") // the foreground job died; the shell lives on
	if err := term.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := term.Wait()
	if err != nil || res.Status != bwrapd.StatusSignaled {
		t.Fatalf("after Close: %+v, %v", res, err)
	}
	if _, readErr := s.end(); readErr != io.ErrClosedPipe {
		t.Errorf("Read after Close: %v", readErr)
	}
	if err := term.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
}

func TestOpenTerminalRefusesStdio(t *testing.T) {
	_, err := helper(t).OpenTerminal(testCtx(t), bwrapd.RunRequest{Command: []string{"sh"}, Root: rootfs, Stdout: bwrapd.Capture()})
	if err == nil || !strings.Contains(err.Error(), "Stdout") {
		t.Fatalf("OpenTerminal with Stdout: %v", err)
	}
}

func TestStdinStreamCarriesBytesInPiecesUntilClose(t *testing.T) {
	all := allBytes()
	sb, err := helper(t).Start(testCtx(t), bwrapd.RunRequest{Command: []string{"cat"}, Root: rootfs, Stdin: bwrapd.StdinStream()})
	if err != nil {
		t.Fatal(err)
	}
	stdin := sb.Stdin()
	for _, piece := range [][]byte{[]byte("hello "), all[:100], all[100:]} {
		if n, err := stdin.Write(piece); n != len(piece) || err != nil {
			t.Fatalf("Write(%d bytes): %d, %v", len(piece), n, err)
		}
	}
	if err := stdin.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Wait()
	if err != nil || !res.Success() {
		t.Fatalf("%+v, %v", res, err)
	}
	if want := append([]byte("hello "), all...); !bytes.Equal(res.Stdout, want) {
		t.Errorf("cat printed %q", res.Stdout)
	}
	if err := stdin.Close(); err != nil {
		t.Errorf("Close after the end: %v", err)
	}
}

func TestStdinStreamLargeWriteAndAReaderThatStops(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 16*1024) // 256 KiB: many sandbox/input requests
	sb, err := helper(t).Start(testCtx(t), bwrapd.RunRequest{Command: []string{"md5sum"}, Root: rootfs, Stdin: bwrapd.StdinStream()})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := sb.Stdin().Write(data); n != len(data) || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	sb.Stdin().Close()
	res, err := sb.Wait()
	if err != nil || !strings.HasPrefix(string(res.Stdout), fmt.Sprintf("%x", md5.Sum(data))) {
		t.Fatalf("md5sum printed %q (%v)", res.Stdout, err)
	}

	sb, err = helper(t).Start(testCtx(t), bwrapd.RunRequest{Command: []string{"head", "-c", "3"}, Root: rootfs, Stdin: bwrapd.StdinStream()})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := sb.Stdin().Write(make([]byte, 1<<20)); n >= 1<<20 || !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Write to a command that stopped reading: %d, %v", n, err)
	}
	if res, err := sb.Wait(); err != nil || !res.Success() {
		t.Fatalf("%+v, %v", res, err)
	}
}
