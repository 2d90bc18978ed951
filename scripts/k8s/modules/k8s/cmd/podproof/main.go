// podproof: proves that a real cluster runs a Pod to completion, and that the
// exit code and logs can be read back through the API with client-go.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig path")
	ns := flag.String("n", "default", "namespace")
	image := flag.String("image", "rp-busybox:test", "image (must already be in containerd's k8s.io namespace)")
	script := flag.String("script", "echo hi; echo to-stderr >&2; exit 3", "sh -c script")
	expectExit := flag.Int("expect-exit", 3, "expected container exit code")
	expectLog := flag.String("expect-log", "hi", "substring expected in the logs")
	timeout := flag.Duration("timeout", 3*time.Minute, "overall timeout")
	keep := flag.Bool("keep", false, "do not delete the pod")
	flag.Parse()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	must(err)
	cs, err := kubernetes.NewForConfig(cfg)
	must(err)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	sv, err := cs.Discovery().ServerVersion()
	must(err)
	fmt.Printf("server version: %s\n", sv.GitVersion)

	name := fmt.Sprintf("podproof-%d", time.Now().UnixNano()%1000000000)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "podproof"}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr(int64(1)),
			AutomountServiceAccountToken:  ptr(false),
			Containers: []corev1.Container{{
				Name:            "task",
				Image:           *image,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"sh", "-c", *script},
			}},
		},
	}
	t0 := time.Now()
	_, err = cs.CoreV1().Pods(*ns).Create(ctx, pod, metav1.CreateOptions{})
	must(err)
	fmt.Printf("created pod %s/%s\n", *ns, name)
	cleanup := func() {
		if !*keep {
			_ = cs.CoreV1().Pods(*ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))})
		}
	}

	w, err := cs.CoreV1().Pods(*ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	must(err)
	var final *corev1.Pod
	lastPhase := corev1.PodPhase("")
	for ev := range w.ResultChan() {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			continue
		}
		if p.Status.Phase != lastPhase {
			fmt.Printf("  +%5.1fs phase=%s node=%s\n", time.Since(t0).Seconds(), p.Status.Phase, p.Spec.NodeName)
			lastPhase = p.Status.Phase
		}
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			final = p
			break
		}
	}
	w.Stop()
	if final == nil {
		cleanup()
		fail("pod did not finish: %v", ctx.Err())
	}
	fmt.Printf("pod finished: phase=%s after %.1fs\n", final.Status.Phase, time.Since(t0).Seconds())
	if len(final.Status.ContainerStatuses) == 0 || final.Status.ContainerStatuses[0].State.Terminated == nil {
		cleanup()
		fail("no terminated container status: %+v", final.Status)
	}
	term := final.Status.ContainerStatuses[0].State.Terminated
	fmt.Printf("container exitCode=%d reason=%s\n", term.ExitCode, term.Reason)

	rc, err := cs.CoreV1().Pods(*ns).GetLogs(name, &corev1.PodLogOptions{Container: "task"}).Stream(ctx)
	if err != nil {
		cleanup()
		fail("get logs: %v", err)
	}
	logs, err := io.ReadAll(rc)
	rc.Close()
	cleanup()
	must(err)
	fmt.Printf("logs via API:\n%s", indent(string(logs)))

	ok := true
	if int(term.ExitCode) != *expectExit {
		fmt.Printf("FAIL: exit code %d, want %d\n", term.ExitCode, *expectExit)
		ok = false
	}
	wantPhase := corev1.PodSucceeded
	if *expectExit != 0 {
		wantPhase = corev1.PodFailed
	}
	if final.Status.Phase != wantPhase {
		fmt.Printf("FAIL: phase %s, want %s\n", final.Status.Phase, wantPhase)
		ok = false
	}
	if !strings.Contains(string(logs), *expectLog) {
		fmt.Printf("FAIL: logs do not contain %q\n", *expectLog)
		ok = false
	}
	if !ok {
		os.Exit(1)
	}
	fmt.Println("PASS")
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    | " + l + "\n")
	}
	return b.String()
}
func ptr[T any](v T) *T { return &v }
func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}
func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+f+"\n", a...)
	os.Exit(1)
}
