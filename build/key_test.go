package build

import (
	"reflect"
	"testing"

	"github.com/rustypipe/rustypipe/pipeline"
)

// taskKeyFields lists every field of pipeline.Task that changes a task's
// key, and how it gets there (see computeKey and hashing/doc.go).
var taskKeyFields = map[string]string{
	"Run":       "the rendered command",
	"Shell":     "the shell record",
	"Dir":       "the working-directory record",
	"Env":       "declared env records",
	"Vars":      "through the rendered command and template values",
	"Inputs":    "one record per input file: path, mode, content digest",
	"Outputs":   "the declared output paths",
	"DependsOn": "each dependency's output manifest digest (content, not key)",
	"CacheKey":  "the salt record",
	"Image":     "the backend's environment identity (image digest, not tag)",
	"Backend":   "the backend's environment identity, not its name",
}

// taskExcludedFields lists the fields that deliberately stay out of the key.
var taskExcludedFields = map[string]string{
	"Name":           "renaming a task does not change what it computes; the name is kept only for explain",
	"Retries":        "how often to try does not change the result of a successful attempt",
	"Retry":          "as Retries",
	"Timeout":        "a timed-out attempt is never stored, so the limit cannot change a stored result",
	"ContinueOnFail": "affects scheduling of dependents, not this task's result",
	"Description":    "documentation only",
	"Pos":            "where the task stands in the file",
}

// TestEveryTaskFieldIsKeyedOrExcluded fails when a field is added to
// pipeline.Task without deciding whether it belongs in the key.
func TestEveryTaskFieldIsKeyedOrExcluded(t *testing.T) {
	typ := reflect.TypeOf(pipeline.Task{})
	seen := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		name := typ.Field(i).Name
		seen[name] = true
		_, in := taskKeyFields[name]
		_, out := taskExcludedFields[name]
		switch {
		case in && out:
			t.Errorf("pipeline.Task.%s is listed both as hashed and as excluded", name)
		case !in && !out:
			t.Errorf("pipeline.Task.%s is neither hashed nor excluded: decide, add it to computeKey or to taskExcludedFields with a reason, and bump the key version if the recipe changes", name)
		}
	}
	for name := range taskKeyFields {
		if !seen[name] {
			t.Errorf("taskKeyFields names %s, which pipeline.Task no longer has", name)
		}
	}
	for name := range taskExcludedFields {
		if !seen[name] {
			t.Errorf("taskExcludedFields names %s, which pipeline.Task no longer has", name)
		}
	}
}
