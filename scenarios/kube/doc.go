// Package kube runs scenario plans on a Kubernetes cluster: a kind cluster
// made by meshbench (package kind/cluster) or any cluster a kubeconfig
// reaches. It implements platform.Platform (scenarios/platform).
//
// A plan is platform-neutral: its configurations name pods, nodes and
// services by reference (scenarios.Ref). Here plan node i is the cluster's
// node i (the control plane first), each backend pod a Deployment of one
// replica pinned to its node, each service a headless Service whose
// EndpointSlices the proxies follow, sidecars a proxy container in the
// pod, node proxies one DaemonSet with host ports, and the load generator
// a Job. Each process's configuration is rendered with its own resolver
// (resolve.go): its own pod or node is 0.0.0.0 to listen and 127.0.0.1 to
// reach, a service reference becomes an EndpointSlice source, other pods
// their IPs, nodes their InternalIPs (the load generator's own node
// status.hostIP). Everything a cell creates lives in its own namespace,
// deleted by Teardown.
package kube
