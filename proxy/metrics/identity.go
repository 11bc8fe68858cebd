package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a TLS handshake in tls_handshakes_total.
const (
	HandshakeSuccess = "success"
	HandshakeFailure = "failure"
)

// Identity is the mTLS and authorization series of a proxy: TLS
// handshakes by listener or cluster, authorization decisions by listener,
// and the expiry of every certificate the proxy holds. Handles are
// resolved once per listener or cluster, so nothing here touches the
// request path of a listener without TLS or authz.
type Identity struct {
	handshakes *prometheus.CounterVec
	allow      *prometheus.CounterVec
	deny       *prometheus.CounterVec
}

// CertState is one certificate at a scrape: its name (the SPIFFE ID, or
// the file when it has none) and its expiry.
type CertState struct {
	Name     string
	NotAfter time.Time
}

var descCertExpiry = prometheus.NewDesc("identity_cert_expiration_timestamp_seconds",
	"Expiry of each certificate the proxy presents, in Unix seconds.", []string{"identity"}, nil)

type certCollector struct{ states func() []CertState }

func (c certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCertExpiry }

func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, s := range c.states() {
		if seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(s.NotAfter.UnixNano())/1e9, s.Name)
	}
}

// NewIdentity registers the identity series on m's registry; certs is
// called at every scrape and must be safe for concurrent use. Call it
// once per Metrics.
func NewIdentity(m *Metrics, certs func() []CertState) *Identity {
	i := &Identity{
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tls_handshakes_total",
			Help: "TLS handshakes, by listener (downstream) or cluster (upstream) and result.",
		}, []string{"listener", "cluster", "result"}),
		allow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inbound_authz_allow_total", Help: "Requests the listener's authz policy allowed.",
		}, []string{"listener"}),
		deny: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inbound_authz_deny_total", Help: "Requests the listener's authz policy denied.",
		}, []string{"listener"}),
	}
	m.Registry.MustRegister(i.handshakes, i.allow, i.deny, certCollector{states: certs})
	return i
}

// Handshakes is the pair of handshake counters of one listener or cluster.
type Handshakes struct {
	Success, Failure prometheus.Counter
}

// ListenerHandshakes returns the handshake counters of a listener.
func (i *Identity) ListenerHandshakes(listener string) Handshakes {
	return Handshakes{Success: i.handshakes.WithLabelValues(listener, "", HandshakeSuccess),
		Failure: i.handshakes.WithLabelValues(listener, "", HandshakeFailure)}
}

// ClusterHandshakes returns the handshake counters of a cluster.
func (i *Identity) ClusterHandshakes(cluster string) Handshakes {
	return Handshakes{Success: i.handshakes.WithLabelValues("", cluster, HandshakeSuccess),
		Failure: i.handshakes.WithLabelValues("", cluster, HandshakeFailure)}
}

// Authz returns the allow and deny counters of a listener.
func (i *Identity) Authz(listener string) (allow, deny prometheus.Counter) {
	return i.allow.WithLabelValues(listener), i.deny.WithLabelValues(listener)
}
