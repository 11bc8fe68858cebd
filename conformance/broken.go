package conformance

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/meshbench/meshbench/proxy/config"
)

// Kinds of deliberately broken targets, which the checks' own tests run
// them against to show that each check can fail.
const (
	// BrokenRelay copies bytes between each listener and the first
	// endpoint of its first route's cluster: a TCP relay that neither
	// routes, nor balances, nor edits headers, nor terminates TLS.
	BrokenRelay = "broken-relay"
	// BrokenBuffering is an HTTP proxy (HTTP/1.1 and h2c) that reads each
	// request body whole before forwarding it to the first endpoint of
	// its first route's cluster, and each response whole before answering.
	BrokenBuffering = "broken-buffering"
)

// Broken returns a deliberately broken target of kind.
func Broken(kind string) (*Target, error) {
	t := &Target{Name: kind, Version: "deliberately broken (tests of the checks)"}
	switch kind {
	case BrokenRelay:
		t.starter = startRelay
	case BrokenBuffering:
		t.starter = startBuffering
	default:
		return nil, fmt.Errorf("no broken target %q", kind)
	}
	return t, nil
}

// firstUpstreams maps each listener's address to the first endpoint of
// its first route's cluster, and reports that cluster's protocol.
func firstUpstreams(c *config.Config) (map[string]string, map[string]string, error) {
	up, proto := map[string]string{}, map[string]string{}
	for _, l := range c.Listeners {
		if len(l.Routes) == 0 {
			continue
		}
		for _, cl := range c.Clusters {
			if cl.Name == l.Routes[0].Cluster && len(cl.Endpoints) > 0 {
				up[l.Address], proto[l.Address] = cl.Endpoints[0], cl.Protocol
			}
		}
		if up[l.Address] == "" {
			return nil, nil, fmt.Errorf("listener %s: no static endpoint to send to", l.Name)
		}
	}
	return up, proto, nil
}

func startRelay(ctx context.Context, c *config.Config, dir string) (*Proxy, error) {
	up, _, err := firstUpstreams(c)
	if err != nil {
		return nil, err
	}
	var (
		lns   []net.Listener
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	track := func(cs ...net.Conn) {
		mu.Lock()
		conns = append(conns, cs...)
		mu.Unlock()
	}
	for addr, to := range up {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("relay: %w", err)
		}
		lns = append(lns, ln)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				in, err := ln.Accept()
				if err != nil {
					return
				}
				out, err := net.DialTimeout("tcp", to, time.Second)
				if err != nil {
					in.Close()
					continue
				}
				track(in, out)
				go func() { io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
				go func() { io.Copy(in, out); in.(*net.TCPConn).CloseWrite() }()
			}
		}()
	}
	p := &Proxy{Config: c, Dir: dir, done: make(chan struct{})}
	p.stop = func() {
		for _, l := range lns {
			l.Close()
		}
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		select {
		case <-p.done:
		default:
			close(p.done)
		}
	}
	return p, nil
}

func startBuffering(ctx context.Context, c *config.Config, dir string) (*Proxy, error) {
	up, proto, err := firstUpstreams(c)
	if err != nil {
		return nil, err
	}
	var servers []*http.Server
	for addr, to := range up {
		var tp http.Protocols
		if proto[addr] == config.UpstreamH2C {
			tp.SetUnencryptedHTTP2(true)
		} else {
			tp.SetHTTP1(true)
		}
		client := &http.Client{Transport: &http.Transport{Protocols: &tp}}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+to+r.URL.RequestURI(), bytes.NewReader(body))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			out.Header, out.Host = r.Header.Clone(), r.Host
			resp, err := client.Do(out)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			w.Write(data)
		})
		var sp http.Protocols
		sp.SetHTTP1(true)
		sp.SetUnencryptedHTTP2(true)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
			return nil, fmt.Errorf("buffering proxy: %w", err)
		}
		s := &http.Server{Handler: h, Protocols: &sp}
		servers = append(servers, s)
		go s.Serve(ln)
	}
	p := &Proxy{Config: c, Dir: dir, done: make(chan struct{})}
	p.stop = func() {
		for _, s := range servers {
			s.Close()
		}
		select {
		case <-p.done:
		default:
			close(p.done)
		}
	}
	return p, nil
}
