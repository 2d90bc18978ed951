// Package cmd is rustypipe's command line: cobra commands, viper settings
// (flags > RUSTYPIPE_* environment > config file > defaults), the choice of
// backends, signal handling and the single mapping of errors to exit codes.
// Nothing below cmd reads flags, environment or config files itself: cmd
// resolves them into plain structs.
package cmd
