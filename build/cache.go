package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rustypipe/rustypipe/cas"
	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/hashing"
	"github.com/rustypipe/rustypipe/pipeline"
)

// CacheOptions configure the task cache for one build.
type CacheOptions struct {
	Mode      string        // "readwrite", "read", "write" or "off"; "" is off
	Dir       string        // the cache directory
	Force     []string      // tasks that run even on a hit
	DebugKeys io.Writer     // when set, every key's records are printed here (RUSTYPIPE_DEBUG=keyhash)
	LockWait  time.Duration // how long to wait for another process's hold on the store; 0 means 10 minutes
}

func (o CacheOptions) reads() bool  { return o.Mode == "readwrite" || o.Mode == "read" }
func (o CacheOptions) writes() bool { return o.Mode == "readwrite" || o.Mode == "write" }
func (o CacheOptions) on() bool     { return o.Mode != "" && o.Mode != "off" }

// cacheLayer is the cache step of every task: it computes keys, answers
// "up to date" from the workspace state, restores hits from the store and
// stores results. With caching off it only passes outputs on.
type cacheLayer struct {
	plan  *Plan
	opts  CacheOptions
	rep   Reporter
	env   []string
	sess  *session
	state *workspaceState

	memoVal *hashing.Memo // nil when caching is off

	mu    sync.Mutex
	tasks []*keyed // per task id: what lookup computed
}

// keyed is what lookup computed for one task, for store and explain.
type keyed struct {
	key    hashing.Key
	recipe *hashing.Recipe
	inputs []hashing.FileEntry
	paths  []string // input paths, for backends that ship them

	preOnce  sync.Once
	preimage *hashing.Preimage
}

// pre returns the key's preimage, built on first use: most tasks are up to
// date and never need it.
func (k *keyed) pre() *hashing.Preimage {
	k.preOnce.Do(func() { _, k.preimage = hashing.TaskKey(k.recipe) })
	return k.preimage
}

// lookupResult is what a lookup found: done means the task needs no run.
type lookupResult struct {
	done   bool
	status Status
	output *taskOutput
}

// outputMeta is what a finished task hands to its dependents' keys.
type outputMeta struct {
	manifest hashing.Digest
}

func newCacheLayer(pl *Plan, o Options) *cacheLayer {
	c := &cacheLayer{plan: pl, opts: o.Cache, rep: o.Reporter, env: o.Env, tasks: make([]*keyed, len(pl.Tasks))}
	if !c.opts.on() {
		return c
	}
	wait := c.opts.LockWait
	if wait == 0 {
		wait = 10 * time.Minute
	}
	c.sess = newSession(cas.Options{Dir: c.opts.Dir, LockWait: wait}, c.opts.writes(), o.Reporter)
	if o.Noop != nil && c.opts.reads() && !o.DryRun {
		// Files recorded by the no-op record changed, so some task is likely
		// to need a lookup.
		c.sess.prefetch()
	}
	c.memoVal = hashing.NewLazyMemo(filepath.Join(pl.Workspace, ".rustypipe", "statmemo"), func(err error) {
		o.Reporter.Warn(fmt.Sprintf("stat memo: %v (hashing every file)", err))
	})
	if o.Noop == nil {
		// Without a partial no-op record most tasks need their keys, and so
		// the memo: it loads while the build starts. With one, the tasks
		// the record answers for need no memo, and a changed task may need
		// none either (see hashing.NewLazyMemo).
		go c.memoVal.Load()
	}
	c.state = o.state
	return c
}

// memo returns the stat memo, which loads its file when first needed; nil
// when caching is off.
func (c *cacheLayer) memo() *hashing.Memo { return c.memoVal }

// digest hashes one workspace file, through the stat memo when there is one.
func (c *cacheLayer) digest(rel string) (hashing.FileEntry, error) {
	return c.memo().Digest(c.plan.Workspace, rel)
}

func (c *cacheLayer) digestAll(paths []string) ([]hashing.FileEntry, error) {
	out := make([]hashing.FileEntry, 0, len(paths))
	for _, p := range paths {
		e, err := c.digest(p)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// identity is the backend's environment identity for the key.
func (c *cacheLayer) identity(ctx context.Context, b *builder, id int) (string, error) {
	t := c.plan.Tasks[id]
	if ider, ok := b.opts.Backends[backendName(t)].(exec.Identifier); ok {
		return ider.Identity(ctx, &exec.Spec{Task: t.Name, Workspace: c.plan.Workspace, Image: t.Image})
	}
	return localIdentity, nil
}

// localIdentity is the environment identity of the local backend.
const localIdentity = "local " + runtime.GOOS + "/" + runtime.GOARCH

// computeKey builds the recipe of a task whose dependencies are known and
// returns its key. ok is false when a dependency has no output manifest (it
// failed under continue_on_fail, or caching was off for it): such a task is
// not cached.
func (c *cacheLayer) computeKey(ctx context.Context, b *builder, id int, script string, refEnv []string) (*keyed, bool, error) {
	t := c.plan.Tasks[id]
	inputs, err := c.memo().Expand(c.plan.Workspace, t.Inputs)
	if err != nil {
		return nil, false, fmt.Errorf("task %q: inputs: %w", t.Name, err)
	}
	paths := make([]string, len(inputs))
	for i, in := range inputs {
		paths[i] = in.Path
	}
	r := &hashing.Recipe{
		Command: script,
		Shell:   shellOf(c.plan.Pipeline, t),
		Dir:     dirOf(c.plan.Pipeline, t),
		Env:     declaredEnv(c.plan.Pipeline, t, refEnv),
		Inputs:  inputs,
		Outputs: t.Outputs,
		Salt:    t.CacheKey,
	}
	for _, dn := range t.DependsOn {
		did, ok := c.plan.Graph.ID(dn)
		if !ok {
			return nil, false, nil
		}
		m := b.outputMeta(did)
		if m == nil {
			return nil, false, nil
		}
		r.Deps = append(r.Deps, hashing.DepEntry{Name: dn, Output: m.manifest})
	}
	if r.EnvIdentity, err = c.identity(ctx, b, id); err != nil {
		return nil, false, fmt.Errorf("task %q: backend identity: %w", t.Name, err)
	}
	k := &keyed{key: hashing.KeyOf(r), recipe: r, inputs: inputs, paths: paths}
	if c.opts.DebugKeys != nil {
		fmt.Fprintf(c.opts.DebugKeys, "keyhash %s %s\n", t.Name, k.key)
		k.pre().WriteTo(c.opts.DebugKeys)
	}
	return k, true, nil
}

// declaredEnv is the env that goes into the key: the pipeline's and the
// task's declared env, and the values of template references. The rest of
// the process environment is deliberately not hashed (see the README).
func declaredEnv(p *pipeline.Pipeline, t *pipeline.Task, refEnv []string) map[string]string {
	if len(p.Env)+len(t.Env)+len(refEnv) == 0 {
		return nil
	}
	m := make(map[string]string, len(p.Env)+len(t.Env)+len(refEnv))
	for k, v := range p.Env {
		m[k] = v
	}
	for k, v := range t.Env {
		m[k] = v
	}
	for _, kv := range refEnv {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				m[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	return m
}

func (c *cacheLayer) lookup(ctx context.Context, b *builder, id int, script string, refEnv []string) (*lookupResult, error) {
	if !c.opts.on() {
		return nil, nil
	}
	t := c.plan.Tasks[id]
	r := b.records[id]
	start := time.Now()
	k, ok, err := c.computeKey(ctx, b, id, script, refEnv)
	hashMS := time.Since(start).Milliseconds()
	r.mu.Lock()
	r.HashMS = hashMS
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !ok {
		r.mu.Lock()
		r.Cache = "off"
		r.Reason = "not cached: a dependency has no cached output"
		r.mu.Unlock()
		return nil, nil
	}
	c.mu.Lock()
	c.tasks[id] = k
	c.mu.Unlock()
	r.mu.Lock()
	r.Key = k.key.String()
	r.Cache = "miss"
	r.mu.Unlock()
	if slices.Contains(c.opts.Force, t.Name) || !c.opts.reads() {
		return nil, nil
	}

	// Up to date: the workspace holds exactly what this key produced.
	if e := c.upToDate(t.Name, k.key); e != nil {
		r.mu.Lock()
		r.Cache = "up-to-date"
		r.mu.Unlock()
		return upToDateResult(e), nil
	}

	out, restored, err := c.restore(ctx, b, id, k.key)
	if errors.Is(err, errNoCache) {
		return nil, nil
	}
	if err != nil {
		r.mu.Lock()
		r.CacheWarning = err.Error() + "; running the task"
		r.mu.Unlock()
		return nil, nil
	}
	if out == nil {
		return nil, nil
	}
	r.mu.Lock()
	r.Cache = "hit"
	r.BytesRestored = restored
	r.mu.Unlock()
	return &lookupResult{done: true, status: StatusCached, output: out}, nil
}

// upToDateResult is the lookup result of a task up to date with state
// entry e: its output is the recorded one.
func upToDateResult(e *stateEntry) *lookupResult {
	// One allocation for the three parts: a build may take a thousand
	// tasks as up to date.
	r := &struct {
		res  lookupResult
		out  taskOutput
		meta outputMeta
	}{meta: outputMeta{manifest: e.Manifest}}
	r.out = taskOutput{text: strings.TrimSpace(string(e.Stdout)), read: true, meta: &r.meta}
	r.res = lookupResult{done: true, status: StatusUpToDate, output: &r.out}
	return &r.res
}

// upToDate returns the workspace state's entry for task when the workspace
// holds exactly the outputs produced under key, else nil.
func (c *cacheLayer) upToDate(task string, key hashing.Key) *stateEntry {
	if e := c.state.get(task); e != nil && e.Key == key && e.HasOut && c.filesMatch(e.Files) {
		return e
	}
	return nil
}

func (c *cacheLayer) filesMatch(files []hashing.FileEntry) bool {
	for _, f := range files {
		got, err := c.digest(f.Path)
		if err != nil || got != f {
			return false
		}
	}
	return true
}

// restore looks key up and, on a hit, writes the declared outputs into the
// workspace and replays stdout and stderr. A nil output means a miss. An
// error means the entry was unusable (corrupt blob, unsafe path): the task
// then runs, and the caller warns.
func (c *cacheLayer) restore(ctx context.Context, b *builder, id int, key hashing.Key) (*taskOutput, int64, error) {
	st, err := c.sess.acquire(ctx, false)
	if err != nil {
		return nil, 0, err
	}
	defer c.sess.release()
	a, err := st.GetAction(ctx, key)
	if errors.Is(err, cas.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cache lookup: %w", err)
	}
	t := c.plan.Tasks[id]
	r := b.records[id]
	rs, err := exec.NewRestorer(c.plan.Workspace)
	if err != nil {
		return nil, 0, err
	}
	defer rs.Close()
	var total int64
	files := make([]hashing.FileEntry, 0, len(a.Files))
	for _, f := range a.Files {
		if f.LinkTarget != "" {
			if err := rs.Symlink(f.Path, f.LinkTarget); err != nil {
				return nil, 0, c.dropBad(ctx, st, key, err)
			}
		} else {
			n, err := c.copyBlob(ctx, st, f.Digest, func(rd io.Reader) (int64, error) {
				return rs.WriteFile(f.Path, fs.FileMode(f.Mode).Perm(), rd)
			})
			if err != nil {
				return nil, 0, c.dropBad(ctx, st, key, err)
			}
			total += n
		}
		files = append(files, fileEntryOf(f))
	}
	// Replay the streams into the run's files, the log and the console.
	logf := b.dir.openLog(r)
	defer logf.Close()
	logf.header(func(b []byte) []byte {
		return fmt.Appendf(b, "=== %q restored from the cache (key %s)\n", t.Name, key)
	})
	cout, cerr := b.opts.Reporter.TaskWriters(r)
	defer cout.Close()
	defer cerr.Close()
	stdout := newCapture(b.dir.stdoutPath(r))
	for _, s := range []struct {
		ref cas.BlobRef
		w   io.Writer
	}{{a.Stdout, io.MultiWriter(stdout, logf, cout)}, {a.Stderr, io.MultiWriter(logf, cerr)}} {
		if s.ref.Size == 0 {
			continue
		}
		_, err = c.copyBlob(ctx, st, s.ref.Digest, func(rd io.Reader) (int64, error) { return io.Copy(s.w, rd) })
		if err != nil {
			stdout.close()
			return nil, 0, c.dropBad(ctx, st, key, err)
		}
		total += s.ref.Size
	}
	stdout.close()
	m := hashing.Manifest{Stdout: hashing.Digest(a.Stdout.Digest), Files: files}
	md := m.Digest()
	small, ok := stdout.small()
	c.state.put(t.Name, &stateEntry{Key: key, Manifest: md, Files: files, Stdout: small, HasOut: ok})
	return &taskOutput{stdout: stdout, meta: &outputMeta{manifest: md}}, total, nil
}

// copyBlob streams a verified blob into use.
func (c *cacheLayer) copyBlob(ctx context.Context, st *cas.Store, d [32]byte, use func(io.Reader) (int64, error)) (int64, error) {
	rc, _, err := st.OpenBlob(ctx, d)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return use(rc)
}

// dropBad turns a failed restore into a warning and removes the entry, so the
// task re-runs and a good result replaces it.
func (c *cacheLayer) dropBad(ctx context.Context, st *cas.Store, key hashing.Key, err error) error {
	if errors.Is(err, cas.ErrCorrupt) && c.opts.writes() {
		st.DeleteAction(ctx, key)
		return fmt.Errorf("cache entry %s is corrupt and was dropped: %w", key.String()[:12], err)
	}
	return fmt.Errorf("cache entry %s could not be restored: %w", key.String()[:12], err)
}

func (c *cacheLayer) inputFiles(id int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.tasks[id]; k != nil {
		return k.paths
	}
	if !c.opts.on() {
		paths, _ := hashing.ExpandGlobs(c.plan.Workspace, c.plan.Tasks[id].Inputs)
		return paths
	}
	return nil
}

// store records a successful run: output files and streams into the store,
// then the action, then the workspace state. Failures to write the cache are
// warnings on the task, never failures of the task.
// A task's stdout is kept in the workspace state, for the up-to-date fast
// path, only while it is small (captureMem); larger ones are restored from
// the store.
func (c *cacheLayer) store(ctx context.Context, b *builder, id int, stdout, stderr *capture) (*taskOutput, error) {
	out := &taskOutput{stdout: stdout}
	if !c.opts.on() {
		return out, nil
	}
	c.mu.Lock()
	k := c.tasks[id]
	c.mu.Unlock()
	if k == nil {
		return out, nil
	}
	t := c.plan.Tasks[id]
	r := b.records[id]
	warn := func(err error) {
		r.mu.Lock()
		r.CacheWarning = err.Error()
		r.mu.Unlock()
	}

	// An input edited while the task ran makes its result belong to no key.
	now, err := c.digestAll(k.paths)
	if err != nil || !slices.Equal(now, k.inputs) {
		warn(fmt.Errorf("an input changed while the task ran; result not cached"))
		return out, nil
	}
	// Small outputs' content comes back from hashing, to be stored as read.
	files, contents, err := c.memo().ExpandContent(c.plan.Workspace, t.Outputs, c.sess.opts.InlineLimit())
	if err != nil {
		return nil, fmt.Errorf("task %q: outputs: %w", t.Name, err)
	}
	if len(t.Outputs) > 0 && len(files) == 0 {
		warn(fmt.Errorf("declared outputs %v matched no files", t.Outputs))
	}
	m := hashing.Manifest{Stdout: stdout.digest(), Files: files}
	manifest := m.Digest()
	out.meta = &outputMeta{manifest: manifest}
	if small, ok := stdout.small(); ok {
		c.state.put(t.Name, &stateEntry{Key: k.key, Manifest: manifest, Files: files, Stdout: small, HasOut: true})
	}
	if !c.opts.writes() {
		return out, nil
	}
	if err := c.put(ctx, b, id, k, files, contents, stdout, stderr); err != nil {
		warn(fmt.Errorf("cache write failed: %w", err))
	}
	return out, nil
}

// put stores a task's result. It first tries the session open for lookups:
// cas's Lookup stores append small writes to the store's journal, which
// costs far less than opening the index writable (a build that re-ran one
// task spent most of its time in that open and close). When the journal is
// full, or no cache exists yet, it stores through a writable session.
func (c *cacheLayer) put(ctx context.Context, b *builder, id int, k *keyed, files []hashing.FileEntry, contents [][]byte, stdout, stderr *capture) error {
	err := c.putWith(ctx, b, id, k, files, contents, stdout, stderr, false)
	if errors.Is(err, cas.ErrJournalFull) || errors.Is(err, errNoCache) {
		err = c.putWith(ctx, b, id, k, files, contents, stdout, stderr, true)
	}
	return err
}

// putWith stores a task's result through a store session, writable or not.
// contents[i], when not nil, is what files[i]'s digest was computed from.
func (c *cacheLayer) putWith(ctx context.Context, b *builder, id int, k *keyed, files []hashing.FileEntry, contents [][]byte, stdout, stderr *capture, write bool) error {
	t := c.plan.Tasks[id]
	r := b.records[id]
	st, err := c.sess.acquire(ctx, write)
	if err != nil {
		return err
	}
	defer c.sess.release()
	a := &cas.ActionResult{Key: k.key, Task: t.Name}
	// Small contents go to the store with the action, in one write.
	var inline [][]byte
	limit := st.InlineLimit()
	for i, f := range files {
		of := cas.OutputFile{Path: f.Path, Mode: fs.FileMode(f.Mode).Perm(), Digest: f.Digest}
		abs := filepath.Join(c.plan.Workspace, filepath.FromSlash(f.Path))
		if f.Mode&hashing.ModeSymlink != 0 {
			target, err := os.Readlink(abs)
			if err != nil {
				return err
			}
			of.LinkTarget, of.Mode = target, fs.ModeSymlink|0o777
			a.Files = append(a.Files, of)
			continue
		}
		if i < len(contents) && contents[i] != nil && int64(len(contents[i])) <= limit {
			// The very bytes files[i]'s digest was computed from: stored
			// with the action (which checks that they hash to a blob it
			// names).
			inline = append(inline, contents[i])
			of.Size = int64(len(contents[i]))
		} else {
			ref, err := st.PutFile(ctx, abs)
			if err != nil {
				return err
			}
			if ref.Digest != f.Digest {
				return fmt.Errorf("output %s changed while it was stored", f.Path)
			}
			of.Size = ref.Size
		}
		a.Files = append(a.Files, of)
	}
	for _, cp := range []struct {
		c   *capture
		ref *cas.BlobRef
	}{{stdout, &a.Stdout}, {stderr, &a.Stderr}} {
		if data, ok := cp.c.small(); ok && int64(len(data)) <= limit {
			*cp.ref = cas.BlobRef{Digest: [32]byte(cp.c.digest()), Size: int64(len(data))}
			inline = append(inline, data)
		} else if *cp.ref, err = putCapture(ctx, st, cp.c); err != nil {
			return err
		}
	}
	a.Preimage = k.pre().AppendJSON(nil)
	snap := r.Snapshot()
	if n := len(snap.Attempts); n > 0 {
		a.Duration = snap.Attempts[n-1].Finished.Sub(snap.Attempts[n-1].Started)
	}
	return st.PutActionInline(ctx, a, inline)
}

func (c *cacheLayer) finish() error {
	if !c.opts.on() {
		return nil
	}
	var errs []error
	if c.memoVal != nil {
		if err := c.memo().SaveIfWorthwhile(); err != nil {
			errs = append(errs, fmt.Errorf("stat memo: %w", err))
		}
	}
	if err := c.sess.close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// fileEntryOf converts a stored output file to the hashing form used in
// manifests: permission bits, or ModeSymlink with the digest of the target.
func fileEntryOf(f cas.OutputFile) hashing.FileEntry {
	if f.LinkTarget != "" || f.Mode&fs.ModeSymlink != 0 {
		return hashing.FileEntry{Path: f.Path, Mode: hashing.ModeSymlink, Digest: hashing.DigestBytes([]byte(f.LinkTarget))}
	}
	return hashing.FileEntry{Path: f.Path, Mode: uint32(f.Mode.Perm()), Digest: hashing.Digest(f.Digest)}
}

// putCapture stores a captured stream; an empty one needs no blob.
func putCapture(ctx context.Context, st *cas.Store, c *capture) (cas.BlobRef, error) {
	if c.size() == 0 {
		return cas.EmptyBlob, nil
	}
	rc, err := c.open()
	if err != nil {
		return cas.BlobRef{}, err
	}
	defer rc.Close()
	d := c.digest()
	if err := st.PutBlob(ctx, d, c.size(), rc); err != nil {
		return cas.BlobRef{}, err
	}
	return cas.BlobRef{Digest: d, Size: c.size()}, nil
}
