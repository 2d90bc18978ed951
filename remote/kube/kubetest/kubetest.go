// Package kubetest finds the single-node test cluster that scripts/k8s/up.sh
// brings up, for the tests of the Kubernetes backend, its helper and the
// CLI scripts. Only tests import it.
package kubetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// DefaultDir is where scripts/k8s/up.sh keeps the cluster when RP_K8S_DIR
// is not set.
const DefaultDir = "/tmp/rp-k8s"

// Kubeconfig returns the test cluster's kubeconfig: KUBECONFIG when set,
// else $RP_K8S_DIR/kubeconfig as up.sh writes it. The file may not exist.
func Kubeconfig() string {
	if kc := os.Getenv("KUBECONFIG"); kc != "" {
		return kc
	}
	dir := os.Getenv("RP_K8S_DIR")
	if dir == "" {
		dir = DefaultDir
	}
	return filepath.Join(dir, "kubeconfig")
}

// Cluster is the test cluster with a namespace of the caller's own.
type Cluster struct {
	Kubeconfig string
	Client     kubernetes.Interface
	Namespace  string
}

// Open connects to the test cluster, checks that it answers, and creates a
// namespace named with prefix, waiting until pods can be created in it.
// The caller deletes the namespace with Close.
func Open(prefix string) (*Cluster, error) {
	kc := Kubeconfig()
	if os.Getenv("KUBECONFIG") == "" {
		if _, err := os.Stat(kc); err != nil {
			return nil, fmt.Errorf("no KUBECONFIG and no kubeconfig of scripts/k8s/up.sh")
		}
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst, rc.Timeout = 50, 100, 30*time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("cluster of %s does not answer: %w", kc, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create test namespace: %w", err)
	}
	c := &Cluster{Kubeconfig: kc, Client: cs, Namespace: ns.Name}
	if err := WaitServiceAccount(ctx, cs, ns.Name); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close deletes the cluster's namespace.
func (c *Cluster) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.Client.CoreV1().Namespaces().Delete(ctx, c.Namespace, metav1.DeleteOptions{})
}

// WaitServiceAccount waits for the controller manager to create the
// namespace's default service account, without which no pod is admitted.
func WaitServiceAccount(ctx context.Context, cs kubernetes.Interface, ns string) error {
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
