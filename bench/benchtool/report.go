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

// mode is one of Strata's other ways to build, measured as a builder of its own by run.sh.
// Its column appears when the results have it, with a column of its ratio to strata (root);
// modes are never peers.
type mode struct {
	builder, column, ratio string
}

var modes = []mode{
	{"strata-rootless", "Strata rootless", "rootless / root"},
	{"strata-chroot", "Strata chroot", "chroot / root"},
}

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
	ms := presentModes(recs)
	header := []string{"workload", "figure", "Strata", "Buildah", "Docker (BuildKit)"}
	for _, m := range ms {
		header = append(header, m.column)
	}
	header = append(header, "Strata / fastest peer")
	for _, m := range ms {
		header = append(header, m.ratio)
	}
	fmt.Fprintln(w, "| "+strings.Join(header, " | ")+" |")
	fmt.Fprintln(w, "|---|---|"+strings.Repeat("--:|", len(header)-2))
	for _, wl := range workloads {
		for _, f := range figures {
			writeRow(w, recs, ms, wl, f)
		}
		writeReproRow(w, recs, ms, wl)
	}
	writeFootnotes(w, recs)
	writeLimits(w, recs)
}

// presentModes are the modes with a (non-limit) record, in the order of modes.
func presentModes(recs []record) []mode {
	var out []mode
	for _, m := range modes {
		if slices.ContainsFunc(recs, func(r record) bool { return r.Builder == m.builder && r.Phase != "limit" }) {
			out = append(out, m)
		}
	}
	return out
}

// columns are the builders whose medians a row shows: the fixed ones, then the modes ms.
func columns(ms []mode) []string {
	cols := slices.Clone(builders)
	for _, m := range ms {
		cols = append(cols, m.builder)
	}
	return cols
}

// writeRow prints one figure's medians, Strata's ratio to the best peer, and each mode's
// ratio to Strata (root).
func writeRow(w io.Writer, recs []record, ms []mode, wl string, f figure) {
	cells := []string{wl, f.name + " (" + f.unit + ")"}
	vals := map[string]float64{}
	present := false
	for _, b := range columns(ms) {
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
	for _, m := range ms {
		cells = append(cells, modeRatioCell(vals, m.builder))
	}
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

// ratioCell is Strata's value over the lowest peer value (below 1: Strata wins). The peers
// are builders' others: Strata's modes never count.
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

// modeRatioCell is the mode's value over Strata's as root (above 1: the mode costs more).
func modeRatioCell(vals map[string]float64, b string) string {
	v, ok := vals[b]
	root, rok := vals["strata"]
	if !ok || !rok || root == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", v/root)
}

// writeReproRow says whether the cold builds (with SOURCE_DATE_EPOCH) gave one digest, and in
// each mode's ratio column whether the mode's cold builds gave Strata (root)'s.
func writeReproRow(w io.Writer, recs []record, ms []mode, wl string) {
	cells := []string{wl, "same digest, cold builds twice+"}
	for _, b := range columns(ms) {
		seen, n := coldDigests(recs, wl, b)
		switch {
		case n < 2:
			cells = append(cells, "n/a")
		case len(seen) == 1:
			cells = append(cells, fmt.Sprintf("yes (%d/%d)", n, n))
		default:
			cells = append(cells, fmt.Sprintf("no (%d digests/%d)", len(seen), n))
		}
	}
	cells = append(cells, "")
	root, _ := coldDigests(recs, wl, "strata")
	for _, m := range ms {
		cells = append(cells, sameDigestCell(root, m.builder, recs, wl))
	}
	fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
}

// coldDigests are the distinct digests of b's successful cold builds of wl, and how many
// builds gave one.
func coldDigests(recs []record, wl, b string) (map[string]bool, int) {
	seen := map[string]bool{}
	n := 0
	for _, r := range pick(recs, wl, b, "cold") {
		if r.OK && r.Digest != "" {
			seen[r.Digest] = true
			n++
		}
	}
	return seen, n
}

// sameDigestCell says whether every cold build of mode b gave the one digest of Strata
// (root)'s cold builds.
func sameDigestCell(root map[string]bool, b string, recs []record, wl string) string {
	seen, n := coldDigests(recs, wl, b)
	if n == 0 || len(root) == 0 {
		return "n/a"
	}
	if len(root) == 1 && len(seen) == 1 {
		for d := range seen {
			if root[d] {
				return "same as root"
			}
		}
	}
	return "differs from root"
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
