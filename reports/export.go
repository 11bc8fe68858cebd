package reports

import (
	"github.com/meshbench/meshbench/reports/result"

	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshbench/meshbench/loadgen"
)

// cellTimes returns when the cell's measured part started and ended: the
// load generator stamps env.time when it finishes, and the window lasted
// duration_s. ok is false when the result has no time.
func cellTimes(r *result.CellResult) (start, end time.Time, ok bool) {
	s, _ := r.Env["time"].(string)
	end, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, time.Time{}, false
	}
	end = end.UTC()
	return end.Add(-time.Duration(r.DurationS * float64(time.Second))), end, true
}

// Fortio returns the cell's result in fortio's JSON shape (see
// loadgen.Result.Fortio), with the start time of its measured part.
func Fortio(c *Cell) (loadgen.FortioResult, error) {
	if !c.OK() {
		return loadgen.FortioResult{}, fmt.Errorf("exporting cell %s to fortio: no result", c.Info.ID)
	}
	out := c.Result.Result.Fortio()
	if out.StartTime.IsZero() {
		if start, _, ok := cellTimes(c.Result); ok {
			out.StartTime = start
		}
	}
	return out, nil
}

// SMPVersion is written as smp_version: the messages follow
// protos/service_mesh_performance.proto of the Service Mesh Performance
// specification (github.com/service-mesh-performance/service-mesh-performance),
// which defines no version string of its own.
const SMPVersion = "meshbench-smp-1"

// SMPExport is one cell in the Service Mesh Performance (SMP) format: the
// PerformanceTestResult and the three messages it refers to by ID (the
// test configuration, the mesh configuration and the environment). Field
// names are the proto field names, which protobuf's JSON parsers accept;
// times are RFC 3339 in UTC, as protobuf's JSON form of a Timestamp.
type SMPExport struct {
	Result     SMPResult      `json:"result"`
	TestConfig SMPTestConfig  `json:"test_config"`
	MeshConfig SMPMeshConfig  `json:"mesh_config"`
	Env        SMPEnvironment `json:"env_config"`
}

// SMPResult is SMP's PerformanceTestResult.
type SMPResult struct {
	SMPVersion   string            `json:"smp_version"`
	ID           string            `json:"id"`
	Labels       map[string]string `json:"labels,omitempty"`
	StartTime    *time.Time        `json:"start_time,omitempty"`
	EndTime      *time.Time        `json:"end_time,omitempty"`
	LatenciesMs  SMPLatency        `json:"latencies_ms"`
	ActualQPS    float64           `json:"actual_QPS"`
	DetailsURI   string            `json:"details_uri,omitempty"`
	TestID       string            `json:"testId"`
	MeshConfigID string            `json:"meshConfigId"`
	EnvID        string            `json:"envId"`
}

// SMPLatency is PerformanceTestResult.Latency, in milliseconds.
type SMPLatency struct {
	Min     float64 `json:"min"`
	Average float64 `json:"average"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
}

// SMPTestConfig is SMP's PerformanceTestConfig.
type SMPTestConfig struct {
	SMPVersion string            `json:"smp_version"`
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels,omitempty"`
	Clients    []SMPClient       `json:"clients"`
	Duration   string            `json:"duration"`
}

// SMPClient is PerformanceTestConfig.Client: the load generator.
type SMPClient struct {
	Internal      bool   `json:"internal"`
	LoadGenerator string `json:"load_generator"`
	// Protocol is the enum's name: http, tcp, udp or grpc.
	Protocol    string   `json:"protocol"`
	Connections int32    `json:"connections"`
	RPS         int64    `json:"rps"` // requested; 0 for a closed loop
	EndpointURL []string `json:"endpoint_url,omitempty"`
}

// SMPMeshConfig is SMP's ServiceMeshConfig, with the proxies of the
// topology under sidecar (SMP has no node-proxy message; labels say which
// kind they are).
type SMPMeshConfig struct {
	SMPVersion  string            `json:"smp_version"`
	ID          string            `json:"id"`
	Labels      map[string]string `json:"labels,omitempty"`
	Sidecar     *SMPSidecar       `json:"sidecar,omitempty"`
	MTLSEnabled bool              `json:"mtls_enabled"`
	ProxyBuild  string            `json:"proxy_build,omitempty"`
	Profile     string            `json:"profile,omitempty"`
}

// SMPSidecar is ServiceMeshConfig.Sidecar: every proxy of the topology.
type SMPSidecar struct {
	Count     int32 `json:"count"`
	CPUMCores int32 `json:"cpu_mCores"` // mean over the measured part
	MemMB     int32 `json:"mem_mb"`     // sum of the peaks, MiB
	RPS       int32 `json:"rps"`
}

// SMPEnvironment is SMP's EnvironmentConfig.
type SMPEnvironment struct {
	SMPVersion        string            `json:"smp_version"`
	ID                string            `json:"id"`
	Labels            map[string]string `json:"labels,omitempty"`
	KubernetesVersion string            `json:"kubernetes_version,omitempty"`
	Node              []SMPNode         `json:"node,omitempty"`
}

// SMPNode is EnvironmentConfig.Node.
type SMPNode struct {
	Type  string `json:"type"`
	Cores int32  `json:"cores"`
}

// SMP returns the cell in the SMP format. detailsURI, when set, points at
// the cell's result.json.
func SMP(run *Run, c *Cell, detailsURI string) (SMPExport, error) {
	if !c.OK() {
		return SMPExport{}, fmt.Errorf("exporting cell %s to SMP: no result", c.Info.ID)
	}
	r := c.Result
	variant := c.Info.Variant
	if variant == "" {
		variant = c.Info.ID
	}
	envID := run.Info.Scenario + "/" + filepath.Base(run.Dir)
	testID := envID + "/" + variant
	labels := map[string]string{}
	maps.Copy(labels, r.Labels)
	maps.Copy(labels, c.Info.Labels)
	labels["scenario"] = run.Info.Scenario
	labels["repeat"] = strconv.Itoa(c.Info.Repeat)

	ms := func(us int64) float64 { return float64(us) / 1000 }
	h := c.Histogram
	res := SMPResult{
		SMPVersion: SMPVersion, ID: envID + "/" + c.Info.ID, Labels: labels,
		LatenciesMs: SMPLatency{
			Min: ms(h.Min()), Average: r.Latency.Mean / 1000,
			P50: ms(r.Latency.P50), P90: ms(r.Latency.P90), P99: ms(r.Latency.P99), Max: ms(r.Latency.Max),
		},
		ActualQPS: r.AchievedRate, DetailsURI: filepath.ToSlash(detailsURI),
		TestID: testID, MeshConfigID: variant, EnvID: envID,
	}
	if start, end, ok := cellTimes(r); ok {
		res.StartTime, res.EndTime = &start, &end
	}

	proto := "http"
	if r.Protocol == loadgen.GRPC {
		proto = "grpc"
	}
	client := SMPClient{
		Internal: true, LoadGenerator: "meshbench", Protocol: proto,
		Connections: int32(r.Connections), RPS: int64(r.RequestedRate),
	}
	if r.Target != "" {
		client.EndpointURL = []string{r.Target}
	}
	tc := SMPTestConfig{
		SMPVersion: SMPVersion, ID: testID, Name: run.Info.Scenario,
		Labels:   map[string]string{"protocol": r.Protocol, "arrival": r.Arrival},
		Clients:  []SMPClient{client},
		Duration: (time.Duration(r.DurationS * float64(time.Second))).Round(time.Millisecond).String(),
	}

	meshLabels := map[string]string{}
	for _, k := range []string{LabelTopology, LabelProxy, LabelBalancer, LabelMTLS} {
		if v := labels[k]; v != "" {
			meshLabels[k] = v
		}
	}
	mc := SMPMeshConfig{
		SMPVersion: SMPVersion, ID: variant, Labels: meshLabels,
		MTLSEnabled: isOn(labels[LabelMTLS]), Profile: labels[LabelTopology],
	}
	if ps := r.Resources.Proxies; len(ps) > 0 {
		kinds := map[string]bool{}
		for _, p := range ps {
			kinds[p.Kind] = true
		}
		meshLabels["proxy_kind"] = strings.Join(slices.Sorted(maps.Keys(kinds)), ",")
		mc.Sidecar = &SMPSidecar{Count: int32(len(ps)), RPS: int32(r.AchievedRate + 0.5),
			MemMB: int32(r.Resources.Total.RSSPeakBytes >> 20)}
		if r.DurationS > 0 {
			mc.Sidecar.CPUMCores = int32(r.Resources.Total.CPUSeconds/r.DurationS*1000 + 0.5)
		}
	}

	env := SMPEnvironment{SMPVersion: SMPVersion, ID: envID, Labels: map[string]string{"platform": run.Info.Platform}}
	for k, v := range run.Info.Env {
		if s := anyText(v); s != "" {
			env.Labels[k] = s
		}
	}
	if kv, ok := run.Info.Cluster["kubernetes_version"].(string); ok {
		env.KubernetesVersion = kv
	}
	node := SMPNode{Type: anyText(run.Info.Env["cpu_model"])}
	if cores, ok := run.Info.Env["cores"].(float64); ok {
		node.Cores = int32(cores)
	}
	if node.Type != "" || node.Cores > 0 {
		env.Node = []SMPNode{node}
	}
	return SMPExport{Result: res, TestConfig: tc, MeshConfig: mc, Env: env}, nil
}

func isOn(s string) bool {
	switch strings.ToLower(s) {
	case "on", "true", "yes", "enabled", "strict", "mtls":
		return true
	}
	return false
}
