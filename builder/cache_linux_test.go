package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const cacheDockerfile = `FROM scratch
COPY base/ /
COPY src /src/
RUN write /ran yes
COPY one.txt /one
`

// TestCacheInvalidation edits the context between two builds in one store
// and checks which steps the second build reruns.
func TestCacheInvalidation(t *testing.T) {
	tests := []struct {
		name       string
		change     func(tb *testBuild)
		wantCached int // of the 3 layer steps after FROM's COPY base/
		wantSame   bool
	}{
		{"nothing changed", func(*testBuild) {}, 4, true},
		{"mtime only", func(tb *testBuild) {
			future := time.Now().Add(time.Hour)
			os.Chtimes(filepath.Join(tb.dir, "src/a.txt"), future, future)
		}, 4, true},
		{"ignored file", func(tb *testBuild) { tb.write(map[string]string{"src/ignored.log": "changed"}) }, 4, true},
		{"content of a copied file", func(tb *testBuild) { tb.write(map[string]string{"src/sub/c.txt": "C2"}) }, 1, false},
		{"mode of a copied file", func(tb *testBuild) { os.Chmod(filepath.Join(tb.dir, "one.txt"), 0o600) }, 3, false},
		{"new file in a copied directory", func(tb *testBuild) { tb.write(map[string]string{"src/new.txt": "N"}) }, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{".dockerignore": "**/*.log\n", "src/ignored.log": "x"}
			for k, v := range baseFiles {
				files[k] = v
			}
			tb := newTestBuild(t, files)
			first, _ := tb.mustBuild(cacheDockerfile)
			runs := tb.runner.(*fakeRunner).count()
			tt.change(tb)
			second, out := tb.mustBuild(cacheDockerfile)
			if got := strings.Count(out, "CACHED"); got != tt.wantCached {
				t.Errorf("%d steps CACHED, want %d:\n%s", got, tt.wantCached, out)
			}
			if same := first.Descriptor.Digest == second.Descriptor.Digest; same != tt.wantSame {
				t.Errorf("same digest %t, want %t", same, tt.wantSame)
			}
			reran := tb.runner.(*fakeRunner).count() > runs
			if reran != (tt.wantCached < 3) {
				t.Errorf("RUN reran: %t with %d cached", reran, tt.wantCached)
			}
		})
	}
}

func TestNoCache(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	tb.mustBuild(cacheDockerfile)
	_, out := tb.mustBuild(cacheDockerfile, func(o *Options) { o.NoCache = true })
	if strings.Contains(out, "CACHED") {
		t.Errorf("--no-cache build used the cache:\n%s", out)
	}
	if n := tb.runner.(*fakeRunner).count(); n != 2 {
		t.Errorf("RUN ran %d times, want 2", n)
	}
}

// TestReproducible builds the same input in two stores with an epoch.
func TestReproducible(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	var digests []string
	for range 2 {
		tb := newTestBuild(t, baseFiles)
		tb.epoch = &epoch
		res, _ := tb.mustBuild(cacheDockerfile + "ENV A=1\nCMD [\"x\"]\n")
		digests = append(digests, res.Descriptor.Digest.String())
		cfg := configOf(t, res.Image)
		if !cfg.Created.Equal(epoch) {
			t.Errorf("created %v, want %v", cfg.Created, epoch)
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("digests differ: %v", digests)
	}
}
