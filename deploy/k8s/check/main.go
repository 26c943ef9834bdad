// Checks deploy/k8s/*.yaml against the official Kubernetes API types. Built and cached by
// `scripts/backends install k8s-check` (.backends/bin/k8s-check) and run by
// tests/stack/test_k8s_manifests.py:
//
//	k8s-check deploy/k8s/gateway.yaml deploy/k8s/agent.yaml
//
// Strictly decodes Kubernetes manifests into the official API types (k8s.io/api):
// unknown fields, wrong types and unknown kinds fail.
package main

import (
	"bytes"
	"fmt"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-version" {
		fmt.Println("k8s-check (k8s.io/api v0.35.4)")
		return
	}
	if len(os.Args) < 2 {
		fmt.Println("usage: k8s-check MANIFEST.yaml...")
		os.Exit(2)
	}
	bad := 0
	for _, path := range os.Args[1:] {
		data, err := os.ReadFile(path)
		if err != nil {
			panic(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil || meta.Kind == "" {
				fmt.Printf("%s #%d: no kind (%v)\n", path, i, err)
				bad++
				continue
			}
			var obj any
			switch meta.APIVersion + "/" + meta.Kind {
			case "v1/Service":
				obj = &corev1.Service{}
			case "v1/ServiceAccount":
				obj = &corev1.ServiceAccount{}
			case "apps/v1/StatefulSet":
				obj = &appsv1.StatefulSet{}
			case "apps/v1/DaemonSet":
				obj = &appsv1.DaemonSet{}
			case "policy/v1/PodDisruptionBudget":
				obj = &policyv1.PodDisruptionBudget{}
			case "rbac.authorization.k8s.io/v1/Role":
				obj = &rbacv1.Role{}
			case "rbac.authorization.k8s.io/v1/RoleBinding":
				obj = &rbacv1.RoleBinding{}
			default:
				fmt.Printf("%s #%d: unknown %s %s\n", path, i, meta.APIVersion, meta.Kind)
				bad++
				continue
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				fmt.Printf("%s #%d %s: %v\n", path, i, meta.Kind, err)
				bad++
				continue
			}
			fmt.Printf("%s #%d %s: ok\n", path, i, meta.Kind)
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}
