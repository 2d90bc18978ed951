package main

import (
	"github.com/rustypipe/rustypipe/exec/external"
	"github.com/rustypipe/rustypipe/remote/kube"
)

func main() { external.Main("rustypipe-kube", kube.HelperBackend) }
