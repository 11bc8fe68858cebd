package fortioengine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"

	"fortio.org/fortio/fhttp"
	"fortio.org/fortio/periodic"
	"fortio.org/fortio/stats"

	"github.com/meshbench/meshbench/loadgen"
)

// httpLoad runs HTTP load with fortio's clients: one fhttp client per
// fortio thread, thread i to target i mod n, all in one fortio runner.
type httpLoad struct {
	spec *loadgen.Spec
	runs []*httpRunnable
	log  *logger
}

func newHTTPLoad(ctx context.Context, spec *loadgen.Spec, w *window) (*httpLoad, error) {
	h := &httpLoad{spec: spec, log: newLogger(w, spec.Connections, spec.Timeout, false)}
	targets := spec.Targets
	if len(targets) == 0 {
		targets = []string{spec.Target}
	}
	for i := range spec.Connections {
		r, err := h.newRunnable(ctx, i, targets[i%len(targets)], h.log.threads[i])
		if err != nil {
			h.close()
			return nil, err
		}
		h.runs = append(h.runs, r)
	}
	return h, nil
}

// httpOptions translates the spec into fortio's HTTP options for one
// thread.
func (h *httpLoad) httpOptions(i int, target string) (*fhttp.HTTPOptions, error) {
	s := h.spec
	o := &fhttp.HTTPOptions{
		ID:               i,
		HTTPReqTimeOut:   s.Timeout,
		DisableKeepAlive: s.NewConnectionPerRequest,
		MethodOverride:   s.Method,
		TLSOptions: fhttp.TLSOptions{
			Insecure: s.TLS.Insecure, CACert: s.TLS.CAFile, Cert: s.TLS.CertFile, Key: s.TLS.KeyFile,
		},
	}
	if s.BodySize > 0 {
		o.Payload = bytes.Repeat([]byte("x"), s.BodySize)
	}
	if s.Protocol != loadgen.HTTP1 {
		o.H2, o.DisableFastClient = true, true
	}
	o.Init(target)
	for k, vv := range s.Header {
		for _, v := range vv {
			if err := o.AddAndValidateExtraHeader(k + ": " + v); err != nil {
				return nil, fmt.Errorf("fortio engine: header %s: %w", k, err)
			}
		}
	}
	if s.Authority != "" {
		if err := o.AddAndValidateExtraHeader("Host: " + s.Authority); err != nil {
			return nil, fmt.Errorf("fortio engine: authority %q: %w", s.Authority, err)
		}
	}
	return o, nil
}

func (h *httpLoad) newRunnable(ctx context.Context, i int, target string, th *thread) (*httpRunnable, error) {
	o, err := h.httpOptions(i, target)
	if err != nil {
		return nil, err
	}
	r := &httpRunnable{ctx: ctx, th: th, backendHeader: []byte("\r\n" + "X-Backend:"), h2: h.spec.Protocol == loadgen.H2}
	if o.DisableFastClient {
		o.Transport = func(base http.RoundTripper) http.RoundTripper {
			r.obs = &observer{base: base}
			return r.obs
		}
	}
	c, err := fhttp.NewClient(o)
	if err != nil {
		return nil, fmt.Errorf("fortio engine: creating fortio's HTTP client for %s: %w", target, err)
	}
	r.c = c
	_, r.dials = c.GetIPAddress()
	return r, nil
}

// warm sends one unrecorded request on every thread at once, as fortio's
// own HTTP runner does before it starts, so that the connections are open
// when the run begins. Unlike fortio, an error does not stop the run: it
// shows in the result like any other.
func (h *httpLoad) warm() error {
	var wg sync.WaitGroup
	for _, r := range h.runs {
		wg.Go(func() { r.Run(r.ctx, 0) })
	}
	wg.Wait()
	return h.checkH2()
}

// checkH2 refuses a run of h2 whose responses came over HTTP/1.1.
func (h *httpLoad) checkH2() error {
	var n int64
	for _, r := range h.runs {
		n += r.notH2
	}
	if n > 0 {
		return fmt.Errorf("fortio engine: protocol h2: %d responses came over HTTP/1.1, not HTTP/2: the target did not negotiate h2 (ALPN), and the engine does not measure a substitute: %w", n, ErrUnsupported)
	}
	return nil
}

// run runs fortio's periodic runner over the threads once.
func (h *httpLoad) run(ctx context.Context, ro periodic.RunnerOptions) ([]periodic.RunnerResults, error) {
	ro.RunType = "HTTP"
	ro.NumThreads = len(h.runs)
	ro.AccessLogger = h.log
	var res periodic.RunnerResults
	runAborting(ctx, &ro, func() {
		pr := periodic.NewPeriodicRunner(&ro)
		// The runner takes ro's runners away (it moves the options): its
		// own are set afterwards, as fortio's HTTP runner does.
		for i, r := range h.runs {
			pr.Options().Runners[i] = r
		}
		res = pr.Run()
	})
	return []periodic.RunnerResults{res}, h.checkH2()
}

func (h *httpLoad) loggers() []*logger { return []*logger{h.log} }

func (h *httpLoad) close() {
	for _, r := range h.runs {
		r.c.Close()
	}
}

// httpRunnable is one fortio thread: it makes one request with its fortio
// client per call and leaves the outcome in its thread's last.
type httpRunnable struct {
	ctx   context.Context
	c     fhttp.Fetcher
	th    *thread
	h2    bool
	notH2 int64            // h2 responses that did not come over HTTP/2
	obs   *observer        // standard client: what its transport saw
	dials *stats.Histogram // fast client: its connection attempts
	// backendHeader is the header searched for in the fast client's
	// response; lastBackend and lastName save an allocation per request.
	backendHeader []byte
	lastBackend   []byte
	lastName      string
	lastCode      int
	lastCodeText  string
}

// Run implements periodic.Runnable.
func (r *httpRunnable) Run(context.Context, periodic.ThreadID) (bool, string) {
	var o outcome
	var code int
	if r.obs == nil { // fortio's fast HTTP/1.1 client
		dials := r.dials.Count
		var data []byte
		var headerLen int
		// Fetch, not StreamFetch: it returns the headers fortio read into
		// its buffer, where X-Backend is, without a copy.
		code, data, headerLen = r.c.Fetch(r.ctx) //nolint:staticcheck // see above
		if code == fhttp.SocketError {
			// The fast client reports no cause: a call that opened a new
			// connection and received nothing could not connect.
			o.transport = true
			o.class = "other"
			if r.dials.Count > dials && len(data) == 0 {
				o.class = "connect"
			}
		} else if headerLen <= len(data) {
			o.backend = r.backend(data[:headerLen])
		}
	} else { // fortio's standard client with HTTP/2
		r.obs.reset()
		code, _, _ = r.c.StreamFetch(r.ctx)
		o.backend = r.obs.backend
		if code == fhttp.SocketError {
			o.transport, o.class = true, classify(r.obs.err)
		} else if r.h2 && r.obs.proto != 2 {
			r.notH2++
		}
	}
	if code > 0 {
		if code != r.lastCode {
			r.lastCode, r.lastCodeText = code, strconv.Itoa(code)
		}
		o.status = r.lastCodeText
		if code >= 400 {
			o.class = "http_" + o.status
		}
	}
	r.th.last = o
	return o.class == "", ""
}

// backend returns the X-Backend value in a response's header block.
func (r *httpRunnable) backend(header []byte) string {
	found, at := fhttp.FoldFind(header, r.backendHeader)
	if !found {
		return ""
	}
	v := header[at+len(r.backendHeader):]
	if end := bytes.IndexByte(v, '\r'); end >= 0 {
		v = v[:end]
	}
	v = bytes.TrimSpace(v)
	if !bytes.Equal(v, r.lastBackend) || r.lastName == "" {
		r.lastBackend = append(r.lastBackend[:0], v...)
		r.lastName = string(v)
	}
	return r.lastName
}

// observer wraps the transport of fortio's standard client to see what
// fortio does not report: the error of a failed request, the response's
// protocol and its X-Backend. fortio calls it on the thread's goroutine.
type observer struct {
	base    http.RoundTripper
	err     error
	proto   int
	backend string
}

func (o *observer) reset() { o.err, o.proto, o.backend = nil, 0, "" }

// RoundTrip implements http.RoundTripper.
func (o *observer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.base.RoundTrip(req)
	o.err = err
	if resp != nil {
		o.proto = resp.ProtoMajor
		o.backend = resp.Header.Get("X-Backend")
	}
	return resp, err
}

// classify names the class of a transport error of the standard client.
func classify(err error) string {
	var oe *net.OpError
	var ne net.Error
	switch {
	case err == nil:
		return "other"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &oe) && oe.Op == "dial":
		return "connect"
	}
	return "other"
}
