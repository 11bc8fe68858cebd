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
	"strconv"
	"strings"
	"sync"
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
	default: // h2c, h2: one Transport (so one connection) per connection slot
		for i := range s.Connections {
			base := bases[i%len(bases)]
			var p http.Protocols
			// The timeout bounds the wait for the response header: a
			// per-request context would register with the run's context
			// from every worker, a lock taken twice per request.
			t := &http.Transport{DisableCompression: true, TLSClientConfig: tlsConf, MaxConnsPerHost: 1,
				DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, ResponseHeaderTimeout: s.Timeout}
			if s.Protocol == H2C {
				p.SetUnencryptedHTTP2(true)
			} else {
				p.SetHTTP2(true)
			}
			t.Protocols = &p
			for range s.Streams {
				clients = append(clients, &h2Worker{rt: t, t: *base})
			}
			closers = append(closers, t.CloseIdleConnections)
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

func (t *httpRequestTemplate) request(ctx context.Context) *http.Request {
	r := (&http.Request{Method: t.method, URL: t.url, Header: t.header, Host: t.host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).WithContext(ctx)
	if len(t.body) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(t.body))
		r.ContentLength = int64(len(t.body))
	}
	return r
}

var discardBuf = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// finish reads and closes the body and classifies the response.
func finish(resp *http.Response) outcome {
	bp := discardBuf.Get().(*[]byte)
	_, err := io.CopyBuffer(io.Discard, resp.Body, *bp)
	discardBuf.Put(bp)
	resp.Body.Close()
	o := outcome{backend: resp.Header.Get("X-Backend"), status: strconv.Itoa(resp.StatusCode)}
	switch {
	case err != nil:
		o.errClass = classify(err)
	case resp.StatusCode >= 400:
		o.errClass = "http_" + strconv.Itoa(resp.StatusCode)
	}
	return o
}

type h2Worker struct {
	rt http.RoundTripper
	t  httpRequestTemplate
}

func (w *h2Worker) do(ctx context.Context) outcome {
	resp, err := w.rt.RoundTrip(w.t.request(ctx))
	if err != nil {
		return outcome{errClass: classify(err)}
	}
	return finish(resp)
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
