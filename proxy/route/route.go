package route

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/identity"
)

// Table is the compiled, read-only route list of one listener. It is safe
// for concurrent use.
type Table struct {
	routes []matcher
}

type matcher struct {
	authority   string // lower-cased exact host, or suffix including the dot
	wildcard    bool   // authority is a "*." suffix
	withPort    bool   // authority names a port: compare the whole Host
	path        string
	prefix      string
	grpcService string
	grpcMethod  string
	headers     []headerMatcher
	source      string // identity pattern of the caller's verified certificate
}

type headerMatcher struct {
	name    string // canonical form
	exact   string
	re      *regexp.Regexp
	present *bool
}

// Compile builds a table from validated routes.
func Compile(routes []config.Route) (*Table, error) {
	t := &Table{routes: make([]matcher, len(routes))}
	for i, r := range routes {
		m := matcher{path: r.Match.Path, prefix: r.Match.PathPrefix, grpcService: r.Match.GRPCService, grpcMethod: r.Match.GRPCMethod,
			source: r.Match.SourceIdentity}
		switch a := strings.ToLower(r.Match.Authority); {
		case a == "" || a == "*":
		case strings.HasPrefix(a, "*."):
			m.wildcard, m.authority = true, a[1:]
		default:
			m.authority, m.withPort = a, strings.Contains(a, ":")
		}
		for _, h := range r.Match.Headers {
			hm := headerMatcher{name: http.CanonicalHeaderKey(h.Name), exact: h.Exact, present: h.Present}
			if h.Regex != "" {
				re, err := regexp.Compile("^(?:" + h.Regex + ")$")
				if err != nil {
					return nil, fmt.Errorf("compiling route %d header %q regex: %w", i, h.Name, err)
				}
				hm.re = re
			}
			m.headers = append(m.headers, hm)
		}
		t.routes[i] = m
	}
	return t, nil
}

// Len is the number of routes.
func (t *Table) Len() int { return len(t.routes) }

// Match returns the index of the first route that matches r, or -1.
func (t *Table) Match(r *http.Request) int {
	host := ""
	hostDone := false
	for i := range t.routes {
		m := &t.routes[i]
		if m.authority != "" {
			if !hostDone {
				host, hostDone = strings.ToLower(r.Host), true
			}
			if !m.matchAuthority(host) {
				continue
			}
		}
		p := r.URL.Path
		if m.path != "" && p != m.path {
			continue
		}
		if m.prefix != "" && !strings.HasPrefix(p, m.prefix) {
			continue
		}
		if m.grpcService != "" && !m.matchGRPC(r) {
			continue
		}
		if !m.matchHeaders(r.Header) {
			continue
		}
		if m.source != "" && !identity.MatchPattern(m.source, identity.PeerID(r.TLS)) {
			continue
		}
		return i
	}
	return -1
}

func (m *matcher) matchAuthority(host string) bool {
	if !m.withPort {
		host = stripPort(host)
	}
	if m.wildcard {
		return len(host) > len(m.authority) && strings.HasSuffix(host, m.authority)
	}
	return host == m.authority
}

func (m *matcher) matchGRPC(r *http.Request) bool {
	if !IsGRPC(r) {
		return false
	}
	svc, method, ok := SplitGRPCPath(r.URL.Path)
	if !ok || svc != m.grpcService {
		return false
	}
	return m.grpcMethod == "" || method == m.grpcMethod
}

func (m *matcher) matchHeaders(h http.Header) bool {
	for i := range m.headers {
		hm := &m.headers[i]
		vals, ok := h[hm.name]
		switch {
		case hm.present != nil:
			if ok != *hm.present {
				return false
			}
		case !ok:
			return false
		case hm.re != nil:
			if !anyMatch(vals, hm.re.MatchString) {
				return false
			}
		default:
			if !anyMatch(vals, func(v string) bool { return v == hm.exact }) {
				return false
			}
		}
	}
	return true
}

func anyMatch(vals []string, f func(string) bool) bool {
	for _, v := range vals {
		if f(v) {
			return true
		}
	}
	return false
}

// IsGRPC reports whether r is a gRPC request: HTTP/2 with a content type of
// application/grpc, optionally followed by +proto, +json or ;params.
func IsGRPC(r *http.Request) bool {
	if r.ProtoMajor != 2 {
		return false
	}
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/grpc") {
		return false
	}
	return len(ct) == len("application/grpc") || ct[len("application/grpc")] == '+' || ct[len("application/grpc")] == ';'
}

// SplitGRPCPath splits "/pkg.Service/Method" into its service and method.
func SplitGRPCPath(p string) (service, method string, ok bool) {
	if len(p) < 4 || p[0] != '/' {
		return "", "", false
	}
	service, method, ok = strings.Cut(p[1:], "/")
	if !ok || service == "" || method == "" || strings.Contains(method, "/") {
		return "", "", false
	}
	return service, method, true
}

func stripPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}
