package kube

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// logsOf is a logReader over fixed logs, as a server returns them: split
// is false for a server without PodLogsQuerySplitStreams, which returns
// both streams interleaved whatever stream is asked for.
func logsOf(stdout, stderr, all string, split bool) logReader {
	return func(_ context.Context, stream *string, w io.Writer) error {
		switch {
		case stream == nil || !split:
			io.WriteString(w, all)
		case *stream == "Stdout":
			io.WriteString(w, stdout)
		case *stream == "Stderr":
			io.WriteString(w, stderr)
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
			tails, err := recoverOutput(context.Background(), "p", tc.got, tc.read)
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
	_, err := recoverOutput(context.Background(), "p", arrived("a\n", ""), read)
	var loss *outputLoss
	if !errors.Is(err, boom) || errors.As(err, &loss) {
		t.Fatalf("error = %v, want the read's, not a loss", err)
	}
}
