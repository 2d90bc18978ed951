// rp-etcd: the etcd server from go.etcd.io/etcd/server/v3 (same CLI as upstream etcd).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
