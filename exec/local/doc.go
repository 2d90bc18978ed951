// Package local is the exec.Backend that runs tasks on this machine, as
// child processes of rustypipe.
//
// A task runs as "<shell> -c <script>" (sh and bash), "<shell> -NoProfile
// -NonInteractive -Command <script>" (pwsh and powershell) or "cmd /d /s /c
// <script>". The default shell is sh, or powershell on Windows. The working
// directory is filepath.Join(Workspace, Dir); a Dir that leaves the
// workspace, a relative Workspace, a missing working directory, an unknown
// shell or one not found in this process's PATH fail with an error wrapping
// exec.ErrStart and a nil Result. The environment is exactly Spec.Env;
// nothing of rustypipe's own is inherited (os/exec adds SYSTEMROOT on
// Windows when it is missing). Standard input is the null device.
//
// Output: stdout and stderr go through pipes to Spec.Stdout and
// Spec.Stderr as the task writes them, 32 KiB at a time, so memory does not
// grow with the output. When both are the same writer they share one pipe
// and the writer is never called concurrently. Nothing is written to them
// after Run returns. If a writer fails, the task gets EPIPE on its next
// write and Run returns the Result with the write error.
//
// Process groups: each task's shell leads a process group of its own (a job
// object on Windows, killed when its last handle closes, so tasks die with
// rustypipe). When ctx is done, Run sends SIGTERM (and SIGCONT) to the whole
// group, or CTRL_BREAK on Windows, then waits until the shell and every other
// member have exited, at most Spec.Grace or until Spec.Kill is closed, and
// then sends SIGKILL to the group. It returns the Result (ExitCode -1 and the
// signal, e.g. "terminated" or "killed", when the shell died of one; a shell
// that exited on its own during the grace keeps its exit code) and an error
// wrapping context.Cause(ctx).
//
// No orphans: when the shell exits, even successfully, whatever is left in
// its group (background jobs the script started and did not wait for) is
// killed with SIGKILL, and Run waits for those processes to die before it
// returns, as a user of make or go-task expects: a finished task leaves
// nothing running. A task that needs a lasting daemon must start it outside
// rustypipe. On Linux the shell is not reaped until its group has been
// signalled, so the group id cannot be reused by another process meanwhile.
//
// Limits: a process that leaves the group (setsid, a double-forking daemon)
// is beyond reach on Unix. If it keeps stdout or stderr open, Run stops
// reading them one second after the group is gone and returns; the process
// keeps running. On Windows, CTRL_BREAK only reaches console programs that
// share rustypipe's console.
//
// Spec.Inputs and Spec.Outputs are not used: the task runs in the workspace
// itself. Backend holds no resources; Close only makes later Runs fail.
package local
