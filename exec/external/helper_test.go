package external_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/external"
	"github.com/rustypipe/rustypipe/exec/local"
)

// helperEnv makes the test binary act as a helper instead of running
// tests; see TestMain. Its values:
//
//	serve      external.Serve with newTestBackend
//	protocol2  answers the hello with protocol version 2
//	garbage    answers the hello, then writes a line that is not JSON
const helperEnv = "RUSTYPIPE_EXTERNAL_TEST_HELPER"

// startsEnv names a file to which each helper process appends a line when
// it starts, so that tests can count starts.
const startsEnv = "RUSTYPIPE_EXTERNAL_TEST_STARTS"

func TestMain(m *testing.M) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		os.Exit(m.Run())
	}
	if p := os.Getenv(startsEnv); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, os.Getpid())
			f.Close()
		}
	}
	os.Exit(helperMain(mode))
}

func helperMain(mode string) int {
	switch mode {
	case "serve":
		if err := external.Serve(context.Background(), os.Stdin, os.Stdout, newTestBackend); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		return 0
	case "protocol2", "garbage":
		in := bufio.NewReader(os.Stdin)
		if _, err := in.ReadString('\n'); err != nil {
			return 1
		}
		if mode == "protocol2" {
			fmt.Println(`{"type":"hello","protocol":2,"name":"future"}`)
		} else {
			fmt.Println(`{"type":"hello","protocol":1,"name":"garbage"}`)
			if _, err := in.ReadString('\n'); err != nil {
				return 1
			}
			fmt.Println("panic: this is not a message")
		}
		io.Copy(io.Discard, in)
		return 0
	}
	fmt.Fprintln(os.Stderr, "helper: unknown mode", mode)
	return 2
}

// newTestBackend is the helper's backend: the local backend, with scripts
// starting with "#!helper:" handled by the helper itself. A "namespace"
// key that is not a string is refused; "identity": false leaves out the
// identity capability.
func newTestBackend(cfg map[string]any) (exec.Backend, error) {
	if v, ok := cfg["namespace"]; ok {
		if _, ok := v.(string); !ok {
			return nil, fmt.Errorf("config key %q: want a string, got %v", "namespace", v)
		}
	}
	b := &testBackend{local: local.New()}
	if v, ok := cfg["identity"]; ok && v == false {
		return noIdentity{b}, nil
	}
	return b, nil
}

type testBackend struct {
	local *local.Backend
	ids   atomic.Int64
}

// noIdentity hides testBackend's Identity.
type noIdentity struct{ b *testBackend }

func (n noIdentity) Run(ctx context.Context, s *exec.Spec) (*exec.Result, error) {
	return n.b.Run(ctx, s)
}
func (n noIdentity) Close() error { return n.b.Close() }

func (b *testBackend) Close() error { return b.local.Close() }

// Identity numbers its calls, so that tests see whether the client asked.
func (b *testBackend) Identity(ctx context.Context, s *exec.Spec) (string, error) {
	if s.Image == "broken" {
		return "", errors.New("image broken: no such image")
	}
	return fmt.Sprintf("test %s #%d", s.Image, b.ids.Add(1)), nil
}

// Run runs special scripts:
//
//	#!helper:die          writes to stderr and exits 3
//	#!helper:block        prints its pid, waits for ctx, fails with it
//	#!helper:hang         prints its pid and never returns
//	#!helper:stoppable    prints its pid; after ctx, waits for Kill: "killed"
//	#!helper:spew N       writes pattern(N) to stdout, pattern(N/2) to stderr
//	#!helper:stage MODE   stages outputs (see stage)
//	#!helper:spec         prints what it received as JSON
//
// and anything else with the local backend.
func (b *testBackend) Run(ctx context.Context, s *exec.Spec) (*exec.Result, error) {
	cmd, ok := strings.CutPrefix(s.Script, "#!helper:")
	if !ok {
		return b.local.Run(ctx, s)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("not started: %w", context.Cause(ctx))
	}
	res := &exec.Result{Started: time.Now()}
	done := func(err error) (*exec.Result, error) {
		res.Finished = time.Now()
		return res, err
	}
	verb, arg, _ := strings.Cut(cmd, " ")
	switch verb {
	case "die":
		fmt.Fprintln(os.Stderr, "helper: fatal: boom")
		os.Exit(3)
	case "block", "hang", "stoppable":
		fmt.Fprintf(s.Stdout, "%d\n", os.Getpid())
		if verb == "hang" {
			select {}
		}
		<-ctx.Done()
		if verb == "stoppable" {
			select {
			case <-s.Kill:
			case <-time.After(s.Grace):
			}
			res.ExitCode, res.Signal = -1, "killed"
		}
		return done(fmt.Errorf("stopped: %w", context.Cause(ctx)))
	case "spew":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return nil, fmt.Errorf("%w: spew: %v", exec.ErrStart, err)
		}
		if err := writeVaried(s.Stdout, pattern(n, 1)); err != nil {
			return done(err)
		}
		return done(writeVaried(s.Stderr, pattern(n/2, 2)))
	case "stage":
		return done(stage(s.OutputDir, arg))
	case "spec":
		_, dl := ctx.Deadline()
		entries, err := os.ReadDir(s.OutputDir)
		json.NewEncoder(s.Stdout).Encode(map[string]any{
			"task": s.Task, "run_id": s.RunID, "shell": s.Shell, "env": s.Env,
			"workspace": s.Workspace, "dir": s.Dir, "inputs": s.Inputs, "outputs": s.Outputs,
			"image": s.Image, "grace": s.Grace.String(), "deadline": dl,
			"output_dir_abs": filepath.IsAbs(s.OutputDir), "output_dir_empty": err == nil && len(entries) == 0,
		})
		return done(nil)
	}
	return nil, fmt.Errorf("%w: unknown helper script %q", exec.ErrStart, cmd)
}

// stage writes outputs into dir: "good" declared files and a symlink,
// "undeclared" also a file outside the declared outputs, "escape" also a
// symlink that leaves the workspace.
func stage(dir, mode string) error {
	write := func(rel, content string, perm os.FileMode) error {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(content), perm)
	}
	if err := write("out/a.txt", "a\n", 0o644); err != nil {
		return err
	}
	if err := write("out/sub/run.sh", "#!/bin/sh\n", 0o755); err != nil {
		return err
	}
	switch mode {
	case "good":
		return os.Symlink("a.txt", filepath.Join(dir, "out", "link"))
	case "undeclared":
		return write("secret.txt", "s\n", 0o644)
	case "escape":
		return os.Symlink("../../outside", filepath.Join(dir, "out", "link"))
	}
	return fmt.Errorf("unknown stage mode %q", mode)
}

// pattern returns n bytes that depend on seed and cover every byte value.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + seed*7 + i/251)
	}
	return b
}

// writeVaried writes p in writes of growing, uneven sizes, some larger
// than a message's chunk.
func writeVaried(w io.Writer, p []byte) error {
	for size := 1; len(p) > 0; size = (size*3 + 1) % (3 * external.MaxChunk) {
		k := min(len(p), size+1)
		if _, err := w.Write(p[:k]); err != nil {
			return err
		}
		p = p[k:]
	}
	return nil
}
