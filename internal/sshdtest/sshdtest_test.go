package sshdtest

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestKnownHostsLine(t *testing.T) {
	pub, err := gossh.NewPublicKey(NewEd25519().Public())
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub)))
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.2:2222", "[127.0.0.2]:2222 " + key + "\n"},
		{"example.test:22", "example.test " + key + "\n"},
		{"[::1]:2200", "[::1]:2200 " + key + "\n"},
	} {
		if got := KnownHostsLine(tc.addr, pub); got != tc.want {
			t.Errorf("KnownHostsLine(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestStart starts two servers and checks what the package promises: each
// answers as User with IdentityFile, has its own TMPDIR, and is listed in
// KnownHosts by its ed25519 key only; Stop ends them and removes Dir.
func TestStart(t *testing.T) {
	f, err := Start(2)
	if err != nil {
		if os.Getenv("RUSTYPIPE_TEST_SSH") == "1" {
			t.Fatalf("RUSTYPIPE_TEST_SSH=1 but the test servers cannot start: %v", err)
		}
		t.Skipf("no test servers (set RUSTYPIPE_TEST_SSH=1 to make this a failure): %v", err)
	}
	defer f.Stop()
	if len(f.Servers) != 2 || f.Servers[0].Addr == f.Servers[1].Addr || f.Servers[0].TmpDir == f.Servers[1].TmpDir {
		t.Fatalf("servers are not distinct: %+v", f.Servers)
	}
	check, err := knownhosts.New(f.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	for _, s := range f.Servers {
		out, err := f.Remote(s, `echo "$TMPDIR"`)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(out); got != s.TmpDir {
			t.Errorf("%s: TMPDIR = %q, want %q", s.Addr, got, s.TmpDir)
		}
		if len(s.Keys) != 2 || s.Keys[0].Type() != gossh.KeyAlgoED25519 || s.Keys[1].Type() != gossh.KeyAlgoECDSA256 {
			t.Errorf("%s: host key types are wrong: %v", s.Addr, s.Keys)
		}
		if err := check(s.Addr, remote, s.Keys[0]); err != nil {
			t.Errorf("%s: known_hosts refuses its ed25519 key: %v", s.Addr, err)
		}
		var ke *knownhosts.KeyError
		if err := check(s.Addr, remote, s.Keys[1]); !errors.As(err, &ke) || len(ke.Want) != 1 {
			t.Errorf("%s: known_hosts should list only the ed25519 key; ECDSA check = %v", s.Addr, err)
		}
	}
	if _, err := f.Remote(f.Servers[0], "exit 3"); err == nil || !strings.Contains(err.Error(), "exit 3") {
		t.Errorf("a failing command: err = %v, want one naming the command", err)
	}

	f.Stop()
	f.Stop() // idempotent
	for _, s := range f.Servers {
		if c, err := net.Dial("tcp", s.Addr); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Stop", s.Addr)
		}
	}
	if _, err := os.Stat(f.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir %s is left after Stop (%v)", f.Dir, err)
	}
}
