package exec

import (
	"slices"
	"testing"
)

func TestShellArgv(t *testing.T) {
	for _, tc := range []struct {
		shell string
		want  []string
	}{
		{"sh", []string{"sh", "-c", "x"}},
		{"bash", []string{"bash", "-c", "x"}},
		{"pwsh", []string{"pwsh", "-NoProfile", "-NonInteractive", "-Command", "x"}},
		{"powershell", []string{"powershell", "-NoProfile", "-NonInteractive", "-Command", "x"}},
		{"cmd", []string{"cmd", "/d", "/s", "/c", "x"}},
		{"", nil},
		{"zsh", nil},
	} {
		got, ok := ShellArgv(tc.shell, "x")
		if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("ShellArgv(%q) = %q, %v; want %q", tc.shell, got, ok, tc.want)
		}
	}
}

func TestHostOnlyEnv(t *testing.T) {
	for _, name := range []string{"PATH", "HOME", "USER", "SHELL", "TMPDIR", "PWD"} {
		if !HostOnlyEnv(name) {
			t.Errorf("HostOnlyEnv(%q) = false", name)
		}
	}
	for _, name := range []string{"CC", "path", "LANG", ""} {
		if HostOnlyEnv(name) {
			t.Errorf("HostOnlyEnv(%q) = true", name)
		}
	}
}
