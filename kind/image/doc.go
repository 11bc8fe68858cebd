// Package image builds the container images meshbench runs on Kubernetes.
//
// An image is FROM scratch plus static executables copied from the host
// (meshbench's two binaries, by default), so nothing is ever pulled. Its
// tag is a hash of the files' in-image names and contents: rebuilding a
// binary gives a new tag, and pods can use imagePullPolicy IfNotPresent
// without ever running a stale binary. Build runs `docker build` and skips
// it when docker already has that tag.
package image
