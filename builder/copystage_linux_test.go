package builder

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/store"
)

// stagedFiles lists the contents of the files staged in the store's build
// work directories (stager), by staging directory.
func stagedFiles(t *testing.T, st *store.Store) map[string][]string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(st.Root(), "build-tmp", "*", "stage-*"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, d := range dirs {
		out[d] = []string{}
		des, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			delete(out, d) // discarded meanwhile
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			b, err := os.ReadFile(filepath.Join(d, de.Name()))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			out[d] = append(out[d], string(b))
		}
	}
	return out
}

// afterCopyKey runs f once the key of the build's first COPY is known.
func afterCopyKey(f func()) func(*Options) {
	return func(o *Options) {
		done := false
		o.afterKey = func(st dockerfile.Step) {
			if _, ok := st.Command.(*instructions.CopyCommand); ok && !done {
				done = true
				f()
			}
		}
	}
}

// TestCopyStagesWhatItHashes: a cold COPY from the context has, once its
// key is known, every regular file's content staged outside the step's
// directory (the writer then places it instead of reading the context
// again); a warm build whose stat cache covers the files stages nothing,
// nor does a build with an imported cache (a fresh checkout served by
// --cache-from must not write its context for nothing). Nothing staged
// outlives the build, and the image is the same either way.
func TestCopyStagesWhatItHashes(t *testing.T) {
	files := map[string]string{"app/a.txt": "alpha", "app/sub/b.txt": "bravo", "app/link": "->a.txt"}
	const df = "FROM scratch\nCOPY app /app/\n"
	tb := newTestBuild(t, files)
	tb.epoch = epochPtr(1700000000)
	var cold map[string][]string
	res, out := tb.mustBuild(df, afterCopyKey(func() { cold = stagedFiles(t, tb.store) }))
	if len(cold) != 1 {
		t.Fatalf("staging directories after the key: %v, want one\n%s", cold, out)
	}
	for _, got := range cold {
		// Numbered in the order the hashing workers reach them.
		slices.Sort(got)
		if strings.Join(got, ",") != "alpha,bravo" {
			t.Errorf("staged %q, want the two files' contents", got)
		}
	}
	if left := stagedFiles(t, tb.store); len(left) != 0 {
		t.Errorf("staging left after the build: %v", left)
	}
	if s, _ := readImageFile(t, res, "app/sub/b.txt"); s != "bravo" {
		t.Errorf("app/sub/b.txt = %q", s)
	}
	want, _ := res.Image.Digest()

	// Past the stat cache's racy window, the files' hashes are reused:
	// nothing is read, nothing staged.
	time.Sleep(racyWindow + 100*time.Millisecond)
	tb.mustBuild(df, func(o *Options) { o.NoCache = true })
	var warm map[string][]string
	res, out = tb.mustBuild(df, func(o *Options) { o.NoCache = true }, afterCopyKey(func() { warm = stagedFiles(t, tb.store) }))
	if len(warm) != 0 {
		t.Errorf("warm build staged %v\n%s", warm, out)
	}
	if d, _ := res.Image.Digest(); d != want {
		t.Errorf("warm build digest %s, cold %s", d, want)
	}

	// A fresh context (new stats) with an imported cache: no staging, the
	// same image.
	tb2 := newTestBuild(t, files)
	tb2.epoch = tb.epoch
	imported := func(o *Options) {
		o.Cache = &cache.Layered{Local: cache.NewLocal(tb2.store), Imports: []*cache.Imported{{}}}
	}
	var withImport map[string][]string
	res, out = tb2.mustBuild(df, imported, afterCopyKey(func() { withImport = stagedFiles(t, tb2.store) }))
	if len(withImport) != 0 {
		t.Errorf("staging with an imported cache: %v\n%s", withImport, out)
	}
	if d, _ := res.Image.Digest(); d != want {
		t.Errorf("unstaged build digest %s, staged %s", d, want)
	}
}

// TestCopyStagedFailureLeavesNothing: a COPY whose second source changed
// after its key fails, leaves no staging, and the next build's layer holds
// exactly the context's files.
func TestCopyStagedFailureLeavesNothing(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"a.txt": "one", "b.txt": "two"})
	const df = "FROM scratch\nCOPY a.txt b.txt /dst/\n"
	_, out, err := tb.build(df, afterCopyKey(func() { tb.write(map[string]string{"b.txt": "TWO!"}) }))
	if err == nil || !strings.Contains(err.Error(), "context changed while it was being read: b.txt") {
		t.Fatalf("error %v, want b.txt changed\n%s", err, out)
	}
	if left := stagedFiles(t, tb.store); len(left) != 0 {
		t.Errorf("staging left after the failed build: %v", left)
	}
	res, _ := tb.mustBuild(df)
	got := listTree(rootfs(t, res.Image))
	if strings.Join(got, " ") != "dst dst/a.txt dst/b.txt" {
		t.Errorf("image holds %q", got)
	}
	if s, _ := readImageFile(t, res, "dst/b.txt"); s != "TWO!" {
		t.Errorf("dst/b.txt = %q, want the edited content", s)
	}
}

// TestCopyStagedHitDiscarded: a COPY whose files are new to the stat cache
// (touched) but whose key hits stages them for nothing; the staging is
// gone once the step is done, before the build ends.
func TestCopyStagedHitDiscarded(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"a.txt": "alpha", "b.txt": "bravo"})
	tb.epoch = epochPtr(1700000000)
	const df = "FROM scratch\nCOPY a.txt /a/\nCOPY b.txt /b/\n"
	tb.mustBuild(df)
	tb.write(map[string]string{"a.txt": "alpha", "b.txt": "bravo"})
	var left map[string][]string
	seen := 0
	_, out := tb.mustBuild(df, func(o *Options) {
		o.afterKey = func(dockerfile.Step) {
			if seen++; seen != 2 {
				return
			}
			// The first COPY hit; its staging goes with its plan.
			for range 100 {
				runtime.GC()
				if left = stagedFiles(t, tb.store); len(left) == 1 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	if strings.Count(out, "CACHED") != 2 {
		t.Fatalf("want both COPYs cached:\n%s", out)
	}
	if len(left) != 1 {
		t.Fatalf("staging while the second COPY runs: %v, want only its own", left)
	}
	for _, got := range left {
		if strings.Join(got, ",") != "bravo" {
			t.Errorf("staged %q, want the second COPY's file only", got)
		}
	}
}

// TestCopyStagedSourceSwapped: a staged file whose source is replaced
// after the key, by a symlink out of the context or under a directory
// swapped for one, fails the step; nothing is read through the link.
func TestCopyStagedSourceSwapped(t *testing.T) {
	for _, tc := range []struct{ name, swap, target string }{
		{"file becomes a symlink", "src/a.txt", "/etc/hostname"},
		{"directory becomes a symlink", "src", "/etc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestBuild(t, map[string]string{"src/a.txt": "aaaaaa", "src/hostname": "mine"})
			_, out, err := tb.build("FROM scratch\nCOPY src /src\n", afterCopyKey(func() {
				p := filepath.Join(tb.dir, tc.swap)
				must(t, os.Rename(p, p+".old"))
				must(t, os.Symlink(tc.target, p))
			}))
			if err == nil || !strings.Contains(err.Error(), "context changed while it was being read: ") {
				t.Fatalf("error %v, want the context-changed error\n%s", err, out)
			}
		})
	}
}
