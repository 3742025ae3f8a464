package bwrapd_test

// A broken stand-in for the helper, for the tests of how the client copes with one:
// the test binary itself, started with BWRAPD_GO_FAKE=<mode> (see TestMain).

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"
	"time"

	bwrapd "bwrapd.dev/client"
)

const fakeHelperEnv = "BWRAPD_GO_FAKE"

// startFake starts the test binary as a helper that misbehaves as mode says.
func startFake(t *testing.T, mode string, opts bwrapd.Options) *bwrapd.Helper {
	t.Helper()
	if mode == "" {
		t.Fatal("startFake needs a mode: without one the test binary runs the tests again")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	opts.Path = self
	opts.Env = append(os.Environ(), fakeHelperEnv+"="+mode)
	h, err := bwrapd.Start(testCtx(t), opts)
	if err != nil {
		t.Fatalf("starting the fake helper (%s): %v", mode, err)
	}
	return h
}

// fakeHelper answers initialize, shutdown and sandbox/list, and sandbox/run as mode says.
func fakeHelper(mode string) {
	out := bufio.NewWriter(os.Stdout)
	send := func(m any) {
		b, _ := json.Marshal(m)
		out.Write(append(b, '\n'))
		out.Flush()
	}
	raw := func(s string) {
		out.WriteString(s + "\n")
		out.Flush()
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64*1024), 64<<20)
	for in.Scan() {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				SandboxID         string `json:"sandboxId"`
				CaptureLimitBytes int    `json:"captureLimitBytes"`
			} `json:"params"`
		}
		if json.Unmarshal(in.Bytes(), &m) != nil {
			continue
		}
		if len(m.ID) == 0 {
			if m.Method == "exit" {
				return
			}
			continue
		}
		id := string(m.ID)
		switch m.Method {
		case "initialize":
			maxMessage := "16777216"
			if mode == "endless" || mode == "bigresult" {
				maxMessage = "1048576"
			}
			raw(`{"jsonrpc":"2.0","id":` + id + `,"result":{"serverName":"bwrapd","serverVersion":"0.1.0","protocolVersion":1,` +
				`"bwrap":{"path":"/usr/bin/bwrap","version":"0.8.0"},"capabilities":{"jsonStatusFd":false,"framings":"ndjson"},` +
				`"limits":{"maxMessageBytes":` + maxMessage + `,"maxNestingDepth":64}}}`)
			switch mode {
			case "noread": // a wedged helper: it never reads its input again
				for {
					time.Sleep(time.Hour)
				}
			case "closeout": // closes its stdout and stays
				os.Stdout.Close()
				for {
					time.Sleep(time.Hour)
				}
			}
		case "sandbox/run", "sandbox/list":
			switch mode {
			case "baderror": // an error member that is not an object
				raw(`{"jsonrpc":"2.0","id":` + id + `,"error":"boom"}`)
			case "baderror2": // an error code that is a string
				raw(`{"jsonrpc":"2.0","id":` + id + `,"error":{"code":"-32602","message":"bad"}}`)
			case "endless": // one line without an end (128 MiB of it), then silence
				chunk := bytes.Repeat([]byte("x"), 1<<20)
				for i := 0; i < 128; i++ {
					out.Write(chunk)
					out.Flush()
				}
				for {
					time.Sleep(time.Hour)
				}
			case "bigresult": // stdout as large as the run's captureLimitBytes, in base64
				data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, m.Params.CaptureLimitBytes))
				raw(`{"jsonrpc":"2.0","id":` + id + `,"result":{"sandboxId":"` + m.Params.SandboxID + `","status":"exited",` +
					`"exitCode":0,"durationMs":1,"stdout":{"base64":"` + data + `","truncated":false},` +
					`"stderr":{"text":"","truncated":false},"cleanup":{"ok":true}}}`)
			case "floatid": // the id written 2.0, as JSON allows
				result := `[]`
				if m.Method == "sandbox/run" {
					result = `{"sandboxId":"` + m.Params.SandboxID + `","status":"exited","exitCode":0,"durationMs":1,` +
						`"stdout":{"text":"ok\n","truncated":false},"stderr":{"text":"","truncated":false},"cleanup":{"ok":true}}`
				}
				raw(`{"jsonrpc":"2.0","id":` + id + `.0,"result":` + result + `}`)
			default:
				send(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": []any{}})
			}
		case "shutdown":
			raw(`{"jsonrpc":"2.0","id":` + id + `,"result":{"terminated":0}}`)
		default: // the params as data, for a test to see what was sent
			var all struct {
				Params json.RawMessage `json:"params"`
			}
			_ = json.Unmarshal(in.Bytes(), &all)
			send(map[string]any{"jsonrpc": "2.0", "id": m.ID,
				"error": map[string]any{"code": -32601, "message": "method not found", "data": all.Params}})
		}
	}
}
