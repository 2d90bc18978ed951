package ssh

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/rustypipe/rustypipe/exec/exectest"
	"github.com/rustypipe/rustypipe/internal/sshdtest"
)

// The tests run against real OpenSSH servers that they start themselves
// through internal/sshdtest: two sshd processes on loopback addresses, with
// host and user keys made in a temporary directory. Without sshd the tests
// skip, unless RUSTYPIPE_TEST_SSH=1, which makes a missing sshd a failure.

// fx is the shared fixture made by TestMain; fxErr says why there is none.
var (
	fx    *fixture
	fxErr error
)

// fixture is the servers plus the names the tests use for them.
type fixture struct {
	*sshdtest.Fixture
	a, b *sshdtest.Server
}

func TestMain(m *testing.M) {
	os.Exit(func() int {
		// Keep the developer's ~/.ssh and ssh-agent out of the tests.
		home, err := os.MkdirTemp("", "rustypipe-ssh-home-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(home)
		os.Setenv("HOME", home)
		os.Unsetenv("SSH_AUTH_SOCK")
		var sf *sshdtest.Fixture
		if sf, fxErr = sshdtest.Start(2); sf != nil {
			defer sf.Stop()
			fx = &fixture{Fixture: sf, a: sf.Servers[0], b: sf.Servers[1]}
		}
		return m.Run()
	}())
}

// requireSSHD skips t when there is no sshd, or fails it when
// RUSTYPIPE_TEST_SSH=1.
func requireSSHD(t *testing.T) *fixture {
	t.Helper()
	if fxErr != nil {
		if os.Getenv("RUSTYPIPE_TEST_SSH") == "1" {
			t.Fatalf("RUSTYPIPE_TEST_SSH=1 but the SSH test servers are not available: %v", fxErr)
		}
		t.Skipf("no SSH test servers (set RUSTYPIPE_TEST_SSH=1 to make this a failure): %v", fxErr)
	}
	return fx
}

// config returns a Config for the given servers with the fixture's keys.
func (f *fixture) config(hosts ...*sshdtest.Server) Config {
	c := Config{
		User:               f.User,
		IdentityFiles:      []string{f.IdentityFile},
		KnownHosts:         f.KnownHosts,
		RemoteDir:          f.RemoteDir,
		ConcurrencyPerHost: 4,
	}
	for _, h := range hosts {
		c.Hosts = append(c.Hosts, h.Addr)
	}
	return c
}

// remote runs cmd on s through a connection of the test's own, checked
// against s's fixed host key, and returns its stdout.
func (f *fixture) remote(t *testing.T, s *sshdtest.Server, cmd string) string {
	t.Helper()
	out, err := f.Remote(s, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// processGone reports whether pid has exited (a zombie counts as gone),
// asking ps on host s.
func (f *fixture) processGone(t *testing.T, s *sshdtest.Server, pid int) bool {
	out := strings.TrimSpace(f.remote(t, s, fmt.Sprintf("ps -o stat= -p %d || true", pid)))
	return out == "" || strings.HasPrefix(out, "Z")
}

// syncBuffer is a task's stdout or stderr, read while Run writes it.
type syncBuffer = exectest.Buffer

// logs collects a backend's warnings.
type logs struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logs) log(m string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, m)
}

func (l *logs) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

// newTestBackend makes a backend closed at the end of the test.
func newTestBackend(t *testing.T, cfg Config) (*Backend, *logs) {
	t.Helper()
	l := &logs{}
	b, err := New(cfg, l.log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b, l
}
