package ssh

import (
	"crypto"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kevinburke/ssh_config"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rustypipe/rustypipe/internal/sshdtest"
)

func gosshMarshalEncrypted(key crypto.Signer, passphrase string) ([]byte, error) {
	block, err := gossh.MarshalPrivateKeyWithPassphrase(key, "test", []byte(passphrase))
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(block), nil
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		want    Config
		wantErr string
	}{
		{
			name: "every key",
			opts: map[string]any{
				"type": "ssh", "hosts": []any{"a", "bob@b:2200"}, "user": "ci", "port": 2222,
				"identity_file": []any{"~/.ssh/k1", "k2"}, "known_hosts": "kh", "host_key_policy": "accept-new",
				"remote_dir": "/srv/rp", "concurrency_per_host": 8, "identity": "gcc-12",
			},
			want: Config{
				Hosts: []string{"a", "bob@b:2200"}, User: "ci", Port: 2222, IdentityFiles: []string{"~/.ssh/k1", "k2"},
				KnownHosts: "kh", HostKeyPolicy: PolicyAcceptNew, RemoteDir: "/srv/rp", ConcurrencyPerHost: 8, Identity: "gcc-12",
			},
		},
		{name: "one identity file", opts: map[string]any{"hosts": []string{"a"}, "identity_file": "k"},
			want: Config{Hosts: []string{"a"}, IdentityFiles: []string{"k"}}},
		{name: "integral float port", opts: map[string]any{"hosts": []any{"a"}, "port": float64(22)},
			want: Config{Hosts: []string{"a"}, Port: 22}},
		{name: "int64 port", opts: map[string]any{"port": int64(2022)}, want: Config{Port: 2022}},
		{name: "port not an integer", opts: map[string]any{"port": "22"}, wantErr: `key "port": expected an integer, got string "22"`},
		{name: "fractional port", opts: map[string]any{"port": 22.5}, wantErr: `key "port": expected an integer`},
		{name: "port out of range", opts: map[string]any{"port": 70000}, wantErr: `key "port": port 70000 is out of range`},
		{name: "hosts not a list", opts: map[string]any{"hosts": "a"}, wantErr: `key "hosts": expected a list of strings`},
		{name: "empty hosts", opts: map[string]any{"hosts": []any{}}, wantErr: `key "hosts": expected at least one host`},
		{name: "host not a string", opts: map[string]any{"hosts": []any{"a", 3}}, wantErr: `key "hosts": item 2: expected a string, got integer 3`},
		{name: "bad host port", opts: map[string]any{"hosts": []any{"a:0"}}, wantErr: `key "hosts": host "a:0": bad port`},
		{name: "unknown policy", opts: map[string]any{"host_key_policy": "yes"}, wantErr: `key "host_key_policy": unknown policy "yes"`},
		{name: "zero concurrency", opts: map[string]any{"concurrency_per_host": 0}, wantErr: `key "concurrency_per_host": expected at least 1`},
		{name: "other type", opts: map[string]any{"type": "docker"}, wantErr: `key "type": expected "ssh"`},
		{name: "unknown key", opts: map[string]any{"hostz": []any{"a"}}, wantErr: `key "hostz": unknown key`},
		{name: "identity not a string", opts: map[string]any{"identity": []any{"x"}}, wantErr: `key "identity": expected a string, got a list`},
		{name: "identity files of the wrong type", opts: map[string]any{"identity_file": map[string]any{}}, wantErr: `key "identity_file": expected a string or a list of strings, got a mapping`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseHostEntry(t *testing.T) {
	tests := []struct {
		in      string
		want    hostEntry
		wantErr string
	}{
		{"build1", hostEntry{host: "build1"}, ""},
		{"alice@build1", hostEntry{user: "alice", host: "build1"}, ""},
		{"build1:2222", hostEntry{host: "build1", port: 2222}, ""},
		{"alice@10.0.0.5:2222", hostEntry{user: "alice", host: "10.0.0.5", port: 2222}, ""},
		{"a@b@host", hostEntry{user: "a@b", host: "host"}, ""},
		{"::1", hostEntry{host: "::1"}, ""},
		{"[::1]", hostEntry{host: "::1"}, ""},
		{"root@[fe80::1]:22", hostEntry{user: "root", host: "fe80::1", port: 22}, ""},
		{"@host", hostEntry{}, "empty user"},
		{"host:", hostEntry{}, "bad port"},
		{"host:abc", hostEntry{}, "bad port"},
		{"[::1", hostEntry{}, "missing ]"},
		{"[::1]x", hostEntry{}, "unexpected"},
		{"user@", hostEntry{}, "empty host name"},
		{"a b", hostEntry{}, "invalid host name"},
	}
	for _, tc := range tests {
		got, err := parseHostEntry(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseHostEntry(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseHostEntry(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	sc, err := ssh_config.Decode(strings.NewReader(`
Host build
  HostName %h.example.com
  User builder
  Port 2200
  IdentityFile ~/.ssh/build_key
  IdentityFile %d/keys/%r

Host *
  User everyone
`))
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.FromSlash("/home/me")
	tests := []struct {
		entry string
		cfg   Config
		want  target
	}{
		{"build", Config{}, target{name: "build", addr: "build.example.com:2200", user: "builder",
			keyFiles: []string{filepath.Join(home, ".ssh", "build_key"), home + "/keys/builder"}}},
		// The entry beats the backend keys, which beat ~/.ssh/config.
		{"root@build:22", Config{User: "ci", Port: 2022}, target{name: "root@build:22", addr: "build.example.com:22", user: "root",
			keyFiles: []string{filepath.Join(home, ".ssh", "build_key"), home + "/keys/root"}}},
		{"build", Config{User: "ci", Port: 2022}, target{name: "build", addr: "build.example.com:2022", user: "ci",
			keyFiles: []string{filepath.Join(home, ".ssh", "build_key"), home + "/keys/ci"}}},
		{"other", Config{}, target{name: "other", addr: "other:22", user: "everyone"}},
		{"fe80::1", Config{Port: 2222}, target{name: "fe80::1", addr: "[fe80::1]:2222", user: "everyone"}},
	}
	for _, tc := range tests {
		got, err := resolve(tc.entry, &tc.cfg, sc, home, "me")
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("resolve(%q, %+v) = %+v, %v; want %+v", tc.entry, tc.cfg, got, err, tc.want)
		}
	}
	got, err := resolve("plain", &Config{}, nil, home, "me")
	if want := (target{name: "plain", addr: "plain:22", user: "me"}); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("without ~/.ssh/config: %+v, %v; want %+v", got, err, want)
	}
}

func TestRemoteDirArg(t *testing.T) {
	for in, want := range map[string]string{
		"": DefaultRemoteDir, "~": ".", "~/": ".", "~/work/rp": "work/rp", "/srv/rp": "/srv/rp", "rel/dir": "rel/dir",
	} {
		if got := remoteDirArg(in); got != want {
			t.Errorf("remoteDirArg(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewChecksConfig(t *testing.T) {
	dir := t.TempDir()
	key, err := sshdtest.WriteKey(dir, "k", sshdtest.NewEd25519())
	if err != nil {
		t.Fatal(err)
	}
	encrypted := filepath.Join(dir, "enc")
	writeFile(t, encrypted, "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n", 0o600)
	base := Config{Hosts: []string{"a"}, User: "u", IdentityFiles: []string{key}, KnownHosts: filepath.Join(dir, "kh")}
	tests := []struct {
		name    string
		mod     func(c *Config)
		wantErr string
	}{
		{"valid", func(c *Config) {}, ""},
		{"no hosts", func(c *Config) { c.Hosts = nil }, `key "hosts"`},
		{"bad host", func(c *Config) { c.Hosts = []string{"a:x"} }, `bad port`},
		{"duplicate host", func(c *Config) { c.Hosts = []string{"a", "u@a:22"} }, "listed twice"},
		{"bad policy", func(c *Config) { c.HostKeyPolicy = "no" }, `key "host_key_policy"`},
		{"missing key file", func(c *Config) { c.IdentityFiles = []string{filepath.Join(dir, "nope")} }, "identity file"},
		{"unreadable key", func(c *Config) { c.IdentityFiles = []string{encrypted} }, "identity file"},
		{"no key and no agent", func(c *Config) { c.IdentityFiles = nil }, "no key to authenticate with"},
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv("HOME", dir) // no ~/.ssh/id_* there
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			b, err := New(c, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				b.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestPassphraseKeyNeedsAgent(t *testing.T) {
	dir := t.TempDir()
	block, err := gosshMarshalEncrypted(sshdtest.NewEd25519(), "secret")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "enc")
	if err := os.WriteFile(p, block, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := loadKeyFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !k.encrypted || k.signer != nil || k.public == nil {
		t.Fatalf("loadKeyFile = %+v; want an encrypted key with only its public half", k)
	}
	a := &authAttempt{files: []*keyFile{k}}
	msg := a.refused(target{name: "h", addr: "h:22", user: "u"}).Error()
	for _, want := range []string{"needs a passphrase", "ssh-agent", "no key to offer"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
}
