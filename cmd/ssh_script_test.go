//go:build linux

package cmd

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rustypipe/rustypipe/internal/sshdtest"
)

func init() {
	scriptCmds["sshd"] = cmdSSHD
	scriptCmds["expand"] = cmdExpand
	scriptConds["sshd"] = sshdAvailable
}

// sshdAvailable answers [sshd]: the OpenSSH server is installed. With
// RUSTYPIPE_TEST_SSH=1 (CI) a missing one is an error, not a skip.
func sshdAvailable() (bool, error) {
	_, err := sshdtest.Available()
	if err != nil && os.Getenv("RUSTYPIPE_TEST_SSH") == "1" {
		return false, fmt.Errorf("RUSTYPIPE_TEST_SSH=1 but the SSH test servers cannot run: %v", err)
	}
	return err == nil, nil
}

// sshd N starts N OpenSSH servers on loopback addresses, stopped when the
// script ends, and sets for the script:
//
//	SSH_HOST<i>        host:port of server i (from 1)
//	SSH_PORT<i>        its port
//	SSH_TMPDIR<i>      the TMPDIR its sessions get, which tells the servers apart
//	SSH_FINGERPRINT<i> a regexp matching the SHA256 fingerprint of any of its host keys
//	SSH_USER           the user to log in as
//	SSH_KEY            the private key file the servers accept
//	SSH_KNOWN_HOSTS    a known_hosts file listing every server
//	SSH_REMOTE_DIR     a scratch directory for the backend's remote_dir
func cmdSSHD(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sshd N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		ts.Fatalf("sshd: bad count %q", args[0])
	}
	f, err := sshdtest.Start(n)
	if err != nil {
		ts.Fatalf("sshd: %v", err)
	}
	ts.Defer(f.Stop)
	for i, s := range f.Servers {
		fps := make([]string, len(s.Keys))
		for j, k := range s.Keys {
			fps[j] = regexp.QuoteMeta(gossh.FingerprintSHA256(k))
		}
		ts.Setenv(fmt.Sprintf("SSH_HOST%d", i+1), s.Addr)
		ts.Setenv(fmt.Sprintf("SSH_PORT%d", i+1), strconv.Itoa(s.Port))
		ts.Setenv(fmt.Sprintf("SSH_TMPDIR%d", i+1), s.TmpDir)
		ts.Setenv(fmt.Sprintf("SSH_FINGERPRINT%d", i+1), "(?:"+strings.Join(fps, "|")+")")
		ts.Logf("sshd: server %d at %s", i+1, s.Addr)
	}
	ts.Setenv("SSH_USER", f.User)
	ts.Setenv("SSH_KEY", f.IdentityFile)
	ts.Setenv("SSH_KNOWN_HOSTS", f.KnownHosts)
	ts.Setenv("SSH_REMOTE_DIR", f.RemoteDir)
}

// bracedVar is ${NAME}, the only form expand replaces.
var bracedVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand SRC DST writes SRC to DST with each ${NAME} replaced by the
// script's variable NAME; an unset NAME is an error. Only the braced form
// is replaced, so $NAME and $(cmd) in a pipeline's run scripts pass
// through for the task's shell.
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: expand SRC DST")
	}
	var missing []string
	out := bracedVar.ReplaceAllStringFunc(ts.ReadFile(args[0]), func(m string) string {
		name := m[2 : len(m)-1]
		v := ts.Getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		ts.Fatalf("expand: %s: unset variables %v", args[0], missing)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(out), 0o644))
}
