package kube

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The test cluster. scripts/k8s/up.sh brings one up, writes its kubeconfig
// to $RP_K8S_DIR/kubeconfig (RP_K8S_DIR defaults to /tmp/rp-k8s, up.sh's
// default) and imports testImage into its container runtime. KUBECONFIG,
// when set, names the cluster instead. Without either the cluster tests
// skip, unless RUSTYPIPE_TEST_KUBE=1 (set by CI) makes that a failure.
const (
	testImage   = "rp-busybox:test" // busybox: sh, tar, sleep, seq
	requireEnv  = "RUSTYPIPE_TEST_KUBE"
	defaultRPK8 = "/tmp/rp-k8s"
)

// cluster is what the cluster tests share: one namespace for the whole
// package run, deleted by TestMain.
var cluster struct {
	once       sync.Once
	kubeconfig string
	cs         kubernetes.Interface
	ns         string
	err        error // why there is no cluster
}

func TestMain(m *testing.M) {
	if os.Getenv(orphanEnv) != "" {
		os.Exit(orphanMain())
	}
	code := m.Run()
	if cluster.cs != nil && cluster.ns != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cluster.cs.CoreV1().Namespaces().Delete(ctx, cluster.ns, metav1.DeleteOptions{})
		cancel()
	}
	os.Exit(code)
}

// testCluster returns the test cluster's client and namespace, skipping
// the test (or failing it under RUSTYPIPE_TEST_KUBE=1) when there is none.
func testCluster(t testing.TB) (kubernetes.Interface, string) {
	t.Helper()
	cluster.once.Do(func() {
		kc := os.Getenv("KUBECONFIG")
		if kc == "" {
			dir := os.Getenv("RP_K8S_DIR")
			if dir == "" {
				dir = defaultRPK8
			}
			if p := filepath.Join(dir, "kubeconfig"); fileExists(p) {
				kc = p
			}
		}
		if kc == "" {
			cluster.err = fmt.Errorf("no KUBECONFIG and no kubeconfig of scripts/k8s/up.sh")
			return
		}
		cluster.kubeconfig = kc
		rc, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			cluster.err = err
			return
		}
		rc.QPS, rc.Burst, rc.Timeout = 50, 100, 30*time.Second
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			cluster.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if _, err := cs.Discovery().ServerVersion(); err != nil {
			cluster.err = fmt.Errorf("cluster of %s does not answer: %w", kc, err)
			return
		}
		ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rp-kube-test-"}}, metav1.CreateOptions{})
		if err != nil {
			cluster.err = fmt.Errorf("create test namespace: %w", err)
			return
		}
		cluster.cs, cluster.ns = cs, ns.Name
		if err := waitServiceAccount(ctx, cs, ns.Name); err != nil {
			cluster.err = err
		}
	})
	if cluster.err != nil {
		if os.Getenv(requireEnv) == "1" {
			t.Fatalf("%s=1 but no test cluster: %v", requireEnv, cluster.err)
		}
		t.Skipf("no test cluster (%v); run scripts/k8s/up.sh, or set KUBECONFIG", cluster.err)
	}
	return cluster.cs, cluster.ns
}

// waitServiceAccount waits for the controller manager to create the
// namespace's default service account, without which no pod is admitted.
func waitServiceAccount(ctx context.Context, cs kubernetes.Interface, ns string) error {
	for {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("service account default/%s: %w", ns, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("service account default/%s was not created: %w", ns, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
