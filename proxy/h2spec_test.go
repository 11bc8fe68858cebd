package proxy_test

// h2spec (the pinned github.com/summerwind/h2spec v2.2.1, a go.mod tool
// directive) against the proxy's HTTP/2 listeners: h2c with prior knowledge
// on a protocol-auto listener, and h2 over TLS. The proxy forwards to an
// in-process HTTP/1.1 + h2c backend that answers 200 to anything. The
// measured counts are pinned below: the test fails if fewer cases pass or
// if h2spec runs a different number of cases. See docs/conformance.md.
//
//	go test ./proxy -run H2Spec -v

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

const (
	// h2specTotal is how many cases h2spec v2.2.1 runs without --strict
	// (146 with it).
	h2specTotal = 145
	// h2specMinPassedH2C and h2specMinPassedTLS are the pass counts
	// measured against the proxy with Go 1.26: every failure is one of
	// h2specKnownFailures, and a bare net/http server fails the same
	// cases (docs/conformance.md says why). Raise them when the proxy
	// gets better.
	h2specMinPassedH2C = 140
	h2specMinPassedTLS = 141
	// h2specCaseTimeout is h2spec's -o: seconds to wait for the server's
	// reaction in one case.
	h2specCaseTimeout = 2
	// h2specRunTimeout bounds one whole h2spec run.
	h2specRunTimeout = 90 * time.Second
)

func TestH2Spec(t *testing.T) {
	bin := interopGoTool(t, "h2spec")
	backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, h2specBody)
	})).addr
	certDir := selfSigned(t)
	yml := fmt.Sprintf(`listeners:
- name: h2c
  address: 127.0.0.1:0
  protocol: auto
  routes:
  - match: {}
    cluster: backend
    timeout: 30s
- name: tls
  address: 127.0.0.1:0
  protocol: h2
  tls: {cert_file: %q, key_file: %q}
  routes:
  - match: {}
    cluster: backend
    timeout: 30s
clusters:
- name: backend
  protocol: same
  endpoints: [%s]
`, filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "key.pem"), backend)
	srv := interopStartProxy(t, yml)

	for _, run := range []struct {
		listener  string
		args      []string
		minPassed int
	}{
		{"h2c", nil, h2specMinPassedH2C},
		{"tls", []string{"-t", "-k"}, h2specMinPassedTLS},
	} {
		t.Run(run.listener, func(t *testing.T) {
			t.Parallel()
			port := srv.Addr(run.listener).(*net.TCPAddr).Port
			r := h2specRun(t, bin, port, run.args)
			t.Logf("h2spec %s: %d tests, %d passed, %d skipped, %d failed (%v)",
				run.listener, r.total, r.passed, r.skipped, r.failed, r.elapsed.Round(time.Millisecond))
			for _, name := range r.failures {
				if slices.Contains(h2specKnownFailures[name], run.listener) {
					t.Logf("failed (known, see docs/conformance.md): %s", name)
				} else {
					t.Errorf("failed (new failure): %s", name)
				}
			}
			if r.total != h2specTotal {
				t.Errorf("h2spec ran %d cases, want %d (a different h2spec, or runs that broke off)", r.total, h2specTotal)
			}
			if r.passed < run.minPassed {
				t.Errorf("h2spec passed %d cases, want at least %d", r.passed, run.minPassed)
			} else if r.passed > run.minPassed {
				t.Logf("h2spec passed %d cases, more than the pinned %d: raise the constant", r.passed, run.minPassed)
			}
			if t.Failed() {
				t.Logf("h2spec output:\n%s", r.output)
			}
		})
	}
}

// h2specKnownFailures are the cases the proxy is known to fail, as
// "<section> <description>" (JUnit package and classname), with the
// listeners they fail on. Any other failing case fails the test even if
// the pass count holds.
var h2specKnownFailures = map[string][]string{
	// An HTTP/1.1 + h2c port parses a bad preface as HTTP/1.1 and
	// answers 400 before closing; an h2c-only net/http port closes with
	// unread input, which resets the connection. h2spec wants a clean
	// close.
	"http2/3.5 Sends invalid connection preface": {"h2c"},
	// net/http advertises SETTINGS_MAX_FRAME_SIZE 1 MiB; h2spec sends a
	// ~20 KB HEADERS frame expecting the 16 KiB default.
	"http2/4.2 Sends a large size HEADERS frame that exceeds the SETTINGS_MAX_FRAME_SIZE": {"h2c", "tls"},
	// net/http hangs up (GOAWAY PROTOCOL_ERROR) on a SETTINGS frame that
	// repeats a setting.
	"http2/6.5.3 Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE": {"h2c", "tls"},
	// net/http answers 400 Bad Request instead of resetting the stream
	// with PROTOCOL_ERROR.
	"http2/8.1.2.2 Sends a HEADERS frame that contains the connection-specific header field":                     {"h2c", "tls"},
	`http2/8.1.2.2 Sends a HEADERS frame that contains the TE header field with any value other than "trailers"`: {"h2c", "tls"},
}

// h2specResult is one h2spec run.
type h2specResult struct {
	total, passed, skipped, failed int
	failures                       []string // "<section> <description>" of failed cases
	output                         string
	elapsed                        time.Duration
}

// h2specSummary is h2spec's closing line.
var h2specSummary = regexp.MustCompile(`(?m)^(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed$`)

// h2specRun runs h2spec against 127.0.0.1:port with extra args and reads
// its JUnit report, cross-checked against the summary line.
func h2specRun(t *testing.T, bin string, port int, args []string) h2specResult {
	t.Helper()
	report := filepath.Join(t.TempDir(), "report.xml")
	ctx, cancel := context.WithTimeout(context.Background(), h2specRunTimeout)
	defer cancel()
	all := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-o", strconv.Itoa(h2specCaseTimeout), "-j", report}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	out := &interopBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	res := h2specResult{output: out.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("h2spec %v: killed after %v\n%s", all, h2specRunTimeout, res.output)
	}
	// h2spec exits 1 when a case failed; anything else, or no summary, is
	// a broken run.
	m := h2specSummary.FindStringSubmatch(res.output)
	if m == nil {
		t.Fatalf("h2spec %v: %v, and no summary line:\n%s", all, err, res.output)
	}
	var sum [4]int
	for i := range sum {
		sum[i], _ = strconv.Atoi(m[i+1])
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || sum[3] == 0 {
			t.Fatalf("h2spec %v: %v\n%s", all, err, res.output)
		}
	}

	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec wrote no JUnit report: %v\n%s", err, res.output)
	}
	var doc struct {
		Suites []struct {
			Cases []struct {
				Package   string    `xml:"package,attr"`
				ClassName string    `xml:"classname,attr"`
				Failure   *struct{} `xml:"failure"`
				Error     *struct{} `xml:"error"`
				Skipped   *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("h2spec JUnit report: %v", err)
	}
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			res.total++
			switch {
			// h2spec v2.2.1 files every failed case as <error>: its
			// type switch on spec.TestError never matches the pointer.
			case c.Failure != nil || c.Error != nil:
				res.failed++
				res.failures = append(res.failures, c.Package+" "+c.ClassName)
			case c.Skipped != nil:
				res.skipped++
			default:
				res.passed++
			}
		}
	}
	if got := [4]int{res.total, res.passed, res.skipped, res.failed}; got != sum {
		t.Errorf("h2spec JUnit report counts %v (total, passed, skipped, failed) but its summary says %v", got, sum)
	}
	return res
}

// h2specBody is the backend's answer. At least 5 bytes: h2spec skips its
// negative-flow-control-window case (6.9.2/2) when the server's response
// body is shorter.
const h2specBody = "meshbench h2spec backend\n"
