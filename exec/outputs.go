package exec

import "github.com/bmatcuk/doublestar/v4"

// OutputMatcher returns a function that reports whether a workspace-relative
// "/"-separated path matches one of the declared output globs. Remote
// backends use it as ExtractTar's allow function, so that only declared
// outputs come back.
func OutputMatcher(patterns []string) func(rel string) bool {
	return func(rel string) bool {
		for _, p := range patterns {
			if ok, _ := doublestar.Match(p, rel); ok {
				return true
			}
		}
		return false
	}
}
