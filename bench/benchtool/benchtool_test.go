package main

import (
	"bytes"
	"compress/gzip"
	"math/rand/v2"
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

func TestRatioIsAgainstTheFastestPeer(t *testing.T) {
	tests := []struct {
		vals map[string]float64
		want string
	}{
		{map[string]float64{"strata": 1, "buildah": 4, "docker": 2}, "0.50x"},
		{map[string]float64{"strata": 3, "docker": 2}, "1.50x"},
		{map[string]float64{"buildah": 4, "docker": 2}, "n/a"},
		{map[string]float64{"strata": 1}, "n/a"},
		// Strata's modes are not peers, however fast.
		{map[string]float64{"strata": 2, "buildah": 4, "docker": 8, "strata-rootless": 1, "strata-chroot": 1}, "0.50x"},
		{map[string]float64{"strata": 2, "strata-rootless": 1}, "n/a"},
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
		if got := modeRatioCell(tc.vals, "strata-rootless"); got != tc.want {
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
		{Workload: "w4", Builder: "docker", Phase: "cold", OK: true, Seconds: 2, Digest: "sha256:b"},
	}
	rows := tableLines(t, recs)
	if want := "| workload | figure | Strata | Buildah | Docker (BuildKit) | Strata / fastest peer |"; rows[0] != want {
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
		{Workload: "w4", Builder: "docker", Phase: "cold", OK: true, Seconds: 4, Digest: "sha256:c"},
		{Workload: "w4", Builder: "strata-rootless", Phase: "cold", OK: true, Seconds: 3, Digest: "sha256:a"},
		{Workload: "w4", Builder: "strata-chroot", Phase: "cold", OK: true, Seconds: 1, Digest: "sha256:d"},
	}
	rows := tableLines(t, recs)
	want := []string{
		"| workload | figure | Strata | Buildah | Docker (BuildKit) | Strata rootless | Strata chroot | Strata / fastest peer | rootless / root | chroot / root |",
		"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
		// The chroot mode is faster than every peer, yet Strata's ratio is still to docker's.
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
	if want := "| workload | figure | Strata | Buildah | Docker (BuildKit) | Strata rootless | Strata / fastest peer | rootless / root |"; rows[0] != want {
		t.Errorf("header %q, want %q", rows[0], want)
	}
}
