package backends

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Reserved paths of the HTTP port. Every other path is served with the
// personality.
const (
	// HealthPath always answers 200 "ok", without delay or injected errors.
	HealthPath = "/healthz"
	// ConfigPath is the admin endpoint: GET returns the personality as
	// JSON, PUT changes it (see ConfigJSON).
	ConfigPath = "/_backend/config"
)

// HeaderBackend is the HTTP response header, and in lower case the gRPC
// header metadata key, that names the backend instance.
const HeaderBackend = "X-Backend"

// ConfigJSON is the body of the admin endpoint. GET returns every field;
// a PUT sets the fields it carries (any subset of latency, error_rate,
// response_size, concurrency) and leaves the others, all at once or not at all.
type ConfigJSON struct {
	Name         string   `json:"name,omitempty"`
	Latency      *string  `json:"latency,omitempty"`
	ErrorRate    *float64 `json:"error_rate,omitempty"`
	ResponseSize *int     `json:"response_size,omitempty"`
	Concurrency  *int     `json:"concurrency,omitempty"`
}

// maxAdminBody bounds the body of a PUT to the admin endpoint.
const maxAdminBody = 64 << 10

func (b *Backend) serveHTTP(w http.ResponseWriter, r *http.Request) {
	arrival := time.Now()
	st := b.cur.Load()
	w.Header().Set(HeaderBackend, b.name)
	switch r.URL.Path {
	case HealthPath:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
		return
	case ConfigPath:
		b.serveAdmin(w, r)
		return
	}
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		b.log.Debug("read request body", "err", err)
		http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	fail, err := b.behave(r.Context(), st, arrival)
	if err != nil {
		return // the client went away while we waited
	}
	if fail {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "backend %s: injected error\n", b.name)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(st.body)))
	w.WriteHeader(http.StatusOK)
	w.Write(st.body)
}

func (b *Backend) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		b.writeConfig(w, b.cur.Load().Personality)
	case http.MethodPut:
		var req ConfigJSON
		dec := json.NewDecoder(io.LimitReader(r.Body, maxAdminBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "decode backend config: "+err.Error(), http.StatusBadRequest)
			return
		}
		if req.Name != "" {
			http.Error(w, "decode backend config: the name cannot be changed", http.StatusBadRequest)
			return
		}
		p, err := b.update(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.log.Info("backend personality changed", "name", b.name, "latency", p.Latency.String(),
			"error_rate", p.ErrorRate, "response_size", p.ResponseSize)
		b.writeConfig(w, p)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// update applies the fields set in req to the current personality.
func (b *Backend) update(req ConfigJSON) (Personality, error) {
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	p := b.cur.Load().Personality
	if req.Latency != nil {
		l, err := ParseLatency(*req.Latency)
		if err != nil {
			return Personality{}, fmt.Errorf("update backend config: %w", err)
		}
		p.Latency = l
	}
	if req.ErrorRate != nil {
		p.ErrorRate = *req.ErrorRate
	}
	if req.ResponseSize != nil {
		p.ResponseSize = *req.ResponseSize
	}
	if req.Concurrency != nil {
		p.Concurrency = *req.Concurrency
	}
	if err := p.Validate(); err != nil {
		return Personality{}, fmt.Errorf("update backend config: %w", err)
	}
	b.cur.Store(newState(p))
	return p, nil
}

func (b *Backend) writeConfig(w http.ResponseWriter, p Personality) {
	lat := p.Latency.String()
	out := ConfigJSON{Name: b.name, Latency: &lat, ErrorRate: &p.ErrorRate, ResponseSize: &p.ResponseSize, Concurrency: &p.Concurrency}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(out); err != nil {
		http.Error(w, "encode backend config: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(buf.Bytes())
}
