package ssh

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rustypipe/rustypipe/exec"
)

// prepared is what Run checks and computes before it takes a host.
type prepared struct {
	argv   []string
	task   []byte // ctl/task.sh
	dir    string
	inputs []input
}

type input struct {
	rel  string
	path string
	dir  bool
}

// prepare checks s and builds its task file. Errors are start errors.
func prepare(s *exec.Spec) (*prepared, error) {
	argv, err := shellArgv(s.Shell, s.Script)
	if err != nil {
		return nil, err
	}
	if s.Dir != "" {
		if err := exec.CheckPath(s.Dir); err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
	}
	if (len(s.Inputs) > 0 || len(s.Outputs) > 0) && !filepath.IsAbs(s.Workspace) {
		return nil, fmt.Errorf("workspace %q is not an absolute path", s.Workspace)
	}
	p := &prepared{argv: argv, dir: s.Dir}
	for _, rel := range s.Inputs {
		if err := exec.CheckPath(rel); err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		full := filepath.Join(s.Workspace, filepath.FromSlash(rel))
		fi, err := os.Stat(full)
		if err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil, fmt.Errorf("input %s is not a regular file", rel)
		}
		p.inputs = append(p.inputs, input{rel: rel, path: full, dir: fi.IsDir()})
	}
	for _, o := range s.Outputs {
		if err := exec.CheckPath(o); err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
	}
	p.task = []byte(taskFile(s.Dir, taskEnv(s.Env), argv))
	return p, nil
}

// Run runs s on a host of the pool: the least-loaded one with a free slot,
// waiting for one if every host is busy. See the package documentation for
// the steps. It implements exec.Backend and is safe for concurrent use.
//
// Errors: a Spec that cannot run (unknown shell, bad path, missing input)
// or a run directory that cannot be prepared on the host wraps
// exec.ErrStart with a nil Result; no usable host, or a connection lost
// before the task's exit status arrived, wraps ErrConnect (and ErrHostKey
// or ErrAuth when those are why hosts were refused) with a nil Result; a
// ctx done before the task started wraps context.Cause(ctx) with a nil
// Result; a ctx done while it ran wraps context.Cause(ctx) with the Result,
// after the task's processes on the host were stopped. Failing to bring
// outputs back, or a failing s.Stdout or s.Stderr, returns the Result and
// the error.
func (b *Backend) Run(ctx context.Context, s *exec.Spec) (*exec.Result, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, &exec.StartError{Backend: "ssh", Task: s.Task, Msg: "backend is closed"}
	}
	if ctx.Err() != nil {
		return nil, exec.StopError(ctx, "ssh", s.Task, "not started")
	}
	p, err := prepare(s)
	if err != nil {
		return nil, &exec.StartError{Backend: "ssh", Task: s.Task, Msg: err.Error()}
	}
	h, c, err := b.acquire(ctx, s.Task)
	if err != nil {
		return nil, err
	}
	defer b.release(h)
	r := &run{b: b, h: h, c: c, s: s, p: p, token: randomHex(8)}
	r.name = r.token + "-" + sanitize(s.Task)
	return r.run(ctx)
}

// run is one attempt of one task on one host.
type run struct {
	b     *Backend
	h     *host
	c     *conn
	s     *exec.Spec
	p     *prepared
	token string // marks the control lines of this run's streams
	name  string // the run directory under remote_dir
}

func (r *run) run(ctx context.Context) (*exec.Result, error) {
	s := r.s
	sess, err := startSession(r.c.client, runCommand(r.b.base, r.name, r.token))
	if err != nil {
		return nil, &connectError{host: r.h.t.label(), op: fmt.Sprintf("start task %q", s.Task), err: err}
	}
	defer sess.ch.Close()
	execAt := time.Now()

	stdout, stderr := s.Stdout, s.Stderr
	if sameWriter(stdout, stderr) {
		lw := &lockedWriter{w: stdout}
		stdout, stderr = lw, lw
	}
	pg := &pgidWatch{prefix: []byte("\n" + r.token + "-pgid "), known: make(chan struct{})}
	outPump := newPump(sess.ch, r.token, stdout, nil)
	errPump := newPump(sess.ch.Stderr(), r.token, stderr, pg.scan)
	go outPump.run()
	go errPump.run()
	uploaded := make(chan error, 1)
	go func() { uploaded <- r.upload(sess.ch) }()

	stopped := false
	select {
	case <-sess.exited:
	case <-ctx.Done():
		stopped = true
		r.stop(sess, pg)
	}
	<-sess.exited

	// The task's shell has exited (or the session is gone). Kill what is
	// left of its group, bring the outputs back, remove the run directory;
	// meanwhile its streams drain.
	pgid := pg.get()
	var finishErr error
	if stopped {
		fctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
		finishErr = r.finish(fctx, pgid, false)
		cancel()
	} else {
		finishErr = r.finish(ctx, pgid, len(s.Outputs) > 0)
	}
	drained := make(chan struct{})
	go func() { <-outPump.done; <-errPump.done; close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		sess.ch.Close()
		<-drained
	}
	finished := time.Now()
	sess.ch.Close()
	upErr := <-uploaded

	started := outPump.seen || errPump.seen
	st := sess.exitStatus()
	lost := func(what string) error {
		// A session that ends without an exit status usually means the
		// connection is going: give it a moment to say so.
		select {
		case <-r.c.done:
			return &connectError{host: r.h.t.label(), op: fmt.Sprintf("task %q", s.Task), err: fmt.Errorf("connection lost %s", what)}
		case <-time.After(drainTimeout):
			return &connectError{host: r.h.t.label(), op: fmt.Sprintf("task %q", s.Task), err: fmt.Errorf("session ended without an exit status %s", what)}
		}
	}
	if !started {
		switch {
		case stopped:
			return nil, exec.StopError(ctx, "ssh", s.Task, "not started")
		case !st.known:
			return nil, lost("before the task started")
		}
		msg := "set up the run in " + path.Join(r.b.base, r.name)
		if st.signal != "" {
			msg += ": killed by SIG" + st.signal
		} else {
			msg += ": exit status " + strconv.Itoa(st.code)
		}
		if pre := errPump.preludeText(r.token); pre != "" {
			msg += ": " + pre
		}
		if upErr != nil && !errors.Is(upErr, io.EOF) {
			msg += fmt.Sprintf(" (upload: %v)", upErr)
		}
		return nil, &exec.StartError{Backend: "ssh", Task: s.Task, Host: r.h.t.label(), Msg: msg}
	}

	res := &exec.Result{Started: execAt, Finished: finished}
	if t := firstTime(outPump.startedAt, errPump.startedAt); !t.IsZero() {
		res.Started = t
	}
	switch {
	case st.known && st.signal != "":
		res.ExitCode, res.Signal = -1, signalDescription(st.signal)
	case st.known:
		res.ExitCode = st.code
	case stopped:
		// The session was given up without an exit status.
		res.ExitCode, res.Signal = -1, signalDescription("KILL")
	default:
		return nil, lost("while the task ran")
	}
	if stopped {
		return res, exec.StopError(ctx, "ssh", s.Task, "stopped")
	}
	if finishErr != nil {
		if ctx.Err() != nil {
			return res, exec.StopError(ctx, "ssh", s.Task, "stopped while its outputs were brought back")
		}
		return res, fmt.Errorf("ssh: task %q on %s: %w", s.Task, r.h.t.label(), finishErr)
	}
	if err := firstErr(outPump.werr, errPump.werr); err != nil {
		return res, fmt.Errorf("ssh: task %q: %w", s.Task, err)
	}
	return res, nil
}

// stop stops a running task whose ctx is done: SIGTERM to its process
// group, then SIGKILL when s.Grace has passed or s.Kill is closed. It
// returns once the task's shell has exited, SIGKILL has been sent, or the
// session has been given up.
func (r *run) stop(sess *session, pg *pgidWatch) {
	timer := time.NewTimer(r.s.Grace)
	defer timer.Stop()
	// The set-up prints the group id first thing, so waiting for it is
	// short; without it there is no group to signal.
	select {
	case <-sess.exited:
		return
	case <-pg.known:
	case <-timer.C:
	case <-r.s.Kill:
	}
	pgid := pg.get()
	if pgid == 0 {
		r.giveUp(sess)
		return
	}
	if err := r.signal(pgid, "TERM"); err != nil {
		sess.signal("TERM")
	}
	select {
	case <-sess.exited:
		return
	case <-timer.C:
	case <-r.s.Kill:
	}
	if err := r.signal(pgid, "KILL"); err != nil {
		r.giveUp(sess)
	}
}

// giveUp ends a session whose process group is not known or cannot be
// signalled: it asks the server to kill the process and closes the
// channel. The finish session kills the group if it becomes known.
func (r *run) giveUp(sess *session) {
	sess.signal("KILL")
	sess.ch.Close()
}

// signal sends sig to the task's process group from a second session.
func (r *run) signal(pgid int, sig string) error {
	_, _, _, err := controlWithTimeout(r.c.client, signalCommand(pgid, sig))
	return err
}

// finish runs the last session of a task: it kills what is left of the
// task's process group, brings back the declared outputs when
// withOutputs is set, and removes the run directory. Should it fail, a
// plain clean-up session is tried.
func (r *run) finish(ctx context.Context, pgid int, withOutputs bool) error {
	err := r.finishSession(ctx, pgid, withOutputs)
	if err != nil {
		controlWithTimeout(r.c.client, cleanupCommand(r.b.base, r.name, pgid))
	}
	return err
}

func (r *run) finishSession(ctx context.Context, pgid int, withOutputs bool) error {
	var prefixes []string
	if withOutputs {
		prefixes = outputPrefixes(r.s.Outputs)
	}
	sess, err := startSession(r.c.client, shCommand(finishCommand(r.b.base, r.name, r.token, pgid, prefixes)))
	if err != nil {
		return fmt.Errorf("clean up: %w", err)
	}
	defer sess.ch.Close()
	stop := context.AfterFunc(ctx, func() { sess.ch.Close() })
	defer stop()
	var errOut capture
	errDone := make(chan struct{})
	go func() { io.Copy(&errOut, sess.ch.Stderr()); close(errDone) }()

	br := bufio.NewReaderSize(sess.ch, 64<<10)
	var restoreErr error
	if withOutputs {
		restoreErr = r.bringBack(sess.ch, br)
	} else {
		sess.ch.CloseWrite()
	}
	var status int
	if restoreErr == nil {
		// The session is done once its last line, the clean-up's status,
		// has arrived; the server closes it a little later.
		_, status, err = readStatus(br, r.token+"-done")
	}
	switch {
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case restoreErr != nil:
		return restoreErr
	case err != nil:
		<-errDone
		return fmt.Errorf("clean up: %w: %s", err, strings.TrimSpace(errOut.b.String()))
	case status != 0:
		<-errDone
		return fmt.Errorf("clean up: remove the run directory: exit status %d: %s", status, strings.TrimSpace(errOut.b.String()))
	}
	return nil
}

// bringBack reads the listing of candidate outputs, sends back the paths
// that match the declared outputs, and restores the tar stream of those
// through exec.Restorer, which refuses anything outside the workspace or
// not declared.
func (r *run) bringBack(ch gossh.Channel, br *bufio.Reader) error {
	match := exec.OutputMatcher(r.s.Outputs)
	end := r.token + "-end"
	var sel bytes.Buffer
	seen := map[string]bool{}
	for {
		name, err := br.ReadString(0)
		if err != nil {
			ch.CloseWrite()
			return fmt.Errorf("list outputs: %w", err)
		}
		name = name[:len(name)-1]
		if name == end {
			break
		}
		rel := path.Clean(name)
		if exec.CheckPath(rel) != nil || seen[rel] || !match(rel) {
			continue
		}
		seen[rel] = true
		sel.WriteString("./" + rel + "\x00")
	}
	// The selection is written while the archive is read: tar reads the
	// names as it goes, and either side could otherwise fill its window.
	go func() {
		ch.Write(sel.Bytes())
		ch.CloseWrite()
	}()
	if len(seen) == 0 {
		return nil
	}
	rs, err := exec.NewRestorer(r.s.Workspace)
	if err != nil {
		return err
	}
	defer rs.Close()
	if _, err := rs.ExtractTar(br, match); err != nil {
		return fmt.Errorf("bring back outputs: %w", err)
	}
	return nil
}

// upload writes the tar stream of ctl/task.sh, the working directory and
// the inputs to the session's stdin, then closes it: the task's stdin is
// empty.
func (r *run) upload(w gossh.Channel) (err error) {
	defer func() {
		w.CloseWrite()
	}()
	bw := bufio.NewWriterSize(w, 64<<10)
	tw := tar.NewWriter(bw)
	now := time.Now()
	hdr := func(name string, mode int64, typ byte, size int64, mtime time.Time) *tar.Header {
		return &tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: size, ModTime: mtime, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr("ctl/", 0o700, tar.TypeDir, 0, now)); err != nil {
		return err
	}
	if err := tw.WriteHeader(hdr("ctl/task.sh", 0o600, tar.TypeReg, int64(len(r.p.task)), now)); err != nil {
		return err
	}
	if _, err := tw.Write(r.p.task); err != nil {
		return err
	}
	if err := tw.WriteHeader(hdr("ws/", 0o755, tar.TypeDir, 0, now)); err != nil {
		return err
	}
	if r.p.dir != "" {
		if err := tw.WriteHeader(hdr("ws/"+r.p.dir+"/", 0o755, tar.TypeDir, 0, now)); err != nil {
			return err
		}
	}
	for _, in := range r.p.inputs {
		if err := addInput(tw, in); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func addInput(tw *tar.Writer, in input) error {
	if in.dir {
		fi, err := os.Stat(in.path)
		if err != nil {
			return fmt.Errorf("input %s: %w", in.rel, err)
		}
		return tw.WriteHeader(&tar.Header{Name: "ws/" + in.rel + "/", Mode: int64(fi.Mode().Perm()), Typeflag: tar.TypeDir, ModTime: fi.ModTime(), Format: tar.FormatPAX})
	}
	f, err := os.Open(in.path)
	if err != nil {
		return fmt.Errorf("input %s: %w", in.rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("input %s: %w", in.rel, err)
	}
	h := &tar.Header{Name: "ws/" + in.rel, Mode: int64(fi.Mode().Perm()), Typeflag: tar.TypeReg, Size: fi.Size(), ModTime: fi.ModTime(), Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("input %s: %w", in.rel, err)
	}
	if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
		return fmt.Errorf("input %s changed while it was sent: %w", in.rel, err)
	}
	return nil
}

// pump copies one of a task's streams to its writer, dropping what comes
// before the start marker ("\n<token>-start\n"): output of the login shell
// and of the set-up, kept as the prelude for error messages.
type pump struct {
	r      io.Reader
	marker []byte
	dst    io.Writer
	scan   func(prelude []byte) // called with the prelude so far, until the marker

	// Read after done is closed.
	seen      bool
	startedAt time.Time
	prelude   []byte
	werr      error
	done      chan struct{}
}

// maxPrelude bounds the prelude kept while waiting for the start marker.
const maxPrelude = 1 << 20

func newPump(r io.Reader, token string, dst io.Writer, scan func([]byte)) *pump {
	return &pump{r: r, marker: []byte("\n" + token + "-start\n"), dst: dst, scan: scan, done: make(chan struct{})}
}

func (p *pump) run() {
	defer close(p.done)
	buf := make([]byte, 32<<10)
	var pre []byte
	for {
		n, err := p.r.Read(buf)
		chunk := buf[:n]
		if n > 0 && !p.seen {
			pre = append(pre, chunk...)
			if p.scan != nil {
				p.scan(pre)
			}
			chunk = nil
			if i := bytes.Index(pre, p.marker); i >= 0 {
				p.seen, p.startedAt = true, time.Now()
				chunk = pre[i+len(p.marker):]
				pre = pre[:i]
			} else if len(pre) > maxPrelude {
				pre = append(pre[:0], pre[len(pre)-maxCapture:]...)
			}
		}
		if len(chunk) > 0 && p.werr == nil {
			if _, werr := p.dst.Write(chunk); werr != nil {
				p.werr = fmt.Errorf("write output: %w", werr)
			}
		}
		if err != nil {
			p.prelude = pre
			return
		}
	}
}

// preludeText is the prelude without control lines, trimmed and cut to
// maxCapture bytes, for an error message.
func (p *pump) preludeText(token string) string {
	var lines []string
	for _, l := range strings.Split(string(p.prelude), "\n") {
		if !strings.HasPrefix(l, token+"-") && strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	s := strings.Join(lines, "\n")
	if len(s) > maxCapture {
		s = s[len(s)-maxCapture:]
	}
	return s
}

// pgidWatch finds the "\n<token>-pgid <n>\n" line on stderr.
type pgidWatch struct {
	prefix []byte
	known  chan struct{} // closed once pgid is set

	mu   sync.Mutex
	pgid int
}

func (w *pgidWatch) scan(pre []byte) {
	if w.get() != 0 {
		return
	}
	i := bytes.Index(pre, w.prefix)
	if i < 0 {
		return
	}
	rest := pre[i+len(w.prefix):]
	j := bytes.IndexByte(rest, '\n')
	if j < 0 {
		return
	}
	n, err := strconv.Atoi(string(rest[:j]))
	if err != nil || n <= 1 {
		return
	}
	w.mu.Lock()
	w.pgid = n
	w.mu.Unlock()
	close(w.known)
}

// get returns the pgid, 0 while it is not known.
func (w *pgidWatch) get() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pgid
}

// lockedWriter serializes writes from the two streams to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// sameWriter reports whether a and b are the same writer, without
// panicking on writers of uncomparable types.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sanitize keeps a task name readable in a directory name.
func sanitize(name string) string {
	var b strings.Builder
	for _, r := range name {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func firstTime(ts ...time.Time) time.Time {
	var first time.Time
	for _, t := range ts {
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
