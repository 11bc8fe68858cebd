package proxy

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/h1client"
	"github.com/meshbench/meshbench/proxy/metrics"
)

// cluster is a set of endpoints, the picker over them and one connection
// pool per upstream protocol.
type cluster struct {
	name      string
	protocol  string
	endpoints []*balancer.Endpoint
	requests  []prometheus.Counter // by endpoint index
	picker    balancer.Picker
	// hashed pickers route by a key: the hashHeader value, or the client's
	// address when hashHeader is empty.
	hashed     bool
	hashHeader string
	h1         *h1client.Client // HTTP/1.1 pool
	h2c        *http.Transport  // cleartext HTTP/2 pool
}

func newCluster(cc *config.Cluster, m *metrics.Metrics) (*cluster, error) {
	c := &cluster{name: cc.Name, protocol: cc.Protocol}
	for i, addr := range cc.Endpoints {
		c.endpoints = append(c.endpoints, &balancer.Endpoint{Addr: addr, Meta: i})
		c.requests = append(c.requests, m.Endpoint(cc.Name, addr))
	}
	b := cc.Balancer
	bc := balancer.Config{Policy: b.Policy, ChoiceCount: b.ChoiceCount, FullScan: b.FullScan,
		Decay: b.Decay.D(), DefaultRTT: b.DefaultRTT.D(), MinRingSize: b.MinRingSize, TableSize: b.TableSize}
	p, err := balancer.New(bc, c.endpoints)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
	}
	c.picker = p
	c.hashed = bc.NeedsKey()
	c.hashHeader = http.CanonicalHeaderKey(b.HashHeader)
	if cc.Protocol != config.UpstreamH2C {
		c.h1 = h1client.New(h1client.Options{
			Dial:            (&net.Dialer{Timeout: cc.ConnectTimeout.D(), KeepAlive: 30 * time.Second}).DialContext,
			MaxIdlePerHost:  cc.Pool.MaxIdlePerEndpoint,
			MaxConnsPerHost: cc.Pool.MaxConnsPerEndpoint,
			IdleTimeout:     cc.Pool.IdleTimeout.D(),
		})
	}
	if cc.Protocol != config.UpstreamHTTP1 {
		c.h2c = newH2CTransport(cc)
	}
	return c, nil
}

// newH2CTransport is the cleartext HTTP/2 pool: net/http's Transport, one
// multiplexed connection per endpoint.
func newH2CTransport(cc *config.Cluster) *http.Transport {
	d := &net.Dialer{Timeout: cc.ConnectTimeout.D(), KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: cc.Pool.MaxIdlePerEndpoint,
		MaxConnsPerHost:     cc.Pool.MaxConnsPerEndpoint,
		IdleConnTimeout:     cc.Pool.IdleTimeout.D(),
		// A proxy forwards what it got: it neither asks for nor undoes
		// compression.
		DisableCompression: true,
		WriteBufferSize:    16 << 10,
		ReadBufferSize:     16 << 10,
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerStream:     1 << 20,
			MaxReceiveBufferPerConnection: 4 << 20,
		},
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	t.Protocols = &p
	return t
}

// h1ForMajor returns the HTTP/1.1 client for a request that arrived with
// HTTP major version major, or nil when it goes upstream as h2c.
func (c *cluster) h1ForMajor(major int) *h1client.Client {
	switch c.protocol {
	case config.UpstreamHTTP1:
		return c.h1
	case config.UpstreamH2C:
		return nil
	}
	if major == 2 {
		return nil
	}
	return c.h1
}

func (c *cluster) closeIdle() {
	if c.h1 != nil {
		c.h1.CloseIdleConnections()
	}
	if c.h2c != nil {
		c.h2c.CloseIdleConnections()
	}
}
