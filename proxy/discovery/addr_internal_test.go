package discovery

import (
	"strings"
	"testing"
)

func TestCanonicalAddr(t *testing.T) {
	for _, tc := range []struct{ in, want, problem string }{
		{"127.0.0.1:8080", "127.0.0.1:8080", ""},
		{"127.0.0.1:08080", "127.0.0.1:8080", ""},
		{"[::1]:80", "[::1]:80", ""},
		{"[FD00:0:0::1]:80", "[fd00::1]:80", ""},
		{"[fe80::1%eth0]:80", "[fe80::1%eth0]:80", ""},
		{"Backend-1.Example.:443", "backend-1.example.:443", ""},
		{"svc_a:1", "svc_a:1", ""},
		{"127.0.0.1:65535", "127.0.0.1:65535", ""},
		{"127.0.0.1", "", "not host:port"},
		{"::1:80", "", "not host:port"},
		{"[127.0.0.1]:80", "", "not host:port"},
		{"[::1:80", "", "not host:port"},
		{":80", "", "not host:port"},
		{"a:", "", "not host:port"},
		{"a:0", "", `port "0" is not in 1..65535`},
		{"a:65536", "", `port "65536" is not in 1..65535`},
		{"a:+80", "", `port "+80" is not in 1..65535`},
		{"a:http", "", `port "http" is not in 1..65535`},
		{"10.0.0:80", "", `invalid IP address "10.0.0"`},
		{"256.0.0.1:80", "", `invalid IP address "256.0.0.1"`},
		{"a..b:80", "", `invalid host name "a..b"`},
		{"-a:80", "", `invalid host name "-a"`},
		{"a b:80", "", `invalid host name "a b"`},
		{"http://a:80", "", "not host:port"},
	} {
		got, problem := canonicalAddr(tc.in)
		if got != tc.want || !strings.HasPrefix(problem, tc.problem) || (tc.problem == "") != (problem == "") {
			t.Errorf("canonicalAddr(%q) = %q, %q; want %q, %q", tc.in, got, problem, tc.want, tc.problem)
		}
	}
}
