// Package kindtest holds what the tests of the kind platform share: skip,
// or fail in CI, when kind is not available, and a tiny static binary to
// put in an image.
package kindtest
