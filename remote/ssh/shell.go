package ssh

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rustypipe/rustypipe/exec"
)

// The remote side is driven by POSIX sh scripts built here. The login shell
// of the remote user only runs `exec /bin/sh -c ...` (shCommand), so it
// must accept that much sh syntax (sh, bash, dash, ksh, zsh); everything
// else runs under /bin/sh.

// keptRemoteVars are taken from the remote host, never from Spec.Env: the
// local machine's values make no sense there.
var keptRemoteVars = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR"}

// quote returns s as one POSIX shell word.
func quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:@,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// taskEnv returns the variables of env to pass to the remote task: every
// well-formed KEY=VALUE but those in keptRemoteVars, the last of
// duplicates winning as with os/exec.
func taskEnv(env []string) []string {
	seen := map[string]int{}
	var out []string
	for _, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.HasPrefix(name, "-") || strings.ContainsRune(name, 0) {
			continue
		}
		kept := false
		for _, k := range keptRemoteVars {
			if name == k {
				kept = true
			}
		}
		if kept {
			continue
		}
		if i, ok := seen[name]; ok {
			out[i] = kv
			continue
		}
		seen[name] = len(out)
		out = append(out, kv)
	}
	return out
}

// shellArgv returns the program and arguments that run script with shell
// on a POSIX host, "" meaning sh.
func shellArgv(shell, script string) ([]string, error) {
	switch shell {
	case "":
		shell = "sh"
	case "powershell", "cmd":
		return nil, fmt.Errorf("shell %q is not available on SSH hosts, which run POSIX sh (use sh, bash or pwsh)", shell)
	}
	argv, ok := exec.ShellArgv(shell, script)
	if !ok {
		return nil, fmt.Errorf("unknown shell %q (want sh, bash or pwsh)", shell)
	}
	return argv, nil
}

// taskFile is ctl/task.sh, uploaded with the inputs and sourced by the
// run script: the working directory, the program and, as the positional
// parameters, the environment and the command line for env -i. Keeping
// them in a file rather than on the command line means no size limit but
// the one of the task's own command.
func taskFile(dir string, env, argv []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dir=%s\nprog=%s\nset --", quote(dir), quote(argv[0]))
	for _, a := range env {
		b.WriteString(" \\\n  " + quote(a))
	}
	for _, a := range argv {
		b.WriteString(" \\\n  " + quote(a))
	}
	b.WriteByte('\n')
	return b.String()
}

// leadScript makes sure the run script leads its own process group, so
// that signalling the group reaches every process of the task. OpenSSH's
// sshd already starts each session in a new session (setsid), so this
// costs one read of /proc (or one ps) and nothing else; on a server that
// does not, the script is restarted under setsid(1), which keeps the pid
// because the caller is then not a group leader. The script to run is $1.
const leadScript = `w=$1
set -f
p=
if [ -r /proc/$$/stat ]; then
	read -r s </proc/$$/stat
	s=${s##*) }
	set -- $s
	p=${3-}
else
	set -- $(ps -o pgid= -p $$ 2>/dev/null)
	p=${1-}
fi
if [ -n "$p" ] && [ "$p" != "$$" ]; then
	exec setsid /bin/sh -c "$w"
fi
eval "$w"`

// runCommand is the command of a task's session. It prints
// "\n<token>-pgid <pgid>" on stderr first, then makes <base>/<run> (mode
// 0700) and extracts the tar stream on stdin there: ctl/task.sh and the
// inputs under ws/. It then marks the run started (ctl/started), prints
// "\n<token>-start" on both streams and replaces itself with the task under
// env -i, keeping the pid, so that the task's shell leads the process group
// and its exit status or signal is the session's. Anything on the streams
// before the start markers comes from the login shell or the set-up and is
// not the task's output.
func runCommand(base, run, token string) string {
	inner := fmt.Sprintf(`set -f
T=%s
printf '\n%%s-pgid %%s\n' "$T" "$$" >&2
mkdir -p -- %s && cd -- %s && mkdir -m 700 -- %s && cd -- %s && tar -xof - || exit 1
. ./ctl/task.sh || exit 1
command -v "$prog" >/dev/null 2>&1 || { printf 'rustypipe: %%s is not installed on this host (PATH=%%s)\n' "$prog" "$PATH" >&2; exit 127; }
: >ctl/started || exit 1
cd -- "ws/$dir" || exit 1
printf '\n%%s-start\n' "$T"
printf '\n%%s-start\n' "$T" >&2
exec env -i %s "$@"`, token, quote(base), quote(base), quote(run), quote(run), keptVarArgs())
	return shCommand(leadScript) + " rustypipe " + quote(inner)
}

// shCommand runs script under /bin/sh, whatever the login shell is.
func shCommand(script string) string {
	return "exec /bin/sh -c " + quote(script)
}

// keptVarArgs expands to NAME=value for each kept variable that is set on
// the host, and to nothing for one that is not.
func keptVarArgs() string {
	var parts []string
	for _, k := range keptRemoteVars {
		parts = append(parts, fmt.Sprintf(`${%s+"%s=$%s"}`, k, k, k))
	}
	return strings.Join(parts, " ")
}

// signalCommand sends sig to every process of group pgid, and SIGCONT
// after SIGTERM so that stopped members can act on it.
func signalCommand(pgid int, sig string) string {
	g := "-" + strconv.Itoa(pgid)
	cmd := fmt.Sprintf("kill -s %s -- %s 2>/dev/null", sig, g)
	if sig == "TERM" {
		cmd += fmt.Sprintf("; kill -s CONT -- %s 2>/dev/null", g)
	}
	return cmd
}

// finishCommand is the command of a task's last session. It kills what is
// left of group pgid (0: unknown), then, when prefixes is not nil, lists
// the files and symlinks under them (NUL-separated, "./"-prefixed,
// followed by "<token>-end" and a NUL) if the task started, reads back on
// stdin the NUL-separated paths to bring back and writes them as a tar
// stream on stdout; last it removes the run directory.
func finishCommand(base, run, token string, pgid int, prefixes []string) string {
	var b strings.Builder
	b.WriteString("set -f\n")
	if pgid > 0 {
		fmt.Fprintf(&b, "kill -s KILL -- -%d 2>/dev/null\n", pgid)
	}
	done := fmt.Sprintf(`printf '\n%%s %%s\n' %s "$?"`, quote(token+"-done"))
	fmt.Fprintf(&b, "cd -- %s 2>/dev/null && cd -- %s 2>/dev/null || { printf '%%s\\0' %s; %s; exit 0; }\n",
		quote(base), quote(run), quote(token+"-end"), done)
	if prefixes != nil {
		var ps []string
		for _, p := range prefixes {
			if p != "." {
				p = "./" + p
			}
			ps = append(ps, quote(p))
		}
		fmt.Fprintf(&b, `if [ -e ctl/started ] && cd ws 2>/dev/null; then
	find %s \( -type f -o -type l \) -print0 2>/dev/null
	printf '%%s\0' %s
	tar -cf - --null --no-recursion -T -
	cd ..
else
	printf '%%s\0' %s
fi
`, strings.Join(ps, " "), quote(token+"-end"), quote(token+"-end"))
	}
	fmt.Fprintf(&b, "cd .. && rm -rf -- %s\n%s\n", quote(run), done)
	return b.String()
}

// cleanupCommand removes a run directory and kills group pgid (0:
// unknown), for when the finish session failed.
func cleanupCommand(base, run string, pgid int) string {
	s := ""
	if pgid > 0 {
		s = fmt.Sprintf("kill -s KILL -- -%d 2>/dev/null; ", pgid)
	}
	return s + fmt.Sprintf("cd -- %s 2>/dev/null && rm -rf -- %s", quote(base), quote(run))
}

// outputPrefixes returns, for each output glob, the longest leading part
// without glob characters: the directories (or files) the finish command
// lists. A glob that starts with a pattern gives ".".
func outputPrefixes(globs []string) []string {
	var out []string
	for _, g := range globs {
		parts := strings.Split(g, "/")
		n := 0
		for n < len(parts) && !strings.ContainsAny(parts[n], `*?[]{}\`) {
			n++
		}
		p := strings.Join(parts[:n], "/")
		if p == "" {
			p = "."
		}
		out = append(out, p)
	}
	// Drop prefixes inside others, so that no file is listed twice.
	slices.Sort(out)
	out = slices.Compact(out)
	var kept []string
	for _, p := range out {
		covered := false
		for _, q := range out {
			if q != p && (q == "." || strings.HasPrefix(p, q+"/")) {
				covered = true
				break
			}
		}
		if !covered {
			kept = append(kept, p)
		}
	}
	return kept
}
