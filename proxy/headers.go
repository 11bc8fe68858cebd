package proxy

import (
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// hopHeaders are the connection-specific fields of RFC 9110 section 7.6.1,
// plus the legacy Proxy-Connection, which a proxy must not forward. TE is
// handled apart: "TE: trailers" is forwarded because gRPC needs it.
var hopHeaders = map[string]bool{
	"Connection":        true,
	"Proxy-Connection":  true,
	"Keep-Alive":        true,
	"Te":                true,
	"Transfer-Encoding": true,
	"Upgrade":           true,
	"Trailer":           true,
}

var (
	protoHTTP   = []string{"http"}
	protoHTTPS  = []string{"https"}
	teTrailers  = []string{"trailers"}
	noUserAgent = []string{""}
)

// upstreamHeader builds the header of the forwarded request: the client's
// fields less hop-by-hop ones, X-Forwarded-For appended, X-Forwarded-Proto
// set if absent, an X-Request-Id generated if absent, the route's edits, and
// for gRPC a grpc-timeout reduced to the time left.
func (h *handler) upstreamHeader(r *http.Request, rs *routeState, clientTimeout bool, deadline time.Time) http.Header {
	in := r.Header
	out := make(http.Header, len(in)+4)
	for k, vv := range in {
		if hopHeaders[k] {
			if k == "Te" && hasToken(vv, "trailers") {
				out["Te"] = teTrailers
			}
			continue
		}
		out[k] = vv
	}
	removeConnectionTokens(out, in["Connection"])
	// From here a field the Connection header named counts as absent: it
	// was meant for this hop only.
	ip := clientIP(r.RemoteAddr)
	if prior, ok := out["X-Forwarded-For"]; ok && len(prior) > 0 {
		out["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ip}
	} else {
		out["X-Forwarded-For"] = []string{ip}
	}
	if _, ok := out["X-Forwarded-Proto"]; !ok {
		if h.tls {
			out["X-Forwarded-Proto"] = protoHTTPS
		} else {
			out["X-Forwarded-Proto"] = protoHTTP
		}
	}
	if _, ok := out["User-Agent"]; !ok {
		// Forward the absence: keep HTTP clients from adding their own.
		out["User-Agent"] = noUserAgent
	}
	if v := out["X-Request-Id"]; len(v) == 0 || v[0] == "" {
		// An empty id is no id: every request gets one.
		out["X-Request-Id"] = []string{newRequestID()}
	}
	for _, k := range rs.remove {
		delete(out, k)
	}
	for _, kv := range rs.add {
		prev := out[kv.key]
		out[kv.key] = append(prev[:len(prev):len(prev)], kv.value)
	}
	if clientTimeout {
		left := time.Until(deadline)
		if left < time.Nanosecond {
			left = time.Nanosecond
		}
		out["Grpc-Timeout"] = []string{formatGRPCTimeout(left)}
	}
	return out
}

// copyResponseHeader copies src into dst less hop-by-hop fields.
func copyResponseHeader(dst, src http.Header) {
	for k, vv := range src {
		if hopHeaders[k] {
			continue
		}
		dst[k] = vv
	}
	removeConnectionTokens(dst, src["Connection"])
}

// removeConnectionTokens deletes the fields a Connection header names.
func removeConnectionTokens(h http.Header, conn []string) {
	for _, v := range conn {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				delete(h, http.CanonicalHeaderKey(tok))
			}
		}
	}
}

func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for _, t := range strings.Split(v, ",") {
			if t, _, _ = strings.Cut(t, ";"); strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func clientIP(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// newRequestID returns a random RFC 4122 version 4 UUID.
func newRequestID() string {
	var b [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// gRPC status codes the proxy produces itself.
const (
	grpcCanceled         = 1
	grpcInvalidArgument  = 3
	grpcDeadlineExceeded = 4
	grpcPermissionDenied = 7
	grpcUnimplemented    = 12
	grpcUnavailable      = 14
)

// grpcStatusOf reads grpc-status from h, or returns -1. Values outside the
// defined codes count as UNKNOWN (2) so metric labels stay bounded.
func grpcStatusOf(h http.Header) int {
	v := h["Grpc-Status"]
	if len(v) == 0 {
		return -1
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 0 || n > 16 {
		return 2
	}
	return n
}

// parseGRPCTimeout parses the grpc-timeout header: up to 8 digits and a
// unit of H, M, S, m, u or n.
func parseGRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	if n > int64(1<<62)/int64(unit) {
		return 1 << 62, true
	}
	return time.Duration(n) * unit, true
}

// formatGRPCTimeout writes d with the finest unit that fits in 8 digits,
// truncating, so the upstream never gets more time than is left.
func formatGRPCTimeout(d time.Duration) string {
	units := []struct {
		d time.Duration
		c byte
	}{{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'}, {time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'}}
	for _, u := range units {
		n := d / u.d
		if n < 1e8 {
			return strconv.FormatInt(int64(n), 10) + string(u.c)
		}
	}
	return "99999999H"
}

func itoa(n int) string { return strconv.Itoa(n) }
