//go:build tools

// Package tools pins the commands scripts/k8s-testenv builds (generated, with the rest of
// this module, by k8s_gen_modules in scripts/lib/k8s.sh).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
