// Package pathnorm normalises a request path before a proxy routes,
// authorizes and forwards it, so that the path a policy sees is the path
// the upstream serves.
//
// Normalize decodes percent-encoded unreserved characters (RFC 3986 §6.2.2.2,
// "%2e" becomes "."), writes the remaining escapes in upper case, merges runs
// of slashes, and removes "." and ".." segments (§5.2.4). An escaped "/" or
// "\" (%2F, %5C) or a bare "\" is refused, or, with Unescape, taken as a
// separator, as Envoy's path_with_escaped_slashes_action does (and as
// browsers do with "\" in http URLs). A malformed escape and an escaped
// NUL are refused.
package pathnorm
