package bwrapd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	bwrapd "bwrapd.dev/client"
)

// A Go user's program, outside this module, uses the client the two ways the
// README says: a replace directive, and a workspace. The program is the README's.
func TestUsableFromAnotherModule(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	program := regexp.MustCompile("(?s)```go\n(package main\n.*?)```").FindSubmatch(readme)
	if program == nil {
		t.Fatal("no Go program in README.md")
	}
	client, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, way := range []struct {
		name  string
		setup [][]string
	}{
		{"replace", [][]string{{"go", "mod", "edit", "-require=bwrapd.dev/client@v" + bwrapd.Version,
			"-replace=bwrapd.dev/client=" + client}}},
		{"workspace", [][]string{{"go", "work", "init", ".", client}}},
	} {
		t.Run(way.name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(name, text string) {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("go.mod", "module example.com/user\n\ngo 1.19\n")
			write("main.go", string(program[1]))
			// Offline and as a user would: no proxy, no flags of this module's test run.
			env := append(os.Environ(), "GOFLAGS=", "GOPROXY=off", "GOWORK=")
			for _, args := range append(way.setup, []string{"go", "build", "-o", "user-program", "."}) {
				cmd := exec.Command(args[0], args[1:]...)
				cmd.Dir, cmd.Env = dir, env
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			if way.name != "replace" {
				return
			}
			cmd := exec.Command(filepath.Join(dir, "user-program"))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), `exited 0 "hello from sandbox\n"`) ||
				!strings.Contains(string(out), "signaled") {
				t.Fatalf("the README's program: %v\n%s", err, out)
			}
		})
	}
}
