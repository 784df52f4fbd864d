// Command kube-proxy is upstream's kube-proxy, built from k8s.io/kubernetes for kproxy's
// lab (`cargo xtask lab`), where it runs beside kproxy on a twin node (Go is test tooling
// only in this repository).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

func main() {
	command := app.NewProxyCommand()
	code := cli.Run(command)
	os.Exit(code)
}
