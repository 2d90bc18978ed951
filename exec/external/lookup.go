package external

import (
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
)

// lookPath finds the helper executable. A name with a path separator is
// used as it is. A bare name is looked for first beside the running
// executable (also beside the target of its symlink), where a helper
// installed together with rustypipe lives and speaks its protocol version,
// and then in PATH.
func lookPath(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty command")
	}
	if strings.ContainsAny(name, `/\`) {
		return osexec.LookPath(name)
	}
	for _, dir := range executableDirs() {
		// LookPath with a separator checks just that file and, on
		// Windows, tries the PATHEXT extensions.
		if p, err := osexec.LookPath(filepath.Join(dir, name)); err == nil {
			return p, nil
		}
	}
	p, err := osexec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found beside this executable nor in PATH: %w", name, err)
	}
	return p, nil
}

// executableDirs returns the directory of the running executable and, if
// that is a symlink, the directory of its target.
func executableDirs() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	dirs := []string{filepath.Dir(exe)}
	if real, err := filepath.EvalSymlinks(exe); err == nil && filepath.Dir(real) != dirs[0] {
		dirs = append(dirs, filepath.Dir(real))
	}
	return dirs
}
