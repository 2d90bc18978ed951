package ssh

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// keyFile is a private key file, loaded once by New.
type keyFile struct {
	path      string
	signer    gossh.Signer    // nil when the key needs a passphrase
	public    gossh.PublicKey // always set
	encrypted bool            // the key needs a passphrase: only the agent can use it
}

func (k *keyFile) describe() string {
	s := fmt.Sprintf("%s (%s %s)", k.path, k.public.Type(), gossh.FingerprintSHA256(k.public))
	if k.encrypted {
		s += " [passphrase-protected: usable only through ssh-agent]"
	}
	return s
}

// defaultKeyFiles are tried, as by OpenSSH, when neither the backend nor
// ~/.ssh/config names an identity file.
var defaultKeyFiles = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// loadKeyFile reads a private key. A key protected by a passphrase loads
// without a signer; only ssh-agent can then sign with it.
func loadKeyFile(path string) (*keyFile, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ssh: identity file: %w", err)
	}
	signer, err := gossh.ParsePrivateKey(pem)
	var pm *gossh.PassphraseMissingError
	switch {
	case errors.As(err, &pm) && pm.PublicKey != nil:
		return &keyFile{path: path, public: pm.PublicKey, encrypted: true}, nil
	case errors.As(err, &pm):
		pub, perr := readPublicKey(path + ".pub")
		if perr != nil {
			return nil, fmt.Errorf("ssh: identity file %s needs a passphrase and has no readable %s.pub: %w", path, path, perr)
		}
		return &keyFile{path: path, public: pub, encrypted: true}, nil
	case err != nil:
		return nil, fmt.Errorf("ssh: identity file %s: %w", path, err)
	}
	return &keyFile{path: path, signer: signer, public: signer.PublicKey()}, nil
}

func readPublicKey(path string) (gossh.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey(b)
	return pub, err
}

// keyRing holds every key file the backend's hosts use, by path.
type keyRing map[string]*keyFile

// load reads each file not loaded yet. When optional is set, missing
// files are skipped.
func (r keyRing) load(paths []string, optional bool) ([]*keyFile, error) {
	var out []*keyFile
	for _, p := range paths {
		if k, ok := r[p]; ok {
			out = append(out, k)
			continue
		}
		k, err := loadKeyFile(p)
		if err != nil {
			if optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		r[p] = k
		out = append(out, k)
	}
	return out, nil
}

// defaultKeyPaths returns ~/.ssh/id_* for the default key names.
func defaultKeyPaths(home string) []string {
	if home == "" {
		return nil
	}
	var ps []string
	for _, n := range defaultKeyFiles {
		ps = append(ps, filepath.Join(home, ".ssh", n))
	}
	return ps
}

// authAttempt is the public key authentication of one connection: the
// key files first, then the agent's keys. It records what it offered, for
// the message when the server refuses them all.
type authAttempt struct {
	files     []*keyFile
	agentSock string

	agentConn net.Conn
	offered   []string
	agentErr  error
	called    bool // the server asked for keys: the host key was accepted
}

func (a *authAttempt) method() gossh.AuthMethod {
	return gossh.PublicKeysCallback(func() ([]gossh.Signer, error) {
		a.called = true
		var signers []gossh.Signer
		a.offered = a.offered[:0]
		for _, k := range a.files {
			if k.signer != nil {
				signers = append(signers, k.signer)
				a.offered = append(a.offered, k.describe())
			}
		}
		if a.agentSock != "" {
			conn, err := net.Dial("unix", a.agentSock)
			if err != nil {
				a.agentErr = fmt.Errorf("ssh-agent at SSH_AUTH_SOCK: %w", err)
				return signers, nil
			}
			a.agentConn = conn
			as, err := agent.NewClient(conn).Signers()
			if err != nil {
				a.agentErr = fmt.Errorf("ssh-agent: %w", err)
				return signers, nil
			}
			for _, s := range as {
				a.offered = append(a.offered, fmt.Sprintf("ssh-agent key (%s %s)", s.PublicKey().Type(), gossh.FingerprintSHA256(s.PublicKey())))
			}
			signers = append(signers, as...)
		}
		return signers, nil
	})
}

// close releases the agent connection, which is only needed during the
// handshake: agent forwarding is never requested.
func (a *authAttempt) close() {
	if a.agentConn != nil {
		a.agentConn.Close()
	}
}

// refused is the message for a server that accepted none of the keys.
func (a *authAttempt) refused(t target) error {
	var b strings.Builder
	fmt.Fprintf(&b, "ssh: host %s refused authentication as %q: ", t.label(), t.user)
	if len(a.offered) == 0 {
		b.WriteString("no key to offer")
	} else {
		b.WriteString("it accepted none of the keys offered: " + strings.Join(a.offered, "; "))
	}
	for _, k := range a.files {
		if k.encrypted {
			fmt.Fprintf(&b, "; %s needs a passphrase, so it can only be used once loaded into ssh-agent (ssh-add)", k.path)
		}
	}
	if a.agentErr != nil {
		fmt.Fprintf(&b, "; %v", a.agentErr)
	}
	fmt.Fprintf(&b, ". Add the right public key to ~%s/.ssh/authorized_keys on the host, or set identity_file", t.user)
	return &authError{msg: b.String()}
}

type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }
func (e *authError) Unwrap() error { return ErrAuth }
