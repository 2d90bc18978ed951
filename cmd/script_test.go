//go:build unix

package cmd

import (
	"context"

	"bufio"
	"encoding/json"
	"fmt"
	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/external"
	"github.com/rustypipe/rustypipe/exec/local"
	"github.com/rustypipe/rustypipe/remote/docker"
	"github.com/rustypipe/rustypipe/remote/kube"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"rustypipe": func() { os.Exit(Main(os.Args[1:])) },
		// The Kubernetes helper, found beside rustypipe as when installed.
		"rustypipe-kube": func() { external.Main("rustypipe-kube", kube.HelperBackend) },
		// The Docker helper, found beside rustypipe as when installed.
		"rustypipe-docker": func() { external.Main("rustypipe-docker", docker.HelperBackend) },
		// An external-backend helper serving the local backend, as a user's
		// own helper would: the protocol end to end through the CLI.
		"rp-local-helper": func() {
			err := external.Serve(context.Background(), os.Stdin, os.Stdout, func(cfg map[string]any) (exec.Backend, error) {
				if v, ok := cfg["refuse"]; ok {
					return nil, fmt.Errorf("key \"refuse\": %v", v)
				}
				return local.New(), nil
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		},
	})
}

// TestScripts runs the CLI scripts in testdata/script. Each asserts exit
// codes and messages of real rustypipe invocations.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "../testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("RUSTYPIPE_CACHE_DIR", env.WorkDir+"/.cache")
			env.Setenv("CI", "true")
			for _, f := range scriptSetups {
				f(env)
			}
			return nil
		},
		Cmds: scriptCmds,
		Condition: func(cond string) (bool, error) {
			if f, ok := scriptConds[cond]; ok {
				return f()
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// scriptCmds are the commands the CLI scripts may use beside testscript's own.
var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"waitfile":    cmdWaitFile,
	"pidsgone":    cmdPidsGone,
	"jsonl":       cmdJSONL,
	"checkdelays": cmdCheckDelays,
	"bigfile":     cmdBigFile,
}

// scriptSetups add to every script's environment.
var scriptSetups []func(env *testscript.Env)

// scriptConds are the conditions the CLI scripts may test, as [name].
var scriptConds = map[string]func() (bool, error){}

// waitfile FILE... waits up to 30 s for each file to exist and be non-empty.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	for _, f := range args {
		p := ts.MkAbs(f)
		deadline := time.Now().Add(30 * time.Second)
		for {
			if st, err := os.Stat(p); err == nil && st.Size() > 0 {
				break
			}
			if time.Now().After(deadline) {
				ts.Fatalf("waitfile: %s did not appear", f)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// pidsgone FILE... reads one pid per file and checks that no such process
// is alive (a zombie still counts as alive here: it must have been reaped or
// re-parented and reaped). With !, checks that at least one is alive.
func cmdPidsGone(ts *testscript.TestScript, neg bool, args []string) {
	alive := 0
	for _, f := range args {
		data := strings.TrimSpace(ts.ReadFile(f))
		pid, err := strconv.Atoi(data)
		if err != nil {
			ts.Fatalf("pidsgone: %s: bad pid %q", f, data)
		}
		// Allow a moment for the kernel to reap processes killed just now.
		gone := false
		for i := 0; i < 100 && !gone; i++ {
			gone = !processAlive(pid)
			if !gone {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if !gone {
			alive++
			if !neg {
				ts.Fatalf("pidsgone: process %d (from %s) is still running", pid, f)
			}
		}
	}
	if neg && alive == 0 {
		ts.Fatalf("pidsgone: expected a live process")
	}
}

func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// A zombie answers kill(0) but is dead; /proc tells.
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// jsonl FILE KEY=VALUE... checks that some line of FILE, a JSON object per
// line, has all the given top-level string or number values.
func cmdJSONL(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: jsonl FILE KEY=VALUE...")
	}
	found := false
	sc := bufio.NewScanner(strings.NewReader(ts.ReadFile(args[0])))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() && !found {
		line := sc.Text()
		all := true
		for _, kv := range args[1:] {
			k, v, _ := strings.Cut(kv, "=")
			if !strings.Contains(line, fmt.Sprintf("%q:%q", k, v)) && !strings.Contains(line, fmt.Sprintf("%q:%s", k, v)) {
				all = false
				break
			}
		}
		found = all
	}
	if found == neg {
		ts.Fatalf("jsonl: %s: line with %v found=%v", args[0], args[1:], found)
	}
}

// checkdelays TASK N checks, in the newest run's record of TASK, that N
// retry delays were planned and that they never shrink.
func cmdCheckDelays(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: checkdelays TASK N")
	}
	runs, _ := filepath.Glob(ts.MkAbs(".rustypipe/runs/*/tasks.jsonl"))
	sort.Strings(runs)
	var rec struct {
		Name     string `json:"name"`
		Attempts []struct {
			RetryDelayMS int64 `json:"retry_delay_ms"`
		} `json:"attempts"`
	}
	found := false
	if len(runs) > 0 {
		for _, line := range strings.Split(ts.ReadFile(runs[len(runs)-1]), "\n") {
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Name == args[0] {
				found = true
				break
			}
		}
	}
	if !found {
		ts.Fatalf("checkdelays: no record for task %s", args[0])
	}
	var delays []int64
	for _, a := range rec.Attempts {
		if a.RetryDelayMS > 0 {
			delays = append(delays, a.RetryDelayMS)
		}
	}
	want, _ := strconv.Atoi(args[1])
	if len(delays) != want {
		ts.Fatalf("checkdelays: %d delays %v, want %d", len(delays), delays, want)
	}
	for i := 1; i < len(delays); i++ {
		if delays[i] < delays[i-1] {
			ts.Fatalf("checkdelays: delays shrink: %v", delays)
		}
	}
	ts.Logf("retry delays: %v ms", delays)
}

// bigfile FILE SIZE writes a YAML comment file of SIZE bytes.
func cmdBigFile(ts *testscript.TestScript, neg bool, args []string) {
	n, _ := strconv.Atoi(args[1])
	line := "# " + strings.Repeat("x", 97) + "\n"
	data := strings.Repeat(line, n/len(line)+1)
	if err := os.WriteFile(ts.MkAbs(args[0]), []byte(data), 0o644); err != nil {
		ts.Fatalf("bigfile: %v", err)
	}
}
