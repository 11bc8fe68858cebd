// Package kube runs scenario plans on a Kubernetes cluster: a kind cluster
// made by meshbench (package kind/cluster) or any cluster a kubeconfig
// reaches. It implements platform.Platform (scenarios/platform).
//
// A plan is platform-neutral: its pods and nodes have addresses of the
// local platform. Here plan node i is the cluster's node i (the control
// plane first), each backend pod a Deployment of one replica pinned to its
// node, each service a headless Service whose EndpointSlices the proxies
// follow, sidecars a proxy container in the pod, node proxies one
// DaemonSet with host ports, and the load generator a Job. The proxy
// configurations of the plan are translated, not rewritten by hand: a
// proxy's own address becomes the pod's (0.0.0.0 to listen, 127.0.0.1 to
// reach its app), a cluster over every pod of a service becomes an
// EndpointSlice source, and other pods' and nodes' addresses become their
// IPs in the cluster. Everything a cell creates lives in its own
// namespace, deleted by Teardown.
package kube
