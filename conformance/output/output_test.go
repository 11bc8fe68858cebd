package output

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/conformance"
)

func sample() *conformance.Report {
	r := &conformance.Report{Checks: []conformance.CheckInfo{
		{ID: "core-http/http1", Profile: "core-http", Title: "HTTP/1.1", Asserts: "a"},
		{ID: "grpc/unary", Profile: "grpc", Title: "unary", Asserts: "b"},
	}}
	r.Proxies = []conformance.ProxyReport{
		{Name: "reference", Version: "v1", Results: []conformance.Result{{ID: "core-http/http1", Status: "pass"}, {ID: "grpc/unary", Status: "pass"}}, Counts: conformance.Counts{Pass: 2}},
		{Name: "nginx", Version: "1.22", Results: []conformance.Result{{ID: "core-http/http1", Status: "fail", Reason: "GET: 502\nmore"}, {ID: "grpc/unary", Status: "unsupported", Reason: "no h2c"}}, Counts: conformance.Counts{Fail: 1, Unsupported: 1}},
	}
	return r
}

func TestMatrix(t *testing.T) {
	var b strings.Builder
	if err := Matrix(&b, sample()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"check", "reference", "nginx", "core-http/http1", "FAIL", "n/a", "2/0/0/0", "0/1/1/0", "FAIL core-http/http1 on nginx: GET: 502"} {
		if !strings.Contains(out, want) {
			t.Errorf("matrix lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "more") {
		t.Errorf("matrix shows more than a reason's first line:\n%s", out)
	}
}

func TestJUnit(t *testing.T) {
	r := sample()
	b, err := JUnit(r, r.Proxies[1])
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Suites []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Skipped  int    `xml:"skipped,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Suites) != 2 || v.Suites[0].Failures != 1 || v.Suites[1].Skipped != 1 || v.Suites[0].Tests+v.Suites[1].Tests != 2 {
		t.Errorf("JUnit suites: %+v\n%s", v.Suites, b)
	}
}

func TestMarkdownAndHTML(t *testing.T) {
	md := string(Markdown(sample()))
	for _, want := range []string{"| reference | v1 | 2 | 0 |", "| [core-http/http1](#core-http-http1) | pass | FAIL |", "- **nginx**: n/a — no h2c"} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	h, err := HTML(sample())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(h), `<td class="fail" title="GET: 502">FAIL</td>`) {
		t.Errorf("report.html lacks the failed cell:\n%s", h)
	}
}
