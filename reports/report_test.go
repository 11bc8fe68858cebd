package reports

import (
	"github.com/meshbench/meshbench/reports/result"

	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// update rewrites the golden report.md:
//
//	go test ./reports -update
var update = flag.Bool("update", false, "update testdata/run1.report.md")

func loadRun1(t *testing.T) *Run {
	t.Helper()
	run, err := Load(filepath.Join("testdata", "run1"))
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestLoad(t *testing.T) {
	run := loadRun1(t)
	if len(run.Cells) != 12 || len(run.Variants) != 6 {
		t.Fatalf("loaded %d cells in %d variants, want 12 in 6", len(run.Cells), len(run.Variants))
	}
	miss := run.Missing()
	if len(miss) != 2 {
		t.Fatalf("missing = %d cells, want 2", len(miss))
	}
	if miss[0].Info.ID != "server-sidecar-round_robin-none-r1" || !strings.Contains(miss[0].Problem, "did not become ready") {
		t.Errorf("failed cell = %s %q", miss[0].Info.ID, miss[0].Problem)
	}
	if miss[1].Info.Status != result.StatusPending || miss[1].Problem != "not run" {
		t.Errorf("pending cell = %s %q", miss[1].Info.Status, miss[1].Problem)
	}
	v := run.Variant("sidecar-round_robin-none")
	if v == nil {
		t.Fatal("no variant sidecar-round_robin-none")
	}
	// Labels come from the cell (dimensions) and the result (the rest).
	if v.Label("topology") != "sidecar" || v.Label("proxy") != "meshproxy" || v.Label("protocol") != "http1" {
		t.Errorf("labels = %v", v.Labels)
	}
	if len(v.Cells) != 2 || v.Cells[0].Info.Repeat != 1 || v.Cells[1].Info.Repeat != 2 {
		t.Errorf("cells not by repeat: %v", v.Cells)
	}
	var sum int64
	for _, c := range v.Done() {
		if c.Histogram == nil || c.Histogram.TotalCount() != c.Result.Requests {
			t.Fatalf("cell %s: histogram not decoded", c.Info.ID)
		}
		sum += c.Histogram.TotalCount()
	}
	if v.Merged.TotalCount() != sum {
		t.Errorf("merged histogram holds %d, want %d", v.Merged.TotalCount(), sum)
	}
	if v.Stats.Proxies != 4 || len(v.Stats.PerProxy) != 4 || v.Stats.PerProxy[0].Name != "sidecar-client-0" {
		t.Errorf("proxies = %d %+v", v.Stats.Proxies, v.Stats.PerProxy)
	}
	if s := run.Variant("baseline-none-none").Stats; s.Proxies != 0 || s.CPUPerRequest.OK() {
		t.Errorf("baseline has proxy resources: %+v", s)
	}
}

func TestLoadNotARun(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, ErrNotRun) {
		t.Errorf("Load(empty dir) = %v, want ErrNotRun", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, result.RunFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "parsing run.json") {
		t.Errorf("Load(bad run.json) = %v", err)
	}
}

func TestLoadBrokenResultIsMissing(t *testing.T) {
	dir := t.TempDir()
	f := run1Spec()
	f.variants = f.variants[:2]
	f.info.Repeats = 1
	if err := writeFixture(dir, f); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sidecar-round_robin-none-r1", result.ResultFile)
	if err := os.WriteFile(p, []byte(`{"labels": {}`), 0o644); err != nil {
		t.Fatal(err)
	}
	run, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	miss := run.Missing()
	if len(miss) != 1 || miss[0].Info.ID != "sidecar-round_robin-none-r1" || !strings.Contains(miss[0].Problem, "parsing") {
		t.Errorf("missing = %+v, want the broken cell with a parse error", miss)
	}
}

func TestFindRun(t *testing.T) {
	root := t.TempDir()
	older, newer := filepath.Join(root, "20260101T000000Z"), filepath.Join(root, "20260102T000000Z")
	for i, d := range []string{newer, older} {
		f := rateSweepSpec()
		f.variants = f.variants[:1]
		f.info.Repeats = 1
		f.info.Started = time.Date(2026, 1, 2-i, 0, 0, 0, 0, time.UTC)
		if err := writeFixture(d, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, newest, err := FindRun(root)
	if err != nil || !newest || got != newer {
		t.Errorf("FindRun(scenario dir) = %s, %v, %v; want %s, true", got, newest, err, newer)
	}
	got, newest, err = FindRun(older)
	if err != nil || newest || got != older {
		t.Errorf("FindRun(run dir) = %s, %v, %v; want %s, false", got, newest, err, older)
	}
	if _, _, err := FindRun(filepath.Join(root, "notes")); !errors.Is(err, ErrNotRun) {
		t.Errorf("FindRun(empty dir) = %v, want ErrNotRun", err)
	}
	if _, _, err := FindRun(filepath.Join(root, "nope")); err == nil {
		t.Error("FindRun(missing dir) succeeded")
	}
}

func TestReportGolden(t *testing.T) {
	run := loadRun1(t)
	out := t.TempDir()
	if _, err := Write(run, out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "run1.report.md")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("report.md differs from %s (run with -update if the change is intended):\n%s", golden, got)
	}
	// Short enough for a pull-request comment (GitHub allows 65536 characters).
	if len(got) > 20000 {
		t.Errorf("report.md is %d bytes", len(got))
	}
}

func TestReportFiles(t *testing.T) {
	run := loadRun1(t)
	out := t.TempDir()
	// A stale plot from an earlier report must not survive.
	if err := os.MkdirAll(filepath.Join(out, PlotsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(out, PlotsDir, "latency-vs-rate.png")
	if err := os.WriteFile(stale, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := Write(run, out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale plot kept: %v", err)
	}

	var names []string
	for _, p := range o.Plots {
		names = append(names, filepath.Base(p))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Errorf("%s is empty", p)
			continue
		}
		switch filepath.Ext(p) {
		case ".png":
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Errorf("%s: %v", p, err)
			} else if r := img.Bounds(); r.Dx() < 400 || r.Dy() < 200 {
				t.Errorf("%s is %v", p, r)
			}
		case ".svg":
			if err := parsesAsXML(b); err != nil {
				t.Errorf("%s: %v", p, err)
			}
			if !bytes.Contains(b, []byte("<path")) {
				t.Errorf("%s draws nothing", p)
			}
		}
	}
	want := []string{
		"spectrum-http1-none-100", "spectrum-http1-slow-100", "percentiles", "cpu", "rss",
		"endpoints", "timeseries-sidecar-slow-r1", "timeseries-sidecar-slow-r2",
	}
	var wantFiles []string
	for _, w := range want {
		wantFiles = append(wantFiles, w+".png", w+".svg")
	}
	if !slices.Equal(names, wantFiles) {
		t.Errorf("plots = %v, want %v", names, wantFiles)
	}
	// No rate dimension: no latency-vs-rate plot, and no empty file for it.
	ents, _ := os.ReadDir(filepath.Join(out, PlotsDir))
	if len(ents) != len(wantFiles) {
		t.Errorf("plots dir holds %d files, want %d", len(ents), len(wantFiles))
	}

	html, err := os.ReadFile(o.HTML)
	if err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, html)
	if n := bytes.Count(html, []byte("<svg")); n != len(want) {
		t.Errorf("report.html inlines %d SVGs, want %d", n, len(want))
	}
	for _, s := range []string{
		"Summary per variant", "Added latency vs baseline", "Resources per topology", "Balancers",
		"Incomplete run", "server-sidecar-round_robin-none-r2", "Reading the numbers",
		HowToRead(FigSpectrum), HowToRead(FigTimeseries),
	} {
		if !bytes.Contains(html, []byte(htmlEscaped(s))) {
			t.Errorf("report.html lacks %q", s)
		}
	}
}

// htmlEscaped escapes s as html/template does in text.
func htmlEscaped(s string) string {
	return strings.NewReplacer("'", "&#39;", "+", "&#43;", "\"", "&#34;").Replace(s)
}

func parsesAsXML(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func checkSelfContained(t *testing.T, html []byte) {
	t.Helper()
	for _, m := range regexp.MustCompile(`https?://[^\s"'<>)]*`).FindAll(html, -1) {
		if string(m) != "http://www.w3.org/2000/svg" {
			t.Errorf("report.html refers to %s", m)
		}
	}
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "@import", "url("} {
		if bytes.Contains(bytes.ToLower(html), []byte(bad)) {
			t.Errorf("report.html contains %s", bad)
		}
	}
}

func TestExports(t *testing.T) {
	run := loadRun1(t)
	out := t.TempDir()
	o, err := Write(run, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Exports) != 2*10 {
		t.Errorf("%d exports, want 2 per finished cell (20)", len(o.Exports))
	}
	for _, c := range run.Cells {
		fortio := filepath.Join(out, ExportDir, c.Info.ID+".fortio.json")
		smp := filepath.Join(out, ExportDir, c.Info.ID+".smp.json")
		if !c.OK() {
			for _, p := range []string{fortio, smp} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("export written for missing cell: %s", p)
				}
			}
			continue
		}
		r := c.Result
		var f struct {
			RunType           string
			StartTime         time.Time
			RequestedQPS      string
			ActualQPS         float64
			DurationHistogram struct {
				Count       int64
				Data        []struct{ Start, End, Percent float64 }
				Percentiles []struct{ Percentile, Value float64 }
			}
			RetCodes map[string]int64
			URL      string `json:"url"`
		}
		readJSON(t, fortio, &f)
		if f.RunType != "HTTP" || f.RequestedQPS != "100" || f.ActualQPS != r.AchievedRate || f.URL != r.Target {
			t.Errorf("%s: %+v", fortio, f)
		}
		if f.DurationHistogram.Count != r.Requests || len(f.DurationHistogram.Data) == 0 ||
			f.DurationHistogram.Data[len(f.DurationHistogram.Data)-1].Percent != 100 {
			t.Errorf("%s: histogram count %d, %d buckets", fortio, f.DurationHistogram.Count, len(f.DurationHistogram.Data))
		}
		if p := f.DurationHistogram.Percentiles; len(p) != 5 || p[3].Percentile != 99 || p[3].Value != float64(r.Latency.P99)/1e6 {
			t.Errorf("%s: percentiles %+v, want p99 %v s", fortio, p, float64(r.Latency.P99)/1e6)
		}
		if f.StartTime.IsZero() || f.RetCodes["200"] != r.Requests {
			t.Errorf("%s: start %v, codes %v", fortio, f.StartTime, f.RetCodes)
		}

		var s map[string]map[string]any
		readJSON(t, smp, &s)
		res, tc, mc, env := s["result"], s["test_config"], s["mesh_config"], s["env_config"]
		if res == nil || tc == nil || mc == nil || env == nil {
			t.Fatalf("%s: sections %v", smp, s)
		}
		lat, _ := res["latencies_ms"].(map[string]any)
		if lat["p99"] != float64(r.Latency.P99)/1000 || lat["p50"] != float64(r.Latency.P50)/1000 {
			t.Errorf("%s: latencies_ms %v, want p99 %v", smp, lat, float64(r.Latency.P99)/1000)
		}
		start, _ := time.Parse(time.RFC3339, anyText(res["start_time"]))
		end, _ := time.Parse(time.RFC3339, anyText(res["end_time"]))
		if end.Sub(start) != 10*time.Second {
			t.Errorf("%s: start %v end %v", smp, res["start_time"], res["end_time"])
		}
		if res["actual_QPS"] != r.AchievedRate || res["meshConfigId"] != mc["id"] || res["testId"] != tc["id"] ||
			res["envId"] != env["id"] || mc["id"] != c.Info.Variant {
			t.Errorf("%s: result %v", smp, res)
		}
		clients, _ := tc["clients"].([]any)
		if len(clients) != 1 || clients[0].(map[string]any)["rps"] != float64(100) || clients[0].(map[string]any)["protocol"] != "http" {
			t.Errorf("%s: clients %v", smp, clients)
		}
		details, _ := res["details_uri"].(string)
		if _, err := os.Stat(filepath.Join(out, ExportDir, filepath.FromSlash(details))); err != nil {
			t.Errorf("%s: details_uri %q does not lead to the result: %v", smp, details, err)
		}
		if c.Info.Variant == "baseline-none-none" {
			if mc["sidecar"] != nil {
				t.Errorf("%s: baseline has proxies: %v", smp, mc["sidecar"])
			}
		} else if sc, _ := mc["sidecar"].(map[string]any); sc["count"] != float64(len(r.Resources.Proxies)) {
			t.Errorf("%s: sidecar %v", smp, mc["sidecar"])
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestRateSweepPlots(t *testing.T) {
	dir := t.TempDir()
	if err := writeFixture(dir, rateSweepSpec()); err != nil {
		t.Fatal(err)
	}
	run, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	figs, err := Figures(run)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range figs {
		names = append(names, f.Name)
	}
	// One spectrum per rate, the rate plot; no time series (no events).
	want := []string{"spectrum-http1-none-50", "spectrum-http1-none-100", "spectrum-http1-none-200",
		"percentiles", "latency-vs-rate", "cpu", "rss", "endpoints"}
	if !slices.Equal(names, want) {
		t.Errorf("figures = %v, want %v", names, want)
	}
	// Each rate's sidecar is compared with the baseline at the same rate.
	for _, c := range Compare(run) {
		if c.Baseline == nil || c.Baseline.Label(LabelRate) != c.Variant.Label(LabelRate) || c.Match != MatchLabels {
			t.Errorf("%s compared with %v (%s)", c.Variant.ID, c.Baseline, c.Match)
		}
	}
}

func TestBalancers(t *testing.T) {
	run := loadRun1(t)
	rows := Balancers(run)
	var degs []string
	byID := map[string]BalancerRow{}
	for _, r := range rows {
		degs = append(degs, r.Variant.Label(LabelDegradation))
		byID[r.Variant.ID] = r
	}
	if !slices.Equal(degs, []string{"none", "none", "none", "slow", "slow"}) {
		t.Errorf("rows not grouped by degradation: %v", degs)
	}
	rr, ewma := byID["sidecar-round_robin-slow"], byID["sidecar-peak_ewma-slow"]
	if rr.SlowPod != "echo-1" || rr.Endpoints != 3 || rr.SlowShare.N != 2 {
		t.Fatalf("round_robin row = %+v", rr)
	}
	// The fixture's peak_ewma steers away from the slow pod after the
	// event; round_robin keeps sending it a third.
	if rr.SlowShare.Median < 0.3 || ewma.SlowShare.Median > 0.25 {
		t.Errorf("slow pod share: round_robin %v, peak_ewma %v", rr.SlowShare, ewma.SlowShare)
	}
	if _, ok := byID["baseline-none-none"]; ok {
		t.Error("baseline (balancer none) listed among balancers")
	}
}

func TestReportRunWithoutResults(t *testing.T) {
	dir := t.TempDir()
	f := run1Spec()
	f.info.Repeats = 1
	for i := range f.variants {
		f.variants[i].status = map[int]string{1: result.StatusRunning}
	}
	if err := writeFixture(dir, f); err != nil {
		t.Fatal(err)
	}
	run, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	o, err := Write(run, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Plots) != 0 || len(o.Exports) != 0 {
		t.Errorf("wrote %d plots and %d exports for a run without results", len(o.Plots), len(o.Exports))
	}
	md, err := os.ReadFile(o.Markdown)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"0 done of 6", "interrupted while running", "## Missing cells"} {
		if !bytes.Contains(md, []byte(s)) {
			t.Errorf("report.md lacks %q:\n%s", s, md)
		}
	}
	if bytes.Contains(md, []byte("## Plots")) {
		t.Error("report.md links plots that were not drawn")
	}
	html, err := os.ReadFile(o.HTML)
	if err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, html)
}
