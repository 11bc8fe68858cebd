package identity

import "strings"

// Rule allows requests that meet every condition it sets. An empty
// condition does not restrict.
type Rule struct {
	// Identities are patterns for MatchPattern: a SPIFFE ID, a prefix
	// followed by "*", or "*" for any authenticated caller. Empty allows
	// any caller, with or without an identity.
	Identities []string
	// PathPrefix restricts the request path.
	PathPrefix string
	// Methods restricts the HTTP method (upper case); gRPC calls are POST.
	Methods []string
}

// Policy is an allow-list: a request is allowed when at least one rule
// allows it, and denied otherwise (an empty Policy denies everything). It
// is read-only and safe for concurrent use.
type Policy struct {
	Rules []Rule
}

// Allow reports whether the caller id (zero for a caller without an
// identity) may send method on path.
func (p *Policy) Allow(id ID, method, path string) bool {
	for i := range p.Rules {
		if p.Rules[i].allows(id, method, path) {
			return true
		}
	}
	return false
}

func (r *Rule) allows(id ID, method, path string) bool {
	if r.PathPrefix != "" && !strings.HasPrefix(path, r.PathPrefix) {
		return false
	}
	if len(r.Methods) > 0 {
		ok := false
		for _, m := range r.Methods {
			if m == method {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.Identities) == 0 {
		return true
	}
	for _, pat := range r.Identities {
		if MatchPattern(pat, id) {
			return true
		}
	}
	return false
}
