package discovery

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Endpoint is one address of a cluster.
type Endpoint struct {
	Addr   string // host:port (IPv6 hosts in brackets)
	Weight int    // >= 1
}

// Source delivers a cluster's endpoint sets.
type Source interface {
	// Run calls update with the complete current set (sorted by Addr, no
	// duplicates), first as soon as it is known and then after every change
	// (never twice in a row with an equal set), until ctx ends. update is
	// never called concurrently. Run returns nil when ctx ends, or an error
	// if the source cannot start at all.
	Run(ctx context.Context, update func([]Endpoint)) error
}

// Static returns a Source whose set never changes: Run delivers eps once and
// then waits for its context to end. The set is sorted by address; of
// duplicate addresses the first is kept, and a weight below 1 counts as 1.
// Addresses are used as given: validating them is the caller's job.
func Static(eps []Endpoint) Source {
	return staticSource{eps: Normalize(eps)}
}

type staticSource struct{ eps []Endpoint }

// Run delivers the fixed set once and returns nil when ctx ends.
func (s staticSource) Run(ctx context.Context, update func([]Endpoint)) error {
	update(slices.Clone(s.eps))
	<-ctx.Done()
	return nil
}

// Normalize returns a copy of eps in the form every Source delivers:
// sorted by address, without duplicate addresses (the first wins) and with
// every weight at least 1. Addresses are not checked.
func Normalize(eps []Endpoint) []Endpoint {
	out := slices.Clone(eps)
	if out == nil {
		out = []Endpoint{}
	}
	for i := range out {
		out[i].Weight = max(out[i].Weight, 1)
	}
	slices.SortStableFunc(out, func(a, b Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
	return slices.CompactFunc(out, func(a, b Endpoint) bool { return a.Addr == b.Addr })
}

// canonicalAddr checks that s is host:port with a port in 1..65535 and a
// host that is an IP address or a DNS name, and returns it in one spelling:
// IP addresses as netip prints them (IPv6 in brackets, zeros compressed), DNS
// names in lower case, the port without leading zeros. When s is not
// acceptable it returns what is wrong instead.
func canonicalAddr(s string) (addr, problem string) {
	host, port, ok := splitHostPort(s)
	if !ok {
		return "", "not host:port (IPv6 addresses go in brackets: [::1]:8080)"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strings.ContainsAny(port, "+-") {
		return "", "port " + strconv.Quote(port) + " is not in 1..65535"
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip, uint16(n)).String(), ""
	}
	if strings.Trim(host, "0123456789.") == "" || strings.ContainsAny(host, ":%") {
		return "", "invalid IP address " + strconv.Quote(host)
	}
	if !validDNSName(host) {
		return "", "invalid host name " + strconv.Quote(host)
	}
	return strings.ToLower(host) + ":" + strconv.Itoa(n), ""
}

// splitHostPort is net.SplitHostPort that insists on a non-empty host and
// port.
func splitHostPort(s string) (host, port string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", false
	}
	host, port = s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", "", false
		}
		host = host[1 : len(host)-1]
		if !strings.Contains(host, ":") {
			return "", "", false // brackets are for IPv6 only
		}
	} else if strings.ContainsAny(host, ":[]") {
		return "", "", false
	}
	return host, port, host != "" && port != ""
}

// validDNSName reports whether host is a DNS name of letters, digits, '-'
// and '_' labels (a trailing dot allowed).
func validDNSName(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return false
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return false
		}
	}
	return true
}
