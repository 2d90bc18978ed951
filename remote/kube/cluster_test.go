package kube

import (
	"os"
	"sync"
	"testing"

	"k8s.io/client-go/kubernetes"

	"github.com/rustypipe/rustypipe/remote/kube/kubetest"
)

// The test cluster. scripts/k8s/up.sh brings one up and imports testImage
// into its container runtime; kubetest finds it (KUBECONFIG, else up.sh's
// kubeconfig). Without a cluster the cluster tests skip, unless
// RUSTYPIPE_TEST_KUBE=1 (set by CI) makes that a failure.
const (
	testImage  = "rp-busybox:test" // busybox: sh, tar, sleep, seq
	requireEnv = "RUSTYPIPE_TEST_KUBE"
)

// cluster is what the cluster tests share: one namespace for the whole
// package run, deleted by TestMain.
var cluster struct {
	once       sync.Once
	kubeconfig string
	cs         kubernetes.Interface
	ns         string
	c          *kubetest.Cluster
	err        error // why there is no cluster
}

func TestMain(m *testing.M) {
	if os.Getenv(orphanEnv) != "" {
		os.Exit(orphanMain())
	}
	code := m.Run()
	if cluster.c != nil {
		cluster.c.Close()
	}
	os.Exit(code)
}

// testCluster returns the test cluster's client and namespace, skipping
// the test (or failing it under RUSTYPIPE_TEST_KUBE=1) when there is none.
func testCluster(t testing.TB) (kubernetes.Interface, string) {
	t.Helper()
	cluster.once.Do(func() {
		c, err := kubetest.Open("rp-kube-test-")
		if err != nil {
			cluster.err = err
			return
		}
		cluster.c, cluster.kubeconfig, cluster.cs, cluster.ns = c, c.Kubeconfig, c.Client, c.Namespace
	})
	if cluster.err != nil {
		if os.Getenv(requireEnv) == "1" {
			t.Fatalf("%s=1 but no test cluster: %v", requireEnv, cluster.err)
		}
		t.Skipf("no test cluster (%v); run scripts/k8s/up.sh, or set KUBECONFIG", cluster.err)
	}
	return cluster.cs, cluster.ns
}
