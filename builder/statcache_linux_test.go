package builder

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStatCacheNeverStale edits a file keeping its size and mtime: the
// changed ctime makes the cache hash it again.
func TestStatCacheNeverStale(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	old := time.Unix(1600000000, 0)
	write := func(content string) entry {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return entry{host: p, info: fi}
	}
	c := &statCache{entries: map[string]statEntry{}}
	first, err := c.sum(mergedFS{}, write("aaaa"))
	if err != nil || len(c.entries) != 1 {
		t.Fatalf("first sum %q, %v, %d entries", first, err, len(c.entries))
	}
	// Poison the entry: an unchanged stat must serve it (proving the
	// cache is used), a changed ctime must not.
	fi, _ := os.Lstat(p)
	e := c.entries[p]
	e.Sum = "poisoned"
	c.entries[p] = e
	if got, _ := c.sum(mergedFS{}, entry{host: p, info: fi}); got != "poisoned" {
		t.Errorf("unchanged file hashed again: %q", got)
	}
	time.Sleep(10 * time.Millisecond)
	got, err := c.sum(mergedFS{}, write("bbbb"))
	want, _ := fileSHA256(p)
	if err != nil || got != want {
		t.Errorf("edited file (same size and mtime): %q, want %q", got, want)
	}
	c.racy = time.Hour
	delete(c.entries, p)
	c.sum(mergedFS{}, write("cccc"))
	if _, ok := c.entries[p]; ok {
		t.Error("a file changed within the racy window was cached")
	}
}
