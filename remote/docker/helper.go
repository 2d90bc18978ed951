package docker

import (
	"fmt"
	"os"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/backendkit"
)

// HelperBackend builds the backend that the rustypipe-docker helper serves
// over the external-backend protocol (package exec/external) from the
// handshake's config: the backend's options, decoded by ParseConfig. A bad
// config is refused with an error that names the key.
//
// The containers' owner (LabelOwner) is the helper's parent process, the
// rustypipe that started it, as it is when the backend runs inside
// rustypipe: a later run removes them once that rustypipe is gone, and no
// run removes them while it lives. They also carry LabelHelper, naming the
// helper itself, so that the containers of a helper that died while its
// rustypipe lives (which then starts another helper) are removed too.
// Messages go to stderr, which rustypipe shows.
func HelperBackend(config map[string]any) (exec.Backend, error) {
	cfg, err := ParseConfig(config)
	if err != nil {
		return nil, err
	}
	b, err := New(cfg, func(msg string) { fmt.Fprintln(os.Stderr, msg) })
	if err != nil {
		return nil, err
	}
	b.owner = backendkit.Owner(b.hostname, os.Getppid())
	b.helper = backendkit.Owner(b.hostname, os.Getpid())
	return b, nil
}
