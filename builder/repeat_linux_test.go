package builder

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/minirootfs"
)

// Steps whose layers the repeat tests stack. layerA gives the same layer
// every time it runs, whatever lies below it: its files and their times
// are fixed, and each of the other steps changes, deletes or adds a file.
const (
	layerA   = "RUN mkdir -p /d && echo A > /f && echo A > /d/f && touch -d @0 /f /d/f /d"
	changeF  = "RUN echo B > /f && touch -d @0 /f"
	deleteF  = "RUN rm /f"
	changeDF = "RUN echo D > /d/f"
	addG     = "RUN echo C > /g"
)

// TestRepeatedLayer stacks a layer more than once (BuildKit keeps every
// copy; overlayfs refuses one directory twice among its lowers) at
// several distances, on overlayfs and on the executor's copy fallback.
// The RUN on top and the image must both see the upper copy winning over
// what lies between the copies.
func TestRepeatedLayer(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(minirootfs.DefaultBusybox); err != nil {
		t.Skip("needs busybox-static's /bin/busybox")
	}
	cases := []struct {
		name   string
		steps  []string
		copies int               // how often the image holds the repeated layer
		want   map[string]string // image path -> content, also as the RUN saw it
	}{
		{"adjacent", []string{layerA, layerA}, 2,
			map[string]string{"f": "A\n", "d/f": "A\n"}},
		{"one between", []string{layerA, changeF, layerA}, 2,
			map[string]string{"f": "A\n", "d/f": "A\n"}},
		{"one between deletes", []string{layerA, deleteF, layerA}, 2,
			map[string]string{"f": "A\n", "d/f": "A\n"}},
		{"several between", []string{layerA, changeF, addG, changeDF, layerA}, 2,
			map[string]string{"f": "A\n", "d/f": "A\n", "g": "C\n"}},
		{"three copies", []string{layerA, changeF, layerA, changeDF, deleteF, layerA}, 3,
			map[string]string{"f": "A\n", "d/f": "A\n"}},
		{"same COPY twice", []string{"COPY a.txt /c", "COPY b.txt /c", "COPY a.txt /c"}, 2,
			map[string]string{"c": "from a\n"}},
		{"repeats in the base stage", []string{layerA, changeDF, layerA, "FROM base"}, 2,
			map[string]string{"f": "A\n", "d/f": "A\n"}},
	}
	runners := []struct {
		name string
		opts executor.Options
	}{
		{"overlay", executor.Options{}},
		// The fallback merges copies of the lowers one after the other, so a
		// directory given twice never troubled it; it must agree all the same.
		{"copy fallback", executor.Options{ForceCopy: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range runners {
				t.Run(r.name, func(t *testing.T) {
					tb := newTestBuild(t, map[string]string{"a.txt": "from a\n", "b.txt": "from b\n"})
					tb.runner = executor.New(r.opts)
					writeRootfsTarball(t, filepath.Join(tb.dir, "rootfs.tar.gz"))
					src := "FROM scratch AS base\nADD rootfs.tar.gz /\n" + strings.Join(c.steps, "\n") + "\n" + viewStep(c.want)
					res, out := tb.mustBuild(src)
					if got := maxRepeats(t, res); got != c.copies {
						t.Fatalf("the image holds its most repeated layer %d times, want %d: the case tests nothing\n%s", got, c.copies, out)
					}
					checkRepeatedView(t, res, c.want, out)
				})
			}
		})
	}
}

// viewStep is a RUN that saves what it sees of paths as /seen.
func viewStep(paths map[string]string) string {
	var cmds []string
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		cmds = append(cmds, "cat /"+p)
	}
	return "RUN { " + strings.Join(cmds, "; ") + "; } > /seen\n"
}

func checkRepeatedView(t *testing.T, res *Result, want map[string]string, out string) {
	t.Helper()
	root := rootfs(t, res.Image)
	var seen strings.Builder
	for _, p := range slices.Sorted(maps.Keys(want)) {
		seen.WriteString(want[p])
		if got, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(got) != want[p] {
			t.Errorf("image /%s = %q, %v; want %q\n%s", p, got, err, want[p], out)
		}
	}
	if got, err := os.ReadFile(filepath.Join(root, "seen")); err != nil || string(got) != seen.String() {
		t.Errorf("the RUN on top saw %q, %v; want %q\n%s", got, err, seen.String(), out)
	}
}

// maxRepeats is how often the image's most repeated layer occurs in it.
func maxRepeats(t *testing.T, res *Result) int {
	t.Helper()
	n := map[string]int{}
	most := 0
	for _, d := range configOf(t, res.Image).RootFS.DiffIDs {
		n[d.String()]++
		most = max(most, n[d.String()])
	}
	return most
}

// TestRepeatedLayerMergedDir pins why a repeated layer gets a copy of its
// own instead of the lower copy being dropped from the overlay: with both
// copies, a directory only they hold is merged from two lowers, and
// overlayfs reports a merged directory with one link, as under BuildKit,
// whose stack holds both copies too.
func TestRepeatedLayerMergedDir(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(minirootfs.DefaultBusybox); err != nil {
		t.Skip("needs busybox-static's /bin/busybox")
	}
	tb := newTestBuild(t, nil)
	tb.runner = executor.New(executor.Options{})
	writeRootfsTarball(t, filepath.Join(tb.dir, "rootfs.tar.gz"))
	res, out := tb.mustBuild("FROM scratch\nADD rootfs.tar.gz /\n" + layerA + "\n" + addG + "\n" + layerA + "\nRUN stat -c %h /d > /links\n")
	if got, err := readImageFile(t, res, "links"); err != nil || got != "1\n" {
		t.Errorf("/d, held by both copies, has %q links in the RUN, %v; want 1 (merged)\n%s", got, err, out)
	}
}
