package route_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/route"
)

// plainRoutes use only authority, path and path_prefix, which refMatch
// decides independently of the table.
var plainRoutes = []config.Route{
	{Match: config.Match{Authority: "echo", Path: "/exact"}},
	{Match: config.Match{Authority: "*.svc.local", PathPrefix: "/api/"}},
	{Match: config.Match{Authority: "Mixed.Case:8080"}},
	{Match: config.Match{PathPrefix: "/v1/"}},
	{Match: config.Match{Authority: "echo"}},
	{Match: config.Match{Path: "/"}},
}

// richRoutes add header and gRPC conditions; only determinism and bounds
// are checked for them.
var richRoutes = append([]config.Route{
	{Match: config.Match{GRPCService: "grpc.testing.TestService", GRPCMethod: "UnaryCall"}},
	{Match: config.Match{GRPCService: "grpc.testing.TestService"}},
	{Match: config.Match{Headers: []config.HeaderMatch{{Name: "x-canary", Exact: "yes"}}}},
	{Match: config.Match{Headers: []config.HeaderMatch{{Name: "x-version", Regex: "v[0-9]+"}}}},
	{Match: config.Match{Headers: []config.HeaderMatch{{Name: "x-debug", Present: ptr(false)}}, PathPrefix: "/nodebug"}},
}, plainRoutes...)

// refHost is the host of an authority without its port, lower-cased, and
// whether the authority is simple enough (host or host:port, no IPv6
// literal) for the reference to judge.
func refHost(authority string) (host string, simple bool) {
	a := strings.ToLower(authority)
	if strings.ContainsAny(a, "[]") || strings.Count(a, ":") > 1 {
		return "", false
	}
	host, _, _ = strings.Cut(a, ":")
	return host, true
}

// refMatch is the first plain route matching authority and path, written
// from the documented rules: exact host (port ignored unless the route
// names one), "*.suffix" for any proper subdomain, exact path, path
// prefix.
func refMatch(authority, path string) (int, bool) {
	host, simple := refHost(authority)
	if !simple {
		return 0, false
	}
	for i, r := range plainRoutes {
		m := r.Match
		switch a := strings.ToLower(m.Authority); {
		case a == "":
		case strings.HasPrefix(a, "*."):
			if !strings.HasSuffix(host, a[1:]) || len(host) <= len(a)-1 {
				continue
			}
		case strings.Contains(a, ":"):
			if strings.ToLower(authority) != a {
				continue
			}
		default:
			if host != a {
				continue
			}
		}
		if m.Path != "" && path != m.Path || m.PathPrefix != "" && !strings.HasPrefix(path, m.PathPrefix) {
			continue
		}
		return i, true
	}
	return -1, true
}

// FuzzRouteMatch matches arbitrary requests against compiled tables: it
// must never panic, must give the same answer twice, must return a valid
// index, and on plain routes must agree with refMatch.
func FuzzRouteMatch(f *testing.F) {
	f.Add("echo", "/exact", "x-canary", "yes", "", false)
	f.Add("a.svc.local:80", "/api/users", "x-version", "v12", "", false)
	f.Add("echo:9999", "/grpc.testing.TestService/UnaryCall", "", "", "application/grpc+proto", true)
	f.Add("mixed.case:8080", "/v1/x", "x-debug", "1", "text/plain", false)
	f.Add("[::1]:80", "/nodebug", "", "", "application/grpc;x=y", true)
	plain, err := route.Compile(plainRoutes)
	if err != nil {
		f.Fatal(err)
	}
	rich, err := route.Compile(richRoutes)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, authority, path, hname, hvalue, ctype string, h2 bool) {
		r := &http.Request{Method: "POST", Host: authority, URL: &url.URL{Path: path}, Header: http.Header{}, ProtoMajor: 1}
		if h2 {
			r.ProtoMajor = 2
		}
		if hname != "" {
			r.Header[http.CanonicalHeaderKey(hname)] = []string{hvalue}
		}
		if ctype != "" {
			r.Header["Content-Type"] = []string{ctype}
		}
		for _, tc := range []struct {
			name  string
			table *route.Table
		}{{"plain", plain}, {"rich", rich}} {
			i := tc.table.Match(r)
			if i < -1 || i >= tc.table.Len() {
				t.Fatalf("%s: Match = %d, out of range", tc.name, i)
			}
			if j := tc.table.Match(r); j != i {
				t.Fatalf("%s: Match gave %d, then %d", tc.name, i, j)
			}
		}
		if want, ok := refMatch(authority, path); ok {
			if got := plain.Match(r); got != want {
				t.Fatalf("Match(host %q, path %q) = %d, reference says %d", authority, path, got, want)
			}
		}
	})
}
