package h2

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/conformancetest"
	"github.com/meshbench/meshbench/proxy/config"
)

func TestMain(m *testing.M) { conformancetest.Main(m, nil) }

func TestChecksValid(t *testing.T) {
	if err := conformance.Validate(Checks()); err != nil {
		t.Fatal(err)
	}
}

func TestH2Spec(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "h2/h2spec")
	t.Run("pass", func(t *testing.T) { conformancetest.Pass(t, c) })
	// A listener that serves HTTP/1.1 only: h2spec's HTTP/2 cases fail.
	t.Run("fail", func(t *testing.T) {
		r := conformancetest.Fail(t, conformancetest.Reference(t), c, &conformance.Sabotage{Config: func(c *config.Config) {
			for i := range c.Listeners {
				c.Listeners[i].Protocol = config.ProtoHTTP1
			}
		}})
		if r.Status == conformance.StatusFail && !strings.Contains(r.Reason, "h2spec passed") {
			t.Errorf("failed for another reason than h2spec's count: %s", r.Reason)
		}
	})
}

// runLogged runs c against target like conformancetest.Run, with the
// check's log records (the failed cases) in the test's log.
func runLogged(t *testing.T, target *conformance.Target, c conformance.Check) conformance.Result {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	o := conformance.Options{Dir: t.TempDir(), Tools: conformancetest.Tools(t), Log: log}
	r := conformance.RunOne(t.Context(), target, c, o, log)
	t.Logf("%s on %s: %s %s (%.0f ms) %v", c.ID, target.Name, r.Status, r.Reason, r.DurationMs, r.Figures)
	return r
}

// testWriter writes log lines to a test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
