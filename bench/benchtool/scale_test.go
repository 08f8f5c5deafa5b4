package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// treeDigest hashes every path, mode, mtime and content under root.
func treeDigest(t *testing.T, root string) (string, int) {
	t.Helper()
	h := sha256.New()
	files := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		h.Write([]byte(rel + info.Mode().String() + info.ModTime().UTC().String() + "\x00"))
		if d.Type().IsRegular() {
			files++
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), files
}

func genScalePoint(t *testing.T, point string) string {
	t.Helper()
	dir := t.TempDir()
	if err := scaleWorkloadsCmd([]string{"-registry", "reg:5", "-stage-bytes", "1000", "-point", point, dir}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestScaleFilesPoint: the files context is the same twice, has the files asked for (and the
// Dockerfile), 1-4 KiB each, and its change differs from the original in one file's content.
func TestScaleFilesPoint(t *testing.T) {
	a, b := genScalePoint(t, "files/300"), genScalePoint(t, "files/300")
	da, na := treeDigest(t, filepath.Join(a, "ctx"))
	db, _ := treeDigest(t, filepath.Join(b, "ctx"))
	if da != db {
		t.Error("two generations of files/300 differ")
	}
	if na != 301 {
		t.Errorf("context has %d files, want 300 and the Dockerfile", na)
	}
	_ = filepath.WalkDir(filepath.Join(a, "ctx", "src"), func(p string, d fs.DirEntry, err error) error {
		if info, _ := d.Info(); d.Type().IsRegular() && (info.Size() < 1024 || info.Size() > 4096) {
			t.Errorf("%s: %d bytes, want 1-4 KiB", p, info.Size())
		}
		return err
	})
	rel := filePath(150)
	ctx, _ := os.ReadFile(filepath.Join(a, "ctx", rel))
	orig, _ := os.ReadFile(filepath.Join(a, "orig", rel))
	changed, _ := os.ReadFile(filepath.Join(a, "change", rel))
	if len(ctx) == 0 || !bytes.Equal(ctx, orig) || bytes.Equal(orig, changed) {
		t.Errorf("orig/change of %s: want orig = the context's file and change different", rel)
	}
	if strings.Count(rel, "/") < 3 {
		t.Errorf("%s: want a few directories deep", rel)
	}
	df, _ := os.ReadFile(filepath.Join(a, "ctx", "Dockerfile"))
	if string(df) != "FROM reg:5/busybox:bench\nCOPY . /app\n" {
		t.Errorf("Dockerfile:\n%s", df)
	}
}

// dockerfileOf returns a point's Dockerfile instructions (continuation lines joined).
func dockerfileOf(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "ctx", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestScaleInstructions: N instructions after FROM, at most maxLayers of them making layers
// (docker's limit is 127 with the base's), the rest metadata, and every COPY'd file present.
func TestScaleInstructions(t *testing.T) {
	for _, n := range []string{"10", "100", "1000", "5000"} {
		dir := genScalePoint(t, "instructions/"+n)
		ins := dockerfileOf(t, dir)
		if got := len(ins) - 1; n != strconv.Itoa(got) {
			t.Errorf("instructions/%s: %d instructions after FROM", n, got)
		}
		layers, kinds := 0, map[string]int{}
		for _, l := range ins[1:] {
			op, args, _ := strings.Cut(l, " ")
			kinds[op]++
			switch op {
			case "RUN", "COPY", "ADD":
				layers++
			}
			if op == "COPY" {
				src := strings.Fields(args)[0]
				if _, err := os.Stat(filepath.Join(dir, "ctx", src)); err != nil {
					t.Errorf("instructions/%s: COPY %s: %v", n, src, err)
				}
			}
		}
		if layers > maxLayers || layers < 5 {
			t.Errorf("instructions/%s: %d layer-making instructions, want 5 to %d", n, layers, maxLayers)
		}
		for _, op := range []string{"ENV", "LABEL", "ARG", "RUN", "COPY"} {
			if kinds[op] == 0 {
				t.Errorf("instructions/%s: no %s", n, op)
			}
		}
	}
}

// TestScaleStages: N stages with distinct seeds (no builder may share their work) and a final
// stage copying from each.
func TestScaleStages(t *testing.T) {
	ins := dockerfileOf(t, genScalePoint(t, "stages/8"))
	froms, copies, seeds := 0, 0, map[string]bool{}
	for _, l := range ins {
		f := strings.Fields(l)
		switch f[0] {
		case "FROM":
			froms++
		case "COPY":
			copies++
		case "RUN":
			for i := range f[:len(f)-1] {
				if f[i] == "-seed" {
					seeds[f[i+1]] = true
				}
			}
		}
	}
	if froms != 9 || copies != 8 || len(seeds) != 8 {
		t.Errorf("stages/8: %d FROM, %d COPY --from, %d distinct seeds; want 9, 8, 8:\n%s", froms, copies, len(seeds), strings.Join(ins, "\n"))
	}
}

// TestScaleLayerPoint: one RUN writing the point's bytes in all.
func TestScaleLayerPoint(t *testing.T) {
	ins := dockerfileOf(t, genScalePoint(t, "layer/1000001"))
	if len(ins) != 2 || !strings.Contains(ins[1], "-bytes 500000 ") || !strings.Contains(ins[1], "-bytes 500001 ") {
		t.Errorf("layer/1000001 Dockerfile: %q", ins)
	}
}

func TestScaleList(t *testing.T) {
	var out bytes.Buffer
	if err := scaleWorkloadsCmd([]string{"-quick", "-series", "files stages", "-list"}, &out); err != nil {
		t.Fatal(err)
	}
	want := "files/1000 1000 8192000 2560000\nfiles/2000 2000 16384000 5120000\nfiles/5000 5000 40960000 12800000\nstages/2 2 2097152 0\nstages/4 4 4194304 0\nstages/8 8 8388608 0\n"
	if out.String() != want {
		t.Errorf("list:\n%s\nwant:\n%s", out.String(), want)
	}
	if err := scaleWorkloadsCmd([]string{"-series", "nope", "-list"}, &out); err == nil {
		t.Error("an unknown series was listed")
	}
}

func TestLogSlope(t *testing.T) {
	xs := []float64{1000, 2000, 5000}
	tests := []struct {
		name string
		ys   []float64
		want float64
	}{
		{"linear", []float64{3, 6, 15}, 1},
		{"flat", []float64{70, 70, 70}, 0},
		{"quadratic", []float64{1, 4, 25}, 2},
		{"square root", []float64{1, math.Sqrt2, math.Sqrt(5)}, 0.5},
	}
	for _, tc := range tests {
		if got := logSlope(xs, tc.ys); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: slope %.4f, want %.2f", tc.name, got, tc.want)
		}
	}
	if !math.IsNaN(logSlope([]float64{5, 5}, []float64{1, 2})) {
		t.Error("a slope over one size is not NaN")
	}
}

// scaleRecords are the results of a made-up run: strata linear in files and flat in memory,
// buildkit quadratic in files, one failure, and the stages series with the host unit.
func scaleRecords() []record {
	var recs []record
	add := func(w, b, phase string, s float64, mib int64, ok bool) {
		r := record{Workload: w, Builder: b, Phase: phase, OK: ok, Seconds: s, PeakRSS: mib << 20}
		if !ok {
			r.Error = "exit status 1"
		}
		recs = append(recs, r)
	}
	for i, n := range []string{"1000", "2000", "5000"} {
		f := []float64{1, 2, 5}[i]
		add("files/"+n, "strata", "cold", 0.5*f, 80, true)
		add("files/"+n, "buildkit", "cold", 0.4*f*f, 100*int64(f), true)
		add("files/"+n, "strata", "change", 0.1*f, 80, true)
		add("files/"+n, "buildkit", "change", 0.2*f, 90, i != 1)
	}
	for _, u := range []float64{3, 1, 0.9} { // the median is 1, neither the first nor the last
		recs = append(recs, record{Workload: unitWorkload, Builder: unitBuilder, Phase: "unit", OK: true, Seconds: u})
	}
	for _, n := range []string{"2", "8"} {
		add("stages/"+n, "strata", "cold", map[string]float64{"2": 1.25, "8": 5}[n], 60, true)
		add("stages/"+n, "buildkit", "cold", map[string]float64{"2": 2, "8": 8}[n], 200, true)
	}
	recs = append(recs, record{Workload: "layer/1073741824", Builder: "buildkit", Phase: "cold", Error: "skipped: above --peer-max-gib 0"})
	return recs
}

func TestScaleReport(t *testing.T) {
	var out bytes.Buffer
	writeScaleReport(&out, collectScale(scaleRecords()), 2)
	got := out.String()
	for _, want := range []string{
		"| files | 1,000 files | 0.50 | 0.40 | 1.25x | 80.00 | 100.00 |",
		"| files | 5,000 files | 2.50 | 10.00 | 0.25x | 80.00 | 500.00 |",
		"| files (change) | 2,000 files | 0.20 | failed | n/a | 80.00 | failed |",
		"| layer | 1 GiB | n/a | skipped | n/a | n/a | skipped |",
		"| files | strata | 1.00 | 0.00 | 3 |",
		"| files | buildkit | 2.00 | 1.00 | 3 |",
		"| files (change) | buildkit | 1.00 | 0.00 | 2 |",
		"| 2 | 1.00 | 1.25 | 0.80 | 2.00 | 0.50 |",
		"| 8 | 4.00 | 5.00 | 0.80 | 8.00 | 0.50 |",
		"failed: buildkit files/2000 change: exit status 1",
		"skipped: buildkit layer/1073741824 cold: above --peer-max-gib 0\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	// Rows go by series, then phase, then size.
	if i, j := strings.Index(got, "| files | 5,000"), strings.Index(got, "| files (change) | 1,000"); i < 0 || j < i {
		t.Errorf("files cold rows do not come before the change rows:\n%s", got)
	}
}
