package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// runAdminKubeconfig writes D/admin.kubeconfig authenticating with D/admin.crt.
func runAdminKubeconfig(args []string) error {
	fs := flag.NewFlagSet("kubeconfig", flag.ExitOnError)
	dir := fs.String("dir", "", "directory holding the certs from `certs`")
	server := fs.String("server", "", "API server URL")
	_ = fs.Parse(args)
	if *dir == "" || *server == "" {
		return fmt.Errorf("--dir and --server are required")
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: *server, CertificateAuthority: filepath.Join(*dir, "ca.crt")}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{
		ClientCertificate: filepath.Join(*dir, "admin.crt"),
		ClientKey:         filepath.Join(*dir, "admin.key"),
	}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "admin"}
	cfg.CurrentContext = "e2e"
	return clientcmd.WriteToFile(*cfg, filepath.Join(*dir, "admin.kubeconfig"))
}

func clientFor(kubeconfig string) (*kubernetes.Clientset, *clientcmdapi.Config, error) {
	raw, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	rc, err := clientcmd.NewDefaultClientConfig(*raw, nil).ClientConfig()
	if err != nil {
		return nil, nil, err
	}
	rc.Timeout = 5 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	return cs, raw, err
}

// runWaitReady polls /readyz until it returns "ok" or the timeout passes.
func runWaitReady(args []string) error {
	fs := flag.NewFlagSet("wait-ready", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	_ = fs.Parse(args)
	cs, _, err := clientFor(*kubeconfig)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if err == nil && string(body) == "ok" {
			fmt.Println("readyz: ok")
			return nil
		}
		last = fmt.Errorf("%v %q", err, string(body))
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("API server not ready after %s: last answer: %v", *timeout, last)
}

// readRBAC decodes exactly one ServiceAccount, ClusterRole and ClusterRoleBinding from a
// multi-document YAML file; any other kind is an error (the file is meant to hold only RBAC).
func readRBAC(path string) (*corev1.ServiceAccount, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, err
	}
	var sa *corev1.ServiceAccount
	var role *rbacv1.ClusterRole
	var binding *rbacv1.ClusterRoleBinding
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			// Comment-only documents decode to nothing: skip them.
			if runtime.IsMissingKind(err) {
				continue
			}
			return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			sa = o
		case *rbacv1.ClusterRole:
			role = o
		case *rbacv1.ClusterRoleBinding:
			binding = o
		default:
			return nil, nil, nil, fmt.Errorf("%s: unexpected %T (only ServiceAccount, ClusterRole, ClusterRoleBinding)", path, obj)
		}
	}
	if sa == nil || role == nil || binding == nil {
		return nil, nil, nil, fmt.Errorf("%s: needs one ServiceAccount, ClusterRole and ClusterRoleBinding", path)
	}
	return sa, role, binding, nil
}

// Rules kproxy needs, as kube-proxy's system:node-proxier ClusterRole plus ServiceCIDRs.
func kproxyRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"services", "endpoints"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"servicecidrs"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	}
}

// runBootstrap creates kproxy's ServiceAccount and RBAC and writes a kubeconfig with a
// TokenRequest token for it (valid --token-hours).
func runBootstrap(args []string) error {
	fs := flag.NewFlagSet("bootstrap", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig")
	out := fs.String("out", "", "kubeconfig to write for kproxy")
	ns := fs.String("namespace", "kube-system", "ServiceAccount namespace")
	name := fs.String("name", "kproxy", "ServiceAccount, ClusterRole and ClusterRoleBinding name")
	hours := fs.Int64("token-hours", 24, "token lifetime")
	manifest := fs.String("manifest", "", "RBAC manifest (ServiceAccount, ClusterRole, ClusterRoleBinding) to use instead of the built-in rules, e.g. deploy/rbac.yaml")
	_ = fs.Parse(args)
	if *kubeconfig == "" || *out == "" {
		return fmt.Errorf("--kubeconfig and --out are required")
	}
	cs, raw, err := clientFor(*kubeconfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: *name, Namespace: *ns}}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: *name}, Rules: kproxyRules()}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: *name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: *name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: *name, Namespace: *ns}},
	}
	source := "built-in rules"
	if *manifest != "" {
		if sa, role, binding, err = readRBAC(*manifest); err != nil {
			return err
		}
		*ns, *name, source = sa.Namespace, sa.Name, *manifest
	}
	if _, err := cs.CoreV1().ServiceAccounts(*ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ServiceAccount: %w", err)
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ClusterRole: %w", err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ClusterRoleBinding: %w", err)
	}
	secs := *hours * 3600
	tr, err := cs.CoreV1().ServiceAccounts(*ns).CreateToken(ctx, *name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("TokenRequest for %s/%s: %w", *ns, *name, err)
	}
	cluster := raw.Clusters[raw.Contexts[raw.CurrentContext].Cluster]
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cluster.Server, CertificateAuthority: cluster.CertificateAuthority}
	cfg.AuthInfos[*name] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: *name}
	cfg.CurrentContext = "e2e"
	if err := clientcmd.WriteToFile(*cfg, *out); err != nil {
		return err
	}
	fmt.Printf("bootstrap: ServiceAccount %s/%s with ClusterRole %s (%s), kubeconfig %s\n", *ns, *name, role.Name, source, *out)
	return nil
}
