package build

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zeebo/blake3"

	"github.com/rustypipe/rustypipe/hashing"
	"github.com/rustypipe/rustypipe/internal/atomicfile"
	"github.com/rustypipe/rustypipe/internal/binread"
	"github.com/rustypipe/rustypipe/pipeline"
)

// The no-op record, .rustypipe/noop, lets a build in which nothing changed
// finish without loading the pipeline, the workspace state or the stat memo
// and without computing a single key: the dominant case in a dev loop, and
// where rustypipe competes with make and ninja.
//
// A task is vouched for when it was up to date, with the stat data of
// every input and output file what the stat memo trusted for the digests
// that went into its key, and older than the racy window. A build writes
// the record when every task runs on the local backend and every task is
// vouched for. It records the rustypipe binary, the pipeline file's
// digest, the targets, the values of the process environment variables the
// commands refer to, every task's name and key, and the stat data (size,
// mtime, ctime, inode, device, mode) of every file, or that a literal
// input was absent or a directory. For glob inputs it also records every
// path the expansion looked at: the directories it listed (adding,
// removing or renaming an entry changes a directory's mtime and ctime) and
// the paths it found missing; a symlink among them keeps the task from
// being vouched for.
//
// A build that had no usable record writes one too when it vouched for
// some tasks but not all (a task ran, or its files are too new): the
// others are listed without files. In a dev loop of edits, where no build
// finds nothing to do, the next builds still take the vouched tasks from
// it instead of computing every key.
//
// TryNoop accepts the record only if all of that is unchanged and it
// vouches for every task: then every task's key and outputs are what the
// record's build found up to date, and the build is reported as that many
// up-to-date tasks. Any difference, a damaged record or a check that
// cannot be made sends the caller to the normal build, which writes a new
// record if it qualifies. Until then the record stays: it still tells
// which tasks' files are unchanged since it was written, and a task counts
// as up to date by it (NoopPartial) only when it is vouched for, its own
// files and all its upstream tasks are unchanged, and the workspace state
// still holds its recorded key. A stale record can never match in full: a
// task that ran since rewrote its outputs, which changes their inode or
// change time.

// noopName is the record's file name in .rustypipe.
const noopName = "noop"

// noopMagic starts the record; a checksum of everything before it ends it.
// Its number is the format's version.
const (
	noopMagic       = "rustypipe noop 3\n"
	noopMagicPrefix = "rustypipe noop "
)

// File kinds in the record.
const (
	noopAbsent byte = iota // a literal input that did not exist
	noopDir                // a literal input that was a directory (it matches nothing)
	noopFile               // a regular file, with its Stat
)

type noopRecord struct {
	stamp, file, targets string
	pipeline             hashing.Digest
	env                  []noopEnv
	tasks                []noopTask
	files                []noopFileRec

	hexOnce sync.Once
	hexKeys string // every task's key in hex, in order (keyString)
}

type noopEnv struct {
	name, value string
	set         bool
}

type noopTask struct {
	name, file string
	key        hashing.Key
	vouched    bool // up to date with its files below; else it has none and takes the key path
	nfiles     int  // this task's entries in files, which follow the previous task's
	first      int  // the index of its first entry in files (not encoded)
	index      int  // its index in the record's tasks (not encoded)
}

// keyString returns t's key in hex, as TaskRecord.Key holds it, cut from
// one string made for all the record's keys at the first call: a build
// that takes a thousand tasks as up to date by the record reports all
// their keys, and a string each was a tenth of its bookkeeping.
func (r *noopRecord) keyString(t *noopTask) string {
	r.hexOnce.Do(func() {
		b := make([]byte, 0, len(r.tasks)*2*len(hashing.Key{}))
		for i := range r.tasks {
			b = hex.AppendEncode(b, r.tasks[i].key[:])
		}
		r.hexKeys = string(b)
	})
	n := 2 * len(hashing.Key{})
	if t.index < 0 || (t.index+1)*n > len(r.hexKeys) || &r.tasks[t.index] != t {
		return t.key.String() // not one of the record's own tasks
	}
	return r.hexKeys[t.index*n : (t.index+1)*n]
}

type noopFileRec struct {
	path string
	kind byte
	st   hashing.Stat
}

func noopPath(workspace string) string {
	return filepath.Join(workspace, ".rustypipe", noopName)
}

func (r *noopRecord) encode() []byte {
	b := make([]byte, 0, 128+len(r.tasks)*(48+hashing.Size)+len(r.files)*80)
	b = append(b, noopMagic...)
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	num := func(v uint64) { b = binary.AppendUvarint(b, v) }
	str(r.stamp)
	str(r.file)
	str(r.targets)
	b = append(b, r.pipeline[:]...)
	num(uint64(len(r.env)))
	for _, e := range r.env {
		str(e.name)
		str(e.value)
		b = append(b, boolByte(e.set))
	}
	num(uint64(len(r.tasks)))
	for _, t := range r.tasks {
		str(t.name)
		str(t.file)
		b = append(b, t.key[:]...)
		b = append(b, boolByte(t.vouched))
		num(uint64(t.nfiles))
	}
	num(uint64(len(r.files)))
	for _, f := range r.files {
		str(f.path)
		b = append(b, f.kind)
		if f.kind == noopFile {
			b = binary.AppendVarint(b, f.st.Size)
			b = binary.AppendVarint(b, f.st.MtimeNs)
			b = binary.AppendVarint(b, f.st.CtimeNs)
			num(f.st.Ino)
			num(f.st.Dev)
			num(uint64(f.st.Mode))
		}
	}
	sum := blake3.Sum256(b)
	return append(b, sum[:]...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

var (
	errNoopRecord  = errors.New("damaged no-op record")
	errNoopVersion = errors.New("written by another version of rustypipe")
)

func decodeNoop(data []byte) (*noopRecord, error) {
	if !bytes.HasPrefix(data, []byte(noopMagic)) && bytes.HasPrefix(data, []byte(noopMagicPrefix)) {
		return nil, errNoopVersion
	}
	if len(data) < len(noopMagic)+32 || !bytes.HasPrefix(data, []byte(noopMagic)) {
		return nil, errNoopRecord
	}
	body, sum := data[:len(data)-32], data[len(data)-32:]
	if blake3.Sum256(body) != [32]byte(sum) {
		return nil, errNoopRecord
	}
	rd := binread.New(body[len(noopMagic):])
	str, num, snum, fixed, count := rd.Str, rd.Uvarint, rd.Varint, rd.Bytes, rd.Count
	r := &noopRecord{stamp: str(), file: str(), targets: str()}
	r.pipeline = hashing.Digest(fixed(hashing.Size))
	r.env = make([]noopEnv, count())
	for i := range r.env {
		r.env[i] = noopEnv{name: str(), value: str(), set: fixed(1)[0] == 1}
	}
	r.tasks = make([]noopTask, count())
	total := 0
	for i := range r.tasks {
		r.tasks[i] = noopTask{name: str(), file: str(), key: hashing.Key(fixed(hashing.Size)), vouched: fixed(1)[0] == 1}
		r.tasks[i].nfiles = count()
		if !r.tasks[i].vouched && r.tasks[i].nfiles != 0 {
			return nil, errNoopRecord
		}
		r.tasks[i].first = total
		r.tasks[i].index = i
		total += r.tasks[i].nfiles
	}
	r.files = make([]noopFileRec, count())
	if total != len(r.files) {
		return nil, errNoopRecord
	}
	for i := range r.files {
		f := &r.files[i]
		f.path = str()
		f.kind = fixed(1)[0]
		if f.kind == noopFile {
			f.st = hashing.Stat{Size: snum(), MtimeNs: snum(), CtimeNs: snum(), Ino: num(), Dev: num(), Mode: uint32(num())}
		}
	}
	if !rd.Done() {
		return nil, errNoopRecord
	}
	return r, nil
}

// NoopOptions are what TryNoop needs to know about the build asked for.
type NoopOptions struct {
	File      string   // the pipeline file, as given
	Workspace string   // the absolute directory of File
	Targets   []string // the tasks asked for; empty means all
	Stamp     string   // identifies the rustypipe binary (keys may change with it)
	Env       []string // the process environment
	Now       func() time.Time
	// Reporter makes the reporter once the number of tasks is known.
	Reporter func(tasks int) (Reporter, error)
	// Debug, if set, is told why the record was not used, or that it was
	// (RUSTYPIPE_DEBUG=noop).
	Debug func(msg string)
}

// NoopPartial is what TryNoop learnt when some recorded files changed: Run
// takes every task whose own files are unchanged, and whose upstream tasks
// are all such tasks, as up to date without computing its key.
type NoopPartial struct {
	rec   *noopRecord
	check *fileCheck // which entries of rec.files are unchanged
	src   []byte     // the pipeline file, which matched the record

	byNameOnce sync.Once
	byName     map[string]int // index of rec.tasks, built if task needs it
}

// Source returns the pipeline file's content as read for the record's
// check, which matched the record: the caller may parse it rather than
// read the file again. nil when p is nil.
func (p *NoopPartial) Source() []byte {
	if p == nil {
		return nil
	}
	return p.src
}

// TryNoop finishes the build at once when the no-op record shows that
// nothing changed since a build in which every task was up to date (see
// above). ok is false when it cannot tell; the caller then runs the build
// normally, passing partial (which may be nil) in Options.Noop. The caller
// must not call it for a dry run, with --force, with key debugging, or with
// a cache mode that does not read.
func TryNoop(o NoopOptions) (sum *Summary, ok bool, partial *NoopPartial, err error) {
	debug := o.Debug
	if debug == nil {
		debug = func(string) {}
	}
	rec, src, files, why := checkNoop(o)
	if why != "" {
		debug("no-op record not used: " + why)
		if rec != nil {
			partial = &NoopPartial{rec: rec, check: files, src: src}
		}
		return nil, false, partial, nil
	}
	debug("no-op record used: nothing changed")

	if o.Now == nil {
		o.Now = time.Now
	}
	rep, err := o.Reporter(len(rec.tasks))
	if err != nil {
		return nil, false, nil, err
	}
	now := o.Now()
	runID := NewRunID(now)
	dir, err := makeRunDir(o.Workspace, src, rec.pipeline, runID)
	if err != nil {
		return nil, false, nil, err
	}
	sum = &Summary{RunID: runID, Dir: dir.dir, Started: now, Status: "succeeded"}
	records := make([]TaskRecord, len(rec.tasks))
	sum.Tasks = make([]*TaskRecord, len(rec.tasks))
	rep.RunStarted(sum, len(rec.tasks))
	for i, t := range rec.tasks {
		r := &records[i]
		*r = TaskRecord{Name: t.name, Backend: "local", Status: StatusUpToDate, Started: now, Finished: now,
			Key: rec.keyString(&rec.tasks[i]), Cache: "up-to-date", file: t.file}
		sum.Tasks[i] = r
		rep.TaskFinished(r)
	}
	sum.Finished = o.Now()
	sum.Counts = map[Status]int{StatusUpToDate: len(rec.tasks)}
	if err := dir.writeRun(sum); err != nil {
		rep.Warn(err.Error())
	}
	rep.RunFinished(sum)
	return sum, true, nil, nil
}

// checkNoop returns the record and the pipeline file's content when the
// record shows that nothing changed, else why not. When only files
// changed, it returns the record and which files are unchanged too.
func checkNoop(o NoopOptions) (rec *noopRecord, src []byte, files *fileCheck, why string) {
	data, err := os.ReadFile(noopPath(o.Workspace))
	if err != nil {
		return nil, nil, nil, "none (the last build ran or restored a task, or did not qualify)"
	}
	rec, err = decodeNoop(data)
	if err != nil {
		return nil, nil, nil, err.Error()
	}
	if why := rec.mismatch(o.Stamp, o.File, o.Targets); why != "" {
		return nil, nil, nil, why
	}
	src, err = os.ReadFile(o.File)
	if err != nil || hashing.DigestBytes(src) != rec.pipeline {
		return nil, nil, nil, "the pipeline file changed"
	}
	for _, e := range rec.env {
		if v, set := lookupEnv(o.Env, e.name); v != e.value || set != e.set {
			return nil, nil, nil, "environment variable " + e.name + " changed"
		}
	}
	files, same := checkFiles(o.Workspace, rec.files)
	if !same {
		return rec, src, files, "an input or output file changed"
	}
	for _, t := range rec.tasks {
		if !t.vouched {
			return rec, src, files, "task " + t.name + " ran, or its files were too new, when it was written"
		}
	}
	return rec, src, files, ""
}

// fileCheck is the stat check of a record's files (checkFiles).
type fileCheck struct {
	out    []bool          // per file: unchanged; a chunk's part is complete once its channel is closed
	chunks []chan struct{} // per chunk of fileCheckChunk files: closed once the chunk was checked
	done   chan struct{}   // closed when every file was checked

	mu      sync.Mutex
	changed []int // files found changed so far
}

// changedSoFar returns the files found changed so far, without waiting.
func (c *fileCheck) changedSoFar() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.changed)
}

// changedWithin reports whether a file in [lo, hi) was found changed so
// far, without waiting.
func (c *fileCheck) changedWithin(lo, hi int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.changed, func(f int) bool { return f >= lo && f < hi })
}

// unchanged waits until files [lo, hi) have been checked, and only those,
// and reports whether all of them are unchanged.
func (c *fileCheck) unchanged(lo, hi int) bool {
	for k := lo / fileCheckChunk; k*fileCheckChunk < hi; k++ {
		<-c.chunks[k]
	}
	return !slices.Contains(c.out[lo:hi], false)
}

// fileCheckChunk is how many files a checking goroutine takes at a time.
const fileCheckChunk = 64

// checkFiles stats every recorded file, on two goroutines, and reports
// whether all are unchanged. When one has changed, it returns as soon as it
// knows, and the rest of the check goes on in the background on one
// goroutine: the caller then has a build to prepare (load the pipeline),
// which the remaining stats overlap. unchanged waits for the files it asks
// about, so that the build settles each clean task as soon as its own
// files are checked rather than after the last file.
func checkFiles(workspace string, files []noopFileRec) (c *fileCheck, allUnchanged bool) {
	c = &fileCheck{out: make([]bool, len(files)), done: make(chan struct{}),
		chunks: make([]chan struct{}, (len(files)+fileCheckChunk-1)/fileCheckChunk)}
	for k := range c.chunks {
		c.chunks[k] = make(chan struct{})
	}
	sr, err := hashing.OpenStatRoot(workspace)
	if err != nil {
		for _, ch := range c.chunks {
			close(ch)
		}
		close(c.done)
		return c, false // all changed, as far as anyone can tell
	}
	var (
		next    atomic.Int64 // first file of the next chunk to take
		changed atomic.Bool
	)
	check := func(stopOnChange bool) {
		for !stopOnChange || !changed.Load() {
			lo := int(next.Add(fileCheckChunk)) - fileCheckChunk
			if lo >= len(files) {
				return
			}
			for i := lo; i < min(lo+fileCheckChunk, len(files)); i++ {
				f := files[i]
				st, exists, err := sr.Lstat(f.path)
				ok := false
				switch {
				case err != nil:
				case f.kind == noopAbsent:
					ok = !exists
				case f.kind == noopDir:
					ok = exists && os.FileMode(st.Mode).IsDir()
				default:
					ok = exists && st == f.st
				}
				c.out[i] = ok
				if !ok {
					c.mu.Lock()
					c.changed = append(c.changed, i)
					c.mu.Unlock()
					changed.Store(true)
				}
			}
			close(c.chunks[lo/fileCheckChunk])
		}
	}
	// The directory is closed by whichever goroutine finishes last.
	var running atomic.Int32
	running.Store(2)
	finished := func() {
		if running.Add(-1) == 0 {
			sr.Close()
		}
	}
	go func() {
		defer close(c.done)
		defer finished()
		check(false)
	}()
	check(true)
	finished()
	if changed.Load() {
		return c, false
	}
	<-c.done // the other goroutine's last chunk
	return c, !changed.Load()
}

// usable reports whether p describes this build: the same binary,
// pipeline file (as this build read it, src) and targets.
func (p *NoopPartial) usable(pl *Plan, o Options, src []byte) bool {
	if p == nil || p.rec.mismatch(o.NoopStamp, pl.Pipeline.File, o.Targets) != "" {
		return false
	}
	// The bytes checkNoop read and checked against the record are usually
	// the ones the pipeline was parsed from (Source): no need to hash them
	// again.
	checked := len(src) > 0 && len(src) == len(p.src) && &src[0] == &p.src[0]
	return checked || hashing.DigestBytes(src) == p.rec.pipeline
}

// task returns the record's entry for the plan's task id. The record lists
// the tasks in the plan's order (the targets match, as usable checked); a
// map by name is the fallback.
func (p *NoopPartial) task(id int, name string) *noopTask {
	if id < len(p.rec.tasks) && p.rec.tasks[id].name == name {
		return &p.rec.tasks[id]
	}
	p.byNameOnce.Do(func() {
		p.byName = make(map[string]int, len(p.rec.tasks))
		for i, t := range p.rec.tasks {
			p.byName[t.name] = i
		}
	})
	if i, ok := p.byName[name]; ok {
		return &p.rec.tasks[i]
	}
	return nil
}

// unchangedTask reports whether every recorded file of t is unchanged. A
// task with a file already found changed is answered at once: in a build
// after an edit, the edited task starts while the rest of the stat check
// goes on. Otherwise it waits for the check of t's own files.
func (p *NoopPartial) unchangedTask(t *noopTask) bool {
	if p.check.changedWithin(t.first, t.first+t.nfiles) {
		return false
	}
	return p.check.unchanged(t.first, t.first+t.nfiles)
}

// changedTasks returns the plan's task ids that own a file the stat check
// has found changed so far, without waiting for it to finish.
func (p *NoopPartial) changedTasks(pl *Plan) []int {
	var ids []int
	for _, f := range p.check.changedSoFar() {
		// Tasks list their files in order: the owner is the last task
		// whose files start at or before f.
		i := sort.Search(len(p.rec.tasks), func(i int) bool { return p.rec.tasks[i].first > f }) - 1
		if i < 0 || f >= p.rec.tasks[i].first+p.rec.tasks[i].nfiles {
			continue
		}
		if id, ok := pl.Graph.ID(p.rec.tasks[i].name); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// files returns a clean task's recorded files.
func (p *NoopPartial) files(t *noopTask) []noopFileRec {
	return p.rec.files[t.first : t.first+t.nfiles]
}

// mismatch says why r does not describe a build of the pipeline file with
// targets by the rustypipe binary stamp, or "" when it does.
func (r *noopRecord) mismatch(stamp, file string, targets []string) string {
	switch {
	case r.stamp != stamp:
		return "written by another rustypipe binary"
	case r.file != file:
		return "written for another pipeline file"
	case r.targets != targetsKey(targets):
		return "written for other targets"
	}
	return ""
}

func targetsKey(targets []string) string {
	t := slices.Clone(targets)
	slices.Sort(t)
	return strings.Join(slices.Compact(t), "\x00")
}

// trustworthy reports whether st can stand for the file's content in the
// record: old enough not to be racy, and with a change time (which no tool
// can set back) where the platform has one. Without change times (Windows)
// no record is written.
func trustworthy(st hashing.Stat, now time.Time) bool {
	return st.CtimeNs != 0 && st.Older(now)
}

// writeNoop writes the record after a build, if the build qualifies (see
// above); it returns without writing otherwise. A record that does not
// vouch for every task is written only when the build had no usable one:
// the one it had serves the next build as well.
func (b *builder) writeNoop(sum *Summary, src []byte) {
	o := b.opts
	c := b.cache
	if o.NoopStamp == "" || o.DryRun || sum.Status != "succeeded" || !c.opts.reads() || len(c.opts.Force) > 0 || c.opts.DebugKeys != nil || src == nil {
		return
	}
	// The check at the end, ahead of the walk over every task's files: a
	// task vouched for was up to date, so a build with no task up to date,
	// or with a usable record and a task that was not, writes nothing.
	if sum.Counts[StatusUpToDate] < len(b.plan.Tasks) && (b.partial != nil || sum.Counts[StatusUpToDate] == 0) {
		return
	}
	p := b.plan.Pipeline
	now := o.Now()
	rec := &noopRecord{stamp: o.NoopStamp, file: p.File, targets: targetsKey(o.Targets), pipeline: b.dir.srcDigest}
	envSeen := map[string]bool{}
	vouched := 0
	for id, t := range b.plan.Tasks {
		r := b.records[id]
		first := len(rec.files)
		if backendName(t) != "local" {
			return
		}
		if ct := b.cleanTask(id); ct != nil {
			// Up to date from the previous record, its files unchanged.
			rec.files = append(rec.files, b.opts.Noop.files(ct)...)
			rec.tasks = append(rec.tasks, noopTask{name: t.Name, file: r.file, key: ct.key, vouched: true, nfiles: len(rec.files) - first})
		} else if !b.addNoopTask(rec, id, now) {
			rec.files = rec.files[:first]
			rec.tasks = append(rec.tasks, noopTask{name: t.Name, file: r.file})
		}
		if rec.tasks[len(rec.tasks)-1].vouched {
			vouched++
		}
		tpl, err := pipeline.ParseTemplate(t.Run)
		if err != nil {
			return
		}
		for _, ref := range tpl.Refs() {
			if ref.Kind != "env" || envSeen[ref.Name] {
				continue
			}
			if _, ok := t.Env[ref.Name]; ok {
				continue
			}
			if _, ok := p.Env[ref.Name]; ok {
				continue
			}
			envSeen[ref.Name] = true
			v, set := lookupEnv(o.Env, ref.Name)
			rec.env = append(rec.env, noopEnv{name: ref.Name, value: v, set: set})
		}
	}
	if vouched == 0 || vouched < len(rec.tasks) && b.partial != nil {
		return
	}
	atomicfile.Write(noopPath(b.plan.Workspace), rec.encode(), 0o644)
}

// addNoopTask appends task id's entry and files to rec, confirming every
// file through the stat memo; false means the build does not qualify.
func (b *builder) addNoopTask(rec *noopRecord, id int, now time.Time) bool {
	c := b.cache
	t := b.plan.Tasks[id]
	r := b.records[id]
	k := c.tasks[id]
	e := c.state.get(t.Name)
	if r.Status != StatusUpToDate || k == nil || e == nil {
		return false
	}
	first := len(rec.files)
	ws := b.plan.Workspace
	// Every input file must be confirmed by the memo under the digest its
	// key used.
	inputs := map[string]hashing.Digest{}
	for _, in := range k.inputs {
		inputs[in.Path] = in.Digest
	}
	done := map[string]bool{}
	confirm := func(rel string) bool {
		if done[rel] {
			return true
		}
		d, ok := inputs[rel]
		if !ok {
			return false // the key did not use it
		}
		st, ok := c.memo().Confirm(ws, rel, d)
		if !ok || !trustworthy(st, now) {
			return false
		}
		rec.files = append(rec.files, noopFileRec{path: rel, kind: noopFile, st: st})
		done[rel] = true
		return true
	}
	var globs []string
	for _, pat := range t.Inputs {
		rel, literal := hashing.LiteralPath(pat)
		if !literal {
			globs = append(globs, pat) // an invalid one fails in addNoopGlobs
			continue
		}
		if _, ok := inputs[rel]; ok {
			if !confirm(rel) {
				return false
			}
			continue
		}
		st, exists, err := hashing.Lstat(filepath.Join(ws, filepath.FromSlash(rel)))
		switch {
		case err != nil:
			return false
		case !exists:
			rec.files = append(rec.files, noopFileRec{path: rel, kind: noopAbsent})
		case os.FileMode(st.Mode).IsDir():
			rec.files = append(rec.files, noopFileRec{path: rel, kind: noopDir})
		default:
			return false // a file the key did not use (in the state directory, say)
		}
	}
	if len(globs) > 0 && !b.addNoopGlobs(rec, globs, confirm, now) {
		return false
	}
	for rel := range inputs {
		if !done[rel] {
			return false
		}
	}
	for _, f := range e.Files {
		st, ok := c.memo().Confirm(ws, f.Path, f.Digest)
		if !ok || !trustworthy(st, now) {
			return false
		}
		rec.files = append(rec.files, noopFileRec{path: f.Path, kind: noopFile, st: st})
	}
	rec.tasks = append(rec.tasks, noopTask{name: t.Name, file: r.file, key: k.key, vouched: true, nfiles: len(rec.files) - first})
	return true
}

// upToDateByRecord returns task id's lookup result as up to date, without
// a key, when the partial no-op record shows it unchanged: its recorded
// files are unchanged, its upstream tasks were all up to date this way, and
// the workspace state still holds the recorded key. Otherwise it returns
// nil, and the task takes the normal path. Upstream tasks finish before
// their dependents start, so their entries in b.clean are final here.
func (b *builder) upToDateByRecord(id int) *lookupResult {
	p := b.partial
	if p == nil {
		return nil
	}
	t := b.plan.Tasks[id]
	ct := p.task(id, t.Name)
	if ct == nil || !ct.vouched {
		return nil
	}
	for _, dn := range t.DependsOn {
		if did, found := b.plan.Graph.ID(dn); !found || b.clean[did] == nil {
			return nil
		}
	}
	e := b.cache.state.get(t.Name)
	if e == nil || !e.HasOut || e.Key != ct.key || !p.unchangedTask(ct) {
		return nil
	}
	b.clean[id] = ct
	r := b.records[id]
	r.mu.Lock()
	r.Key, r.Cache = p.rec.keyString(ct), "up-to-date"
	r.mu.Unlock()
	return upToDateResult(e)
}

// cleanTask is the record's entry for task id when the record showed it up
// to date (upToDateByRecord), else nil.
func (b *builder) cleanTask(id int) *noopTask {
	if b.clean == nil {
		return nil
	}
	return b.clean[id]
}

// addNoopGlobs records what glob patterns depend on: every path the
// expansion looked at (a directory changes when an entry is added, removed
// or renamed in it; a missing one when it appears) and every file they
// match. The expansion runs again after the probes are taken and must give
// the same files, which must be the ones the key used, so that nothing
// changed between the two unseen.
func (b *builder) addNoopGlobs(rec *noopRecord, globs []string, confirm func(string) bool, now time.Time) bool {
	ws := b.plan.Workspace
	files, probes, ok, err := hashing.ExpandGlobsProbed(ws, globs)
	if err != nil || !ok {
		return false
	}
	again, err := hashing.ExpandGlobs(ws, globs)
	if err != nil || !slices.Equal(files, again) {
		return false
	}
	for _, p := range probes {
		if !p.Exists {
			rec.files = append(rec.files, noopFileRec{path: p.Path, kind: noopAbsent})
			continue
		}
		if !trustworthy(p.Stat, now) {
			return false
		}
		rec.files = append(rec.files, noopFileRec{path: p.Path, kind: noopFile, st: p.Stat})
	}
	for _, f := range files {
		if !confirm(f) {
			return false
		}
	}
	return true
}
