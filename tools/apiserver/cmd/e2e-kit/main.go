// Command e2e-kit does the parts of kproxy's API server test harness that need TLS or the
// Kubernetes API, so the Rust harness (xtask, std only) can stay dependency free:
//
//	e2e-kit certs --dir D                 CA, serving cert, admin client cert, SA signing key
//	e2e-kit kubeconfig --dir D --server URL   admin kubeconfig (client cert) in D/admin.kubeconfig
//	e2e-kit wait-ready --kubeconfig K --timeout 60s   poll /readyz until it answers "ok"
//	e2e-kit bootstrap --kubeconfig K --out F  ServiceAccount kube-system/kproxy, its ClusterRole
//	                                          and binding, and a kubeconfig using its token
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2e-kit certs|kubeconfig|wait-ready|bootstrap [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "certs":
		err = runCerts(os.Args[2:])
	case "kubeconfig":
		err = runAdminKubeconfig(os.Args[2:])
	case "wait-ready":
		err = runWaitReady(os.Args[2:])
	case "bootstrap":
		err = runBootstrap(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e-kit %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
