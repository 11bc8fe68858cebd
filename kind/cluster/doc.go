// Package cluster creates, opens, loads images into and deletes kind
// clusters for meshbench's kind platform.
//
// It drives sigs.k8s.io/kind's Go library (a kind Provider with the docker
// node provider), never the kind command. A cluster has one control-plane
// node and Nodes-1 workers, all schedulable: Create removes the control
// plane's NoSchedule taint, so the harness can place ordinary pods on every
// node by name. Node readiness is read through client-go.
//
// Node images cannot be pulled on meshbench's machines: Config.NodeImage
// defaults to $KIND_NODE_IMAGE, which ../shared/kind-offline builds and sets.
// Available tells tests whether docker and that image are there.
//
// Create and Delete do not touch the user's kubeconfig files: Kubeconfig and
// RESTConfig hand the cluster's credentials to the caller instead.
package cluster
