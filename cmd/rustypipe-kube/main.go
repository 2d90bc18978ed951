package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/external"
	"github.com/rustypipe/rustypipe/remote/kube"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := external.Serve(ctx, os.Stdin, os.Stdout, newBackend); err != nil {
		fmt.Fprintln(os.Stderr, "rustypipe-kube:", err)
		os.Exit(1)
	}
}

// newBackend builds the backend from the hello's config; the pods' owner
// is the parent process, rustypipe, unless the config names one.
func newBackend(config map[string]any) (exec.Backend, error) {
	cfg, err := kube.ParseConfig(config)
	if err != nil {
		return nil, err
	}
	if cfg.Owner == "" {
		if host, err := os.Hostname(); err == nil {
			cfg.Owner = kube.Owner(host, os.Getppid())
		}
	}
	return kube.New(cfg, func(msg string) { fmt.Fprintln(os.Stderr, msg) })
}
