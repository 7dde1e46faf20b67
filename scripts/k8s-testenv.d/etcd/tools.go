//go:build tools

// Package tools pins the etcd server scripts/k8s-testenv builds (generated, with the rest of
// this module, by k8s_gen_modules in scripts/lib/k8s.sh); its main package is
// go.etcd.io/etcd/server/v3 itself.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
