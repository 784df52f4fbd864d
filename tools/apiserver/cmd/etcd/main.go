// Command etcd is etcd's own server entry point, built from go.etcd.io/etcd/server/v3
// so the kproxy test harness can start a real etcd without a system package.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
