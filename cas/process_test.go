package cas

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Child processes: the test binary re-executes itself with CAS_TEST_CHILD
// set to run one of these instead of the tests.
const childEnv = "CAS_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "writer":
		os.Exit(childWriter())
	case "holder":
		os.Exit(childHolder())
	default:
		fmt.Fprintln(os.Stderr, "unknown child", os.Getenv(childEnv))
		os.Exit(2)
	}
}

func startChild(t *testing.T, mode string, args ...string) (*osexec.Cmd, *bufio.Reader, io.WriteCloser) {
	t.Helper()
	cmd := osexec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "CAS_TEST_ARGS="+strings.Join(args, "\n"))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewReader(out), in
}

func childArgs() []string { return strings.Split(os.Getenv("CAS_TEST_ARGS"), "\n") }

// childHolder opens the store in args[0], prints "ready" and holds it
// until stdin closes.
func childHolder() int {
	s, err := Open(context.Background(), Options{Dir: childArgs()[0]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	s.Close()
	return 0
}

// writerBlobs is what the writer child stores for action i of generation g:
// an inline stdout and a file-sized output.
func writerBlobs(g, i int) (stdout, file []byte) {
	seed := uint64(g)<<32 | uint64(i)
	return []byte(fmt.Sprintf("gen %d action %d\n", g, i)), content(seed, 40<<10+i*97)
}

func writerKey(g, i int) [32]byte { return key(fmt.Sprintf("gen%d/%d", g, i)) }

// childWriter opens the store in args[0] and, for generation args[1],
// stores actions in a loop, printing "acked <key>" after each PutAction
// returns, until it is killed.
func childWriter() int {
	args := childArgs()
	g, _ := strconv.Atoi(args[1])
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: args[0]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		stdout, file := writerBlobs(g, i)
		so, err := s.PutReader(ctx, bytes.NewReader(stdout))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := s.PutBlob(ctx, sum(file), int64(len(file)), bytes.NewReader(file)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		k := writerKey(g, i)
		err = s.PutAction(ctx, &ActionResult{
			Key: k, Task: "t", Stdout: so, Stderr: EmptyBlob,
			Files: []OutputFile{{Path: "out", Mode: 0o644, Digest: sum(file), Size: int64(len(file))}},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("acked %d %x\n", i, k)
	}
}

// TestKillSafety kills a writing child process at random points and checks
// that every action it acknowledged survives intact, with every blob
// verifying, and that the store opens without any cleanup.
func TestKillSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	type acked struct{ g, i int }
	var all []acked
	for g := range 10 {
		cmd, out, _ := startChild(t, "writer", dir, strconv.Itoa(g))
		line, err := out.ReadString('\n')
		if err != nil || line != "ready\n" {
			t.Fatalf("child %d: %q, %v", g, line, err)
		}
		// Kill after a random number of acknowledgements (0 kills it
		// during its first writes), then collect what it printed.
		want := rng.IntN(25)
		seen := 0
		for seen < want {
			if _, err := out.ReadString('\n'); err != nil {
				t.Fatalf("child %d died: %v", g, err)
			}
			seen++
		}
		// Let it run a random little while into the next write.
		time.Sleep(time.Duration(rng.IntN(10000)) * time.Microsecond)
		cmd.Process.Kill()
		rest, _ := io.ReadAll(out)
		cmd.Wait()
		n := seen + strings.Count(string(rest), "acked ")
		for i := range n {
			all = append(all, acked{g, i})
		}
		t.Logf("generation %d: killed after %d acknowledged actions", g, n)
	}

	ctx := context.Background()
	s := openT(t, Options{Dir: dir})
	for _, a := range all {
		got, err := s.GetAction(ctx, writerKey(a.g, a.i))
		if err != nil {
			t.Fatalf("acknowledged action %d/%d: %v", a.g, a.i, err)
		}
		stdout, file := writerBlobs(a.g, a.i)
		if b, err := readBlob(s, got.Stdout.Digest); err != nil || !bytes.Equal(b, stdout) {
			t.Fatalf("action %d/%d stdout: %v", a.g, a.i, err)
		}
		if b, err := readBlob(s, got.Files[0].Digest); err != nil || !bytes.Equal(b, file) {
			t.Fatalf("action %d/%d file: %v", a.g, a.i, err)
		}
	}
	res, err := s.Verify(ctx, func(p Problem) { t.Errorf("verify: %v", p) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Actions < len(all) {
		t.Errorf("Verify saw %d actions, %d were acknowledged", res.Actions, len(all))
	}
	t.Logf("%d acknowledged actions intact; %d actions, %d blobs in the store", len(all), res.Actions, res.Blobs)
}

func TestOpenWaitsForOtherProcess(t *testing.T) {
	dir := t.TempDir()
	openT(t, Options{Dir: dir}).Close()
	cmd, out, in := startChild(t, "holder", dir)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("holder: %q, %v", line, err)
	}

	// Gives up after LockWait, naming the holder.
	var waitedFor []int
	_, err := Open(context.Background(), Options{Dir: dir, LockWait: 300 * time.Millisecond,
		OnWait: func(pid int) { waitedFor = append(waitedFor, pid) }})
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("Open = %v, want *LockedError", err)
	}
	if le.PID != cmd.Process.Pid || !strings.Contains(err.Error(), "is in use by process "+strconv.Itoa(cmd.Process.Pid)) {
		t.Errorf("error = %q (pid %d), want the holder's pid %d", err, le.PID, cmd.Process.Pid)
	}
	if len(waitedFor) != 1 || waitedFor[0] != cmd.Process.Pid {
		t.Errorf("OnWait calls = %v, want one with pid %d", waitedFor, cmd.Process.Pid)
	}
	if strings.Contains(strings.ToLower(err.Error()), "badger") {
		t.Errorf("error mentions badger: %v", err)
	}

	// A read-only store waits for a writer too.
	if _, err := Open(context.Background(), Options{Dir: dir, ReadOnly: true, LockWait: -1}); !errors.Is(err, ErrLocked) {
		t.Errorf("read-only Open = %v, want ErrLocked", err)
	}

	// The context ends the wait as well.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, Options{Dir: dir}); !errors.Is(err, ErrLocked) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open with expiring ctx = %v, want ErrLocked and DeadlineExceeded", err)
	}

	// Once the holder lets go, a waiting Open proceeds.
	waited := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		s, err := Open(context.Background(), Options{Dir: dir, OnWait: func(pid int) { waited <- pid }})
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	if pid := <-waited; pid != cmd.Process.Pid {
		t.Errorf("OnWait(%d), want %d", pid, cmd.Process.Pid)
	}
	in.Close()
	if err := <-done; err != nil {
		t.Fatalf("Open after release = %v", err)
	}
	cmd.Wait()
}

func TestKilledHolderReleasesLock(t *testing.T) {
	dir := t.TempDir()
	cmd, out, _ := startChild(t, "holder", dir)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("holder: %q, %v", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	s, err := Open(context.Background(), Options{Dir: dir, LockWait: -1})
	if err != nil {
		t.Fatalf("Open after holder was killed = %v", err)
	}
	s.Close()
}

func TestOpenWaitsInProcess(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	_, err := Open(context.Background(), Options{Dir: dir, LockWait: -1})
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || le.Dir != dir {
		t.Fatalf("second Open = %v, want *LockedError naming this process", err)
	}
	s.Close()
	openT(t, Options{Dir: dir, LockWait: -1})
}

// TestLookupAfterCrash opens for lookups a directory whose writer was
// killed: badger refuses read-only opens until its log is replayed, which
// Open does under a briefly exclusive lock.
func TestLookupAfterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	cmd, out, _ := startChild(t, "writer", dir, "0")
	acked := 0
	for acked < 5 {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		if strings.HasPrefix(line, "acked ") {
			acked++
		}
	}
	cmd.Process.Kill()
	cmd.Wait()

	ctx := context.Background()
	for _, o := range []Options{{Dir: dir, Lookup: true}, {Dir: dir, ReadOnly: true}} {
		s, err := Open(ctx, o)
		if err != nil {
			t.Fatalf("Open(%+v) after a crash: %v", o, err)
		}
		for i := range acked {
			if _, err := s.GetAction(ctx, writerKey(0, i)); err != nil {
				t.Errorf("action %d: %v", i, err)
			}
		}
		s.Close()
	}
}
