package kube

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// documentedRules are the permissions the README says the backend needs in
// its namespace.
var documentedRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get", "list", "watch", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"pods/attach", "pods/exec"}, Verbs: []string{"create", "get"}},
	{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"list"}},
}

// limitedKubeconfig makes a service account that has only rules in the
// test namespace and returns a kubeconfig file that acts as it.
func limitedKubeconfig(t *testing.T, name string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	cs, ns := testCluster(t)
	ctx := context.Background()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service account: %v", err)
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role binding: %v", err)
	}
	expiry := int64(3600)
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	admin, err := clientcmd.BuildConfigFromFlags("", cluster.kubeconfig)
	if err != nil {
		t.Fatalf("read the test kubeconfig: %v", err)
	}
	ca := admin.TLSClientConfig.CAData
	if len(ca) == 0 && admin.TLSClientConfig.CAFile != "" {
		if ca, err = os.ReadFile(admin.TLSClientConfig.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: ca, InsecureSkipTLSVerify: admin.TLSClientConfig.Insecure}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "test", AuthInfo: name, Namespace: ns}
	cfg.CurrentContext = name
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDocumentedPermissions runs tasks as a service account that has only
// the permissions the README lists, and without pods/log, which only
// turns the output check off.
func TestDocumentedPermissions(t *testing.T) {
	t.Parallel()
	t.Run("documented", func(t *testing.T) {
		t.Parallel()
		b := newTestBackend(t, Config{Kubeconfig: limitedKubeconfig(t, "rp-documented", documentedRules)})
		msgs := recordLog(t, b)
		ws, staging := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(ws, "in.txt"), []byte("input\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		sp, stdout, stderr := spec(t, ws, `cat in.txt; echo warn >&2; mkdir -p out && cp in.txt out/copy.txt`)
		sp.Inputs, sp.Outputs, sp.OutputDir = []string{"in.txt"}, []string{"out/copy.txt"}, staging
		res, err := b.Run(context.Background(), sp)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if res.ExitCode != 0 || stdout.String() != "input\n" || stderr.String() != "warn\n" {
			t.Errorf("ExitCode %d, stdout %q, stderr %q; want 0, the input and the warning", res.ExitCode, stdout, stderr)
		}
		if got, err := os.ReadFile(filepath.Join(staging, "out", "copy.txt")); err != nil || string(got) != "input\n" {
			t.Errorf("out/copy.txt = %q, %v; want the input", got, err)
		}
		if m := msgs(); strings.Contains(m, "forbidden") || strings.Contains(m, "cannot") {
			t.Errorf("messages with the documented permissions: %q", m)
		}
	})
	t.Run("without pods/log", func(t *testing.T) {
		t.Parallel()
		var rules []rbacv1.PolicyRule
		for _, r := range documentedRules {
			if r.Resources[0] != "pods/log" {
				rules = append(rules, r)
			}
		}
		b := newTestBackend(t, Config{Kubeconfig: limitedKubeconfig(t, "rp-no-log", rules)})
		msgs := recordLog(t, b)
		for range 2 {
			sp, stdout, _ := spec(t, t.TempDir(), `echo out`)
			if _, err := b.Run(context.Background(), sp); err != nil || stdout.String() != "out\n" {
				t.Fatalf("Run: %v, stdout %q; want the task's output", err, stdout)
			}
		}
		if n := strings.Count(msgs(), "cannot read container logs"); n != 1 {
			t.Errorf("%d messages about the output check, want one: %q", n, msgs())
		}
	})
}
