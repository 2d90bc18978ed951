package main

import (
	"github.com/rustypipe/rustypipe/exec/external"
	"github.com/rustypipe/rustypipe/remote/docker"
)

func main() { external.Main("rustypipe-docker", docker.HelperBackend) }
