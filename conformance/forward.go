package conformance

import (
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
)

// Forward is the configuration most checks start from: one outbound
// listener at listen speaking protocol (config.ProtoAuto, ProtoHTTP1, ...),
// whose one route sends every request, within timeout, to cluster cl. The
// cluster is named "app"; its balancer is round robin unless cl sets one.
func Forward(listen, protocol string, timeout time.Duration, cl config.Cluster) *config.Config {
	cl.Name = "app"
	if cl.Balancer.Policy == "" {
		cl.Balancer.Policy = balancer.PolicyRoundRobin
	}
	return &config.Config{
		Listeners: []config.Listener{{Name: "outbound", Address: listen, Protocol: protocol, Routes: []config.Route{
			{Name: "app", Match: config.Match{PathPrefix: "/"}, Cluster: cl.Name, Timeout: config.Duration(timeout)},
		}}},
		Clusters: []config.Cluster{cl},
	}
}
