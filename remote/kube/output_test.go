package kube

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// testProbe is the gate's probe line in these tests; the container echoed
// it twice on each stream.
const testProbe = "rustypipe-attached-0123456789abcdef\n"

// logsOf is a logReader over the logs of a task that printed stdout and
// stderr (all: both, interleaved) after the container echoed testProbe
// twice on each stream, as a server returns them: split is false for a
// server without PodLogsQuerySplitStreams, which returns both streams
// interleaved whatever stream is asked for. In the interleaved log, the
// last probe on stderr comes after the task's output began, as it can
// when the runtime reads stdout first.
func logsOf(stdout, stderr, all string, split bool) logReader {
	p := testProbe
	first, rest, _ := strings.Cut(all, "\n")
	merged := p + p + p + first + "\n" + p + rest
	if !strings.Contains(all, "\n") {
		merged = p + p + p + all + p
	}
	return func(_ context.Context, stream *string, w io.Writer) error {
		switch {
		case stream == nil || !split:
			io.WriteString(w, merged)
		case *stream == "Stdout":
			io.WriteString(w, p+p+stdout)
		case *stream == "Stderr":
			io.WriteString(w, p+p+stderr)
		}
		return nil
	}
}

func arrived(stdout, stderr string) [2]tally {
	var got [2]tally
	got[0].add([]byte(stdout))
	got[1].add([]byte(stderr))
	return got
}

// TestRecoverOutput covers the decisions of the output check; the
// cluster test TestLostOutputIsRecovered runs it against real logs.
func TestRecoverOutput(t *testing.T) {
	const out, errOut, all = "one\nthree\n", "two\n", "one\ntwo\nthree\n"
	for _, tc := range []struct {
		name       string
		got        [2]tally
		read       logReader
		tails      [2]string
		lossReason string // the *outputLoss's why; "" for no loss error
	}{
		{name: "complete", got: arrived(out, errOut), read: logsOf(out, errOut, all, true)},
		{name: "complete without split streams", got: arrived(out, errOut), read: logsOf(out, errOut, all, false)},
		{name: "log rotated", got: arrived(out, errOut), read: logsOf("three\n", "", "three\n", true)},
		{name: "nothing printed", got: arrived("", ""), read: logsOf("", "", "", true)},
		{name: "stdout's tail lost", got: arrived("one\n", errOut), read: logsOf(out, errOut, all, true),
			tails: [2]string{"three\n", ""}},
		{name: "both tails lost", got: arrived("one\n", ""), read: logsOf(out, errOut, all, true),
			tails: [2]string{"three\n", "two\n"}},
		{name: "partial line lost", got: arrived("one\nth", errOut), read: logsOf(out, errOut, all, true),
			tails: [2]string{"ree\n", ""}},
		{name: "lost without split streams", got: arrived("one\n", errOut), read: logsOf(out, errOut, all, false),
			lossReason: "feature gate PodLogsQuerySplitStreams"},
		{name: "what arrived differs from the log", got: arrived("onE\n", errOut), read: logsOf(out, errOut, all, true),
			lossReason: "stdout does not start with what arrived"},
		{name: "more arrived than the stream's log", got: arrived(out, "two\nfour\n"), read: logsOf(out+"x\nyyyyyyyyy\n", errOut, all+"x\nyyyyyyyyy\n", true),
			lossReason: "stderr does not start with what arrived"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tails, err := recoverOutput(context.Background(), "p", tc.got, []byte(testProbe), 2, tc.read)
			var loss *outputLoss
			switch {
			case tc.lossReason == "" && err != nil:
				t.Fatalf("recoverOutput: %v", err)
			case tc.lossReason != "":
				if !errors.As(err, &loss) || !strings.Contains(loss.why, tc.lossReason) {
					t.Fatalf("recoverOutput error = %v, want a loss because %q", err, tc.lossReason)
				}
				if !strings.Contains(err.Error(), "pod p lost") {
					t.Errorf("error %q does not name the pod and the loss", err)
				}
			}
			if string(tails[0]) != tc.tails[0] || string(tails[1]) != tc.tails[1] {
				t.Errorf("tails = %q, %q; want %q, %q", tails[0], tails[1], tc.tails[0], tc.tails[1])
			}
		})
	}
}

func TestRecoverOutputReadError(t *testing.T) {
	boom := errors.New("forbidden")
	read := func(_ context.Context, stream *string, w io.Writer) error {
		if stream != nil {
			return boom
		}
		io.WriteString(w, "a\nb\n")
		return nil
	}
	_, err := recoverOutput(context.Background(), "p", arrived("a\n", ""), []byte(testProbe), 0, read)
	var loss *outputLoss
	if !errors.Is(err, boom) || errors.As(err, &loss) {
		t.Fatalf("error = %v, want the read's, not a loss", err)
	}
}
