// Package pipeline is the YAML model of a rustypipe pipeline: Load and Parse
// decode a pipeline file, validate it, and report every problem with its
// file:line:col; ParseTemplate and Render interpolate task commands safely.
//
// # Format
//
// The original Rustypipe format works unchanged:
//
//	name: site
//	concurrency: 4          # parallel tasks; 0 or absent: the CLI decides
//	stop_on_fail: true
//	tasks:
//	  - name: build
//	    run: make
//	    depends_on: [gen]   # a list, or a single name
//	    retries: 2          # extra attempts: the same as retry: {attempts: 3}
//	    timeout: 30         # seconds, or "90s", "1m30s", "2h", "1d"
//	    backend: local      # "local" or a name under backends
//	    cache_key: v2       # a salt mixed into the task's cache key
//	    continue_on_fail: true
//
// Additions, all optional: description; env and vars (a mapping of names to
// strings, numbers or booleans, kept as written) at pipeline and task level,
// task entries winning; shell (sh, bash, pwsh, powershell, cmd) and dir
// (relative to the pipeline file's directory, never leaving it) at both
// levels; task inputs and outputs (glob lists, or a single glob; outputs
// never leave the workspace); task image; backends (name: {type: local |
// docker | ssh | kubernetes | external, other keys free-form, kept in
// Options}); and a task retry block (attempts, delay, backoff, max_delay,
// on_exit_codes) instead of retries. YAML anchors, aliases and merge keys
// ("<<: *defaults") work; keys starting with "x-" are ignored at pipeline
// and task level, to hold anchors ("x-defaults: &defaults ...").
//
// # Templates
//
// A task's run may contain {{ TASK.output }} (an upstream task's trimmed
// stdout), {{ vars.NAME }} and {{ env.NAME }}. By default a value reaches the
// shell as data, through an environment variable (see Template.Render);
// {{ x | raw }} splices it as code and is unsafe for untrusted values. A
// "{{" not followed by a name, such as docker's "{{.State}}", is literal, as
// is "\{{". Task names "env" and "vars" are reserved.
//
// # Invariants
//
//   - A *Pipeline returned by Load or Parse is fully validated except for
//     dependency cycles, which the dag package detects (the closure checks
//     here terminate on cyclic input): every task has a valid, unique name
//     and a non-empty run; every dependency names another task, once; every
//     backend is "local" or defined, with a known type; every shell is
//     known; every template parses, references a defined variable or a task
//     upstream of it (transitively), and every placeholder can be placed
//     safely in the task's shell (the dry render uses the platform default
//     shell when none is set).
//   - On failure the error is an Errors: every problem found, sorted by
//     position, each a *DecodeError naming file:line:col, the task and the
//     key. Unknown keys and names come with a did-you-mean suggestion.
//   - Files over MaxFileSize are refused before parsing (ErrTooLarge), and
//     an alias bomb fails within yaml.v3's aliasing limits.
//   - When a task gives retries: N, Retry is {Attempts: N+1, Backoff: 2};
//     when it gives a retry block, Retries is Attempts-1. Retry is nil when
//     neither is given.
//   - Loaded values are never modified afterwards; a Pipeline and its Tasks
//     are safe for concurrent reads.
package pipeline
