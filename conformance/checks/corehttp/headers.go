package corehttp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/proxy/config"
)

// startOne starts one backend and the sidecar configuration in front of
// it (HTTP/1.1 upstream) and returns the backend and the listener.
func startOne(e *conformance.Env, name string) (*conformance.Backend, string, error) {
	be, err := e.StartBackend(conformance.BackendOptions{Name: name})
	if err != nil {
		return nil, "", err
	}
	listen, err := e.Addr()
	if err != nil {
		return nil, "", err
	}
	if _, err := e.StartProxy(sidecar(listen, config.UpstreamHTTP1, be.Addr)); err != nil {
		return nil, "", err
	}
	return be, listen, nil
}

// client returns an HTTP/1.1 client of its own, its connections closed
// when the check ends.
func client(e *conformance.Env) *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	tr := &http.Transport{Protocols: &p}
	e.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}
}

// dial opens a connection for a hand-written HTTP/1.1 exchange; it is
// closed when the check ends.
func dial(e *conformance.Env, addr string) (net.Conn, *bufio.Reader, error) {
	var d net.Dialer
	conn, err := d.DialContext(e.Context(), "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the proxy: %w", err)
	}
	e.Cleanup(func() { conn.Close() })
	return conn, bufio.NewReader(conn), nil
}

// hasToken reports whether a comma-separated header value list holds
// token (case-insensitive).
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// hopBody is the chunked request body of the hop-by-hop check, as
// written and as it must arrive.
const (
	hopChunked = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
	hopBody    = "hello world"
)

func hopByHop(e *conformance.Env) error {
	be, listen, err := startOne(e, "be-hop")
	if err != nil {
		return err
	}
	be.Handle("/hop", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "secret")
		w.Header().Set("X-Resp-End", "kept")
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	conn, br, err := dial(e, listen)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := "POST /hop HTTP/1.1\r\n" +
		"Host: app.test\r\n" +
		"Connection: keep-alive, X-Hop-A\r\n" +
		"X-Hop-A: secret\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"Upgrade: example/1\r\n" +
		"TE: deflate\r\n" +
		"Transfer-Encoding: chunked\r\n" +
		"X-End-To-End: kept\r\n" +
		"Content-Type: text/plain\r\n" +
		"\r\n" + hopChunked
	if _, err := io.WriteString(conn, req); err != nil {
		return fmt.Errorf("writing the request: %w", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the response body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /hop answered %s, want 200 from the backend", resp.Status)
	}
	var problems []string
	reqs := be.Requests()
	if len(reqs) != 1 {
		return fmt.Errorf("the backend saw %d requests, want 1", len(reqs))
	}
	h := reqs[0].Header
	for _, name := range []string{"X-Hop-A", "Keep-Alive", "Proxy-Connection", "Upgrade"} {
		if v := h.Values(name); len(v) > 0 {
			problems = append(problems, fmt.Sprintf("request hop-by-hop %s: %q forwarded to the backend", name, v))
		}
	}
	if v := h.Values("Te"); len(v) > 0 && !(len(v) == 1 && strings.EqualFold(strings.TrimSpace(v[0]), "trailers")) {
		problems = append(problems, fmt.Sprintf("request TE %q forwarded to the backend (only TE: trailers may be)", v))
	}
	// The proxy may send a Connection field of its own hop (close,
	// keep-alive), never the client's list.
	if v := h.Values("Connection"); hasToken(v, "X-Hop-A") {
		problems = append(problems, fmt.Sprintf("the client's Connection %q forwarded to the backend", v))
	}
	if got := h.Get("X-End-To-End"); got != "kept" {
		problems = append(problems, fmt.Sprintf("end-to-end X-End-To-End reached the backend as %q, want \"kept\"", got))
	}
	if string(body) != hopBody {
		problems = append(problems, fmt.Sprintf("the chunked request body reached the backend as %q, want %q", body, hopBody))
	}
	if v := resp.Header.Values("X-Resp-Hop"); len(v) > 0 {
		problems = append(problems, fmt.Sprintf("response hop-by-hop X-Resp-Hop: %q reached the client", v))
	}
	if v := resp.Header.Values("Connection"); hasToken(v, "X-Resp-Hop") {
		problems = append(problems, fmt.Sprintf("the backend's Connection %q reached the client", v))
	}
	if got := resp.Header.Get("X-Resp-End"); got != "kept" {
		problems = append(problems, fmt.Sprintf("end-to-end X-Resp-End reached the client as %q, want \"kept\"", got))
	}
	return conformance.Problems(problems)
}

// send sends req with c and requires a 200, the body read and dropped.
func send(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s, want 200", req.Method, req.URL.Path, resp.Status)
	}
	return nil
}

// clientXFF is the X-Forwarded-For a client sends: an earlier hop's
// address (TEST-NET-1).
const clientXFF = "192.0.2.7"

func xForwardedFor(e *conformance.Env) error {
	be, listen, err := startOne(e, "be-xff")
	if err != nil {
		return err
	}
	c := client(e)
	var problems []string
	for _, tc := range []struct {
		sent string
		want []string
	}{
		{clientXFF, []string{clientXFF, "127.0.0.1"}},
		{"", []string{"127.0.0.1"}},
	} {
		be.Clear()
		req, err := http.NewRequestWithContext(e.Context(), http.MethodGet, "http://"+listen+"/xff", nil)
		if err != nil {
			return fmt.Errorf("GET /xff: %w", err)
		}
		if tc.sent != "" {
			req.Header.Set("X-Forwarded-For", tc.sent)
		}
		if err := send(c, req); err != nil {
			return err
		}
		reqs := be.Requests()
		if len(reqs) == 0 {
			return fmt.Errorf("the backend saw no request")
		}
		seen := reqs[len(reqs)-1].Header.Values("X-Forwarded-For")
		var got []string
		for _, v := range seen {
			for _, a := range strings.Split(v, ",") {
				got = append(got, strings.TrimSpace(a))
			}
		}
		if strings.Join(got, ", ") != strings.Join(tc.want, ", ") {
			problems = append(problems, fmt.Sprintf("client sent X-Forwarded-For %q: the backend saw %q, want %q", tc.sent, seen, strings.Join(tc.want, ", ")))
		}
	}
	return conformance.Problems(problems)
}

// requestIDs is how many requests without X-Request-Id the check sends.
const requestIDs = 20

// clientRequestID is the X-Request-Id a client sets itself.
const clientRequestID = "meshbench-client-id-1"

func requestID(e *conformance.Env) error {
	be, listen, err := startOne(e, "be-rid")
	if err != nil {
		return err
	}
	c := client(e)
	url := "http://" + listen + "/rid"
	for range requestIDs {
		if _, err := get(e, c, url, 1, be); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(e.Context(), http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET /rid: %w", err)
	}
	req.Header.Set("X-Request-Id", clientRequestID)
	if err := send(c, req); err != nil {
		return err
	}
	reqs := be.Requests()
	if len(reqs) != requestIDs+1 {
		return fmt.Errorf("the backend saw %d requests, want %d", len(reqs), requestIDs+1)
	}
	var problems []string
	seen := map[string]int{}
	missing := 0
	for i, r := range reqs[:requestIDs] {
		v := r.Header.Values("X-Request-Id")
		switch {
		case len(v) == 0 || strings.TrimSpace(v[0]) == "":
			missing++
		case len(v) > 1:
			problems = append(problems, fmt.Sprintf("request %d reached the backend with %d X-Request-Id fields %q, want one", i, len(v), v))
		default:
			seen[v[0]]++
		}
	}
	if missing > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d requests sent without X-Request-Id reached the backend without one", missing, requestIDs))
	}
	for id, n := range seen {
		if n > 1 {
			problems = append(problems, fmt.Sprintf("X-Request-Id %q was given to %d requests, want each unique", id, n))
		}
	}
	if v := reqs[requestIDs].Header.Values("X-Request-Id"); len(v) != 1 || v[0] != clientRequestID {
		problems = append(problems, fmt.Sprintf("the client's X-Request-Id %q reached the backend as %q, want it kept", clientRequestID, v))
	}
	return conformance.Problems(problems)
}
