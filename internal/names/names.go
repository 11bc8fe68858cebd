package names

import "strings"

// DNSLabel reports whether s is an RFC 1123 label, as Kubernetes names
// namespaces, services and pods: 1 to 63 lower-case letters, digits and
// '-', not starting or ending with '-'.
func DNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

// Safe reports whether s is usable in file names and IDs: lower-case
// letters, digits, '-' and '_', starting with a letter or digit (so never
// ".", ".." or a path).
func Safe(s string) bool {
	if s == "" || s[0] == '-' || s[0] == '_' {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}
