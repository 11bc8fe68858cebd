package peers_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/internal/yamlstrict"
	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden")

// cases are the representative neutral configurations, each with the
// traffic its cell sends.
var cases = []struct {
	name    string
	traffic []string
}{
	{"sidecar-outbound", []string{peers.TrafficHTTP1}},
	{"sidecar-outbound", []string{peers.TrafficGRPC}},
	{"sidecar-inbound", []string{peers.TrafficHTTP1}},
	{"node", []string{peers.TrafficHTTP1}},
	{"hash-retry", []string{peers.TrafficHTTP1}},
	{"outlier", []string{peers.TrafficHTTP1}},
	{"mtls", []string{peers.TrafficGRPC}},
}

// loadCase decodes testdata/<name>.yaml strictly and applies the
// defaults, as a platform does before rendering for a peer.
func loadCase(t *testing.T, name string) *config.Config {
	t.Helper()
	f := filepath.Join("testdata", name+".yaml")
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var c config.Config
	if _, err := yamlstrict.Decode(f, data, &c); err != nil {
		t.Fatal(err)
	}
	full, err := c.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return full
}

// render returns what an adapter makes of a case as one text: its files
// and command line, or the reason it is not applicable.
func render(t *testing.T, a peers.Adapter, c *config.Config, traffic []string) (string, *peers.Instance) {
	t.Helper()
	inst, err := a.Render(c, peers.Options{Name: "px", Dir: "/run/meshbench/px", SocketDir: "/run/mb", Traffic: traffic})
	if err != nil {
		if !peers.IsNotApplicable(err) {
			t.Fatalf("%s: %v", a.Name(), err)
		}
		return "n/a: " + err.Error() + "\n", nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# args: %s\n# ready: %s\n# metrics: %s\n# drain: %v\n", strings.Join(inst.Args, " "), inst.Ready, inst.Metrics, inst.Drain)
	for _, n := range inst.Notes {
		fmt.Fprintf(&b, "# note: %s\n", n)
	}
	for _, f := range inst.Files {
		fmt.Fprintf(&b, "# file: %s\n%s", f.Path, f.Data)
	}
	return b.String(), inst
}

// TestGolden compares each adapter's rendering of each case with its
// golden file (go test ./peers -update rewrites them).
func TestGolden(t *testing.T) {
	for _, tc := range cases {
		for _, a := range peers.All() {
			name := tc.name + "." + strings.Join(tc.traffic, "+") + "." + a.Name()
			t.Run(name, func(t *testing.T) {
				got, _ := render(t, a, loadCase(t, tc.name), tc.traffic)
				path := filepath.Join("testdata", "golden", name)
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (go test ./peers -update writes it)", err)
				}
				if !bytes.Equal([]byte(got), want) {
					t.Errorf("%s differs from its golden file; got:\n%s", path, got)
				}
			})
		}
	}
}

// TestNotApplicable pins the reasons reports show for what peers lack.
func TestNotApplicable(t *testing.T) {
	c := loadCase(t, "sidecar-outbound")
	for i := range c.Clusters {
		c.Clusters[i].Balancer.Policy = "peak_ewma"
	}
	for _, a := range peers.All() {
		_, err := a.Render(c, peers.Options{Name: "px", Dir: "/d", Traffic: []string{peers.TrafficHTTP1}})
		if !peers.IsNotApplicable(err) || !strings.Contains(err.Error(), "latency-aware") {
			t.Errorf("%s with peak_ewma: %v, want n/a naming the latency-aware balancer", a.Name(), err)
		}
	}
	// nginx serves HTTP/1.1 or h2c on a cleartext port, not both.
	_, err := peers.Nginx{}.Render(loadCase(t, "sidecar-outbound"), peers.Options{Name: "px", Dir: "/d", Traffic: []string{peers.TrafficHTTP1, peers.TrafficGRPC}})
	if !peers.IsNotApplicable(err) {
		t.Errorf("nginx with HTTP/1.1 and gRPC on one port: %v, want n/a", err)
	}
	// Mixed traffic through a cluster of protocol "same": only Envoy
	// forwards each request in its own protocol.
	for _, a := range peers.All() {
		_, err := a.Render(loadCase(t, "sidecar-inbound"), peers.Options{Name: "px", Dir: "/d", Traffic: []string{peers.TrafficHTTP1, peers.TrafficH2C}})
		if na := peers.IsNotApplicable(err); na == (a.Name() == peers.NameEnvoy) {
			t.Errorf("%s with HTTP/1.1 and h2c through protocol same: %v", a.Name(), err)
		}
	}
}

// TestCapabilitiesMatchRender holds each adapter's capability table to
// what it renders: every balancer policy is either listed as supported and
// renders, or listed as missing and is not applicable.
func TestCapabilitiesMatchRender(t *testing.T) {
	for _, a := range peers.All() {
		caps := a.Capabilities()
		for _, policy := range balancer.Policies() {
			c := loadCase(t, "sidecar-inbound")
			for i := range c.Clusters {
				c.Clusters[i].Balancer = config.Balancer{Policy: policy, HashHeader: "x-user"}
			}
			_, err := a.Render(c, peers.Options{Name: "px", Dir: "/d", Traffic: []string{peers.TrafficHTTP1}})
			_, has := caps.Balancers[policy]
			_, lacks := caps.Missing[policy]
			switch {
			case has == lacks:
				t.Errorf("%s: %s is listed %v as supported and %v as missing: want exactly one", a.Name(), policy, has, lacks)
			case has && err != nil:
				t.Errorf("%s: %s is listed as supported but does not render: %v", a.Name(), policy, err)
			case lacks && !peers.IsNotApplicable(err):
				t.Errorf("%s: %s is listed as missing but renders (err %v)", a.Name(), policy, err)
			}
		}
	}
}
