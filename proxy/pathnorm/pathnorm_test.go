package pathnorm

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	cases := []struct {
		in, raw, decoded string
		slashes          SlashAction
		err              error
	}{
		{in: "/", raw: "/", decoded: "/"},
		{in: "/public/a.txt", raw: "/public/a.txt", decoded: "/public/a.txt"},
		{in: "/public/../admin/secret.txt", raw: "/admin/secret.txt", decoded: "/admin/secret.txt"},
		{in: "/public/%2e%2e/admin/secret.txt", raw: "/admin/secret.txt", decoded: "/admin/secret.txt"},
		{in: "/public/%2E./admin", raw: "/admin", decoded: "/admin"},
		{in: "/public/..%2fadmin/secret.txt", err: ErrEscapedSlash},
		{in: "/public/..%2Fadmin/secret.txt", err: ErrEscapedSlash},
		{in: "/public/..%5cadmin", err: ErrEscapedSlash},
		{in: "/public/..%2fadmin/secret.txt", slashes: Unescape, raw: "/admin/secret.txt", decoded: "/admin/secret.txt"},
		{in: "/public/a%2fb", slashes: Unescape, raw: "/public/a/b", decoded: "/public/a/b"},
		{in: "/public/..%5Cadmin", slashes: Unescape, raw: "/admin", decoded: "/admin"},
		{in: `/public/..\admin`, slashes: Unescape, raw: "/admin", decoded: "/admin"},
		{in: `/public/..\admin`, err: ErrEscapedSlash},
		{in: "/public/./a", raw: "/public/a", decoded: "/public/a"},
		{in: "/public//a", raw: "/public/a", decoded: "/public/a"},
		{in: "//admin", raw: "/admin", decoded: "/admin"},
		{in: "/a/b/..", raw: "/a/", decoded: "/a/"},
		{in: "/a/b/.", raw: "/a/b/", decoded: "/a/b/"},
		{in: "/../../etc/passwd", raw: "/etc/passwd", decoded: "/etc/passwd"},
		{in: "/..", raw: "/", decoded: "/"},
		{in: "/a/", raw: "/a/", decoded: "/a/"},
		{in: "/a/.b/..c/...", raw: "/a/.b/..c/...", decoded: "/a/.b/..c/..."},
		{in: "/%7euser/%41", raw: "/~user/A", decoded: "/~user/A"},
		{in: "/a%20b/%3f", raw: "/a%20b/%3F", decoded: "/a b/?"},
		{in: "/pkg.Service/Method", raw: "/pkg.Service/Method", decoded: "/pkg.Service/Method"},
		{in: "/a%2", err: ErrMalformed},
		{in: "/a%zz", err: ErrMalformed},
		{in: "/a%00b", err: ErrMalformed},
		{in: "a/b", err: ErrMalformed},
		{in: "", err: ErrMalformed},
	}
	for _, c := range cases {
		raw, dec, err := Normalize(c.in, c.slashes)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("Normalize(%q) error %v, want %v", c.in, err, c.err)
			}
			continue
		}
		if err != nil || raw != c.raw || dec != c.decoded {
			t.Errorf("Normalize(%q) = %q, %q, %v; want %q, %q", c.in, raw, dec, err, c.raw, c.decoded)
		}
	}
}

// FuzzNormalize checks the properties a policy relies on: the result is a
// fixed point, has no dot or empty segment, and its decoded form splits
// into the same segments.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2e/x", "/a%2fb", "//x/./y/", "/a%20b", "/%7E"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, in string, unescape bool) {
		act := Reject
		if unescape {
			act = Unescape
		}
		raw, dec, err := Normalize(in, act)
		if err != nil {
			return
		}
		raw2, dec2, err := Normalize(raw, Reject)
		if err != nil || raw2 != raw || dec2 != dec {
			t.Fatalf("Normalize(%q) = %q, not a fixed point: %q, %q, %v", in, raw, raw2, dec2, err)
		}
		segs := strings.Split(raw[1:], "/")
		for i, s := range segs {
			if s == "." || s == ".." || s == "" && i < len(segs)-1 {
				t.Fatalf("Normalize(%q) = %q keeps segment %q", in, raw, s)
			}
		}
		if n := strings.Count(dec, "/"); n != len(segs) {
			t.Fatalf("decoded %q has %d slashes, escaped %q has %d segments", dec, n, raw, len(segs))
		}
	})
}
