package external

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rustypipe/rustypipe/exec"
)

// Main is the whole main function of a helper executable written in Go:
// it serves the protocol on stdin and stdout (Serve) until the client shuts
// it down or SIGINT or SIGTERM arrives, and on an error prints it after
// name and exits with status 1.
func Main(name string, newBackend func(config map[string]any) (exec.Backend, error)) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Serve(ctx, os.Stdin, os.Stdout, newBackend)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
