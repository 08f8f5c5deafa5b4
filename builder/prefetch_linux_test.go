package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/store"
)

// prefetchLayer writes a one-file layer; with a wrong diffID its
// extraction fails verification.
func prefetchLayer(t *testing.T, st *store.Store, wrongDiffID bool) *layer.Layer {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := st.WriteLayer(context.Background(), dir, layer.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !wrongDiffID {
		return l
	}
	wrong := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	bad, err := st.Layer(l.Descriptor(), wrong)
	if err != nil {
		t.Fatal(err)
	}
	return bad
}

func TestPrefetch(t *testing.T) {
	needRoot(t)
	cases := []struct {
		name    string
		wrong   bool
		wantErr string
	}{
		{name: "extracts before the step needs it"},
		{name: "error surfaces in the step", wrong: true, wantErr: "has diffID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newTestBuild(t, nil).store
			l := prefetchLayer(t, st, tc.wrong)
			ctx, cancel := context.WithCancel(context.Background())
			b := &build{opts: Options{Store: st}, prefetch: newPrefetcher(ctx, st, layer.ExtractOptions{})}
			defer b.prefetch.stop()
			defer cancel()
			b.prefetch.start([]*layer.Layer{l})
			if err := b.prefetch.wait(ctx, l); err != nil {
				t.Fatal(err)
			}
			diffID, _ := l.DiffID()
			dir, _ := st.SnapshotPath(diffID)
			if _, err := os.Lstat(dir); (err == nil) == tc.wrong {
				t.Errorf("snapshot present: %t, want %t", err == nil, !tc.wrong)
			}
			_, err := b.lowers(ctx, &state{layers: []*layer.Layer{l}})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("lowers: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestPrefetchCancel checks that a step stops waiting when its context
// ends and that stopping the build ends the prefetch, even while an
// extraction waits for another process's lock on the snapshot.
func TestPrefetchCancel(t *testing.T) {
	needRoot(t)
	st := newTestBuild(t, nil).store
	l := prefetchLayer(t, st, false)
	diffID, _ := l.DiffID()
	lock, err := os.OpenFile(filepath.Join(st.Root(), "locks", "snapshot-"+diffID.Hex+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := newPrefetcher(ctx, st, layer.ExtractOptions{})
	p.start([]*layer.Layer{l})
	stepCtx, stepCancel := context.WithCancel(context.Background())
	stepCancel()
	if err := p.wait(stepCtx, l); !errors.Is(err, context.Canceled) {
		t.Errorf("wait with a cancelled step: %v, want context.Canceled", err)
	}
	cancel()
	unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	p.stop()
	if dir, _ := st.SnapshotPath(diffID); exists(dir) {
		t.Error("the cancelled prefetch extracted the layer")
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestAdoptedSnapshots builds COPY then RUN: the second RUN's lowers are
// the directories the first steps wrote, moved into the store as
// snapshots, and the build leaves no directory of its own behind.
func TestAdoptedSnapshots(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"f": "from context"})
	runner := &fakeRunner{}
	tb.runner = runner
	tb.mustBuild("FROM scratch\nCOPY f /f\nRUN write g from-run\nRUN noop\n")
	lowers := runner.runs[len(runner.runs)-1].Lowers
	want := map[string]string{"g": "from-run", "f": "from context"}
	if len(lowers) != 2 {
		t.Fatalf("lowers %q, want two", lowers)
	}
	for i, name := range []string{"g", "f"} {
		got, err := os.ReadFile(filepath.Join(lowers[i], name))
		if err != nil || string(got) != want[name] {
			t.Errorf("lower %d: %s is %q (%v), want %q", i, name, got, err, want[name])
		}
		if !strings.HasPrefix(lowers[i], filepath.Join(tb.store.Root(), "snapshots")) {
			t.Errorf("lower %s is not in the store's snapshots", lowers[i])
		}
	}
	left, _ := filepath.Glob(filepath.Join(tb.store.Root(), "build-tmp", "build-*"))
	if len(left) != 0 {
		t.Errorf("the build left %q", left)
	}
}
