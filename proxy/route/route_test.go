package route_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/route"
)

func ptr[T any](v T) *T { return &v }

func TestMatch(t *testing.T) {
	routes := []config.Route{
		{Match: config.Match{GRPCService: "grpc.testing.TestService", GRPCMethod: "UnaryCall"}},                         // 0
		{Match: config.Match{GRPCService: "grpc.testing.TestService"}},                                                  // 1
		{Match: config.Match{Authority: "api.example", Path: "/exact"}},                                                 // 2
		{Match: config.Match{Authority: "*.svc.local", PathPrefix: "/v1/"}},                                             // 3
		{Match: config.Match{Headers: []config.HeaderMatch{{Name: "x-canary", Exact: "yes"}}}},                          // 4
		{Match: config.Match{Headers: []config.HeaderMatch{{Name: "x-version", Regex: "v[0-9]+"}}}},                     // 5
		{Match: config.Match{Headers: []config.HeaderMatch{{Name: "x-debug", Present: ptr(true)}}}},                     // 6
		{Match: config.Match{Authority: "legacy", Headers: []config.HeaderMatch{{Name: "x-new", Present: ptr(false)}}}}, // 7
		{Match: config.Match{Authority: "echo:8080"}},                                                                   // 8
		{Match: config.Match{Authority: "catchall", PathPrefix: "/"}},                                                   // 9
	}
	tab, err := route.Compile(routes)
	if err != nil {
		t.Fatal(err)
	}
	grpcReq := func(path string) *http.Request {
		r := httptest.NewRequest("POST", "http://any"+path, nil)
		r.ProtoMajor = 2
		r.Header.Set("Content-Type", "application/grpc+proto")
		return r
	}
	req := func(host, path string, kv ...string) *http.Request {
		r := httptest.NewRequest("GET", "http://"+host+path, nil)
		for i := 0; i+1 < len(kv); i += 2 {
			r.Header.Set(kv[i], kv[i+1])
		}
		return r
	}
	cases := []struct {
		name string
		r    *http.Request
		want int
	}{
		{"grpc method", grpcReq("/grpc.testing.TestService/UnaryCall"), 0},
		{"grpc service", grpcReq("/grpc.testing.TestService/StreamingOutputCall"), 1},
		{"grpc other service", grpcReq("/grpc.testing.Other/UnaryCall"), -1},
		{"grpc path over http1 is not grpc", func() *http.Request { r := grpcReq("/grpc.testing.TestService/UnaryCall"); r.ProtoMajor = 1; return r }(), -1},
		{"exact host and path", req("api.example", "/exact"), 2},
		{"exact host case-insensitive with port", req("API.Example:80", "/exact"), 2},
		{"exact path does not match longer", req("api.example", "/exact/more"), -1},
		{"wildcard suffix", req("echo.ns.svc.local", "/v1/items"), 3},
		{"wildcard needs a label", req("svc.local", "/v1/items"), -1},
		{"wildcard prefix mismatch", req("echo.svc.local", "/v2/items"), -1},
		{"header exact", req("x", "/", "X-Canary", "yes"), 4},
		{"header exact mismatch", req("x", "/", "X-Canary", "no"), -1},
		{"header regex anchored", req("x", "/", "X-Version", "v12"), 5},
		{"header regex not partial", req("x", "/", "X-Version", "xv12"), -1},
		{"header present", req("x", "/", "X-Debug", ""), 6},
		{"header absent", req("legacy", "/"), 7},
		{"header absent fails when present", req("legacy", "/", "X-New", "1"), -1},
		{"authority with port exact", req("echo:8080", "/"), 8},
		{"authority with other port", req("echo:9090", "/"), -1},
		{"first match wins", req("catchall", "/", "X-Canary", "yes"), 4},
		{"catch-all", req("catchall", "/anything"), 9},
	}
	for _, tc := range cases {
		if got := tab.Match(tc.r); got != tc.want {
			t.Errorf("%s: Match = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestSplitGRPCPath(t *testing.T) {
	for _, tc := range []struct {
		in, svc, m string
		ok         bool
	}{
		{"/a.B/C", "a.B", "C", true},
		{"/a.B/", "", "", false},
		{"//C", "", "", false},
		{"/a.B/C/D", "", "", false},
		{"a.B/C", "", "", false},
	} {
		s, m, ok := route.SplitGRPCPath(tc.in)
		if s != tc.svc || m != tc.m || ok != tc.ok {
			t.Errorf("SplitGRPCPath(%q) = %q, %q, %v", tc.in, s, m, ok)
		}
	}
}
