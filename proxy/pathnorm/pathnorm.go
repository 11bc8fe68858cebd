package pathnorm

import (
	"errors"
	"strings"
)

// SlashAction is what Normalize does with an escaped "/" or "\" (%2F, %5C).
type SlashAction int

const (
	// Reject refuses the path: its meaning depends on whether the upstream
	// decodes the escape before splitting segments, which a proxy cannot
	// know.
	Reject SlashAction = iota
	// Unescape decodes %2F and %5C, and takes a bare "\", as "/" before
	// segments are split (as WHATWG URL parsing does for http), so "..%2F"
	// and "..\" are dot segments like "../".
	Unescape
)

// Errors of Normalize.
var (
	// ErrEscapedSlash is an escaped "/" or "\", or a bare "\", under
	// Reject.
	ErrEscapedSlash = errors.New("path has an escaped slash or backslash")
	// ErrMalformed is a path that is not absolute, a "%" not followed by
	// two hex digits, or an escaped NUL.
	ErrMalformed = errors.New("malformed path")
)

// Normalize returns the normalised form of escaped, a request path as sent
// (no query): the escaped form to forward and the decoded form to route and
// authorize on. The two always have the same segments.
func Normalize(escaped string, slashes SlashAction) (raw, decoded string, err error) {
	if escaped == "" || escaped[0] != '/' {
		return "", "", ErrMalformed
	}
	if clean(escaped) {
		return escaped, escaped, nil
	}
	// Pass 1: decode what must be decoded, upper-case the other escapes.
	var b strings.Builder
	b.Grow(len(escaped))
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		if c == '\\' {
			if slashes != Unescape {
				return "", "", ErrEscapedSlash
			}
			c = '/'
		}
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
			return "", "", ErrMalformed
		}
		v := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
		i += 2
		switch {
		case v == 0:
			return "", "", ErrMalformed
		case v == '/' || v == '\\':
			if slashes != Unescape {
				return "", "", ErrEscapedSlash
			}
			b.WriteByte('/')
		case unreserved(v):
			b.WriteByte(v)
		default:
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[v>>4])
			b.WriteByte(hex[v&15])
		}
	}
	raw = removeDots(b.String())
	return raw, decode(raw), nil
}

// clean reports whether p needs no work: no escape, no empty segment, no
// dot segment.
func clean(p string) bool {
	if strings.IndexByte(p, '%') >= 0 || strings.IndexByte(p, '\\') >= 0 || strings.Contains(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' || i+1 >= len(p) || p[i+1] != '.' {
			continue
		}
		// "/." starts a segment: a dot segment if it is "." or "..".
		j := i + 2
		if j < len(p) && p[j] == '.' {
			j++
		}
		if j == len(p) || p[j] == '/' {
			return false
		}
	}
	return true
}

// removeDots merges slashes and removes dot segments from an absolute path,
// keeping a trailing slash (RFC 3986 §5.2.4: "/a/b/.." is "/a/").
func removeDots(p string) string {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "", ".":
			trailing = last
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
		default:
			out = append(out, s)
			trailing = false
		}
	}
	r := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		r += "/"
	}
	return r
}

// decode unescapes every %XX of a path Normalize produced (all valid, none
// a slash).
func decode(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' {
			b.WriteByte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
