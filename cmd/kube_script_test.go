//go:build linux

package cmd

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/rustypipe/rustypipe/remote/kube/kubetest"
)

func init() {
	scriptConds["kube"] = kubeAvailable
	scriptSetups = append(scriptSetups, func(env *testscript.Env) { env.Setenv("KUBECONFIG", testKubeconfig()) })
}

// kubeAvailable answers [kube]: a kubeconfig for the test cluster is at
// hand (KUBECONFIG, else $RP_K8S_DIR/kubeconfig as scripts/k8s/up.sh writes
// it). With RUSTYPIPE_TEST_KUBE=1 (CI) its absence is an error, not a skip.
func kubeAvailable() (bool, error) {
	err := apiServerAnswers(testKubeconfig())
	if err != nil && os.Getenv("RUSTYPIPE_TEST_KUBE") == "1" {
		return false, fmt.Errorf("RUSTYPIPE_TEST_KUBE=1 but the test cluster does not answer (bring it up with scripts/k8s/up.sh): %v", err)
	}
	return err == nil, nil
}

// testKubeconfig is the test cluster's kubeconfig, which scripts get as
// KUBECONFIG (rustypipe-kube, started by rustypipe, reads it).
func testKubeconfig() string { return kubetest.Kubeconfig() }

// apiServerAnswers checks that the kubeconfig exists and that its API server
// accepts a connection: a cluster taken down leaves its kubeconfig behind.
func apiServerAnswers(kubeconfig string) error {
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`server:\s*"?https?://([^\s/"]+)`).FindSubmatch(data)
	if m == nil {
		return fmt.Errorf("%s names no server", kubeconfig)
	}
	conn, err := net.DialTimeout("tcp", string(m[1]), 2*time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}
