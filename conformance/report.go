package conformance

import "time"

// Report is a conformance run: conformance.json.
type Report struct {
	Started    time.Time     `json:"started"`
	DurationS  float64       `json:"duration_s"`
	Checks     []CheckInfo   `json:"checks"`
	Proxies    []ProxyReport `json:"proxies"`
	Incomplete bool          `json:"incomplete,omitempty"`
}

// CheckInfo describes a check in the report.
type CheckInfo struct {
	ID      string   `json:"id"`
	Profile string   `json:"profile"`
	Title   string   `json:"title"`
	Asserts string   `json:"asserts"`
	Needs   []string `json:"needs,omitempty"`
}

// ProxyReport is one proxy's results.
type ProxyReport struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Binary     string   `json:"binary,omitempty"`
	ConfigOnly bool     `json:"config_only,omitempty"`
	Results    []Result `json:"results"`
	Counts     Counts   `json:"counts"`
}

// Result is one check's outcome against one proxy.
type Result struct {
	ID         string   `json:"id"`
	Status     Status   `json:"status"`
	Reason     string   `json:"reason,omitempty"`
	DurationMs float64  `json:"duration_ms"`
	Figures    []Figure `json:"figures,omitempty"`
}

// Counts are a proxy's results by status.
type Counts struct {
	Pass        int `json:"pass"`
	Fail        int `json:"fail"`
	Unsupported int `json:"unsupported"`
	Skipped     int `json:"skipped"`
	ConfigOnly  int `json:"config_only"`
}

func (c *Counts) add(s Status) {
	switch s {
	case StatusPass:
		c.Pass++
	case StatusFail:
		c.Fail++
	case StatusUnsupported:
		c.Unsupported++
	case StatusSkipped:
		c.Skipped++
	case StatusConfigOnly:
		c.ConfigOnly++
	}
}

func infos(checks []Check) []CheckInfo {
	out := make([]CheckInfo, len(checks))
	for i, c := range checks {
		out[i] = CheckInfo{ID: c.ID, Profile: c.Profile(), Title: c.Title, Asserts: c.Asserts, Needs: c.Needs}
	}
	return out
}

func (r *Report) finish() {
	r.DurationS = time.Since(r.Started).Seconds()
	for i := range r.Proxies {
		p := &r.Proxies[i]
		p.Counts = Counts{}
		for _, res := range p.Results {
			p.Counts.add(res.Status)
		}
	}
	r.Incomplete = len(r.Proxies) == 0
	for _, p := range r.Proxies {
		if len(p.Results) < len(r.Checks) {
			r.Incomplete = true
		}
	}
}

// Failed reports whether any check failed against any proxy.
func (r *Report) Failed() bool {
	for _, p := range r.Proxies {
		if p.Counts.Fail > 0 {
			return true
		}
	}
	return false
}

// Result returns a proxy's result of a check.
func (p ProxyReport) Result(id string) (Result, bool) {
	for _, r := range p.Results {
		if r.ID == id {
			return r, true
		}
	}
	return Result{}, false
}
