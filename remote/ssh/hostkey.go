package ssh

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHosts checks host keys against one known_hosts file and, under
// PolicyAcceptNew, records the keys of new hosts in it. Safe for
// concurrent use.
type knownHosts struct {
	path   string
	policy string

	mu sync.Mutex // guards cb and serializes appends to path
	cb gossh.HostKeyCallback
}

// appendMu serializes appends to known_hosts files among all backends of
// this process; knownHosts.mu is taken first when both are held.
var appendMu sync.Mutex

func newKnownHosts(path, policy string) (*knownHosts, error) {
	k := &knownHosts{path: path, policy: policy}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// reload rereads the file; a missing file is an empty one. Callers other
// than newKnownHosts hold k.mu.
func (k *knownHosts) reload() error {
	var files []string
	if _, err := os.Stat(k.path); err == nil {
		files = []string{k.path}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ssh: known_hosts %s: %w", k.path, err)
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return fmt.Errorf("ssh: known_hosts: %w", err)
	}
	k.cb = cb
	return nil
}

func (k *knownHosts) callback() gossh.HostKeyCallback {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cb
}

// algorithms returns the host key algorithms to offer to addr: those of
// the keys known_hosts lists for it, so that a host with several key types
// presents one that can be checked instead of failing as a mismatch. It
// returns nil, which means the defaults, for a host that is not listed.
func (k *knownHosts) algorithms(addr string) []string {
	// Checking a key that no entry can hold makes knownhosts return every
	// key it has for the host in KeyError.Want.
	err := k.callback()(addr, fakeAddr(addr), probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	var algs []string
	for _, w := range ke.Want {
		for _, a := range algorithmsFor(w.Key.Type()) {
			if !slices.Contains(algs, a) {
				algs = append(algs, a)
			}
		}
	}
	return algs
}

// algorithmsFor maps a key type to the host key algorithms that use it.
func algorithmsFor(keyType string) []string {
	if keyType == gossh.KeyAlgoRSA {
		return []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// check is the ssh.HostKeyCallback for a connection to t. It never accepts
// a key that known_hosts contradicts.
func (k *knownHosts) check(t target, hostname string, remote net.Addr, key gossh.PublicKey) error {
	err := k.callback()(hostname, remote, key)
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &ke) && len(ke.Want) == 0:
		if k.policy == PolicyAcceptNew {
			return k.record(t, hostname, key)
		}
		return &HostKeyError{Host: t.label(), Addr: t.addr, Key: key, File: k.path}
	case errors.As(err, &ke):
		return &HostKeyError{Host: t.label(), Addr: t.addr, Key: key, File: k.path, Want: ke.Want}
	case errors.As(err, &re):
		return &HostKeyError{Host: t.label(), Addr: t.addr, Key: key, File: k.path, Revoked: true}
	}
	return fmt.Errorf("ssh: check host key of %s: %w", t.addr, err)
}

// record appends hostname's key to the file, then rereads it so that the
// key is enforced from now on. A key another connection recorded meanwhile
// is checked, not recorded twice.
func (k *knownHosts) record(t target, hostname string, key gossh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reload(); err != nil {
		return err
	}
	var ke *knownhosts.KeyError
	switch err := k.cb(hostname, fakeAddr(hostname), key); {
	case err == nil:
		return nil
	case !errors.As(err, &ke) || len(ke.Want) > 0:
		return &HostKeyError{Host: t.label(), Addr: t.addr, Key: key, File: k.path, Want: wantOf(ke)}
	}
	appendMu.Lock()
	defer appendMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return fmt.Errorf("ssh: record host key of %s: %w", t.addr, err)
	}
	f, err := os.OpenFile(k.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("ssh: record host key of %s: %w", t.addr, err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 && !endsWithNewline(k.path, fi.Size()) {
		line = "\n" + line
	}
	_, err = f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ssh: record host key of %s: %w", t.addr, err)
	}
	return k.reload()
}

func wantOf(ke *knownhosts.KeyError) []knownhosts.KnownKey {
	if ke == nil {
		return nil
	}
	return ke.Want
}

func endsWithNewline(path string, size int64) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, size-1); err != nil {
		return true
	}
	return b[0] == '\n'
}

// HostKeyError is a host key that known_hosts does not allow: unknown
// (Want is empty), changed (Want lists the keys known_hosts expects) or
// revoked. It wraps ErrHostKey.
type HostKeyError struct {
	Host    string                // the host as configured, and its address when that differs
	Addr    string                // host:port dialled
	Key     gossh.PublicKey       // the key the server presented
	File    string                // the known_hosts file
	Want    []knownhosts.KnownKey // the keys known_hosts holds for the host
	Revoked bool                  // the key is marked @revoked
}

func (e *HostKeyError) Error() string {
	fp := e.Key.Type() + " " + gossh.FingerprintSHA256(e.Key)
	host, port, _ := net.SplitHostPort(e.Addr)
	switch {
	case e.Revoked:
		return fmt.Sprintf("ssh: host %s presented the revoked key %s; refusing to connect", e.Host, fp)
	case len(e.Want) == 0:
		return fmt.Sprintf("ssh: host %s is unknown: its key %s is not in %s. "+
			"Check that fingerprint with the host's administrator, then trust it with "+
			"`ssh-keyscan -p %s %s >> %s` (or `ssh -p %s %s` once), "+
			"or set host_key_policy: accept-new to record new hosts on first use",
			e.Host, fp, e.File, port, host, e.File, port, host)
	}
	var want []string
	for _, w := range e.Want {
		want = append(want, fmt.Sprintf("%s %s (%s:%d)", w.Key.Type(), gossh.FingerprintSHA256(w.Key), w.Filename, w.Line))
	}
	return fmt.Sprintf("ssh: HOST KEY OF %s HAS CHANGED: it presented %s, but known_hosts has %s. "+
		"Someone may be intercepting the connection (a man-in-the-middle attack), or the host was reinstalled; "+
		"refusing to connect. If you know the change is legitimate, remove the old key with "+
		"`ssh-keygen -R '%s' -f %s` and trust the new one",
		e.Host, fp, strings.Join(want, ", "), knownhosts.Normalize(e.Addr), e.File)
}

func (e *HostKeyError) Unwrap() error { return ErrHostKey }

// probeKey is a public key of a type no known_hosts line can hold.
type probeKey struct{}

func (probeKey) Type() string                          { return "rustypipe-probe" }
func (probeKey) Marshal() []byte                       { return []byte("rustypipe-probe") }
func (probeKey) Verify([]byte, *gossh.Signature) error { return errors.New("probe key") }

// fakeAddr is a remote address for knownhosts, which prefers the host
// name it is given and only needs the address to parse.
func fakeAddr(hostport string) net.Addr {
	_, p, _ := net.SplitHostPort(hostport)
	port, _ := parsePort(p)
	return &net.TCPAddr{IP: net.IPv4zero, Port: port}
}
