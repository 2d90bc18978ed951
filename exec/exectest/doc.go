// Package exectest is the conformance suite that every exec.Backend runs:
// the local backend from its tests, the SSH, Docker and Kubernetes backends
// from theirs, against real services.
//
// A backend's test calls Run with a constructor and the Options that say
// which shell to use, what base environment the shell needs and how to check
// that a process is gone. The suite checks the contract written on
// exec.Backend:
//
//   - exit codes are Results, not errors (0, 1 and 3);
//   - stdout and stderr reach their own writers, and one writer given for
//     both is never written to concurrently;
//   - the environment is exactly Spec.Env: a variable set in the test
//     process is absent from the task;
//   - Spec.Dir is the working directory, Spec.Inputs are present and
//     Spec.Outputs are in the workspace after Run;
//   - a ctx done before Run starts nothing and returns its cause;
//   - a deadline stops the task with SIGTERM ("terminated"), a task that
//     ignores SIGTERM is killed after Spec.Grace ("killed"), and closing
//     Spec.Kill ends the grace period at once; in each case Run's error wraps
//     context.Cause(ctx) and, where Options.PIDCheck is set, every process
//     the task printed is gone when Run returns;
//   - eight concurrent Runs on one backend do not mix their streams,
//     environments, outputs or exit codes.
//
// The scripts are POSIX sh using only echo, printf, cat, sleep, mkdir, test,
// trap and wait, so that the same suite runs in a busybox container and over
// SSH. Scripts that are stopped print their pids on their first line after
// their setup is done, and the suite stops them only once that line has
// arrived, so no test depends on timing; a backend that ignores Spec.Kill
// fails by making its test time out.
package exectest
