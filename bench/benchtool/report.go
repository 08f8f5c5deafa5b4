package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// builders are the table's columns; strata is compared with the fastest of the others.
var builders = []string{"strata", "buildah", "docker"}

// figure is one row of the table: how to get a number from a workload's records.
type figure struct {
	name  string
	phase string
	value func(record) float64
	unit  string
}

var figures = []figure{
	{"cold build to OCI tarball", "cold", func(r record) float64 { return r.Seconds }, "s"},
	{"warm rebuild, no change", "warm", func(r record) float64 { return r.Seconds }, "s"},
	{"rebuild, one COPY'd file changed", "change", func(r record) float64 { return r.Seconds }, "s"},
	{"peak RSS, cold build", "cold", func(r record) float64 { return float64(r.PeakRSS) / (1 << 20) }, "MiB"},
	{"output tarball size", "cold", func(r record) float64 { return float64(r.Size) / 1e6 }, "MB"},
}

// reportCmd prints the markdown tables from a results file.
func reportCmd(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("report: want RESULTS.jsonl")
	}
	recs, err := readRecords(args[0])
	if err != nil {
		return err
	}
	writeReport(os.Stdout, recs)
	return nil
}

func readRecords(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening results: %w", err)
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("reading results: %w", err)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

// pick returns the records of one workload, builder and phase.
func pick(recs []record, w, b, phase string) []record {
	var out []record
	for _, r := range recs {
		if r.Workload == w && r.Builder == b && r.Phase == phase {
			out = append(out, r)
		}
	}
	return out
}

// median of the successful records' values; ok is false when none succeeded, and some is
// true when only some did.
func median(rs []record, value func(record) float64) (m float64, ok, some bool) {
	var v []float64
	for _, r := range rs {
		if r.OK {
			v = append(v, value(r))
		}
	}
	if len(v) == 0 {
		return 0, false, false
	}
	slices.Sort(v)
	n := len(v)
	m = v[n/2]
	if n%2 == 0 {
		m = (v[n/2-1] + v[n/2]) / 2
	}
	return m, true, len(v) < len(rs)
}

func writeReport(w io.Writer, recs []record) {
	var workloads []string
	for _, r := range recs {
		if r.Phase != "limit" && !slices.Contains(workloads, r.Workload) {
			workloads = append(workloads, r.Workload)
		}
	}
	slices.Sort(workloads)
	fmt.Fprintln(w, "| workload | figure | Strata | Buildah | Docker (BuildKit) | Strata / fastest peer |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|")
	for _, wl := range workloads {
		for _, f := range figures {
			writeRow(w, recs, wl, f)
		}
		writeReproRow(w, recs, wl)
	}
	writeFootnotes(w, recs)
	writeLimits(w, recs)
}

// writeRow prints one figure's medians and Strata's ratio to the best peer.
func writeRow(w io.Writer, recs []record, wl string, f figure) {
	cells := []string{wl, f.name + " (" + f.unit + ")"}
	vals := map[string]float64{}
	present := false
	for _, b := range builders {
		rs := pick(recs, wl, b, f.phase)
		present = present || len(rs) > 0
		m, ok, some := median(rs, f.value)
		cells = append(cells, cell(rs, m, ok, some))
		if ok {
			vals[b] = m
		}
	}
	if !present {
		return
	}
	cells = append(cells, ratioCell(vals))
	fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
}

func cell(rs []record, m float64, ok, some bool) string {
	switch {
	case len(rs) == 0:
		return "n/a"
	case !ok:
		return "fail"
	case some:
		return fmt.Sprintf("%.2f (some failed)", m)
	}
	return fmt.Sprintf("%.2f", m)
}

// ratioCell is Strata's value over the lowest peer value (below 1: Strata wins).
func ratioCell(vals map[string]float64) string {
	s, ok := vals["strata"]
	best, found := 0.0, false
	for _, b := range builders[1:] {
		if v, ok := vals[b]; ok && (!found || v < best) {
			best, found = v, true
		}
	}
	if !ok || !found || best == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", s/best)
}

// writeReproRow says whether the cold builds (with SOURCE_DATE_EPOCH) gave one digest.
func writeReproRow(w io.Writer, recs []record, wl string) {
	cells := []string{wl, "same digest, cold builds twice+"}
	for _, b := range builders {
		seen := map[string]bool{}
		n := 0
		for _, r := range pick(recs, wl, b, "cold") {
			if r.OK && r.Digest != "" {
				seen[r.Digest] = true
				n++
			}
		}
		switch {
		case n < 2:
			cells = append(cells, "n/a")
		case len(seen) == 1:
			cells = append(cells, fmt.Sprintf("yes (%d/%d)", n, n))
		default:
			cells = append(cells, fmt.Sprintf("no (%d digests/%d)", len(seen), n))
		}
	}
	fmt.Fprintln(w, "| "+strings.Join(append(cells, ""), " | ")+" |")
}

// writeFootnotes gives the daemon's idle RSS included in Docker's peak, and failures.
func writeFootnotes(w io.Writer, recs []record) {
	base, ok, _ := median(pickBuilder(recs, "docker", "cold"), func(r record) float64 { return float64(r.BaseRSS) / (1 << 20) })
	if ok {
		fmt.Fprintf(w, "\nDocker's peak RSS includes dockerd and its containerd's idle RSS before the build: median %.0f MiB.\n", base)
	}
	for _, r := range recs {
		if !r.OK {
			fmt.Fprintf(w, "\nfailed: %s %s %s run %d: %s\n", r.Workload, r.Builder, r.Phase, r.Run, r.Error)
		}
	}
}

func pickBuilder(recs []record, b, phase string) []record {
	var out []record
	for _, r := range recs {
		if r.Builder == b && r.Phase == phase {
			out = append(out, r)
		}
	}
	return out
}

// writeLimits prints W3's machine limits and Strata's cold W3 time over each.
func writeLimits(w io.Writer, recs []record) {
	seconds := func(r record) float64 { return r.Seconds }
	strata, sok, _ := median(pick(recs, "w3", "strata", "cold"), seconds)
	var names []string
	for _, r := range recs {
		if r.Phase == "limit" && !slices.Contains(names, r.Builder) {
			names = append(names, r.Builder)
		}
	}
	if len(names) == 0 {
		return
	}
	fmt.Fprintln(w, "\nW3 machine limits (same data as W3's RUN, written to and read from the page cache):")
	fmt.Fprintln(w, "\n| reference | median s | Strata cold W3 / reference |")
	fmt.Fprintln(w, "|---|--:|--:|")
	for _, n := range names {
		m, ok, _ := median(pick(recs, "w3", n, "limit"), seconds)
		ratio := "n/a"
		if ok && sok && m > 0 {
			ratio = fmt.Sprintf("%.2fx", strata/m)
		}
		fmt.Fprintf(w, "| %s | %.2f | %s |\n", n, m, ratio)
	}
}
