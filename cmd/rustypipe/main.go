// Command rustypipe runs YAML pipelines of shell tasks with a
// content-addressed cache. See the README for the file format and the CLI.
package main

import (
	"os"
	"runtime/debug"

	"github.com/rustypipe/rustypipe/cmd"
)

func main() {
	// A build is a short-lived process whose heap is mostly the pipeline and
	// the task records: collecting it at the default 100% growth costs a
	// tenth of a cached build's time (profiled on 1,000 tasks) and saves
	// little memory. GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	os.Exit(cmd.Main(os.Args[1:]))
}
