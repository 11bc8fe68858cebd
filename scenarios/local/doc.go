// Package local is the local platform: it realizes a scenarios.Plan as
// processes on this machine.
//
// Every node of the plan is a block of loopback addresses (127.B.(n+1).0/24
// for network base 127.B) and every pod has its own address in its node's
// block, so pods and node proxies listen on the plan's well-known ports
// without colliding. Backends are `meshbench backend` processes, proxies
// are `meshproxy` processes with the configuration the plan gives them, and
// the load is a `meshbench load` child. Each process runs in its own
// process group, with its output in the cell directory's logs/.
//
// While the measured part of the load runs, the platform samples each
// proxy's CPU time and resident memory from /proc, scrapes each proxy's
// /metrics at the start and at the end of the measured part, and applies
// the plan's events to the backends through their admin endpoint.
//
// What the platform cannot model (no network between nodes, shared cores,
// no isolation) is described in docs/running.md.
package local
