package builder

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/minirootfs"
)

// TestMutationDocumentedTradeoffs pins the inputs a step reads that its key
// deliberately leaves out (keyInput's comment; Docker and BuildKit leave
// them out too): the step stays CACHED, so the warm image can differ from a
// cold build's. Each case logs whether it does; none is counted a failure.
// Anything else the warm build re-runs or that differs is.
func TestMutationDocumentedTradeoffs(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(minirootfs.DefaultBusybox); err != nil {
		t.Skip("needs busybox-static's /bin/busybox")
	}
	cases := []struct {
		name      string
		df        string
		cfg, cfg2 *mutConfig
		setup     func(t *testing.T, dir string)
		mutate    func(t *testing.T, dir string)
		cached    string // the step that stays CACHED
	}{
		{
			// srcFile.Mtime's comment says the epoch makes warm and cold
			// agree: only for times after it, which the clamp rewrites.
			name: "mtime before SOURCE_DATE_EPOCH",
			df:   fakeDF,
			setup: func(t *testing.T, dir string) {
				old := time.Unix(mutEpoch-2000, 0)
				must(t, os.Chtimes(filepath.Join(dir, "src/a.txt"), old, old))
			},
			mutate: func(t *testing.T, dir string) {
				old := time.Unix(mutEpoch-1000, 0)
				must(t, os.Chtimes(filepath.Join(dir, "src/a.txt"), old, old))
			},
			cached: "COPY src",
		},
		{
			name:   "proxy build arg seen by a RUN",
			df:     realBase + "RUN env | sort > /env\n",
			cfg:    &mutConfig{args: map[string]string{"HTTP_PROXY": "http://proxy-a:3128"}},
			cfg2:   &mutConfig{args: map[string]string{"HTTP_PROXY": "http://proxy-b:3128"}},
			cached: "RUN env",
		},
		{
			name: "mtime of a bound file seen by a RUN",
			df:   realBase + "RUN --mount=type=bind,source=m,target=/m stat -c %Y /m/in.txt > /t\n",
			mutate: func(t *testing.T, dir string) {
				later := time.Unix(mutEpoch+5000, 0)
				must(t, os.Chtimes(filepath.Join(dir, "m/in.txt"), later, later))
			},
			cached: "RUN --mount",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeCtx(t, dir, mutContext)
			must(t, os.WriteFile(filepath.Join(dir, "rootfs.tar.gz"), busyboxRootfs(t), 0o644))
			if c.setup != nil {
				c.setup(t, dir)
			}
			runner := executor.New(executor.Options{})
			cfg2 := c.cfg2
			if cfg2 == nil {
				cfg2 = c.cfg
			}
			warm := newMutBuilder(t, dir, runner)
			warm.build(t, c.df, c.cfg)
			if c.mutate != nil {
				c.mutate(t, dir)
			}
			got, out := warm.build(t, c.df, cfg2)
			want, _ := newMutBuilder(t, dir, runner).build(t, c.df, cfg2)
			checkStep(t, parseProgress(out), c.cached, true, out)
			if got.Descriptor.Digest != want.Descriptor.Digest {
				t.Logf("documented: the warm image differs from the cold one:\n%s", imageDiff(t, got.Image, want.Image))
			} else {
				t.Logf("the warm image equals the cold one")
			}
		})
	}
}
