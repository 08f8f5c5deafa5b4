package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/layer"
)

// TestStoreRefusesWhatOthersControl: a store another user pre-created or can swap (in a
// world-writable directory without the sticky bit), or whose temporary directory is a
// symlink, is refused before strata changes or removes anything through it.
func TestStoreRefusesWhatOthersControl(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create files owned by another user")
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
		want  string
	}{
		{"owned by another user", func(t *testing.T, root string) {
			mustDo(t, os.Mkdir(root, 0o777))
			mustDo(t, os.Chown(root, 65534, 65534))
		}, "belongs to uid 65534"},
		{"temporary directory is a symlink", func(t *testing.T, root string) {
			mustDo(t, os.Mkdir(root, 0o700))
			victim := filepath.Join(filepath.Dir(root), "victim")
			mustDo(t, os.Mkdir(victim, 0o755))
			mustDo(t, os.WriteFile(filepath.Join(victim, "keep"), []byte("x"), 0o644))
			mustDo(t, os.Symlink(victim, filepath.Join(root, "tmp")))
		}, "is not a directory (a symlink?)"},
		{"parent writable by others", func(t *testing.T, root string) {
			mustDo(t, os.Chmod(filepath.Dir(root), 0o777))
		}, "is writable by other users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "p")
			mustDo(t, os.Mkdir(parent, 0o755))
			root := filepath.Join(parent, "store")
			tc.setup(t, root)
			s, err := Open(root)
			if err == nil {
				s.Close()
				t.Fatal("the store was opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(parent, "victim", "keep")); tc.name == "temporary directory is a symlink" && err != nil {
				t.Errorf("the symlink's target was cleaned: %v", err)
			}
		})
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDiscardIsWholeOrNothing: Discard takes an entry out of view in one rename, so a
// remover killed half way never leaves a half-removed snapshot where builds trust it whole;
// a path outside the store is refused.
func TestDiscardIsWholeOrNothing(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	snap := filepath.Join(st.Root(), "snapshots", "sha256", "x")
	mustDo(t, os.MkdirAll(filepath.Join(snap, "a", "b"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(snap, "a", "b", "f"), []byte("x"), 0o644))
	mustDo(t, st.Discard(snap))
	if _, err := os.Lstat(snap); !os.IsNotExist(err) {
		t.Errorf("the discarded snapshot is still there: %v", err)
	}
	outside := t.TempDir()
	if err := st.Discard(outside); err == nil {
		t.Error("a path outside the store was discarded")
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("the path outside the store was touched: %v", err)
	}
}

// TestPruneIsNotStarved: once a prune waits for the builds using the store, a new build
// waits behind it, so a stream of overlapping builds cannot keep it out for ever.
func TestPruneIsNotStarved(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	running, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	pruned := make(chan *Store)
	go func() {
		s, err := OpenExclusive(context.Background(), root, true, func() { close(waiting) })
		if err != nil {
			t.Error(err)
		}
		pruned <- s
	}()
	<-waiting
	opened := make(chan *Store)
	go func() {
		s, err := Open(root)
		if err != nil {
			t.Error(err)
		}
		opened <- s
	}()
	select {
	case <-opened:
		t.Fatal("a new build got in while prune waited")
	case <-time.After(300 * time.Millisecond):
	}
	running.Close()
	p := <-pruned
	select {
	case <-opened:
		t.Fatal("a new build got in while prune ran")
	case <-time.After(100 * time.Millisecond):
	}
	p.Close()
	(<-opened).Close()
}

// TestOverlongPathIsRefused: a tree holding a path no reader could create fails the layer
// write (so nothing is cached), naming it shortly.
func TestOverlongPathIsRefused(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	mustDo(t, err)
	seg := strings.Repeat("d", 200)
	for i := 0; i < 25; i++ {
		mustDo(t, unix.Mkdirat(fd, seg, 0o755))
		next, err := unix.Openat(fd, seg, unix.O_PATH|unix.O_DIRECTORY, 0)
		mustDo(t, err)
		unix.Close(fd)
		fd = next
	}
	unix.Close(fd)
	_, err = st.WriteLayer(context.Background(), dir, layer.WriteOptions{Source: layer.FromDir})
	if err == nil || !strings.Contains(err.Error(), "longer than an image can hold") || len(err.Error()) > 600 {
		t.Errorf("error %.300v, want the over-long path refused in a short line", err)
	}
}
