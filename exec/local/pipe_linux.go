package local

import (
	"os"
	"syscall"
)

// outputPipe makes the pipe for a task's output stream: a read end for this
// process, non-blocking and registered with Go's poller, so that closing it
// ends a read; and a write end for the task, blocking and never
// registered. os.Pipe makes both ends non-blocking and registers both, and
// os/exec turns the task's end back to blocking: four system calls per
// pipe, eight per task, that the task's end never needed.
func outputPipe() (r, w *os.File, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	if err := syscall.SetNonblock(p[0], true); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
}
