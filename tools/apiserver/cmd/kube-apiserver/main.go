// Command kube-apiserver is upstream's kube-apiserver, built from k8s.io/kubernetes
// for kproxy's end-to-end tests (Go is test tooling only in this repository).
package main

import (
	"os"

	_ "time/tzdata" // keep the binary self-contained like upstream's build

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
