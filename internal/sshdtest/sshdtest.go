package sshdtest

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
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// startTimeout bounds how long a server may take to accept connections. It
// catches a server that cannot start; it asserts nothing about speed.
const startTimeout = 20 * time.Second

// Fixture is a set of running servers sharing one user key and one
// known_hosts file.
type Fixture struct {
	Dir          string    // temporary directory holding every file below; removed by Stop
	User         string    // the local user name, the one the servers let in
	IdentityFile string    // private key (ed25519, no passphrase) authorized on every server; IdentityFile+".pub" is its public half
	KnownHosts   string    // known_hosts with the ed25519 key of each server made by Start
	RemoteDir    string    // a path under Dir (not created) for a backend's remote_dir, so runs stay out of the user's home
	Servers      []*Server // the servers made by Start, in order

	signer gossh.Signer

	mu  sync.Mutex
	all []*Server // every server started, for Stop
}

// Server is one running sshd.
type Server struct {
	Addr   string            // "127.0.0.2:PORT"
	Port   int               // the port of Addr
	TmpDir string            // TMPDIR the server sets for its sessions; unique to the server
	Keys   []gossh.PublicKey // host keys: ed25519, then ECDSA
	cmd    *osexec.Cmd       // nil once stopped
	exited chan struct{}     // closed when the process has been reaped
	log    string            // file of sshd's own log (-e)
	stop   sync.Once
}

// Available returns the path of the sshd binary, or an error saying why the
// servers cannot run here.
func Available() (string, error) {
	if runtime.GOOS == "windows" {
		return "", errors.New("sshdtest: the test servers need a POSIX sshd")
	}
	if p, err := osexec.LookPath("sshd"); err == nil {
		return p, nil
	}
	// sbin directories are often missing from a non-root PATH.
	for _, p := range []string{"/usr/sbin/sshd", "/usr/local/sbin/sshd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("sshdtest: sshd (the OpenSSH server) is not installed")
}

// Loopback returns the IP address for the i-th test server (from 0):
// distinct addresses 127.0.0.(i+2) on Linux, where all of 127/8 is local,
// and 127.0.0.1 elsewhere.
func Loopback(i int) string {
	if runtime.GOOS == "linux" {
		return fmt.Sprintf("127.0.0.%d", i+2)
	}
	return "127.0.0.1"
}

// Start starts n servers on Loopback(0) ... Loopback(n-1), each on a free
// port, and writes KnownHosts for them. On error nothing is left running
// and Dir is removed.
func Start(n int) (*Fixture, error) {
	if _, err := Available(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rustypipe-sshd-")
	if err != nil {
		return nil, fmt.Errorf("sshdtest: %w", err)
	}
	f := &Fixture{Dir: dir, User: localUser(), RemoteDir: filepath.Join(dir, "remote")}
	ok := false
	defer func() {
		if !ok {
			f.Stop()
		}
	}()
	key := NewEd25519()
	if f.IdentityFile, err = WriteKey(dir, "user_ed25519", key); err != nil {
		return nil, fmt.Errorf("sshdtest: user key: %w", err)
	}
	if f.signer, err = gossh.NewSignerFromSigner(key); err != nil {
		return nil, fmt.Errorf("sshdtest: user key: %w", err)
	}
	if err := os.WriteFile(f.authorizedKeys(), gossh.MarshalAuthorizedKey(f.signer.PublicKey()), 0o600); err != nil {
		return nil, fmt.Errorf("sshdtest: %w", err)
	}
	var lines strings.Builder
	for i := range n {
		s, err := f.StartServer(Loopback(i), 0)
		if err != nil {
			return nil, err
		}
		f.Servers = append(f.Servers, s)
		lines.WriteString(KnownHostsLine(s.Addr, s.Keys[0]))
	}
	f.KnownHosts = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(f.KnownHosts, []byte(lines.String()), 0o600); err != nil {
		return nil, fmt.Errorf("sshdtest: %w", err)
	}
	ok = true
	return f, nil
}

func (f *Fixture) authorizedKeys() string { return filepath.Join(f.Dir, "authorized_keys") }

// StartServer starts one more server on ip, with new host keys, which
// known_hosts does not list. Port 0 picks a free port; a given port lets a
// test bring back a stopped server's address with other keys. Fixture.Stop
// stops it too.
func (f *Fixture) StartServer(ip string, port int) (*Server, error) {
	bin, err := Available()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	idx := len(f.all)
	f.all = append(f.all, nil) // reserve the slot, and with it the name
	name := strconv.Itoa(idx + 1)
	f.mu.Unlock()
	fail := func(err error) (*Server, error) { return nil, fmt.Errorf("sshdtest: server %s: %w", name, err) }

	if os.Geteuid() == 0 {
		// The privilege separation directory, which a service manager
		// would normally create.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return fail(err)
		}
	}
	if port == 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return fail(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	s := &Server{
		Addr:   net.JoinHostPort(ip, strconv.Itoa(port)),
		Port:   port,
		TmpDir: filepath.Join(f.Dir, "tmp-"+name),
		log:    filepath.Join(f.Dir, "sshd-"+name+".log"),
		exited: make(chan struct{}),
	}
	if err := os.MkdirAll(s.TmpDir, 0o755); err != nil {
		return fail(err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "ListenAddress %s\n", s.Addr)
	for _, k := range []struct {
		file string
		key  crypto.Signer
	}{{"host_" + name + "_ed25519", NewEd25519()}, {"host_" + name + "_ecdsa", newECDSA()}} {
		p, err := WriteKey(f.Dir, k.file, k.key)
		if err != nil {
			return fail(err)
		}
		pub, err := gossh.NewPublicKey(k.key.Public())
		if err != nil {
			return fail(err)
		}
		s.Keys = append(s.Keys, pub)
		fmt.Fprintf(&conf, "HostKey %s\n", p)
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
`, filepath.Join(f.Dir, "sshd-"+name+".pid"), f.authorizedKeys(), s.TmpDir)
	confFile := filepath.Join(f.Dir, "sshd_config_"+name)
	if err := os.WriteFile(confFile, []byte(conf.String()), 0o600); err != nil {
		return fail(err)
	}
	logFile, err := os.Create(s.log)
	if err != nil {
		return fail(err)
	}
	defer logFile.Close() // the child has its own descriptor
	s.cmd = osexec.Command(bin, "-D", "-e", "-f", confFile)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		return fail(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	f.mu.Lock()
	f.all[idx] = s
	f.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			return fail(fmt.Errorf("sshd exited: %s", s.Log()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fail(fmt.Errorf("sshd did not listen on %s within %v: %s", s.Addr, startTimeout, s.Log()))
		}
	}
}

// Stop stops every server of the fixture and removes Dir.
func (f *Fixture) Stop() {
	f.mu.Lock()
	all := append([]*Server(nil), f.all...)
	f.mu.Unlock()
	for _, s := range all {
		if s != nil {
			s.Stop()
		}
	}
	os.RemoveAll(f.Dir)
}

// Stop stops the server (SIGTERM) and waits for it to exit. Sessions
// already open may outlive it, as with any sshd. Stop is idempotent.
func (s *Server) Stop() {
	s.stop.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		<-s.exited
	})
}

// Log returns what the server has logged so far, for failure messages.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// Remote runs cmd on s through a connection of its own, as User with
// IdentityFile, checking s's ed25519 host key, and returns its stdout. A
// failure names cmd and carries its stderr (or the server's log when the
// connection fails).
func (f *Fixture) Remote(s *Server, cmd string) (string, error) {
	c, err := gossh.Dial("tcp", s.Addr, &gossh.ClientConfig{
		User:              f.User,
		Auth:              []gossh.AuthMethod{gossh.PublicKeys(f.signer)},
		HostKeyCallback:   gossh.FixedHostKey(s.Keys[0]),
		HostKeyAlgorithms: []string{s.Keys[0].Type()},
		Timeout:           startTimeout,
	})
	if err != nil {
		return "", fmt.Errorf("sshdtest: connect to %s: %w\nsshd log:\n%s", s.Addr, err, s.Log())
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("sshdtest: session on %s: %w", s.Addr, err)
	}
	defer sess.Close()
	var out, errOut bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errOut
	if err := sess.Run(cmd); err != nil {
		return out.String(), fmt.Errorf("sshdtest: run %q on %s: %w: %s", cmd, s.Addr, err, errOut.String())
	}
	return out.String(), nil
}

// KnownHostsLine returns the known_hosts line, with its newline, that
// trusts key for addr ("host:port"; port 22 is written as the bare host).
func KnownHostsLine(addr string, key gossh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
}

// NewEd25519 returns a new ed25519 private key.
func NewEd25519() crypto.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return k
}

func newECDSA() crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return k
}

// WriteKey writes key unencrypted in OpenSSH format to dir/name (mode
// 0600) and its public half to dir/name.pub, and returns dir/name.
func WriteKey(dir, name string, key crypto.Signer) (string, error) {
	block, err := gossh.MarshalPrivateKey(key, "rustypipe-test")
	if err != nil {
		return "", fmt.Errorf("sshdtest: write key %s: %w", name, err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", fmt.Errorf("sshdtest: write key %s: %w", name, err)
	}
	pub, err := gossh.NewPublicKey(key.Public())
	if err != nil {
		return "", fmt.Errorf("sshdtest: write key %s: %w", name, err)
	}
	if err := os.WriteFile(p+".pub", gossh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		return "", fmt.Errorf("sshdtest: write key %s: %w", name, err)
	}
	return p, nil
}

// localUser is the name of the user running the tests, the only account a
// non-root sshd can log into.
func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}
