package local

import (
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

func TestShellCommand(t *testing.T) {
	def := "sh"
	if runtime.GOOS == "windows" {
		def = "powershell"
	}
	psArgs := []string{"-NoProfile", "-NonInteractive", "-Command", "echo hi"}
	tests := []struct {
		shell    string
		wantName string
		wantArgs []string
		wantErr  bool
	}{
		{"sh", "sh", []string{"-c", "echo hi"}, false},
		{"bash", "bash", []string{"-c", "echo hi"}, false},
		{"pwsh", "pwsh", psArgs, false},
		{"powershell", "powershell", psArgs, false},
		{"cmd", "cmd", []string{"/d", "/s", "/c", "echo hi"}, false},
		{"zsh", "", nil, true},
		{"SH", "", nil, true},
	}
	for _, tc := range tests {
		name, args, err := shellCommand(tc.shell, "echo hi")
		if (err != nil) != tc.wantErr || name != tc.wantName || !slices.Equal(args, tc.wantArgs) {
			t.Errorf("shellCommand(%q) = %q, %q, %v; want %q, %q, error %v",
				tc.shell, name, args, err, tc.wantName, tc.wantArgs, tc.wantErr)
		}
	}
	name, _, err := shellCommand("", "echo hi")
	if err != nil || name != def {
		t.Errorf("shellCommand(\"\") = %q, %v; want the default %q", name, err, def)
	}
}

func TestWorkDir(t *testing.T) {
	ws := t.TempDir()
	tests := []struct {
		dir     string
		want    string
		wantErr bool
	}{
		{"", ws, false},
		{".", ws, false},
		{"a", filepath.Join(ws, "a"), false},
		{"a/b/c", filepath.Join(ws, "a", "b", "c"), false},
		{"a/../b", filepath.Join(ws, "b"), false},
		{"..", "", true},
		{"a/../../b", "", true},
		{"/etc", "", true},
	}
	for _, tc := range tests {
		got, err := workDir(ws, tc.dir)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("workDir(ws, %q) = %q, %v; want %q, error %v", tc.dir, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := workDir("relative", ""); err == nil {
		t.Error("workDir with a relative workspace: no error")
	}
}
