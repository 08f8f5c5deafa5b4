package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestFillIsDeterministic(t *testing.T) {
	for _, kind := range []string{"random", "text", "zero"} {
		t.Run(kind, func(t *testing.T) {
			var a, b bytes.Buffer
			if err := copyData(&a, kind, 100_003, newRand(7)); err != nil {
				t.Fatal(err)
			}
			if err := copyData(&b, kind, 100_003, newRand(7)); err != nil {
				t.Fatal(err)
			}
			if a.Len() != 100_003 || !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("two fills with one seed differ or have the wrong size (%d bytes)", a.Len())
			}
		})
	}
}

func TestFillCompressibility(t *testing.T) {
	tests := []struct {
		kind     string
		min, max float64 // bounds on compressed/original with gzip -1
	}{
		{"random", 0.99, 1.01},
		{"text", 0.15, 0.45},
		{"zero", 0, 0.01},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			var out bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
			if err := copyData(zw, tc.kind, 1<<20, newRand(1)); err != nil {
				t.Fatal(err)
			}
			zw.Close()
			if r := float64(out.Len()) / (1 << 20); r < tc.min || r > tc.max {
				t.Errorf("gzip ratio %.3f, want within [%.2f, %.2f]", r, tc.min, tc.max)
			}
		})
	}
}

func TestSplitSizesKeepsTheTotal(t *testing.T) {
	sizes := splitSizes(rand.New(rand.NewPCG(1, 2)), 5000, 100<<20)
	var sum int64
	for _, s := range sizes {
		sum += s
	}
	if sum > 100<<20 || sum < 100<<20-5000 {
		t.Errorf("sizes sum to %d, want about %d", sum, 100<<20)
	}
}

func TestMedian(t *testing.T) {
	sec := func(r record) float64 { return r.Seconds }
	tests := []struct {
		name     string
		recs     []record
		want     float64
		ok, some bool
	}{
		{"odd", []record{{OK: true, Seconds: 3}, {OK: true, Seconds: 1}, {OK: true, Seconds: 2}}, 2, true, false},
		{"even", []record{{OK: true, Seconds: 4}, {OK: true, Seconds: 1}}, 2.5, true, false},
		{"failures left out", []record{{OK: true, Seconds: 4}, {Seconds: 100}}, 4, true, true},
		{"all failed", []record{{Seconds: 1}}, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, ok, some := median(tc.recs, sec)
			if m != tc.want || ok != tc.ok || some != tc.some {
				t.Errorf("median = %v, %v, %v; want %v, %v, %v", m, ok, some, tc.want, tc.ok, tc.some)
			}
		})
	}
}

func TestRatioIsAgainstBuildKit(t *testing.T) {
	tests := []struct {
		vals map[string]float64
		want string
	}{
		{map[string]float64{"strata": 1, "buildah": 4, "buildkit": 2}, "0.50x"},
		// Not the fastest peer: BuildKit, the reference.
		{map[string]float64{"strata": 3, "buildah": 1, "buildkit": 2}, "1.50x"},
		{map[string]float64{"strata": 3, "docker": 1}, "n/a"},
		{map[string]float64{"buildah": 4, "buildkit": 2}, "n/a"},
		{map[string]float64{"strata": 1}, "n/a"},
		// Strata's modes and its baseline are not peers, however fast.
		{map[string]float64{"strata": 2, "buildkit": 4, "strata-before": 1, "strata-chroot": 1}, "0.50x"},
	}
	for _, tc := range tests {
		if got := ratioCell(tc.vals); got != tc.want {
			t.Errorf("ratioCell(%v) = %s, want %s", tc.vals, got, tc.want)
		}
	}
}

func TestDigestFrom(t *testing.T) {
	tests := []struct {
		kind, json, want string
	}{
		{"oci", `{"manifests":[{"digest":"sha256:aa"}]}`, "sha256:aa"},
		{"docker", `[{"Config":"bb.json"}]`, "sha256:bb"},
		{"docker", `[{"Config":"blobs/sha256/cc"}]`, "sha256:cc"},
	}
	for _, tc := range tests {
		got, err := digestFrom(tc.kind, []byte(tc.json))
		if err != nil || got != tc.want {
			t.Errorf("digestFrom(%s, %s) = %q, %v; want %q", tc.kind, tc.json, got, err, tc.want)
		}
	}
	if _, err := digestFrom("oci", []byte(`{"manifests":[]}`)); err == nil || !strings.Contains(err.Error(), "no manifest") {
		t.Errorf("an empty index gave %v, want a no-manifest error", err)
	}
}

func TestModeRatioIsAgainstStrataAsRoot(t *testing.T) {
	tests := []struct {
		vals map[string]float64
		want string
	}{
		{map[string]float64{"strata": 2, "buildah": 1, "strata-rootless": 3}, "1.50x"},
		{map[string]float64{"strata": 2}, "n/a"},
		{map[string]float64{"buildah": 1, "strata-rootless": 3}, "n/a"},
	}
	for _, tc := range tests {
		if got := modeRatioCell(tc.vals, modes[1]); got != tc.want {
			t.Errorf("modeRatioCell(%v) = %s, want %s", tc.vals, got, tc.want)
		}
	}
}

// tableLines are the report's table rows (header first) for recs.
func tableLines(t *testing.T, recs []record) []string {
	t.Helper()
	var b bytes.Buffer
	writeReport(&b, recs)
	var rows []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "|") {
			rows = append(rows, l)
		}
	}
	return rows
}

func TestReportWithoutModesKeepsItsColumns(t *testing.T) {
	recs := []record{
		{Workload: "w4", Builder: "strata", Phase: "cold", OK: true, Seconds: 1, Digest: "sha256:a"},
		{Workload: "w4", Builder: "buildkit", Phase: "cold", OK: true, Seconds: 2, Digest: "sha256:b"},
	}
	rows := tableLines(t, recs)
	if want := "| workload | figure | Strata | Buildah | BuildKit | Strata / BuildKit |"; rows[0] != want {
		t.Errorf("header %q, want %q", rows[0], want)
	}
	if want := "|---|---|--:|--:|--:|--:|"; rows[1] != want {
		t.Errorf("separator %q, want %q", rows[1], want)
	}
	if want := "| w4 | same digest, cold builds twice+ | n/a | n/a | n/a |  |"; !slices.Contains(rows, want) {
		t.Errorf("no row %q in %q", want, rows)
	}
	if want := "| w4 | cold build to OCI tarball (s) | 1.00 | n/a | 2.00 | 0.50x |"; !slices.Contains(rows, want) {
		t.Errorf("no row %q in %q", want, rows)
	}
}

func TestReportShowsModesWithTheirRatioToRoot(t *testing.T) {
	recs := []record{
		{Workload: "w4", Builder: "strata", Phase: "cold", OK: true, Seconds: 2, Digest: "sha256:a"},
		{Workload: "w4", Builder: "buildah", Phase: "cold", OK: true, Seconds: 8, Digest: "sha256:b"},
		{Workload: "w4", Builder: "buildkit", Phase: "cold", OK: true, Seconds: 4, Digest: "sha256:c"},
		{Workload: "w4", Builder: "strata-rootless", Phase: "cold", OK: true, Seconds: 3, Digest: "sha256:a"},
		{Workload: "w4", Builder: "strata-chroot", Phase: "cold", OK: true, Seconds: 1, Digest: "sha256:d"},
	}
	rows := tableLines(t, recs)
	want := []string{
		"| workload | figure | Strata | Buildah | BuildKit | Strata rootless | Strata chroot | Strata / BuildKit | rootless / root | chroot / root |",
		"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
		// The chroot mode is faster than every peer, yet Strata's ratio is still to BuildKit's.
		"| w4 | cold build to OCI tarball (s) | 2.00 | 8.00 | 4.00 | 3.00 | 1.00 | 0.50x | 1.50x | 0.50x |",
		"| w4 | same digest, cold builds twice+ | n/a | n/a | n/a | n/a | n/a |  | same as root | differs from root |",
	}
	for _, w := range want {
		if !slices.Contains(rows, w) {
			t.Errorf("no row %q in\n%s", w, strings.Join(rows, "\n"))
		}
	}

	// Only the modes that were run get columns.
	rows = tableLines(t, recs[:4])
	if want := "| workload | figure | Strata | Buildah | BuildKit | Strata rootless | Strata / BuildKit | rootless / root |"; rows[0] != want {
		t.Errorf("header %q, want %q", rows[0], want)
	}
}

func TestReportShowsTheBaselineAndDockerWhenRun(t *testing.T) {
	recs := []record{
		{Workload: "w4", Builder: "strata", Phase: "cold", OK: true, Seconds: 1, Digest: "sha256:a"},
		{Workload: "w4", Builder: "strata", Phase: "cold", OK: true, Seconds: 1, Digest: "sha256:a"},
		{Workload: "w4", Builder: "strata-before", Phase: "cold", OK: true, Seconds: 4, Digest: "sha256:a"},
		{Workload: "w4", Builder: "strata-before", Phase: "cold", OK: true, Seconds: 4, Digest: "sha256:b"},
		{Workload: "w4", Builder: "buildkit", Phase: "cold", OK: true, Seconds: 2},
		{Workload: "w4", Builder: "docker", Phase: "cold", OK: true, Seconds: 3},
		{Workload: "w4", Builder: "strata-chroot", Phase: "cold", OK: true, Seconds: 3, Digest: "sha256:a"},
	}
	rows := tableLines(t, recs)
	want := []string{
		"| workload | figure | Strata | Strata before | Buildah | BuildKit | Docker 20.10 | Strata chroot | Strata / BuildKit | after / before | chroot / root |",
		// after / before is Strata's time over the baseline's: below 1, the change helped.
		"| w4 | cold build to OCI tarball (s) | 1.00 | 4.00 | n/a | 2.00 | 3.00 | 3.00 | 0.50x | 0.25x | 3.00x |",
		"| w4 | same digest, cold builds twice+ | yes (2/2) | no (2 digests/2) | n/a | n/a | n/a | n/a |  | digest changed | same as root |",
	}
	for _, w := range want {
		if !slices.Contains(rows, w) {
			t.Errorf("no row %q in\n%s", w, strings.Join(rows, "\n"))
		}
	}
}

// targetRows are the report's Targets table rows by their first cell.
func targetRows(t *testing.T, recs []record) (map[string]string, string) {
	t.Helper()
	var b bytes.Buffer
	writeReport(&b, recs)
	out := b.String()
	i := strings.Index(out, "\nTargets")
	if i < 0 {
		t.Fatalf("no Targets table in\n%s", out)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(out[i:], "\n") {
		if cells := strings.Split(l, " | "); len(cells) > 1 && strings.HasPrefix(l, "| ") {
			rows[strings.TrimPrefix(cells[0], "| ")] = l
		}
	}
	return rows, out[i:]
}

func TestTargetsTable(t *testing.T) {
	ok := func(w, b, phase string, sec float64, rssMiB, size int64) record {
		return record{Workload: w, Builder: b, Phase: phase, OK: true, Seconds: sec, PeakRSS: rssMiB << 20, Size: size}
	}
	recs := []record{
		ok("w1", "strata", "cold", 1, 40, 1000), ok("w1", "buildkit", "cold", 4, 300, 2000), ok("w1", "buildah", "cold", 9, 90, 999),
		ok("w1", "strata", "warm", 1, 70, 0), ok("w1", "buildkit", "warm", 4, 300, 0),
		ok("w0", "strata", "cold", 0.2, 30, 1), ok("w5", "strata", "cold", 0.3, 30, 1), ok("w6", "strata", "cold", 0.6, 30, 1),
		ok("w3", "fill", "limit", 1, 0, 0), ok("w3", "tar-zstd3", "limit", 1, 0, 0), ok("w3", "tar-pgzip", "limit", 2, 0, 0),
		ok("w3", "strata", "cold-zstd", 2.5, 50, 0), ok("w3", "strata", "cold", 4, 50, 0),
		ok("w2", "gunzip", "limit", 1, 0, 0), ok("w2", "strata", "cold", 1.2, 20, 0), ok("w2", "strata", "warm", 0.02, 0, 0),
	}
	rows, table := targetRows(t, recs)
	want := []string{
		"| W1 cold build, Strata / BuildKit | 1.00 s / 4.00 s | <= 0.35x | 0.250x | PASS |",
		"| W1 warm rebuild, Strata / BuildKit | 1.00 s / 4.00 s | <= 0.05x | 0.250x | FAIL |",
		"| W1 one-file change, Strata / BuildKit | not run | <= 0.35x | n/a | n/a |",
		"| W4 cold build, Strata / BuildKit | not run | <= 0.20x | n/a | n/a |",
		"| fixed cost of a metadata step: (W5 - W0) / 200, cold | (0.300 s - 0.200 s) / 200 | <= 1 ms | 0.50 ms | PASS |",
		"| fixed cost of RUN true: (W6 - W0) / 50, cold | (0.600 s - 0.200 s) / 50 | <= 5 ms | 8.00 ms | FAIL |",
		"| W3 cold-zstd / (fill + tar -c \\| zstd -3) | 2.50 s / 2.00 s | <= 1.50x | 1.250x | PASS |",
		"| W3 cold / (fill + tar -c \\| pgzip) | 4.00 s / 3.00 s | <= 1.20x | 1.333x | FAIL |",
		"| W2 cold / (gzip -dc rootfs.tar.gz >/dev/null) | 1.20 s / 1.00 s | <= 1.50x | 1.200x | PASS |",
		"| W1 peak RSS, highest phase median | cold 40.0, warm 70.0 (MiB) | <= 64 MiB | 70.0 MiB | FAIL |",
		"| W3 peak RSS, highest phase median | cold 50.0, cold-zstd 50.0 (MiB) | <= 64 MiB | 50.0 MiB | PASS |",
		// A build too short to be sampled is not a pass.
		"| W2 peak RSS, highest phase median | cold 20.0, warm not sampled (MiB) | <= 64 MiB | 20.0 MiB | PASS |",
		"| W1 image size, Strata / Buildah | 0.00 MB / 0.00 MB | <= 1.00x | 1.001x | FAIL |",
	}
	for _, w := range want {
		if !strings.Contains(table, w+"\n") {
			t.Errorf("no row %q in\n%s", w, table)
		}
	}
	if _, ok := rows["W2 image size, Strata / Buildah"]; ok {
		t.Errorf("a size target for W2, which Buildah did not build:\n%s", table)
	}
	if !strings.Contains(table, "\n9 of 14 measured targets hold.\n") {
		t.Errorf("wrong count in\n%s", table)
	}
	if strings.Contains(table, "before") {
		t.Errorf("baseline columns without a baseline:\n%s", table)
	}

	// With the baseline, each row also gives its value and result.
	recs = append(recs, ok("w1", "strata-before", "cold", 0.4, 40, 1000))
	_, table = targetRows(t, recs)
	for _, w := range []string{
		"| target | measured | limit | value | result | before | before result |",
		"| W1 cold build, Strata / BuildKit | 1.00 s / 4.00 s | <= 0.35x | 0.250x | PASS | 0.100x | PASS |",
		"| W1 warm rebuild, Strata / BuildKit | 1.00 s / 4.00 s | <= 0.05x | 0.250x | FAIL | n/a | n/a |",
	} {
		if !strings.Contains(table, w+"\n") {
			t.Errorf("no row %q in\n%s", w, table)
		}
	}
}

func TestLimitsAreSumsOfMedians(t *testing.T) {
	recs := []record{
		{Workload: "w3", Builder: "fill", Phase: "limit", OK: true, Seconds: 1},
		{Workload: "w3", Builder: "fill", Phase: "limit", OK: true, Seconds: 3},
		{Workload: "w3", Builder: "fill", Phase: "limit", OK: true, Seconds: 2},
		{Workload: "w3", Builder: "tar-pgzip", Phase: "limit", OK: true, Seconds: 0.5},
		{Workload: "w3", Builder: "strata", Phase: "cold", OK: true, Seconds: 5},
	}
	rows := tableLines(t, recs)
	for _, w := range []string{
		"| w3 | fill + tar -c \\| pgzip | 2.50 | cold | 2.00x |",
		"| w3 | write the data (benchtool fill, RUN's floor) | 2.00 | cold | 2.50x |",
	} {
		if !slices.Contains(rows, w) {
			t.Errorf("no row %q in\n%s", w, strings.Join(rows, "\n"))
		}
	}
	// A limit missing a part is left out, not counted as zero.
	for _, r := range rows {
		if strings.Contains(r, "zstd -3 |") {
			t.Errorf("row %q without zstd records", r)
		}
	}
}

// TestTargetsAtTheirLimit: a value at its limit holds; one just above fails, and shows enough
// digits not to read as the limit.
func TestTargetsAtTheirLimit(t *testing.T) {
	recs := []record{
		{Workload: "w4", Builder: "strata", Phase: "cold", OK: true, Seconds: 1},
		{Workload: "w4", Builder: "buildkit", Phase: "cold", OK: true, Seconds: 5},
		{Workload: "w1", Builder: "strata", Phase: "change", OK: true, Seconds: 3.527},
		{Workload: "w1", Builder: "buildkit", Phase: "change", OK: true, Seconds: 10},
	}
	_, table := targetRows(t, recs)
	for _, w := range []string{
		"| W4 cold build, Strata / BuildKit | 1.00 s / 5.00 s | <= 0.20x | 0.200x | PASS |",
		"| W1 one-file change, Strata / BuildKit | 3.53 s / 10.00 s | <= 0.35x | 0.353x | FAIL |",
	} {
		if !strings.Contains(table, w+"\n") {
			t.Errorf("no row %q in\n%s", w, table)
		}
	}
}

// TestMeasureCatchesShortBuilds: a command that ends before the first 50 ms sample still
// gets a peak RSS (a warm rebuild takes 20 ms).
func TestMeasureCatchesShortBuilds(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("measure needs Linux")
	}
	out := filepath.Join(t.TempDir(), "results.jsonl")
	if err := measureCmd([]string{"-record", out, "-workload", "w", "-builder", "b", "-phase", "warm", "--", "true"}); err != nil {
		t.Fatal(err)
	}
	recs, err := readRecords(out)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %v, %v", recs, err)
	}
	if r := recs[0]; !r.OK || r.PeakRSS < 100<<10 {
		t.Errorf("record %+v: want a peak RSS of 100 KiB or more", r)
	}
}

// smallRootfs writes a tar of two entries for the W2 generator.
func smallRootfs(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, name := range []string{"bin/sh", "etc/passwd"} {
		body := "content of " + name + "\n"
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: fixedTime, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// gunzipNames lists a gzip'd tar's entry names.
func gunzipNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var names []string
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		names = append(names, h.Name)
	}
}

func TestW2AddsADeterministicGzipTarball(t *testing.T) {
	if _, err := exec.LookPath("gzip"); err != nil {
		t.Skip("no gzip")
	}
	o := workloadsOptions{registry: "r", rootfs: smallRootfs(t)}
	var first []byte
	for i := range 2 {
		o.dir = t.TempDir()
		if err := genW2(o, quickSizes); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(o.dir, "w2")
		df, _ := os.ReadFile(filepath.Join(dir, "ctx", "Dockerfile"))
		if !strings.Contains(string(df), "ADD rootfs.tar.gz /\n") {
			t.Errorf("Dockerfile %q does not ADD rootfs.tar.gz", df)
		}
		ctx, err := os.ReadFile(filepath.Join(dir, "ctx", "rootfs.tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		if orig, _ := os.ReadFile(filepath.Join(dir, "orig", "rootfs.tar.gz")); !bytes.Equal(orig, ctx) {
			t.Error("orig/rootfs.tar.gz differs from ctx's: undoing the change would not restore the context")
		}
		if got := gunzipNames(t, filepath.Join(dir, "change", "rootfs.tar.gz")); !slices.Contains(got, "etc/bench-changed") {
			t.Errorf("the change's tarball has %v, want etc/bench-changed", got)
		}
		if _, err := os.Stat(filepath.Join(dir, "ctx", "rootfs.tar")); err == nil {
			t.Error("the uncompressed rootfs.tar is left in the context")
		}
		if i == 0 {
			first = ctx
		} else if !bytes.Equal(first, ctx) {
			t.Error("two generations gave different rootfs.tar.gz bytes")
		}
	}
}

func TestFixedCostWorkloads(t *testing.T) {
	o := workloadsOptions{registry: "r", dir: t.TempDir()}
	for _, tc := range []struct {
		name  string
		gen   func(workloadsOptions, sizes) error
		steps int
		only  []string // the instructions between FROM and CMD
	}{
		{"w0", genW0, 0, nil},
		{"w5", genW5, w5Steps, []string{"ENV", "LABEL", "ARG", "USER"}},
		{"w6", genW6, w6Steps, []string{"RUN"}},
	} {
		if err := tc.gen(o, quickSizes); err != nil {
			t.Fatal(err)
		}
		df, err := os.ReadFile(filepath.Join(o.dir, tc.name, "ctx", "Dockerfile"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(df)), "\n")
		if lines[0] != "FROM r/busybox:bench" || lines[len(lines)-1] != `CMD ["sh"]` || len(lines) != tc.steps+2 {
			t.Errorf("%s: %d lines from %q to %q, want FROM, %d steps, CMD", tc.name, len(lines), lines[0], lines[len(lines)-1], tc.steps)
			continue
		}
		for _, l := range lines[1 : len(lines)-1] {
			if !slices.Contains(tc.only, strings.Fields(l)[0]) {
				t.Errorf("%s: step %q, want only %v", tc.name, l, tc.only)
			}
		}
	}
}

// TestCopyDataMemoryBounded: fill's memory does not grow with the file it
// writes (the RUN steps that call it count in the builders' peak RSS).
func TestCopyDataMemoryBounded(t *testing.T) {
	for _, kind := range []string{"text", "random", "zero"} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := copyData(io.Discard, kind, 64<<20, newRand(3)); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
			t.Errorf("%s: writing 64 MiB allocated %d MiB", kind, got>>20)
		}
	}
}
