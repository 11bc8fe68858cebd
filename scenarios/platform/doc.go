// Package platform is what every platform that realizes a scenario's Plans
// shares: the Platform interface the runner drives, the backend's command
// line, the application of a plan's events during the measured part, and
// the summary of the proxies' resources and metrics over it. The local platform (scenarios/local) and the
// Kubernetes one (scenarios/kube, any cluster through a kubeconfig)
// implement it.
package platform
