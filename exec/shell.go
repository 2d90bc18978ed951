package exec

// ShellArgv returns the command line that runs script with shell: "sh" and
// "bash" take it after -c, "pwsh" and "powershell" after -NoProfile
// -NonInteractive -Command, and "cmd" after /d /s /c (/d skips AutoRun
// commands from the registry, as -NoProfile does for PowerShell; /s keeps
// the script's quotes as written). ok is false for any other name, ""
// included: each backend resolves its default shell and says which shells
// it offers.
func ShellArgv(shell, script string) (argv []string, ok bool) {
	switch shell {
	case "sh", "bash":
		return []string{shell, "-c", script}, true
	case "pwsh", "powershell":
		return []string{shell, "-NoProfile", "-NonInteractive", "-Command", script}, true
	case "cmd":
		return []string{shell, "/d", "/s", "/c", script}, true
	}
	return nil, false
}

// HostOnlyEnv reports whether the environment variable name describes the
// host rather than the task (PATH, HOME, USER, SHELL, TMPDIR, PWD): a
// container keeps the image's values, or has none.
func HostOnlyEnv(name string) bool {
	switch name {
	case "PATH", "HOME", "USER", "SHELL", "TMPDIR", "PWD":
		return true
	}
	return false
}
