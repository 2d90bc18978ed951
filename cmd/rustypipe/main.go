// Command rustypipe runs YAML pipelines of shell tasks with a
// content-addressed cache. See the README for the file format and the CLI.
package main

import (
	"os"

	"github.com/rustypipe/rustypipe/cmd"
)

func main() { os.Exit(cmd.Main(os.Args[1:])) }
