package ssh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"

	"github.com/rustypipe/rustypipe/exec/backendkit"
)

// Host key policies, as the values of the host_key_policy key.
const (
	// PolicyStrict refuses a host whose key is not in known_hosts, as
	// OpenSSH's StrictHostKeyChecking=yes. It is the default.
	PolicyStrict = "strict"
	// PolicyAcceptNew records the key of a host that known_hosts does not
	// list yet and then enforces it, as StrictHostKeyChecking=accept-new.
	// A changed key is refused as under PolicyStrict.
	PolicyAcceptNew = "accept-new"
)

// Defaults for the keys a pipeline leaves out.
const (
	// DefaultPort is the SSH port.
	DefaultPort = 22
	// DefaultRemoteDir is where run directories are made on a host when
	// remote_dir is not set, relative to the remote user's home directory.
	DefaultRemoteDir = ".cache/rustypipe/ssh"
	// DefaultConcurrencyPerHost is how many tasks run at once on one host
	// when concurrency_per_host is not set. A task can hold two SSH
	// sessions at once (its command and a clean-up or signal session), and
	// OpenSSH allows ten sessions per connection (MaxSessions 10), so four
	// stays clear of that limit.
	DefaultConcurrencyPerHost = 4
)

// Config is a named SSH backend as written in a pipeline. The zero value of
// a field means "not set": New fills in the defaults.
type Config struct {
	Hosts              []string // "host", "user@host", "host:port", "user@[::1]:port", or a ~/.ssh/config alias
	User               string   // remote user; default: the alias's User, then the local user name
	Port               int      // default: the alias's Port, then 22
	IdentityFiles      []string // private key files; default: the alias's IdentityFile, then ~/.ssh/id_{ed25519,ecdsa,rsa}
	KnownHosts         string   // known_hosts file; default ~/.ssh/known_hosts
	HostKeyPolicy      string   // PolicyStrict ("" means strict) or PolicyAcceptNew
	RemoteDir          string   // where run directories go on a host; relative paths and "~/" are under the remote home
	ConcurrencyPerHost int      // tasks at once per host; default DefaultConcurrencyPerHost
	Identity           string   // added to the environment identity, e.g. "gcc-12"; see Backend.Identity
}

// ParseConfig decodes a pipeline's backend options, as decoded from YAML
// into a map (for example {"hosts": []any{"a", "b"}, "port": 2222}). The
// key "type" is accepted when it is "ssh". Unknown keys and values of the
// wrong type are errors that name the key, such as
// `key "port": expected an integer`. ParseConfig checks each value on its
// own; New checks the whole.
func ParseConfig(opts map[string]any) (Config, error) {
	var c Config
	o := backendkit.NewOptions("ssh", opts)
	o.WrapKey = func(k string, err error) error { return fmt.Errorf("ssh: key %q: %w", k, err) }
	o.Unknown = func(k string, known []string) error {
		return fmt.Errorf("ssh: key %q: unknown key (want %s or %s)", k, strings.Join(known[:len(known)-1], ", "), known[len(known)-1])
	}
	o.Field("type", func(v any) error {
		s, err := asString(v)
		if err == nil && s != "ssh" {
			err = fmt.Errorf("expected \"ssh\", got %q", s)
		}
		return err
	})
	o.Field("hosts", func(v any) (err error) {
		if c.Hosts, err = asStrings(v, false); err != nil {
			return err
		}
		if len(c.Hosts) == 0 {
			return errors.New("expected at least one host")
		}
		for _, h := range c.Hosts {
			if _, err := parseHostEntry(h); err != nil {
				return err
			}
		}
		return nil
	})
	o.Field("user", func(v any) (err error) { c.User, err = asString(v); return err })
	o.Field("port", func(v any) (err error) {
		c.Port, err = asInt(v)
		if err == nil && (c.Port < 1 || c.Port > 65535) {
			err = fmt.Errorf("port %d is out of range 1-65535", c.Port)
		}
		return err
	})
	o.Field("identity_file", func(v any) (err error) { c.IdentityFiles, err = asStrings(v, true); return err })
	o.Field("known_hosts", func(v any) (err error) { c.KnownHosts, err = asString(v); return err })
	o.Field("host_key_policy", func(v any) (err error) {
		if c.HostKeyPolicy, err = asString(v); err != nil {
			return err
		}
		return checkPolicy(c.HostKeyPolicy)
	})
	o.Field("remote_dir", func(v any) (err error) {
		if c.RemoteDir, err = asString(v); err != nil {
			return err
		}
		return checkRemoteDir(c.RemoteDir)
	})
	o.Field("concurrency_per_host", func(v any) (err error) {
		c.ConcurrencyPerHost, err = asInt(v)
		if err == nil && c.ConcurrencyPerHost < 1 {
			err = fmt.Errorf("expected at least 1, got %d", c.ConcurrencyPerHost)
		}
		return err
	})
	o.Field("identity", func(v any) (err error) { c.Identity, err = asString(v); return err })
	if err := o.Err(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func asString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("expected a string, got %s", typeName(v))
	}
	return s, nil
}

// asStrings accepts a list of strings, or one string when single is set.
func asStrings(v any, single bool) ([]string, error) {
	switch v := v.(type) {
	case string:
		if single {
			return []string{v}, nil
		}
	case []string:
		return slices.Clone(v), nil
	case []any:
		out := make([]string, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("item %d: expected a string, got %s", i+1, typeName(e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	if single {
		return nil, fmt.Errorf("expected a string or a list of strings, got %s", typeName(v))
	}
	return nil, fmt.Errorf("expected a list of strings, got %s", typeName(v))
}

func asInt(v any) (int, error) {
	if n, ok := backendkit.Int(v); ok {
		return n, nil
	}
	return 0, fmt.Errorf("expected an integer, got %s", typeName(v))
}

func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("string %q", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case int, int64, uint64:
		return fmt.Sprintf("integer %v", v)
	case float64:
		return fmt.Sprintf("number %v", v)
	case []any, []string:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func checkPolicy(p string) error {
	switch p {
	case "", PolicyStrict, PolicyAcceptNew:
		return nil
	}
	return fmt.Errorf("unknown policy %q (want %q or %q)", p, PolicyStrict, PolicyAcceptNew)
}

func checkRemoteDir(d string) error {
	if strings.ContainsAny(d, "\x00\n") {
		return fmt.Errorf("remote_dir %q contains a NUL or a newline", d)
	}
	return nil
}

// hostEntry is one item of Config.Hosts, split.
type hostEntry struct {
	user string // "" when not given
	host string // a name, an address or a ~/.ssh/config alias
	port int    // 0 when not given
}

// parseHostEntry splits "user@host:port"; user and port are optional, and
// an IPv6 address with a port is written in brackets ("[::1]:2222").
func parseHostEntry(s string) (hostEntry, error) {
	var e hostEntry
	rest := s
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		e.user, rest = rest[:i], rest[i+1:]
		if e.user == "" {
			return e, fmt.Errorf("host %q: empty user before @", s)
		}
	}
	switch {
	case strings.HasPrefix(rest, "["):
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return e, fmt.Errorf("host %q: missing ]", s)
		}
		e.host, rest = rest[1:end], rest[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return e, fmt.Errorf("host %q: unexpected %q after ]", s, rest)
			}
			p, err := parsePort(rest[1:])
			if err != nil {
				return e, fmt.Errorf("host %q: %w", s, err)
			}
			e.port = p
		}
	case strings.Count(rest, ":") == 1:
		h, p, _ := strings.Cut(rest, ":")
		port, err := parsePort(p)
		if err != nil {
			return e, fmt.Errorf("host %q: %w", s, err)
		}
		e.host, e.port = h, port
	default: // a name, or an IPv6 address without a port
		e.host = rest
	}
	if e.host == "" {
		return e, fmt.Errorf("host %q: empty host name", s)
	}
	if strings.ContainsAny(e.host, " \t\n\x00/") {
		return e, fmt.Errorf("host %q: invalid host name", s)
	}
	return e, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("bad port %q (want 1-65535)", s)
	}
	return p, nil
}

// target is a host entry resolved against the backend keys and
// ~/.ssh/config: what to dial and as whom.
type target struct {
	name     string   // the entry as written, for messages
	addr     string   // host:port to dial
	user     string   // remote user
	keyFiles []string // identity files named by ~/.ssh/config for this alias
}

// label names t in messages: the entry as written, and the address it
// resolved to when that differs.
func (t target) label() string {
	if t.name == t.addr {
		return t.name
	}
	return t.name + " (" + t.addr + ")"
}

// sshConfig is the part of ~/.ssh/config that host resolution reads; nil
// means there is none.
type sshConfig interface {
	Get(alias, key string) (string, error)
	GetAll(alias, key string) ([]string, error)
}

// loadSSHConfig reads ~/.ssh/config. A missing file is no error; a file
// that cannot be parsed is.
func loadSSHConfig(home string) (sshConfig, error) {
	if home == "" {
		return nil, nil
	}
	p := filepath.Join(home, ".ssh", "config")
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ssh: read %s: %w", p, err)
	}
	defer f.Close()
	c, err := ssh_config.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("ssh: parse %s: %w", p, err)
	}
	return c, nil
}

// resolve turns a host entry into a target. Precedence, highest first:
// the entry itself ("user@host:port"), the backend keys user and port,
// the alias's HostName/User/Port/IdentityFile in ~/.ssh/config, then the
// defaults (the local user name, port 22).
func resolve(entry string, cfg *Config, sc sshConfig, home, localUser string) (target, error) {
	e, err := parseHostEntry(entry)
	if err != nil {
		return target{}, err
	}
	get := func(key string) string {
		if sc == nil {
			return ""
		}
		v, _ := sc.Get(e.host, key)
		return strings.TrimSpace(v)
	}
	t := target{name: entry}
	hostname := e.host
	if v := get("HostName"); v != "" {
		hostname = expandTokens(v, e.host, "", home, localUser)
	}
	t.user = firstNonEmpty(e.user, cfg.User, get("User"), localUser)
	if t.user == "" {
		return target{}, fmt.Errorf("host %q: no user (set the user key)", entry)
	}
	port := e.port
	if port == 0 {
		port = cfg.Port
	}
	if port == 0 {
		if v := get("Port"); v != "" {
			if port, err = parsePort(v); err != nil {
				return target{}, fmt.Errorf("host %q: ~/.ssh/config Port: %w", entry, err)
			}
		}
	}
	if port == 0 {
		port = DefaultPort
	}
	t.addr = net.JoinHostPort(hostname, strconv.Itoa(port))
	if sc != nil {
		files, _ := sc.GetAll(e.host, "IdentityFile")
		for _, f := range files {
			if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "none") {
				t.keyFiles = append(t.keyFiles, expandPath(expandTokens(f, e.host, t.user, home, localUser), home))
			}
		}
	}
	return t, nil
}

// expandTokens expands the ssh_config tokens %h (the host as given), %r
// (remote user), %u (local user), %d (local home) and %%.
func expandTokens(s, host, remoteUser, home, localUser string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'h':
			b.WriteString(host)
		case 'r':
			b.WriteString(remoteUser)
		case 'u':
			b.WriteString(localUser)
		case 'd':
			b.WriteString(home)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// expandPath expands a leading "~" to home.
func expandPath(p, home string) string {
	if p == "~" {
		return home
	}
	if strings.HasPrefix(p, "~/") || strings.HasPrefix(p, `~\`) {
		return filepath.Join(home, p[2:])
	}
	return p
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// localUserName is the name of the user running rustypipe, without a
// Windows domain.
func localUserName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		name := u.Username
		if i := strings.LastIndexByte(name, '\\'); i >= 0 {
			name = name[i+1:]
		}
		return name
	}
	return firstNonEmpty(os.Getenv("USER"), os.Getenv("USERNAME"))
}

// remoteDirArg turns remote_dir into a path for the remote shell, whose
// working directory is the remote home: "~" and "~/x" become relative.
func remoteDirArg(d string) string {
	switch {
	case d == "":
		return DefaultRemoteDir
	case d == "~":
		return "."
	case strings.HasPrefix(d, "~/"):
		if rest := strings.TrimLeft(d[2:], "/"); rest != "" {
			return rest
		}
		return "."
	}
	return d
}
