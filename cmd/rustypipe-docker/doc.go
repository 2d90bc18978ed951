// Command rustypipe-docker is rustypipe's Docker backend: a helper that
// rustypipe starts for a backend of `type: docker` and speaks to over its
// stdin and stdout with the external-backend protocol (package
// exec/external). It keeps the Docker Engine API client out of the
// rustypipe binary, whose every invocation would otherwise pay for
// initializing it.
//
// The hello's config is the backend's options from the pipeline, which
// rustypipe has already checked (package remote/docker/dockerconfig) and
// sends in their parsed form; docker.HelperBackend decodes them again and
// refuses a bad one with a message that names the key. The helper answers
// identity requests ("docker sha256:<image ID>", as the backend states it
// in process), so cache keys do not depend on where the backend runs. The
// containers belong to the rustypipe process that started the helper (its
// parent), so that a later run removes the containers of a rustypipe that
// was killed; they also name the helper, so that the containers of a
// helper that died are removed by the next one. Log messages go to
// stderr, which rustypipe shows. SIGINT and SIGTERM stop the runs in
// flight (each container stopped with its grace period and removed)
// before the helper exits; so does the end of stdin, when rustypipe is
// gone.
package main
