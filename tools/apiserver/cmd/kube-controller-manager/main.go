// Command kube-controller-manager is upstream's controller manager, built from
// k8s.io/kubernetes for kproxy's lab (`cargo xtask lab`), where only its EndpointSlice
// controllers run: they, not kproxy's code, write the EndpointSlices the proxies read.
package main

import (
	"os"

	_ "time/tzdata" // keep the binary self-contained like upstream's build

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	command := app.NewControllerManagerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
