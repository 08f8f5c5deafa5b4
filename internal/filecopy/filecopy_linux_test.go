package filecopy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestContent(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	data := strings.Repeat("strata ", 100000) // larger than one read
	if err := os.WriteFile(src, []byte(data), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := Content(src, dst, 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || string(got) != data {
		t.Fatalf("copy holds %d bytes (%v), want %d", len(got), err, len(data))
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("copy's mode %v (%v), want 0640", fi.Mode(), err)
	}
	// dst is never overwritten, nor a link at it followed.
	if err := Content(src, dst, 0o640); !errors.Is(err, fs.ErrExist) {
		t.Errorf("copying onto an existing file: %v, want it to exist", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), link); err != nil {
		t.Fatal(err)
	}
	if err := Content(src, link, 0o640); !errors.Is(err, fs.ErrExist) {
		t.Errorf("copying onto a symlink: %v, want it to exist", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "elsewhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the symlink's target was created")
	}
	if err := Content(filepath.Join(dir, "missing"), filepath.Join(dir, "x"), 0o640); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("copying a missing file: %v", err)
	}
}
