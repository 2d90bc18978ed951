// Command rustypipe-kube is rustypipe's Kubernetes backend: a helper that
// rustypipe starts for a backend of `type: kubernetes` and speaks to over
// its stdin and stdout with the external-backend protocol (package
// exec/external). It keeps client-go out of the rustypipe binary.
//
// The hello's config is the backend's options from the pipeline, decoded
// by kube.ParseConfig; a bad one is refused with a message that names the
// key. The pods belong to the rustypipe process that started the helper
// (its parent), unless the config names an owner, so that a later run
// deletes the pods of a rustypipe that was killed. Log messages go to
// stderr, which rustypipe shows. SIGINT and SIGTERM stop the runs in
// flight (each pod deleted with its grace period) before the helper exits;
// so does the end of stdin, when rustypipe is gone.
package main
