package local

import (
	"fmt"
	"os"
	osexec "os/exec"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// defaultShell runs scripts when Spec.Shell is "".
const defaultShell = "powershell"

// jobExitCode is the exit code TerminateJobObject gives killed processes;
// it is STATUS_CONTROL_C_EXIT, what a console program stopped by Ctrl+C
// reports.
const jobExitCode = 0xC000013A

// procNtResumeProcess resumes every thread of a process started suspended:
// os/exec does not give us the handle of the main thread that ResumeThread
// would need.
var procNtResumeProcess = windows.NewLazySystemDLL("ntdll.dll").NewProc("NtResumeProcess")

// group is a started task's job object: every process the shell starts
// belongs to it, and closing its last handle kills them all, even when
// rustypipe itself dies.
type group struct {
	cmd   *osexec.Cmd
	pid   uint32
	job   windows.Handle
	w     waitOnce
	close sync.Once
}

// prepare starts the shell suspended, so that newGroup can put it in a job
// before it runs anything, and in a new console process group, so that
// terminate can send it CTRL_BREAK. cmd.exe parses its command line itself,
// so its line is written out rather than quoted by os/exec.
func prepare(cmd *osexec.Cmd, shell, script string) {
	attr := &syscall.SysProcAttr{
		CreationFlags: windows.CREATE_NEW_PROCESS_GROUP | windows.CREATE_SUSPENDED,
	}
	if shell == "cmd" {
		attr.CmdLine = `cmd /d /s /c "` + script + `"`
	}
	cmd.SysProcAttr = attr
}

// newGroup puts the suspended shell in a new job object and resumes it. On
// failure the shell is killed and reaped before it ran anything.
func newGroup(cmd *osexec.Cmd) (*group, error) {
	g := &group{cmd: cmd, pid: uint32(cmd.Process.Pid)}
	if err := g.attach(); err != nil {
		_ = cmd.Process.Kill()
		_, _ = g.w.wait(cmd)
		g.release()
		return nil, err
	}
	return g, nil
}

func (g *group) attach() error {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return fmt.Errorf("create job object: %w", err)
	}
	g.job = job
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: windows.JOBOBJECT_BASIC_LIMIT_INFORMATION{
			LimitFlags: windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
		},
	}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		return fmt.Errorf("set job object limits: %w", err)
	}
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE|windows.PROCESS_SUSPEND_RESUME, false, g.pid)
	if err != nil {
		return fmt.Errorf("open process %d: %w", g.pid, err)
	}
	defer windows.CloseHandle(h)
	if err := windows.AssignProcessToJobObject(job, h); err != nil {
		return fmt.Errorf("assign process %d to job object: %w", g.pid, err)
	}
	if status, _, _ := procNtResumeProcess.Call(uintptr(h)); status != 0 {
		return fmt.Errorf("resume process %d: NTSTATUS %#x", g.pid, status)
	}
	return nil
}

// waitExit blocks until the shell has exited, and reaps it; the job, not
// the pid, names the group, so nothing can be reused under us.
func (g *group) waitExit() { _, _ = g.w.wait(g.cmd) }

// terminate sends CTRL_BREAK to the shell's console process group: the
// nearest Windows has to SIGTERM. It only reaches console programs that
// share this process's console.
func (g *group) terminate() {
	_ = windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, g.pid)
}

// kill terminates every process in the job.
func (g *group) kill() { _ = windows.TerminateJobObject(g.job, jobExitCode) }

// jobAccounting is JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, which
// golang.org/x/sys/windows does not define.
type jobAccounting struct {
	TotalUserTime             int64
	TotalKernelTime           int64
	ThisPeriodTotalUserTime   int64
	ThisPeriodTotalKernelTime int64
	TotalPageFaultCount       uint32
	TotalProcesses            uint32
	ActiveProcesses           uint32
	TotalTerminatedProcesses  uint32
}

// alive reports whether the job still has a running process.
func (g *group) alive() bool {
	var info jobAccounting
	err := windows.QueryInformationJobObject(g.job, windows.JobObjectBasicAccountingInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info)), nil)
	return err == nil && info.ActiveProcesses > 0
}

// reap returns the shell's state.
func (g *group) reap() (*os.ProcessState, error) { return g.w.wait(g.cmd) }

// release closes the job, killing anything still in it.
func (g *group) release() {
	g.close.Do(func() {
		if g.job != 0 {
			_ = windows.CloseHandle(g.job)
		}
	})
}

// exitStatus maps the shell's state to Result.ExitCode and Result.Signal.
// Windows has no signals: a stopped task reports "killed" when its job was
// terminated and "terminated" when it exited during the grace period.
func exitStatus(st *os.ProcessState, stopped, killed bool) (int, string) {
	switch {
	case killed:
		return -1, "killed"
	case stopped:
		return -1, "terminated"
	}
	return st.ExitCode(), ""
}
