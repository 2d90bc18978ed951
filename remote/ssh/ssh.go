package ssh

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rustypipe/rustypipe/exec"
)

var (
	_ exec.Backend    = (*Backend)(nil)
	_ exec.Identifier = (*Backend)(nil)
)

// ErrConnect is wrapped by Run's error when no host could be reached, or a
// connection failed during the task: the attempt may be retried, on this
// backend or later. A task's own non-zero exit is a Result, never this.
var ErrConnect = fmt.Errorf("ssh: connection failed: %w", exec.ErrUnavailable)

// ErrHostKey is wrapped (through *HostKeyError) when a host's key is not
// in known_hosts, has changed or is revoked. Retrying does not help: the
// user must check the key and update known_hosts.
var ErrHostKey = errors.New("ssh: host key not trusted")

// ErrAuth is wrapped when a host refused every key offered. Retrying does
// not help.
var ErrAuth = errors.New("ssh: authentication refused")

// Timings. None of them is a limit on a task's own run time.
const (
	// connectTimeout bounds dialling, the SSH handshake and the uname
	// probe of one host. OpenSSH has no default (TCP's own applies); this
	// bounds a host that accepts the TCP connection but never answers.
	connectTimeout = 30 * time.Second

	// keepaliveInterval and keepaliveCountMax: a connection is closed, and
	// its tasks fail with ErrConnect, after keepaliveCountMax keepalives in
	// a row went unanswered for keepaliveInterval each. 15 s is a common
	// ServerAliveInterval; 3 is OpenSSH's default ServerAliveCountMax.
	keepaliveInterval = 15 * time.Second
	keepaliveCountMax = 3

	// downRetry is how long a host that could not be reached is skipped
	// before it is tried again.
	downRetry = time.Minute

	// drainTimeout bounds how long Run keeps reading a task's output once
	// its process group is gone, as in the local backend: only a process
	// that left the group can still hold the streams open then.
	drainTimeout = time.Second

	// controlTimeout bounds the sessions that signal a task's processes or
	// clean up after it when the task's own context is done.
	controlTimeout = 30 * time.Second
)

// Backend runs tasks on a pool of hosts over SSH. The zero value is not
// usable; call New. A Backend holds one connection per host, made on first
// use and kept until Close.
type Backend struct {
	cfg   Config
	log   func(string)
	kh    *knownHosts
	base  string // the remote_dir argument for the remote shell
	agent string // SSH_AUTH_SOCK, "" for none

	ctx    context.Context // done once Close starts; bounds connections being made
	cancel context.CancelFunc
	wg     sync.WaitGroup // connection and keepalive goroutines

	mu     sync.Mutex // guards everything below and every host's mutable fields
	hosts  []*host
	wake   chan struct{} // closed and replaced when a slot frees or a host changes state
	uname  string        // `uname -sm` of the pool, from the first host probed; "" before
	closed bool
}

// New checks cfg, resolves its hosts against ~/.ssh/config, loads the
// identity files and the known_hosts file, and returns a backend. It makes
// no connection: each host is connected on first use. log receives
// warnings such as a host that is unreachable and skipped; it may be nil.
func New(cfg Config, log func(msg string)) (*Backend, error) {
	if log == nil {
		log = func(string) {}
	}
	if len(cfg.Hosts) == 0 {
		return nil, errors.New("ssh: key \"hosts\": expected at least one host")
	}
	if err := checkPolicy(cfg.HostKeyPolicy); err != nil {
		return nil, fmt.Errorf("ssh: key \"host_key_policy\": %w", err)
	}
	if err := checkRemoteDir(cfg.RemoteDir); err != nil {
		return nil, fmt.Errorf("ssh: key \"remote_dir\": %w", err)
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("ssh: key \"port\": port %d is out of range 1-65535", cfg.Port)
	}
	if cfg.ConcurrencyPerHost < 0 {
		return nil, fmt.Errorf("ssh: key \"concurrency_per_host\": expected at least 1, got %d", cfg.ConcurrencyPerHost)
	}
	if cfg.ConcurrencyPerHost == 0 {
		cfg.ConcurrencyPerHost = DefaultConcurrencyPerHost
	}
	if cfg.HostKeyPolicy == "" {
		cfg.HostKeyPolicy = PolicyStrict
	}
	home, _ := os.UserHomeDir()
	localUser := localUserName()

	khPath := cfg.KnownHosts
	if khPath == "" {
		if home == "" {
			return nil, errors.New("ssh: no home directory to find ~/.ssh/known_hosts in: set known_hosts")
		}
		khPath = filepath.Join(home, ".ssh", "known_hosts")
	}
	kh, err := newKnownHosts(expandPath(khPath, home), cfg.HostKeyPolicy)
	if err != nil {
		return nil, err
	}
	sc, err := loadSSHConfig(home)
	if err != nil {
		return nil, err
	}

	var explicit []string
	for _, f := range cfg.IdentityFiles {
		explicit = append(explicit, expandPath(f, home))
	}
	ring := keyRing{}
	agentSock := os.Getenv("SSH_AUTH_SOCK")
	b := &Backend{cfg: cfg, log: log, kh: kh, base: remoteDirArg(cfg.RemoteDir), agent: agentSock, wake: make(chan struct{})}
	seen := map[string]bool{}
	for _, entry := range cfg.Hosts {
		t, err := resolve(entry, &cfg, sc, home, localUser)
		if err != nil {
			return nil, fmt.Errorf("ssh: key \"hosts\": %w", err)
		}
		if seen[t.user+"@"+t.addr] {
			return nil, fmt.Errorf("ssh: key \"hosts\": %s@%s is listed twice", t.user, t.addr)
		}
		seen[t.user+"@"+t.addr] = true
		keys, err := ring.load(append(append([]string(nil), explicit...), t.keyFiles...), false)
		if err != nil {
			return nil, err
		}
		if len(explicit) == 0 && len(t.keyFiles) == 0 {
			if keys, err = ring.load(defaultKeyPaths(home), true); err != nil {
				return nil, err
			}
		}
		if len(keys) == 0 && agentSock == "" {
			return nil, fmt.Errorf("ssh: host %s: no key to authenticate with: set identity_file, or start ssh-agent (SSH_AUTH_SOCK)", entry)
		}
		b.hosts = append(b.hosts, &host{t: t, keys: keys, limit: cfg.ConcurrencyPerHost})
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Close closes every connection and stops the keepalives. Tasks still
// running on a host are not stopped (their contexts do that): call Close
// after every Run has returned. Close is safe for concurrent use, and a
// later Run fails with an error wrapping exec.ErrStart. It returns nil.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var conns []*conn
	for _, h := range b.hosts {
		if h.conn != nil {
			conns = append(conns, h.conn)
		}
	}
	b.notifyLocked()
	b.mu.Unlock()
	b.cancel()
	for _, c := range conns {
		c.client.Close()
	}
	b.wg.Wait()
	return nil
}

// Identity returns the environment identity that goes into task keys:
// "ssh " followed by the remote `uname -sm` (for example
// "ssh Linux x86_64"), then " identity=" and Config.Identity when it is
// set. The host name is not part of it, so a pool of identical hosts, or
// two pools of the same kind of host, share cache entries; hosts that
// differ in anything uname does not show (compilers, libraries) must say
// so in Config.Identity. The uname is probed once per connection; a host
// whose uname differs from the pool's (the first host probed) is skipped
// with a warning, so every task of a backend runs on one kind of host.
//
// Identity connects to the first host that can be reached if none is
// connected yet; its error wraps ErrConnect, ErrHostKey or ErrAuth as Run's
// would, or context.Cause(ctx). Safe for concurrent use.
func (b *Backend) Identity(ctx context.Context, _ *exec.Spec) (string, error) {
	uname, err := b.poolUname(ctx)
	if err != nil {
		return "", err
	}
	id := "ssh " + uname
	if b.cfg.Identity != "" {
		id += " identity=" + b.cfg.Identity
	}
	return id, nil
}

// connectError is a failure to reach or keep a host. It wraps ErrConnect
// and the cause.
type connectError struct {
	host, op string
	err      error
}

func (e *connectError) Error() string {
	return fmt.Sprintf("ssh: host %s: %s: %v", e.host, e.op, e.err)
}

func (e *connectError) Unwrap() []error { return []error{ErrConnect, e.err} }

// noHostError is returned when every host of the pool is unusable. It
// wraps each host's error, so errors.Is finds ErrConnect when at least one
// host was merely unreachable.
type noHostError struct{ errs []error }

func (e *noHostError) Error() string {
	var parts []string
	for _, err := range e.errs {
		parts = append(parts, err.Error())
	}
	return "ssh: no host of the pool is usable: " + strings.Join(parts, "; ")
}

func (e *noHostError) Unwrap() []error { return e.errs }
