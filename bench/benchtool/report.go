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

// peer is a builder Strata is compared with: its column shows when always is set or the
// results have it.
type peer struct {
	builder, column string
	always          bool
}

// peers are the other builders. The ratio column and the targets are to BuildKit; Docker
// 20.10 (BuildKit of 2020, inside dockerd) only runs when named.
var peers = []peer{
	{"buildah", "Buildah", true},
	{"buildkit", "BuildKit", true},
	{"docker", "Docker 20.10", false},
}

// target is the peer the ratio column and the ratio targets compare with.
const target = "buildkit"

// mode is another Strata measured as a builder of its own by run.sh: strata-before (the
// --baseline binary) or one of Strata's ways to build. Its column appears when the results
// have it, with a column of its ratio to strata; modes are never peers.
type mode struct {
	builder, column, ratio string
	// before: the ratio is strata's value over the mode's (after / before), and the digest
	// cell compares with the baseline's.
	before bool
}

var modes = []mode{
	{"strata-before", "Strata before", "after / before", true},
	{"strata-rootless", "Strata rootless", "rootless / root", false},
	{"strata-chroot", "Strata chroot", "chroot / root", false},
}

// figure is one row of the table: how to get a number from a workload's records.
type figure struct {
	name  string
	phase string
	value func(record) float64
	unit  string
}

func seconds(r record) float64 { return r.Seconds }
func rssMiB(r record) float64  { return float64(r.PeakRSS) / (1 << 20) }
func sizeMB(r record) float64  { return float64(r.Size) / 1e6 }

var figures = []figure{
	{"cold build to OCI tarball", "cold", seconds, "s"},
	{"warm rebuild, no change", "warm", seconds, "s"},
	{"rebuild, one COPY'd file changed", "change", seconds, "s"},
	{"cold build, --compression zstd", "cold-zstd", seconds, "s"},
	{"peak RSS, cold build", "cold", rssMiB, "MiB"},
	{"peak RSS, warm rebuild", "warm", rssMiB, "MiB"},
	{"peak RSS, one file changed", "change", rssMiB, "MiB"},
	{"peak RSS, cold zstd build", "cold-zstd", rssMiB, "MiB"},
	{"output tarball size", "cold", sizeMB, "MB"},
	{"output tarball size, zstd", "cold-zstd", sizeMB, "MB"},
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
	cols := columns(recs, ms)
	header := []string{"workload", "figure"}
	for _, c := range cols {
		header = append(header, columnName(c))
	}
	header = append(header, "Strata / BuildKit")
	for _, m := range ms {
		header = append(header, m.ratio)
	}
	fmt.Fprintln(w, "| "+strings.Join(header, " | ")+" |")
	fmt.Fprintln(w, "|---|---|"+strings.Repeat("--:|", len(header)-2))
	for _, wl := range workloads {
		for _, f := range figures {
			writeRow(w, recs, cols, ms, wl, f)
		}
		writeReproRow(w, recs, cols, ms, wl)
	}
	writeFootnotes(w, recs)
	writeLimits(w, recs)
	writeTargets(w, recs, slices.ContainsFunc(ms, func(m mode) bool { return m.before }))
}

// has says whether the results have a (non-limit) record of builder b.
func has(recs []record, b string) bool {
	return slices.ContainsFunc(recs, func(r record) bool { return r.Builder == b && r.Phase != "limit" })
}

// presentModes are the modes with a (non-limit) record, in the order of modes.
func presentModes(recs []record) []mode {
	var out []mode
	for _, m := range modes {
		if has(recs, m.builder) {
			out = append(out, m)
		}
	}
	return out
}

// columns are the builders whose medians a row shows: strata, the baseline, the peers shown,
// then Strata's other modes.
func columns(recs []record, ms []mode) []string {
	cols := []string{"strata"}
	for _, m := range ms {
		if m.before {
			cols = append(cols, m.builder)
		}
	}
	for _, p := range peers {
		if p.always || has(recs, p.builder) {
			cols = append(cols, p.builder)
		}
	}
	for _, m := range ms {
		if !m.before {
			cols = append(cols, m.builder)
		}
	}
	return cols
}

func columnName(b string) string {
	for _, p := range peers {
		if p.builder == b {
			return p.column
		}
	}
	for _, m := range modes {
		if m.builder == b {
			return m.column
		}
	}
	if b == "strata" {
		return "Strata"
	}
	return b
}

// writeRow prints one figure's medians, Strata's ratio to BuildKit, and each mode's ratio.
func writeRow(w io.Writer, recs []record, cols []string, ms []mode, wl string, f figure) {
	cells := []string{wl, f.name + " (" + f.unit + ")"}
	vals := map[string]float64{}
	present := false
	for _, b := range cols {
		rs := pick(recs, wl, b, f.phase)
		present = present || len(rs) > 0
		m, ok, some := median(rs, f.value)
		if ok && m == 0 && f.unit == "MiB" {
			// Builds shorter than measure's 50 ms sampling period have no RSS sample.
			cells = append(cells, "not sampled")
			continue
		}
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
		cells = append(cells, modeRatioCell(vals, m))
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

// ratio formats a/b, or n/a when either is missing or b is 0.
func ratio(a float64, aok bool, b float64, bok bool) string {
	if !aok || !bok || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// ratioCell is Strata's value over BuildKit's (below 1: Strata wins).
func ratioCell(vals map[string]float64) string {
	s, sok := vals["strata"]
	k, kok := vals[target]
	return ratio(s, sok, k, kok)
}

// modeRatioCell is the mode's value over Strata's (above 1: the mode costs more), or for the
// baseline Strata's over the baseline's (below 1: the change made Strata better).
func modeRatioCell(vals map[string]float64, m mode) string {
	v, ok := vals[m.builder]
	s, sok := vals["strata"]
	if m.before {
		return ratio(s, sok, v, ok)
	}
	return ratio(v, ok, s, sok)
}

// writeReproRow says whether the cold builds (with SOURCE_DATE_EPOCH) gave one digest, and in
// each mode's ratio column whether the mode's cold builds gave Strata's.
func writeReproRow(w io.Writer, recs []record, cols []string, ms []mode, wl string) {
	cells := []string{wl, "same digest, cold builds twice+"}
	for _, b := range cols {
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
		cells = append(cells, sameDigestCell(root, m, recs, wl))
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

// sameDigestCell says whether every cold build of mode m gave the one digest of Strata's
// cold builds: for a mode, root's; for the baseline, whether the change kept the digest.
func sameDigestCell(root map[string]bool, m mode, recs []record, wl string) string {
	seen, n := coldDigests(recs, wl, m.builder)
	if n == 0 || len(root) == 0 {
		return "n/a"
	}
	same, differs := "same as root", "differs from root"
	if m.before {
		same, differs = "same digest", "digest changed"
	}
	if len(root) == 1 && len(seen) == 1 {
		for d := range seen {
			if root[d] {
				return same
			}
		}
	}
	return differs
}

// writeFootnotes gives the daemons' idle RSS included in their peak, and failures.
func writeFootnotes(w io.Writer, recs []record) {
	base := func(r record) float64 { return float64(r.BaseRSS) / (1 << 20) }
	if m, ok, _ := median(pickBuilder(recs, "buildkit", "cold"), base); ok {
		fmt.Fprintf(w, "\nBuildKit's peak RSS includes buildkitd's idle RSS before the build: median %.0f MiB.\n", m)
	}
	if m, ok, _ := median(pickBuilder(recs, "docker", "cold"), base); ok {
		fmt.Fprintf(w, "\nDocker's peak RSS includes dockerd and its containerd's idle RSS before the build: median %.0f MiB.\n", m)
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

// limit is a machine limit for one workload: the sum of the medians of run.sh's "limit"
// records named by parts (their builder field), compared with Strata's phase.
type limit struct {
	workload, name string
	parts          []string
	phase          string
}

// limits are what run.sh measures: W3's data written once (fill) then archived and
// compressed as the layer writer does, and W2's tarball decompressed once. The sums are
// the targets' limits: a RUN that writes the data and a layer of it cannot cost less.
var limits = []limit{
	{"w3", "write the data (benchtool fill, RUN's floor)", []string{"fill"}, "cold"},
	{"w3", "tar -c >/dev/null", []string{"tar"}, "cold"},
	{"w3", "tar -c | gzip -1", []string{"tar-gzip1"}, "cold"},
	{"w3", "tar -c | zstd -3", []string{"tar-zstd3"}, "cold-zstd"},
	{"w3", "tar -c | pgzip (layer/compress.go's settings)", []string{"tar-pgzip"}, "cold"},
	{"w3", "fill + tar -c | zstd -3", []string{"fill", "tar-zstd3"}, "cold-zstd"},
	{"w3", "fill + tar -c | pgzip", []string{"fill", "tar-pgzip"}, "cold"},
	{"w2", "gzip -dc rootfs.tar.gz >/dev/null", []string{"gunzip"}, "cold"},
}

// limitSeconds is the limit's time: the sum of its parts' medians; ok is false when a part
// has no successful record.
func limitSeconds(recs []record, l limit) (float64, bool) {
	sum := 0.0
	for _, p := range l.parts {
		m, ok, _ := median(pick(recs, l.workload, p, "limit"), seconds)
		if !ok {
			return 0, false
		}
		sum += m
	}
	return sum, true
}

// writeLimits prints the machine limits and Strata's time over each.
func writeLimits(w io.Writer, recs []record) {
	var rows []string
	for _, l := range limits {
		lim, ok := limitSeconds(recs, l)
		if !ok {
			continue
		}
		s, sok, _ := median(pick(recs, l.workload, "strata", l.phase), seconds)
		rows = append(rows, fmt.Sprintf("| %s | %s | %.2f | %s | %s |", l.workload, escape(l.name), lim, l.phase, ratio(s, sok, lim, true)))
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nMachine limits (the workload's data, written to and read from the page cache; a + is a sum of medians):")
	fmt.Fprintln(w, "\n| workload | reference | median s | Strata's phase | Strata / reference |")
	fmt.Fprintln(w, "|---|---|--:|---|--:|")
	for _, r := range rows {
		fmt.Fprintln(w, r)
	}
}

// escape keeps a shell pipe in a cell from splitting the markdown table's cell.
func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
