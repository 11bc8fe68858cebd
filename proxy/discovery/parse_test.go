package discovery_test

import (
	"github.com/meshbench/meshbench/proxy/discovery"
	"github.com/meshbench/meshbench/proxy/discovery/discoverytest"

	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/internal/yamlstrict"
)

func TestParseFile(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []discovery.Endpoint
	}{
		{"list", "endpoints:\n  - 127.0.0.1:8082\n  - 127.0.0.1:8081\n",
			discoverytest.Eps("127.0.0.1:8081", "127.0.0.1:8082")},
		{"flow list", "endpoints: [127.0.0.1:8081, \"[::1]:8081\"]\n",
			discoverytest.Eps("127.0.0.1:8081", "[::1]:8081")},
		{"empty list", "endpoints: []\n", []discovery.Endpoint{}},
		{"weights", "endpoints: [a:1, b:1, c:1]\nweights:\n  b:1: 5\n  a:1: 1\n",
			[]discovery.Endpoint{{"a:1", 1}, {"b:1", 5}, {"c:1", 1}}},
		{"empty weights", "endpoints: [a:1]\nweights: {}\n", discoverytest.Eps("a:1")},
		{"canonical spelling", "endpoints: [\"[FD00::0:1]:080\", Host.Example:90]\nweights: {\"[fd00::1]:80\": 2}\n",
			[]discovery.Endpoint{{"[fd00::1]:80", 2}, {"host.example:90", 1}}},
		{"comments", "# endpoints of echo\nendpoints:\n  - 10.0.0.1:80 # first\n", discoverytest.Eps("10.0.0.1:80")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := discovery.ParseFile("e.yaml", []byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string // the lines of the error
	}{
		{"empty file", "", []string{"e.yaml: endpoints: required (write endpoints: [] for a cluster without endpoints)"}},
		{"only a comment", "# nothing\n", []string{"e.yaml: endpoints: required (write endpoints: [] for a cluster without endpoints)"}},
		{"null list", "endpoints:\n", []string{"e.yaml:1: endpoints: required (write endpoints: [] for a cluster without endpoints)"}},
		{"weights only", "weights: {a:1: 2}\n", []string{
			`e.yaml:1: endpoints: required (write endpoints: [] for a cluster without endpoints)`,
			`e.yaml:1: weights.a:1: "a:1" is not one of the endpoints`}},
		{"bad addresses", "endpoints:\n  - 127.0.0.1\n  - a:0\n  - 10.0.0:80\n  - a..b:1\n  - ok:1\n  - \"[::1:80\"\n", []string{
			`e.yaml:2: endpoints[0]: "127.0.0.1": not host:port (IPv6 addresses go in brackets: [::1]:8080)`,
			`e.yaml:3: endpoints[1]: "a:0": port "0" is not in 1..65535`,
			`e.yaml:4: endpoints[2]: "10.0.0:80": invalid IP address "10.0.0"`,
			`e.yaml:5: endpoints[3]: "a..b:1": invalid host name "a..b"`,
			`e.yaml:7: endpoints[5]: "[::1:80": not host:port (IPv6 addresses go in brackets: [::1]:8080)`}},
		{"duplicates", "endpoints:\n  - a:1\n  - b:1\n  - A:01\n", []string{
			`e.yaml:4: endpoints[2]: "A:01": listed before as endpoints[0]`}},
		{"bad weights", "endpoints: [a:1, b:1]\nweights:\n  a:1: 0\n  b:1: -2\n  c:1: 2\n  A:1: 3\n", []string{
			`e.yaml:3: weights.a:1: weight 0: must be at least 1`,
			`e.yaml:4: weights.b:1: weight -2: must be at least 1`,
			`e.yaml:5: weights.c:1: "c:1" is not one of the endpoints`,
			`e.yaml:6: weights.A:1: "A:1": same endpoint as weights key "a:1"`}},
		{"weight not a number", "endpoints: [a:1]\nweights: {a:1: heavy}\n", []string{
			`e.yaml:2: weights.a:1: "heavy": not an integer`}},
		{"unknown field", "endpoints: [a:1]\nendpoint: [b:1]\n", []string{
			`e.yaml:2: endpoint: unknown field (known fields: endpoints, weights)`}},
		{"not a list", "endpoints: a:1\n", []string{`e.yaml:1: endpoints: expected a list, found "a:1"`}},
		{"list of mappings", "endpoints:\n  - {addr: a:1}\n", []string{`e.yaml:2: endpoints[0]: expected a string, found a mapping`}},
		{"syntax", "endpoints: [a:1\n", []string{"e.yaml:1: YAML syntax: did not find expected ',' or ']'"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := discovery.ParseFile("e.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("no error, got %v", got)
			}
			var es yamlstrict.Errors
			if !errors.As(err, &es) {
				t.Errorf("error %T is not yamlstrict.Errors", err)
			}
			if lines := strings.Split(err.Error(), "\n"); !slices.Equal(lines, tc.want) {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestParseFileTestdata(t *testing.T) {
	data, err := os.ReadFile("testdata/endpoints.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := discovery.ParseFile("testdata/endpoints.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	want := []discovery.Endpoint{{"127.0.0.1:8081", 3}, {"127.0.0.1:8082", 1}, {"[::1]:8083", 1}, {"localhost:8084", 1}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	data, err = os.ReadFile("testdata/invalid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = discovery.ParseFile("testdata/invalid.yaml", data)
	want2 := `testdata/invalid.yaml:3: endpoints[1]: "127.0.0.1": not host:port (IPv6 addresses go in brackets: [::1]:8080)
testdata/invalid.yaml:4: endpoints[2]: "127.0.0.1:8081": listed before as endpoints[0]
testdata/invalid.yaml:6: weights.127.0.0.1:9999: "127.0.0.1:9999" is not one of the endpoints
testdata/invalid.yaml:7: weights.127.0.0.1:8081: weight 0: must be at least 1`
	if err == nil || err.Error() != want2 {
		t.Errorf("error:\n%v\nwant:\n%s", err, want2)
	}
}
