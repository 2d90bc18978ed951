package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rustypipe/rustypipe/exec/external"
	"github.com/rustypipe/rustypipe/remote/docker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := external.Serve(ctx, os.Stdin, os.Stdout, docker.HelperBackend); err != nil {
		fmt.Fprintln(os.Stderr, "rustypipe-docker:", err)
		os.Exit(1)
	}
}
