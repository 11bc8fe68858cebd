package remote

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshbench/meshbench/proxy/discovery"
)

// Path is the endpoint-set resource of a discovery server.
const Path = "/v1/endpoints"

// DefaultWait is how long a request waits for a change before the server
// answers 304; MaxWait bounds what a client may ask for.
const (
	DefaultWait = 30 * time.Second
	MaxWait     = 5 * time.Minute
)

// Key names one endpoint set: a port of a Kubernetes Service.
type Key struct {
	Namespace string
	Service   string
	// Port is the EndpointSlice port name; empty takes the only port.
	Port string
}

// String is namespace/service[:port].
func (k Key) String() string {
	s := k.Namespace + "/" + k.Service
	if k.Port != "" {
		s += ":" + k.Port
	}
	return s
}

// query is k and the long-poll parameters as a query string.
func (k Key) query(version string, wait time.Duration) string {
	q := url.Values{"namespace": {k.Namespace}, "service": {k.Service}}
	if k.Port != "" {
		q.Set("port", k.Port)
	}
	if version != "" {
		q.Set("version", version)
	}
	q.Set("wait", wait.String())
	return q.Encode()
}

// Set is a server's answer: the endpoint set and its version, which grows
// with every change the server sees.
type Set struct {
	Version   uint64     `json:"version"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one address of a Set.
type Endpoint struct {
	Addr   string `json:"addr"`
	Weight int    `json:"weight,omitempty"`
}

// Config configures Follow.
type Config struct {
	// Server is the discovery server's base URL, http://host:port (as
	// proxy/config's ParseDiscoveryServer accepts it).
	Server string
	Key    Key
	// Wait is the long-poll wait the proxy asks for. Default DefaultWait.
	Wait time.Duration
	// MinBackoff and MaxBackoff bound the pause after a failed request,
	// which doubles from the one to the other. Defaults 100ms and 2s.
	MinBackoff, MaxBackoff time.Duration
	// Log receives a line when the server stops or starts answering.
	// Default slog.Default().
	Log *slog.Logger
}

// Follow returns a Source that long-polls a discovery server for one key.
// Run never fails to start: until the server answers it retries with
// backoff (the cluster has no endpoints meanwhile), and after that a
// failing server leaves the last set in force.
func Follow(cfg Config) discovery.Source {
	return &follower{cfg: cfg}
}

type follower struct{ cfg Config }

// Run delivers the key's set whenever its version changes until ctx ends.
func (f *follower) Run(ctx context.Context, update func([]discovery.Endpoint)) error {
	c := f.cfg
	base, err := url.Parse(c.Server)
	if err == nil && (base.Scheme != "http" || base.Host == "") {
		err = errors.New("not http://host:port")
	}
	if err != nil {
		return fmt.Errorf("following %s: discovery server %q: %w", c.Key, c.Server, err)
	}
	if c.Key.Namespace == "" || c.Key.Service == "" {
		return fmt.Errorf("following %q: namespace and service are required", c.Key)
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", c.Key.String(), "server", base.Host)
	wait := cmp.Or(c.Wait, DefaultWait)
	minB, maxB := cmp.Or(c.MinBackoff, 100*time.Millisecond), cmp.Or(c.MaxBackoff, 2*time.Second)
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       2 * wait,
		ResponseHeaderTimeout: wait + 10*time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	endpoint := base.JoinPath(Path).String()

	var cur []discovery.Endpoint
	version, first, failing := "", true, ""
	backoff := minB
	for ctx.Err() == nil {
		set, err := poll(ctx, client, endpoint+"?"+c.Key.query(version, wait))
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			if msg := err.Error(); msg != failing {
				failing = msg
				log.Warn("discovery server not answering, keeping the last endpoints", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxB)
			continue
		}
		if failing != "" {
			failing = ""
			log.Info("discovery server answering again")
		}
		backoff = minB
		if set == nil { // 304: nothing changed within wait
			continue
		}
		version = strconv.FormatUint(set.Version, 10)
		eps := make([]discovery.Endpoint, len(set.Endpoints))
		for i, e := range set.Endpoints {
			eps[i] = discovery.Endpoint{Addr: e.Addr, Weight: e.Weight}
		}
		eps = discovery.Normalize(eps)
		if first || !slices.Equal(eps, cur) {
			first, cur = false, eps
			update(slices.Clone(eps))
		}
	}
	return nil
}

// poll makes one long-poll request: the set, nil for 304, or what went
// wrong.
func poll(ctx context.Context, client *http.Client, u string) (*Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var set Set
		dec := json.NewDecoder(io.LimitReader(resp.Body, 16<<20))
		if err := dec.Decode(&set); err != nil {
			return nil, fmt.Errorf("decoding the endpoint set: %w", err)
		}
		if set.Version == 0 {
			return nil, errors.New("the server answered an endpoint set without a version")
		}
		return &set, nil
	case http.StatusNotModified:
		return nil, nil
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
}
