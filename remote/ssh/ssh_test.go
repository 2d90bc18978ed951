package ssh

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/exectest"
	"github.com/rustypipe/rustypipe/internal/sshdtest"
)

func TestConformance(t *testing.T) {
	f := requireSSHD(t)
	exectest.Run(t, func(t *testing.T) exec.Backend {
		b, err := New(f.config(f.a, f.b), func(m string) { t.Log(m) })
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return b
	}, exectest.Options{
		// The local PATH is replaced by the host's; passing it checks that.
		Env: []string{"PATH=" + os.Getenv("PATH")},
		// Both servers run on this machine, so ps on either sees the
		// processes of tasks run on both.
		PIDCheck: func(t *testing.T, pid int) bool { return f.processGone(t, f.a, pid) },
	})
	f.checkRemoteDirEmpty(t)
}

// checkRemoteDirEmpty checks that every run directory has been removed.
func (f *fixture) checkRemoteDirEmpty(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(f.RemoteDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) > 0 {
		t.Errorf("run directories left in remote_dir: %q", names)
	}
}

// spec returns a Spec with buffers for its streams that may be read while
// Run writes them.
func spec(t *testing.T, ws, script string, env ...string) (*exec.Spec, *syncBuffer, *syncBuffer) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	return &exec.Spec{
		Task: t.Name(), RunID: "test", Script: script, Env: env, Workspace: ws,
		Stdout: out, Stderr: errOut, Grace: 10 * time.Second,
	}, out, errOut
}

func writeFile(t *testing.T, name, content string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}

// TestRemoteEnvironment checks that the task sees exactly Spec.Env, except
// for PATH, HOME, USER, LOGNAME, SHELL and TMPDIR, which are the host's.
func TestRemoteEnvironment(t *testing.T) {
	f := requireSSHD(t)
	b, _ := newTestBackend(t, f.config(f.a))
	want := strings.TrimSpace(f.remote(t, f.a, `printf '%s|%s|%s' "$HOME" "$USER" "$PATH"`))
	sp, out, errOut := spec(t, t.TempDir(),
		`printf '%s|%s|%s|%s|%s|%s\n' "$HOME" "$USER" "$PATH" "$TMPDIR" "$RP_X" "${SSH_CONNECTION-unset}"`,
		"HOME=/local/home", "USER=localuser", "PATH=/local/bin", "TMPDIR=/local/tmp", "RP_X=a b'c", "RP_X=last wins")
	res, err := b.Run(context.Background(), sp)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run: %+v, %v; stderr %q", res, err, errOut)
	}
	if got, want := out.String(), want+"|"+f.a.TmpDir+"|last wins|unset\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func TestExecutableInputAndShells(t *testing.T) {
	f := requireSSHD(t)
	b, _ := newTestBackend(t, f.config(f.a))
	ws := t.TempDir()
	writeFile(t, filepath.Join(ws, "tools", "hello.sh"), "#!/bin/sh\necho \"hello $1\"\n", 0o755)
	sp, out, errOut := spec(t, ws, `tools/hello.sh "$0"; echo "${BASH_VERSION:+bash}"`)
	sp.Shell = "bash"
	sp.Inputs = []string{"tools/hello.sh"}
	res, err := b.Run(context.Background(), sp)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run: %+v, %v; stderr %q", res, err, errOut)
	}
	if got, want := out.String(), "hello bash\nbash\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}

	for _, shell := range []string{"cmd", "powershell", "fish"} {
		sp, _, _ := spec(t, ws, "echo x")
		sp.Shell = shell
		if res, err := b.Run(context.Background(), sp); !errors.Is(err, exec.ErrStart) || res != nil {
			t.Errorf("shell %q: Run = %+v, %v; want a nil Result and exec.ErrStart", shell, res, err)
		}
	}
}

// TestOutputsAreFiltered checks that only declared outputs come back and
// that they come through the path-safe restore: a symlink that escapes the
// workspace is refused.
func TestOutputsAreFiltered(t *testing.T) {
	f := requireSSHD(t)
	b, _ := newTestBackend(t, f.config(f.a))
	ws := t.TempDir()
	sp, _, errOut := spec(t, ws, `mkdir -p out/deep && echo x > out/x.txt && echo y > out/deep/y.txt && `+
		`echo no > out/x.log && echo no > other.txt && chmod 755 out/x.txt && ln -s x.txt out/link.txt`)
	sp.Outputs = []string{"out/*.txt", "out/**/y.txt"}
	res, err := b.Run(context.Background(), sp)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run: %+v, %v; stderr %q", res, err, errOut)
	}
	for name, want := range map[string]string{"out/x.txt": "x\n", "out/deep/y.txt": "y\n", "out/link.txt": "x\n"} {
		got, err := os.ReadFile(filepath.Join(ws, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(ws, "out/x.txt")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("out/x.txt mode = %v, %v; want 0755", fi.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(ws, "out/link.txt")); err != nil || target != "x.txt" {
		t.Errorf("out/link.txt is not the symlink x.txt: %q, %v", target, err)
	}
	for _, name := range []string{"out/x.log", "other.txt"} {
		if _, err := os.Lstat(filepath.Join(ws, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("undeclared %s was brought back (%v)", name, err)
		}
	}

	sp, _, _ = spec(t, ws, `mkdir -p evil && ln -s ../../../../etc/passwd evil/link`)
	sp.Outputs = []string{"evil/*"}
	res, err = b.Run(context.Background(), sp)
	if res == nil || !errors.Is(err, exec.ErrUnsafePath) {
		t.Errorf("escaping symlink output: Run = %+v, %v; want a Result and an error wrapping exec.ErrUnsafePath", res, err)
	}
	if _, err := os.Lstat(filepath.Join(ws, "evil/link")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the escaping symlink was restored (%v)", err)
	}
	f.checkRemoteDirEmpty(t)
}

// TestSpreadOverHosts runs more tasks than the pool has slots: both hosts
// are used and neither ever runs more than concurrency_per_host tasks.
// Each task registers in a directory of its host's TMPDIR (the servers set
// different ones) while it runs and reports how many tasks it saw there.
func TestSpreadOverHosts(t *testing.T) {
	f := requireSSHD(t)
	const limit, tasks = 2, 8
	cfg := f.config(f.a, f.b)
	cfg.ConcurrencyPerHost = limit
	b, _ := newTestBackend(t, cfg)
	slots := t.Name()
	script := `d="$TMPDIR/` + slots + `"; mkdir -p "$d"; : > "$d/$$"; sleep 1; ` +
		`n=$(ls "$d" | wc -l); rm -f "$d/$$"; echo "$TMPDIR" $n`
	outs := make([]*syncBuffer, tasks)
	var wg sync.WaitGroup
	for i := range tasks {
		sp, out, errOut := spec(t, t.TempDir(), script)
		outs[i] = out
		wg.Go(func() {
			if res, err := b.Run(context.Background(), sp); err != nil || res.ExitCode != 0 {
				t.Errorf("task %d: %+v, %v; stderr %q", i, res, err, errOut)
			}
		})
	}
	wg.Wait()
	used := map[string]int{}
	for i, out := range outs {
		fields := strings.Fields(out.String())
		if len(fields) != 2 {
			t.Fatalf("task %d printed %q", i, out)
		}
		n, _ := strconv.Atoi(fields[1])
		used[fields[0]]++
		if n < 1 || n > limit {
			t.Errorf("task %d saw %d tasks at once on %s; the limit is %d", i, n, fields[0], limit)
		}
	}
	if used[f.a.TmpDir] == 0 || used[f.b.TmpDir] == 0 || used[f.a.TmpDir]+used[f.b.TmpDir] != tasks {
		t.Errorf("tasks per host = %v; want both %s and %s used", used, f.a.TmpDir, f.b.TmpDir)
	}
}

func TestUnknownHostKeyRefused(t *testing.T) {
	f := requireSSHD(t)
	cfg := f.config(f.a)
	cfg.KnownHosts = filepath.Join(t.TempDir(), "known_hosts") // absent
	b, l := newTestBackend(t, cfg)
	sp, out, _ := spec(t, t.TempDir(), "echo ran")
	res, err := b.Run(context.Background(), sp)
	var hk *HostKeyError
	if res != nil || !errors.Is(err, ErrHostKey) || !errors.As(err, &hk) || len(hk.Want) != 0 {
		t.Fatalf("Run = %+v, %v; want a nil Result and an unknown-host *HostKeyError", res, err)
	}
	if errors.Is(err, ErrConnect) {
		t.Errorf("an untrusted key is not a retryable connection failure: %v", err)
	}
	msg := err.Error()
	fp := gossh.FingerprintSHA256(hk.Key)
	for _, want := range []string{"unknown", fp, "ssh-keyscan", cfg.KnownHosts, "accept-new"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if !slices.ContainsFunc(f.a.Keys, func(k gossh.PublicKey) bool { return gossh.FingerprintSHA256(k) == fp }) {
		t.Errorf("fingerprint %s is not one of the host's keys", fp)
	}
	if out.String() != "" {
		t.Errorf("the task ran: %q", out)
	}
	if _, err := os.Stat(cfg.KnownHosts); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("strict policy wrote known_hosts (%v)", err)
	}
	if msgs := l.all(); len(msgs) != 1 || !strings.Contains(msgs[0], fp) {
		t.Errorf("warnings = %q; want one naming the fingerprint", msgs)
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	f := requireSSHD(t)
	cfg := f.config(f.a)
	// known_hosts lists host b's key under host a's address.
	cfg.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, cfg.KnownHosts, sshdtest.KnownHostsLine(f.a.Addr, f.b.Keys[0]), 0o600)
	b, _ := newTestBackend(t, cfg)
	sp, _, _ := spec(t, t.TempDir(), "echo ran")
	res, err := b.Run(context.Background(), sp)
	var hk *HostKeyError
	if res != nil || !errors.As(err, &hk) || len(hk.Want) != 1 {
		t.Fatalf("Run = %+v, %v; want a nil Result and a changed-key *HostKeyError", res, err)
	}
	for _, want := range []string{"CHANGED", "attack", gossh.FingerprintSHA256(f.b.Keys[0]), "ssh-keygen -R"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if got, _ := os.ReadFile(cfg.KnownHosts); string(got) != sshdtest.KnownHostsLine(f.a.Addr, f.b.Keys[0]) {
		t.Errorf("known_hosts was changed: %q", got)
	}
}

// TestAcceptNew records the key of a new host, accepts it again, then
// refuses the same address when it presents another key.
func TestAcceptNew(t *testing.T) {
	f := requireSSHD(t)
	c, err := f.StartServer(sshdtest.Loopback(2), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Stop() }()
	kh := filepath.Join(t.TempDir(), "sub", "known_hosts") // the directory is made too
	cfg := f.config(c)
	cfg.KnownHosts = kh
	cfg.HostKeyPolicy = PolicyAcceptNew

	run := func() (*exec.Result, error) {
		b, err := New(cfg, func(m string) { t.Log(m) })
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		sp, _, _ := spec(t, t.TempDir(), "echo ok")
		return b.Run(context.Background(), sp)
	}
	if res, err := run(); err != nil || res.ExitCode != 0 {
		t.Fatalf("first connection: %+v, %v", res, err)
	}
	recorded, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	// The client offers its preferred algorithm to a new host (ECDSA), so
	// that is the key recorded.
	if want := sshdtest.KnownHostsLine(c.Addr, c.Keys[1]); string(recorded) != want {
		t.Fatalf("known_hosts = %q, want %q", recorded, want)
	}
	if res, err := run(); err != nil || res.ExitCode != 0 {
		t.Fatalf("second connection: %+v, %v", res, err)
	}

	// The same address with new host keys: refused, and not recorded.
	c.Stop()
	if c, err = f.StartServer(sshdtest.Loopback(2), c.Port); err != nil {
		t.Fatal(err)
	}
	res, err := run()
	var hk *HostKeyError
	if res != nil || !errors.As(err, &hk) || len(hk.Want) == 0 || !strings.Contains(err.Error(), "CHANGED") {
		t.Fatalf("after the key changed: Run = %+v, %v; want a changed-key *HostKeyError", res, err)
	}
	if got, _ := os.ReadFile(kh); !bytes.Equal(got, recorded) {
		t.Errorf("known_hosts changed to %q", got)
	}
}

// TestSeveralHostKeyTypes shows the false mismatch that a client offering
// its default algorithms gets from a host with an ed25519 and an ECDSA key
// when known_hosts has only the ed25519 one, and that the backend avoids
// it.
func TestSeveralHostKeyTypes(t *testing.T) {
	f := requireSSHD(t)
	cb, err := knownhosts.New(f.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(f.IdentityFile)
	signer, _ := gossh.ParsePrivateKey(pem)
	_, err = gossh.Dial("tcp", f.a.Addr, &gossh.ClientConfig{
		User: f.User, Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)}, HostKeyCallback: cb,
	})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		t.Fatalf("plain client: err = %v; want the false mismatch this test is about", err)
	}

	kh, err := newKnownHosts(f.KnownHosts, PolicyStrict)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kh.algorithms(f.a.Addr), []string{gossh.KeyAlgoED25519}; !slices.Equal(got, want) {
		t.Errorf("algorithms(%s) = %q, want %q", f.a.Addr, got, want)
	}
	if got := kh.algorithms("127.9.9.9:22"); got != nil {
		t.Errorf("algorithms for an unknown host = %q, want nil (the defaults)", got)
	}
	b, _ := newTestBackend(t, f.config(f.a))
	sp, _, _ := spec(t, t.TempDir(), "echo ok")
	if res, err := b.Run(context.Background(), sp); err != nil || res.ExitCode != 0 {
		t.Errorf("backend: Run = %+v, %v", res, err)
	}
}

func TestWrongUserKeyRefused(t *testing.T) {
	f := requireSSHD(t)
	dir := t.TempDir()
	key, err := sshdtest.WriteKey(dir, "stranger", sshdtest.NewEd25519())
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := readPublicKey(key + ".pub")
	cfg := f.config(f.a)
	cfg.IdentityFiles = []string{key}
	b, _ := newTestBackend(t, cfg)
	sp, _, _ := spec(t, t.TempDir(), "echo ran")
	res, err := b.Run(context.Background(), sp)
	if res != nil || !errors.Is(err, ErrAuth) || errors.Is(err, ErrConnect) {
		t.Fatalf("Run = %+v, %v; want a nil Result and ErrAuth only", res, err)
	}
	for _, want := range []string{"refused authentication", key, gossh.FingerprintSHA256(pub), "authorized_keys"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestStopLeavesNoProcess stops tasks by deadline and by cancel (what
// SIGINT does in the CLI), with SIGTERM honoured and ignored, and checks
// with ps on the host that none of their processes remain.
func TestStopLeavesNoProcess(t *testing.T) {
	f := requireSSHD(t)
	b, _ := newTestBackend(t, f.config(f.a))
	for _, tc := range []struct {
		name     string
		trap     string
		deadline bool
		signal   string
	}{
		{"cancel", "", false, "terminated"},
		{"cancel ignoring TERM", "trap '' TERM; ", false, "killed"},
		{"deadline", "", true, "terminated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marker := strconv.Itoa(3000 + int(time.Now().UnixNano()%5000))
			cause := errors.New("test stop")
			// A deadline that passes before the task has started proves
			// nothing: try again with a longer one.
			for d := 2 * time.Second; ; d *= 2 {
				sp, out, _ := spec(t, t.TempDir(), tc.trap+`sleep 1`+marker+` & (sleep 2`+marker+`; echo) & echo started; wait`)
				sp.Grace = 300 * time.Millisecond
				var ctx context.Context
				var cancel func()
				if tc.deadline {
					ctx, cancel = context.WithTimeoutCause(context.Background(), d, cause)
				} else {
					c, cf := context.WithCancelCause(context.Background())
					ctx, cancel = c, func() { cf(cause) }
					go func() {
						for !strings.Contains(out.String(), "started") {
							time.Sleep(10 * time.Millisecond)
						}
						cancel()
					}()
				}
				res, err := b.Run(ctx, sp)
				cancel()
				if !errors.Is(err, cause) {
					t.Fatalf("Run error = %v, want one wrapping the cause", err)
				}
				if res == nil && out.String() == "" && d < 30*time.Second {
					continue
				}
				if res == nil || res.ExitCode != -1 || res.Signal != tc.signal {
					t.Errorf("Result = %+v, want exit -1 and signal %q", res, tc.signal)
				}
				break
			}
			if ps := f.remote(t, f.a, "ps -eo stat=,args= | grep -v grep | grep -v '^Z' | grep "+marker+" || true"); ps != "" {
				t.Errorf("processes left on the host:\n%s", ps)
			}
		})
	}
	f.checkRemoteDirEmpty(t)
}

// TestHostDown gives the pool an address where nothing listens: it is
// reported once and skipped, and the other host does all the work.
func TestHostDown(t *testing.T) {
	f := requireSSHD(t)
	down := downAddr(t)
	cfg := f.config(f.b)
	cfg.Hosts = append([]string{down}, cfg.Hosts...)
	b, l := newTestBackend(t, cfg)
	var wg sync.WaitGroup
	for i := range 6 {
		sp, out, errOut := spec(t, t.TempDir(), `echo "$TMPDIR"`)
		wg.Go(func() {
			res, err := b.Run(context.Background(), sp)
			if err != nil || res.ExitCode != 0 || strings.TrimSpace(out.String()) != f.b.TmpDir {
				t.Errorf("task %d: %+v, %v; stdout %q, stderr %q", i, res, err, out, errOut)
			}
		})
	}
	wg.Wait()
	msgs := l.all()
	if len(msgs) != 1 || !strings.Contains(msgs[0], down) || !strings.Contains(msgs[0], "skipping") {
		t.Errorf("warnings = %q; want one saying %s is skipped", msgs, down)
	}

	// With every host down, Run fails with a retryable error.
	b2, _ := newTestBackend(t, Config{Hosts: []string{down}, IdentityFiles: []string{f.IdentityFile}, KnownHosts: f.KnownHosts, User: f.User})
	sp, _, _ := spec(t, t.TempDir(), "echo ran")
	if res, err := b2.Run(context.Background(), sp); res != nil || !errors.Is(err, ErrConnect) || errors.Is(err, exec.ErrStart) {
		t.Errorf("all hosts down: Run = %+v, %v; want a nil Result and ErrConnect", res, err)
	}
}

// downAddr returns a loopback address where nothing listens.
func downAddr(t *testing.T) string {
	s, err := fx.StartServer(sshdtest.Loopback(3), 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	return s.Addr
}

func TestIdentity(t *testing.T) {
	f := requireSSHD(t)
	uname := strings.Join(strings.Fields(f.remote(t, f.a, "uname -sm")), " ")
	cfg := f.config(f.a, f.b)
	b, _ := newTestBackend(t, cfg)
	if got, err := b.Identity(context.Background(), &exec.Spec{}); err != nil || got != "ssh "+uname {
		t.Errorf("Identity = %q, %v; want %q", got, err, "ssh "+uname)
	}
	cfg.Identity = "gcc-12"
	b, _ = newTestBackend(t, cfg)
	if got, err := b.Identity(context.Background(), &exec.Spec{}); err != nil || got != "ssh "+uname+" identity=gcc-12" {
		t.Errorf("Identity = %q, %v", got, err)
	}
	cfg.Hosts = []string{downAddr(t)}
	b, _ = newTestBackend(t, cfg)
	if _, err := b.Identity(context.Background(), &exec.Spec{}); !errors.Is(err, ErrConnect) {
		t.Errorf("Identity with no reachable host: err = %v, want ErrConnect", err)
	}
}

// TestSSHConfigAlias resolves a host alias through ~/.ssh/config.
func TestSSHConfigAlias(t *testing.T) {
	f := requireSSHD(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	host, port, _ := strings.Cut(f.a.Addr, ":")
	writeFile(t, filepath.Join(home, ".ssh", "config"), fmt.Sprintf(
		"Host buildbox\n  HostName %s\n  Port %s\n  User %s\n  IdentityFile %s\n", host, port, f.User, f.IdentityFile), 0o600)
	b, _ := newTestBackend(t, Config{Hosts: []string{"buildbox"}, KnownHosts: f.KnownHosts, RemoteDir: f.RemoteDir})
	sp, out, errOut := spec(t, t.TempDir(), `echo "$TMPDIR"`)
	res, err := b.Run(context.Background(), sp)
	if err != nil || res.ExitCode != 0 || strings.TrimSpace(out.String()) != f.a.TmpDir {
		t.Errorf("Run = %+v, %v; stdout %q, stderr %q", res, err, out, errOut)
	}
}

func TestClosedBackend(t *testing.T) {
	f := requireSSHD(t)
	b, err := New(f.config(f.a), nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	sp, _, _ := spec(t, t.TempDir(), "echo ran")
	if res, err := b.Run(context.Background(), sp); res != nil || !errors.Is(err, exec.ErrStart) {
		t.Errorf("Run after Close = %+v, %v; want exec.ErrStart", res, err)
	}
}

// TestAgentAuth authenticates through an ssh-agent at SSH_AUTH_SOCK (the
// x/crypto agent protocol on a real socket): with no key file at all, and
// with a key file that needs a passphrase, which only the agent can use.
func TestAgentAuth(t *testing.T) {
	f := requireSSHD(t)
	dir := t.TempDir()
	pemBytes, err := os.ReadFile(f.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := gossh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("no unix sockets: %v", err)
	}
	defer l.Close()
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("HOME", dir) // no ~/.ssh/id_* there

	encrypted := filepath.Join(dir, "encrypted")
	block, err := gosshMarshalEncrypted(raw.(crypto.Signer), "secret")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, encrypted, string(block), 0o600)

	for _, files := range [][]string{nil, {encrypted}} {
		cfg := f.config(f.a)
		cfg.IdentityFiles = files
		b, _ := newTestBackend(t, cfg)
		sp, out, _ := spec(t, t.TempDir(), "echo via agent")
		if res, err := b.Run(context.Background(), sp); err != nil || res.ExitCode != 0 || out.String() != "via agent\n" {
			t.Errorf("identity files %q: Run = %+v, %v; stdout %q", files, res, err, out)
		}
	}
}

// TestConnectionLost drops the connection while a task runs: Run fails
// with the retryable ErrConnect and no Result, and the next task
// reconnects.
func TestConnectionLost(t *testing.T) {
	f := requireSSHD(t)
	cfg := f.config(f.a)
	cfg.RemoteDir = filepath.Join(t.TempDir(), "remote") // the lost run's directory stays
	b, l := newTestBackend(t, cfg)
	// The task waits for a file that the test makes once Run has returned,
	// so it outlives the connection whatever the timing, and then ends.
	gate := filepath.Join(f.a.TmpDir, strings.ReplaceAll(t.Name(), "/", "_")+"-gate")
	defer os.Remove(gate)
	sp, out, _ := spec(t, t.TempDir(), `echo started; while [ ! -e "$TMPDIR/`+filepath.Base(gate)+`" ]; do sleep 0.1; done`)
	go func() {
		for !strings.Contains(out.String(), "started") {
			time.Sleep(10 * time.Millisecond)
		}
		b.mu.Lock()
		c := b.hosts[0].conn
		b.mu.Unlock()
		c.client.Close()
	}()
	res, err := b.Run(context.Background(), sp)
	writeFile(t, gate, "", 0o644)
	if res != nil || !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("Run = %+v, %v; want a nil Result and ErrConnect for a lost connection", res, err)
	}
	sp, out, _ = spec(t, t.TempDir(), "echo again")
	if res, err := b.Run(context.Background(), sp); err != nil || res.ExitCode != 0 || out.String() != "again\n" {
		t.Errorf("after reconnecting: Run = %+v, %v; stdout %q", res, err, out)
	}
	if msgs := l.all(); len(msgs) != 1 || !strings.Contains(msgs[0], "connection to host") {
		t.Errorf("warnings = %q; want one about the lost connection", msgs)
	}
}

// TestWaitForSlot checks that a task waits while every host is full, and
// that a ctx done while it waits returns its cause without running it.
func TestWaitForSlot(t *testing.T) {
	f := requireSSHD(t)
	cfg := f.config(f.a)
	cfg.ConcurrencyPerHost = 1
	b, _ := newTestBackend(t, cfg)
	first, firstOut, _ := spec(t, t.TempDir(), "echo started; sleep 1")
	done := make(chan error, 1)
	go func() {
		_, err := b.Run(context.Background(), first)
		done <- err
	}()
	for !strings.Contains(firstOut.String(), "started") {
		time.Sleep(10 * time.Millisecond)
	}
	cause := errors.New("gave up waiting")
	ctx, cancel := context.WithCancelCause(context.Background())
	waiting, out, _ := spec(t, t.TempDir(), "echo ran")
	// Cancel once the waiting task has most likely reached the wait; were
	// it later, the test would still pass, checking less.
	time.AfterFunc(200*time.Millisecond, func() { cancel(cause) })
	res, err := b.Run(ctx, waiting)
	if res != nil || !errors.Is(err, cause) || out.String() != "" {
		t.Errorf("Run while the host is full = %+v, %v, stdout %q; want the cause and nothing run", res, err, out)
	}
	if err := <-done; err != nil {
		t.Errorf("first task: %v", err)
	}
	third, out, _ := spec(t, t.TempDir(), "echo third")
	if res, err := b.Run(context.Background(), third); err != nil || res.ExitCode != 0 || out.String() != "third\n" {
		t.Errorf("after the slot freed: %+v, %v, %q", res, err, out)
	}
}
