package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// client sends one request at a time for one worker.
type client interface {
	do(ctx context.Context) outcome
}

// newClients builds one client per worker and a function that closes
// their connections.
func newClients(ctx context.Context, s *Spec) ([]client, func(), error) {
	tlsConf, err := tlsConfig(s)
	if err != nil {
		return nil, nil, err
	}
	if s.Protocol == GRPC {
		return newGRPCClients(ctx, s, tlsConf)
	}
	body := bytes.Repeat([]byte("x"), s.BodySize)
	hdr := s.Header.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	if _, ok := hdr["User-Agent"]; !ok {
		hdr["User-Agent"] = []string{"meshbench"}
	}
	// One request template per target; connection i uses target i mod n.
	bases := make([]*httpRequestTemplate, len(s.targets()))
	for i, t := range s.targets() {
		u, _ := url.Parse(t) // checked by normalize
		bases[i] = &httpRequestTemplate{method: s.Method, url: u, header: hdr, host: s.Authority, body: body, timeout: s.Timeout, closeEach: s.NewConnectionPerRequest}
	}
	var clients []client
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	switch s.Protocol {
	case HTTP1:
		for i := range s.Connections {
			base := bases[i%len(bases)]
			c := newH1Conn(base, dialer(base.url, tlsConf, []string{"http/1.1"}))
			clients = append(clients, c)
			closers = append(closers, c.close)
		}
	default: // h2c, h2: one connection per connection slot, shared by its streams
		scheme := "http"
		if s.Protocol == H2 {
			scheme = "https"
		}
		for i := range s.Connections {
			base := bases[i%len(bases)]
			pool := &h2Pool{d: h2Dialer{dial: dialer(base.url, tlsConf, []string{"h2"}), addr: hostPort(base.url), tls: base.url.Scheme == "https"}}
			for range s.Streams {
				clients = append(clients, newH2Worker(pool, base, scheme))
			}
			closers = append(closers, pool.close)
		}
	}
	return clients, closeAll, nil
}

func tlsConfig(s *Spec) (*tls.Config, error) {
	c := &tls.Config{ServerName: s.TLS.ServerName, InsecureSkipVerify: s.TLS.Insecure}
	if s.TLS.CAFile != "" {
		pem, err := os.ReadFile(s.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate found", s.TLS.CAFile)
		}
		c.RootCAs = pool
	}
	if s.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.TLS.CertFile, s.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// dialer connects to the URL's host, with TLS for https.
func dialer(u *url.URL, conf *tls.Config, alpn []string) func(context.Context, string, string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if u.Scheme != "https" {
		return d.DialContext
	}
	conf = conf.Clone()
	conf.NextProtos = alpn
	if conf.ServerName == "" {
		conf.ServerName = u.Hostname()
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return (&tls.Dialer{NetDialer: d, Config: conf}).DialContext(ctx, network, addr)
	}
}

type httpRequestTemplate struct {
	method  string
	url     *url.URL
	header  http.Header
	host    string
	body    []byte
	timeout time.Duration
	// closeEach: a new connection per request (HTTP/1.1).
	closeEach bool
}

// classify names the class of a transport error.
func classify(err error) string {
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		strings.Contains(err.Error(), "timeout awaiting response headers"):
		return "timeout"
	case errors.As(err, &oe) && oe.Op == "dial":
		return "connect"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.EPIPE), strings.Contains(err.Error(), "stream error"), strings.Contains(err.Error(), "connection reset"):
		return "reset"
	default:
		return "other"
	}
}
