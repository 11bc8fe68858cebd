// Package scenarios turns scenario files into runs: the scenario model
// (strict YAML), matrix expansion into cells, the topologies that turn a
// cell into a platform-neutral Plan (nodes, pods, proxies and the proxy
// configuration of each), and the Platform interface that local processes
// and Kubernetes implement.
package scenarios
