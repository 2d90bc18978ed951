package docker

import (
	"maps"
	"slices"
	"strings"

	"github.com/rustypipe/rustypipe/exec"
)

// containerEnv returns the environment for the container: the task's
// environment without the host-only variables and without entries that are
// not KEY=VALUE (of a name given twice, the last value in the first
// place), then the backend's env on top (sorted by name, replacing a
// task variable of the same name). Docker adds the image's variables under
// these, so the image's PATH and HOME apply.
func containerEnv(taskEnv []string, backendEnv map[string]string) []string {
	env := make([]string, 0, len(taskEnv)+len(backendEnv))
	at := make(map[string]int, len(taskEnv)) // index in env of each name
	for _, kv := range taskEnv {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || exec.HostOnlyEnv(k) {
			continue
		}
		if _, over := backendEnv[k]; over {
			continue
		}
		if i, dup := at[k]; dup {
			env[i] = kv // the last value wins, as in os/exec
			continue
		}
		at[k] = len(env)
		env = append(env, kv)
	}
	for _, k := range slices.Sorted(maps.Keys(backendEnv)) {
		env = append(env, k+"="+backendEnv[k])
	}
	return env
}
