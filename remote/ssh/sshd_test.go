package ssh

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// The tests run against real OpenSSH servers that they start themselves:
// two sshd processes on loopback addresses, with host and user keys made
// in a temporary directory. Without sshd the tests skip, unless
// RUSTYPIPE_TEST_SSH=1, which makes a missing sshd a failure.

// fx is the shared fixture made by TestMain; fxErr says why there is none.
var (
	fx    *fixture
	fxErr error
)

type fixture struct {
	dir        string
	user       string // the remote (and local) user
	userKey    string // private key file authorized on both hosts
	knownHosts string // lists the ed25519 key of each host, and only that
	remoteDir  string // remote_dir for the tests' backends
	a, b       *sshd
}

// sshd is one running server.
type sshd struct {
	addr     string // host:port
	tmpdir   string // TMPDIR the server sets for sessions, which tells the hosts apart
	hostKeys []string
	pubs     []gossh.PublicKey // in the order of hostKeys; ed25519 first
	conf     string
	cmd      *osexec.Cmd
	log      *syncBuffer
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
		fx, fxErr = newFixture()
		if fx != nil {
			defer fx.close()
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

func sshdPath() (string, error) {
	if p, err := osexec.LookPath("sshd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/sshd", "/usr/local/sbin/sshd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("sshd (the OpenSSH server) is not installed")
}

// loopback returns the i-th loopback address for a test server: distinct
// addresses on Linux, 127.0.0.1 elsewhere.
func loopback(i int) string {
	if runtime.GOOS == "linux" {
		return fmt.Sprintf("127.0.0.%d", i+2)
	}
	return "127.0.0.1"
}

func newFixture() (*fixture, error) {
	if runtime.GOOS == "windows" {
		return nil, errors.New("the SSH tests need a POSIX sshd")
	}
	if _, err := sshdPath(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rustypipe-ssh-")
	if err != nil {
		return nil, err
	}
	f := &fixture{dir: dir, user: localUserName(), remoteDir: filepath.Join(dir, "remote")}
	ok := false
	defer func() {
		if !ok {
			f.close()
		}
	}()
	if f.userKey, err = writeKey(dir, "user_ed25519", newEd25519()); err != nil {
		return nil, err
	}
	pub, err := readPublicKey(f.userKey + ".pub")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), gossh.MarshalAuthorizedKey(pub), 0o600); err != nil {
		return nil, err
	}
	// Each host has an ed25519 and an ECDSA key, and known_hosts lists
	// only the ed25519 one: the client prefers ECDSA by default, so this
	// fixture fails every test with a false "changed key" unless the
	// client offers only the algorithms known_hosts has.
	if f.a, err = f.startSSHD("a", loopback(0), 0, nil); err != nil {
		return nil, err
	}
	if f.b, err = f.startSSHD("b", loopback(1), 0, nil); err != nil {
		return nil, err
	}
	f.knownHosts = filepath.Join(dir, "known_hosts")
	lines := knownHostsLine(f.a.addr, f.a.pubs[0]) + knownHostsLine(f.b.addr, f.b.pubs[0])
	if err := os.WriteFile(f.knownHosts, []byte(lines), 0o600); err != nil {
		return nil, err
	}
	ok = true
	return f, nil
}

func (f *fixture) close() {
	for _, s := range []*sshd{f.a, f.b} {
		if s != nil {
			s.stop()
		}
	}
	os.RemoveAll(f.dir)
}

func knownHostsLine(addr string, key gossh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
}

func newEd25519() crypto.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func newECDSA() crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// writeKey writes key in OpenSSH format to dir/name, and its public half
// to dir/name.pub.
func writeKey(dir, name string, key crypto.Signer) (string, error) {
	block, err := gossh.MarshalPrivateKey(key, "rustypipe-test")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	pub, err := gossh.NewPublicKey(key.Public())
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p+".pub", gossh.MarshalAuthorizedKey(pub), 0o644)
}

// startSSHD starts a server named name on ip. port 0 picks a free one.
// hostKeys nil makes a new ed25519 and a new ECDSA key.
func (f *fixture) startSSHD(name, ip string, port int, hostKeys []string) (*sshd, error) {
	bin, err := sshdPath()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// The privilege separation directory, which a service manager
		// would normally create.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, err
		}
	}
	if port == 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, err
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	s := &sshd{addr: net.JoinHostPort(ip, fmt.Sprint(port)), tmpdir: filepath.Join(f.dir, "tmp-"+name), log: &syncBuffer{}}
	if err := os.MkdirAll(s.tmpdir, 0o755); err != nil {
		return nil, err
	}
	if hostKeys == nil {
		k1, err := writeKey(f.dir, "host_"+name+"_ed25519", newEd25519())
		if err != nil {
			return nil, err
		}
		k2, err := writeKey(f.dir, "host_"+name+"_ecdsa", newECDSA())
		if err != nil {
			return nil, err
		}
		hostKeys = []string{k1, k2}
	}
	s.hostKeys = hostKeys
	for _, k := range hostKeys {
		pub, err := readPublicKey(k + ".pub")
		if err != nil {
			return nil, err
		}
		s.pubs = append(s.pubs, pub)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "ListenAddress %s\n", s.addr)
	for _, k := range hostKeys {
		fmt.Fprintf(&conf, "HostKey %s\n", k)
	}
	fmt.Fprintf(&conf, `PidFile %s
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
SetEnv TMPDIR=%s
LogLevel VERBOSE
`, filepath.Join(f.dir, "sshd-"+name+".pid"), filepath.Join(f.dir, "authorized_keys"), s.tmpdir)
	s.conf = filepath.Join(f.dir, "sshd_config_"+name)
	if err := os.WriteFile(s.conf, []byte(conf.String()), 0o600); err != nil {
		return nil, err
	}
	s.cmd = osexec.Command(bin, "-D", "-e", "-f", s.conf)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { s.cmd.Wait(); close(exited) }()
	// Wait until it accepts connections. This bounds a server that cannot
	// start; it asserts nothing about speed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("sshd %s exited: %s", name, s.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("sshd %s did not listen on %s: %s", name, s.addr, s.log.String())
		}
	}
}

func (s *sshd) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		s.cmd.Process.Wait()
		s.cmd = nil
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// config returns a Config for the given servers with the fixture's keys.
func (f *fixture) config(hosts ...*sshd) Config {
	c := Config{
		User:               f.user,
		IdentityFiles:      []string{f.userKey},
		KnownHosts:         f.knownHosts,
		RemoteDir:          f.remoteDir,
		ConcurrencyPerHost: 4,
	}
	for _, h := range hosts {
		c.Hosts = append(c.Hosts, h.addr)
	}
	return c
}

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

// remote runs cmd on s through a connection of the test's own, checked
// against s's fixed host key, and returns its stdout.
func (f *fixture) remote(t *testing.T, s *sshd, cmd string) string {
	t.Helper()
	pem, err := os.ReadFile(f.userKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gossh.Dial("tcp", s.addr, &gossh.ClientConfig{
		User:              f.user,
		Auth:              []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback:   gossh.FixedHostKey(s.pubs[0]),
		HostKeyAlgorithms: []string{s.pubs[0].Type()},
		Timeout:           20 * time.Second,
	})
	if err != nil {
		t.Fatalf("test connection to %s: %v\nsshd log:\n%s", s.addr, err, s.log.String())
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var out, errOut bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errOut
	if err := sess.Run(cmd); err != nil {
		t.Fatalf("remote %q: %v: %s", cmd, err, errOut.String())
	}
	return out.String()
}

// processGone reports whether pid has exited (a zombie counts as gone),
// asking ps on host s.
func (f *fixture) processGone(t *testing.T, s *sshd, pid int) bool {
	out := strings.TrimSpace(f.remote(t, s, fmt.Sprintf("ps -o stat= -p %d || true", pid)))
	return out == "" || strings.HasPrefix(out, "Z")
}
