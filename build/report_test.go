package build

import (
	"bytes"
	"testing"
	"time"
)

// The plain console's task lines, as scripts and CI logs read them.
func TestConsoleTaskLines(t *testing.T) {
	var out bytes.Buffer
	c := NewConsole(ConsoleOptions{Out: &out})
	for _, r := range []*TaskRecord{
		{Name: "built", Status: StatusSucceeded, DurationMS: 1234},
		{Name: "quick", Status: StatusSucceeded, DurationMS: 0},
		{Name: "hit", Status: StatusCached},
		{Name: "same", Status: StatusUpToDate},
		{Name: "broke", Status: StatusFailed, Reason: "exit code 2", DurationMS: 5},
	} {
		c.TaskStarted(r, 1)
		c.TaskFinished(r)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c.RunFinished(&Summary{RunID: "r1", Status: "failed", Started: start, Finished: start.Add(1500 * time.Millisecond),
		Counts: map[Status]int{StatusFailed: 1}})
	want := "--> built\nok   built (1.234s)\n" +
		"--> quick\nok   quick (0s)\n" +
		"--> hit\nok   hit (cached)\n" +
		"--> same\nok   same (up to date)\n" +
		"--> broke\nFAIL broke: exit code 2 (5ms)\n"
	if got := out.String(); !bytes.HasPrefix([]byte(got), []byte(want)) {
		t.Errorf("console printed\n%s\nwant it to begin with\n%s", got, want)
	}
}
