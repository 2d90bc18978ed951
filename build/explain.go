package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rustypipe/rustypipe/cas"
	"github.com/rustypipe/rustypipe/hashing"
)

// Prediction is what a build would do with a task, found without running
// anything: "up-to-date", "hit", "miss", or "unknown" when an upstream task
// would run, so the task's key cannot be known yet.
type Prediction struct {
	Task   string `json:"task"`
	Status string `json:"status"`
	Key    string `json:"key,omitempty"`
	Reason string `json:"reason,omitempty"`
	keyed  *keyed
}

// predict decides the fate of task id, given predictions of its upstream
// tasks (made first, in dependency order). Known outputs are recorded in
// b.outputs so that dependents can render and key.
func (c *cacheLayer) predictTask(ctx context.Context, b *builder, id int) *Prediction {
	t := c.plan.Tasks[id]
	p := &Prediction{Task: t.Name}
	if !c.opts.on() {
		p.Status = "miss"
		p.Reason = "cache off"
		return p
	}
	for _, dn := range t.DependsOn {
		if did, ok := c.plan.Graph.ID(dn); ok && b.output(did) == nil {
			p.Status, p.Reason = "unknown", fmt.Sprintf("upstream %q will run first", dn)
			return p
		}
	}
	script, refEnv, err := b.render(id)
	if err != nil {
		p.Status, p.Reason = "unknown", err.Error()
		return p
	}
	k, ok, err := c.computeKey(ctx, b, id, script, refEnv)
	if err != nil || !ok {
		p.Status, p.Reason = "unknown", fmt.Sprint(err)
		return p
	}
	p.keyed, p.Key = k, k.key.String()
	if e := c.upToDate(t.Name, k.key); e != nil {
		p.Status = "up-to-date"
		b.setOutput(id, &taskOutput{text: strings.TrimSpace(string(e.Stdout)), read: true, meta: &outputMeta{manifest: e.Manifest}})
		return p
	}
	st, err := c.sess.acquire(ctx, false)
	if err != nil {
		p.Status = "miss"
		if !errors.Is(err, errNoCache) {
			p.Reason = err.Error()
		}
		return p
	}
	defer c.sess.release()
	a, err := st.GetAction(ctx, k.key)
	if err != nil {
		p.Status = "miss"
		if !errors.Is(err, cas.ErrNotFound) {
			p.Reason = err.Error()
		}
		return p
	}
	p.Status = "hit"
	files := make([]hashing.FileEntry, len(a.Files))
	for i, f := range a.Files {
		files[i] = fileEntryOf(f)
	}
	m := hashing.Manifest{Stdout: hashing.Digest(a.Stdout.Digest), Files: files}
	out := &taskOutput{read: true, meta: &outputMeta{manifest: m.Digest()}}
	if a.Stdout.Size > 0 && a.Stdout.Size <= maxOutputRef {
		if rc, _, err := st.OpenBlob(ctx, a.Stdout.Digest); err == nil {
			data, err := io.ReadAll(rc)
			rc.Close()
			if err == nil {
				out.text = strings.TrimSpace(string(data))
			}
		}
	}
	b.setOutput(id, out)
	return p
}

func (c *cacheLayer) predict(ctx context.Context, b *builder, id int) string {
	if !c.opts.on() {
		return ""
	}
	p := c.predictTask(ctx, b, id)
	if p.Reason != "" && p.Status != "miss" {
		return p.Status + " (" + p.Reason + ")"
	}
	return p.Status
}

// Explanation says whether a task would hit and, for a miss, which records
// of its key changed since the last cached run of that task.
type Explanation struct {
	Prediction
	Upstream []*Prediction    `json:"upstream,omitempty"`
	Previous string           `json:"previous_key,omitempty"`
	PrevWhen time.Time        `json:"previous_created,omitzero"`
	Changes  []hashing.Change `json:"changes,omitempty"`
	Records  []hashing.Record `json:"records,omitempty"`
	Notes    []string         `json:"notes,omitempty"`
	preimage *hashing.Preimage
}

// Explain predicts task and its upstream tasks, and for a miss diffs its key
// preimage against the one stored with the most recent cached result of the
// same task.
func Explain(ctx context.Context, pl *Plan, o Options, task string) (*Explanation, error) {
	id, ok := pl.Graph.ID(task)
	if !ok {
		return nil, &UsageError{Err: fmt.Errorf("no task %q in %s", task, pl.Pipeline.File)}
	}
	if o.Reporter == nil {
		o.Reporter = NewConsole(ConsoleOptions{Out: io.Discard})
	}
	o.state = loadState(pl.Workspace)
	b := &builder{plan: pl, opts: o, records: make([]*TaskRecord, len(pl.Tasks)), outputs: make([]*taskOutput, len(pl.Tasks))}
	for i, t := range pl.Tasks {
		b.records[i] = &TaskRecord{Name: t.Name, file: safeName(t.Name)}
	}
	b.cache = newCacheLayer(pl, o)
	defer b.cache.sess.close()
	ex := &Explanation{}
	for _, up := range pl.Graph.Order(nil) {
		p := b.cache.predictTask(ctx, b, up)
		if up == id {
			ex.Prediction = *p
			break
		}
		ex.Upstream = append(ex.Upstream, p)
	}
	if ex.keyed != nil {
		ex.Records = ex.keyed.pre().Records
	}
	for _, r := range ex.Records {
		if r.Label == hashing.LabelEnvIdentity && strings.HasPrefix(r.Value, "kubernetes ") && !hasDigest(r.Value) {
			ex.Notes = append(ex.Notes, "the image is named by tag, not digest: pin it as image@sha256:... so that the key cannot change under you")
		}
	}
	if ex.Status != "miss" || ex.keyed == nil {
		return ex, nil
	}
	prev, when, key, err := b.cache.previousPreimage(ctx, task)
	if err != nil {
		ex.Notes = append(ex.Notes, err.Error())
		return ex, nil
	}
	if prev == nil {
		ex.Notes = append(ex.Notes, "no earlier cached result of this task to compare with")
		return ex, nil
	}
	ex.Previous, ex.PrevWhen = key.String(), when
	ex.Changes = hashing.DiffPreimages(prev, ex.keyed.pre())
	return ex, nil
}

func hasDigest(s string) bool {
	for i := 0; i+7 <= len(s); i++ {
		if s[i:i+7] == "sha256:" {
			return true
		}
	}
	return false
}

// previousPreimage finds the key preimage of the last cached result of a
// task: the one the workspace state points at, else the newest in the store.
func (c *cacheLayer) previousPreimage(ctx context.Context, task string) (*hashing.Preimage, time.Time, hashing.Key, error) {
	st, err := c.sess.acquire(ctx, false)
	if errors.Is(err, errNoCache) {
		return nil, time.Time{}, hashing.Key{}, nil
	}
	if err != nil {
		return nil, time.Time{}, hashing.Key{}, err
	}
	defer c.sess.release()
	var best *cas.ActionResult
	if e := c.state.get(task); e != nil {
		if a, err := st.GetAction(ctx, e.Key); err == nil {
			best = a
		}
	}
	if best == nil {
		err = st.List(ctx, func(a *cas.ActionResult) error {
			if a.Task == task && (best == nil || a.CreatedAt.After(best.CreatedAt)) {
				best = a
			}
			return nil
		})
		if err != nil {
			return nil, time.Time{}, hashing.Key{}, err
		}
	}
	if best == nil {
		return nil, time.Time{}, hashing.Key{}, nil
	}
	var p hashing.Preimage
	if err := json.Unmarshal(best.Preimage, &p); err != nil {
		return nil, time.Time{}, hashing.Key{}, fmt.Errorf("stored preimage of %s: %w", task, err)
	}
	return &p, best.CreatedAt, hashing.Key(best.Key), nil
}
