package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// scaleBuilders are the scale table's columns: strata and its peer.
var scaleBuilders = []string{"strata", "buildkit"}

// scalePhases are the builds of a point: a cold one, and for the files series a rebuild after
// one file changed.
var scalePhases = []string{"cold", "change"}

// The host's measurement of one stage's work, which the stages series is compared with.
const (
	unitWorkload = "stages/unit"
	unitBuilder  = "host"
)

// scaleKey is one curve of the series: a series and phase, by builder.
type scaleKey struct{ series, phase string }

func (k scaleKey) String() string {
	if k.phase == "cold" {
		return k.series
	}
	return k.series + " (" + k.phase + ")"
}

// scaleResult is one measured point of one builder.
type scaleResult struct {
	size    int64
	ok      bool
	err     string
	seconds float64
	rss     float64 // MiB
}

// scaleData are the results by curve and builder, sizes ascending.
type scaleData struct {
	keys   []scaleKey
	byKey  map[scaleKey]map[string][]scaleResult
	unit   float64 // seconds of one stage's work on the host (median), 0 when not measured
	failed []record
}

// collectScale sorts the records of bench/scale.sh into curves.
func collectScale(recs []record) scaleData {
	d := scaleData{byKey: map[scaleKey]map[string][]scaleResult{}}
	var units []record
	for _, r := range recs {
		if r.Workload == unitWorkload && r.Builder == unitBuilder {
			units = append(units, r)
			continue
		}
		s, n, err := parsePoint(r.Workload)
		if err != nil {
			continue
		}
		k := scaleKey{s, r.Phase}
		if d.byKey[k] == nil {
			d.byKey[k] = map[string][]scaleResult{}
			d.keys = append(d.keys, k)
		}
		d.byKey[k][r.Builder] = append(d.byKey[k][r.Builder], scaleResult{n, r.OK, r.Error, r.Seconds, float64(r.PeakRSS) / (1 << 20)})
		if !r.OK {
			d.failed = append(d.failed, r)
		}
	}
	d.unit, _, _ = median(units, func(r record) float64 { return r.Seconds })
	order := func(k scaleKey) int {
		return slices.Index(seriesNames, k.series)*len(scalePhases) + slices.Index(scalePhases, k.phase)
	}
	slices.SortStableFunc(d.keys, func(a, b scaleKey) int { return order(a) - order(b) })
	for _, m := range d.byKey {
		for b := range m {
			slices.SortStableFunc(m[b], func(x, y scaleResult) int { return int(x.size - y.size) })
		}
	}
	return d
}

// sizes are the point sizes of a curve, any builder's, ascending.
func (d scaleData) sizes(k scaleKey) []int64 {
	var out []int64
	for _, rs := range d.byKey[k] {
		for _, r := range rs {
			if !slices.Contains(out, r.size) {
				out = append(out, r.size)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (d scaleData) at(k scaleKey, b string, size int64) (scaleResult, bool) {
	for _, r := range d.byKey[k][b] {
		if r.size == size {
			return r, true
		}
	}
	return scaleResult{}, false
}

// scaleReportCmd prints the markdown tables of a scale results file.
func scaleReportCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("scale-report", flag.ContinueOnError)
	cpus := fs.Int("cpus", runtime.NumCPU(), "CPUs the builds had, for the stages' ideal")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("scale-report: want RESULTS.jsonl")
	}
	recs, err := readRecords(fs.Arg(0))
	if err != nil {
		return err
	}
	writeScaleReport(stdout, collectScale(recs), *cpus)
	return nil
}

// sizeLabel says a point's size in its series' unit.
func sizeLabel(series string, n int64) string {
	switch series {
	case "layer":
		if n >= 1<<30 && n%(1<<30) == 0 {
			return fmt.Sprintf("%d GiB", n>>30)
		}
		return fmt.Sprintf("%d MiB", n>>20)
	case "files":
		return thousands(n) + " files"
	case "instructions":
		return thousands(n) + " instructions"
	}
	return thousands(n) + " stages"
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func writeScaleReport(w io.Writer, d scaleData, cpus int) {
	cell := func(r scaleResult, found bool, v float64) string {
		switch {
		case !found:
			return "n/a"
		case strings.HasPrefix(r.err, "skipped"):
			return "skipped"
		case !r.ok:
			return "failed"
		}
		return fmt.Sprintf("%.2f", v)
	}
	fmt.Fprintln(w, "| point | size | strata (s) | buildkit (s) | strata / buildkit | strata (MiB) | buildkit (MiB) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|")
	for _, k := range d.keys {
		for _, n := range d.sizes(k) {
			s, sok := d.at(k, "strata", n)
			b, bok := d.at(k, "buildkit", n)
			ratio := "n/a"
			if sok && bok && s.ok && b.ok && b.seconds > 0 {
				ratio = fmt.Sprintf("%.2fx", s.seconds/b.seconds)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", k, sizeLabel(k.series, n),
				cell(s, sok, s.seconds), cell(b, bok, b.seconds), ratio, cell(s, sok, s.rss), cell(b, bok, b.rss))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Fitted growth: the least-squares slope of log(value) over log(size), per series and builder.")
	fmt.Fprintln(w, "Time: 1.00 is linear in the size, below 1 the fixed costs still dominate. Peak RSS: 0.00 is flat.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| series | builder | time slope | peak RSS slope | points |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|")
	for _, k := range d.keys {
		for _, b := range scaleBuilders {
			xs, ts, ms := d.curve(k, b)
			if len(xs) < 2 {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %d |\n", k, b, slopeCell(logSlope(xs, ts)), slopeCell(logSlope(xs, ms)), len(xs))
		}
	}
	writeStages(w, d, cpus)
	for _, r := range d.failed {
		what, why := "failed", r.Error
		if rest, ok := strings.CutPrefix(r.Error, "skipped: "); ok {
			what, why = "skipped", rest
		}
		fmt.Fprintf(w, "\n%s: %s %s %s: %s\n", what, r.Builder, r.Workload, r.Phase, why)
	}
}

// curve is a builder's successful points of a curve: sizes, seconds and peak RSS.
func (d scaleData) curve(k scaleKey, b string) (xs, ts, ms []float64) {
	for _, r := range d.byKey[k][b] {
		if r.ok {
			xs, ts, ms = append(xs, float64(r.size)), append(ts, r.seconds), append(ms, r.rss)
		}
	}
	return xs, ts, ms
}

// idealStages is the time n stages of unit seconds each take on cpus CPUs, with nothing but
// the stages' work: all of it spread over min(n, cpus) CPUs.
func idealStages(n int64, unit float64, cpus int) float64 {
	return float64(n) * unit / float64(min(n, int64(cpus)))
}

// writeStages compares the stages series with its ideal, when the host's unit was measured.
func writeStages(w io.Writer, d scaleData, cpus int) {
	k := scaleKey{"stages", "cold"}
	if d.unit == 0 || d.byKey[k] == nil {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Stages against the ideal: one stage's RUN work takes %.2f s on the host; with %d CPUs the ideal is\n", d.unit, cpus)
	fmt.Fprintln(w, "stages x that / min(stages, CPUs), no overhead; efficiency is ideal / measured (1.00: perfectly parallel, free).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| stages | ideal (s) | strata (s) | strata efficiency | buildkit (s) | buildkit efficiency |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|")
	for _, n := range d.sizes(k) {
		ideal := idealStages(n, d.unit, cpus)
		row := fmt.Sprintf("| %d | %.2f", n, ideal)
		for _, b := range scaleBuilders {
			r, found := d.at(k, b, n)
			if !found || !r.ok {
				row += " | n/a | n/a"
				continue
			}
			row += fmt.Sprintf(" | %.2f | %.2f", r.seconds, ideal/r.seconds)
		}
		fmt.Fprintln(w, row+" |")
	}
}

// slopeCell prints a slope to two places, without a sign on zero.
func slopeCell(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	if math.Abs(v) < 0.005 {
		v = 0
	}
	return fmt.Sprintf("%.2f", v)
}

// logSlope is the least-squares slope of log(y) over log(x); NaN when x does not vary or a
// value is not positive.
func logSlope(xs, ys []float64) float64 {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		if xs[i] <= 0 || ys[i] <= 0 {
			return math.NaN()
		}
		x, y := math.Log(xs[i]), math.Log(ys[i])
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	den := n*sxx - sx*sx
	if n < 2 || den <= 1e-12 {
		return math.NaN()
	}
	return (n*sxy - sx*sy) / den
}

// writeOut writes what fn writes to path, or to stdout for "-".
func writeOut(path string, fn func(io.Writer) error) error {
	if path == "-" {
		return fn(os.Stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
