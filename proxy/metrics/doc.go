// Package metrics holds the Prometheus series of the reference proxy and the
// cached, label-resolved handles the request path uses so that recording a
// request costs no label lookup. Every label takes values from the
// configuration or from small fixed sets (status codes, gRPC codes): no raw
// path, host or header value ever becomes a label.
package metrics
