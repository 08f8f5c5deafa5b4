package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestLocalRecordNamesItsKey: records are written without fsync, so after a crash a record
// file may hold bytes that are not its own (stale blocks of another record). A record is a
// hit only under the key it was written for; a record of before keys were recorded (none
// named) is still one.
func TestLocalRecordNamesItsKey(t *testing.T) {
	f := newFixture(t)
	c := NewLocal(f.st)
	step := f.steps[0]
	if err := c.Put(f.ctx, "a", &Entry{Layer: step.Layer, History: step.History}); err != nil {
		t.Fatal(err)
	}
	e, err := c.Get(f.ctx, "a")
	if err != nil || e == nil || e.Layer == nil {
		t.Fatalf("Get(a) = %v, %v: want the entry", e, err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	// What a crash could leave under another key: a's record.
	b, err := f.st.CacheGet("a")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.CacheHint("b", b); err != nil {
		t.Fatal(err)
	}
	if e, err := c.Get(f.ctx, "b"); err != nil || e != nil {
		t.Errorf("Get(b) holding a's record = %v, %v: want a miss", e, err)
	}
	for _, junk := range []string{"", `{"history":`} {
		if err := f.st.CacheHint("c", []byte(junk)); err != nil {
			t.Fatal(err)
		}
		if e, err := c.Get(f.ctx, "c"); err != nil || e != nil {
			t.Errorf("Get(c) holding %q = %v, %v: want a miss", junk, e, err)
		}
	}
	// A record written before records named their key.
	if err := f.st.CacheHint("old", []byte(`{"history":{"created_by":"LABEL a=b"}}`)); err != nil {
		t.Fatal(err)
	}
	if e, err := c.Get(f.ctx, "old"); err != nil || e == nil || e.History.CreatedBy != "LABEL a=b" {
		t.Errorf("Get(old) = %v, %v: want the old record's entry", e, err)
	}
}

// TestLocalWritesInTheBackground: Put returns before its records are on disk, this process
// reads them at once all the same (an entry, the explain records found by Similar), and
// after Flush they are in the store, where another process (a new Local) finds them.
func TestLocalWritesInTheBackground(t *testing.T) {
	f := newFixture(t)
	c := NewLocal(f.st)
	for i, s := range f.steps {
		if err := c.Put(f.ctx, s.Key, &Entry{Layer: s.Layer, History: s.History, Explain: s.Explain}); err != nil {
			t.Fatal(err)
		}
		if e, err := c.Get(f.ctx, s.Key); err != nil || e == nil || e.History.CreatedBy != s.History.CreatedBy {
			t.Errorf("step %d: Get right after Put = %v, %v", i, e, err)
		}
	}
	probe := &Explain{Key: "other", Stage: "s", Step: 2, Command: "RUN step"}
	check := func(c *Local, when string) {
		t.Helper()
		similar, err := c.Similar(f.ctx, probe)
		if err != nil || len(similar) != 2 {
			t.Errorf("%s: Similar = %d records, %v: want the two RUN steps'", when, len(similar), err)
		}
		for _, s := range f.steps {
			if e, err := c.Get(f.ctx, s.Key); err != nil || e == nil {
				t.Errorf("%s: Get(%s) = %v, %v", when, s.Key, e, err)
			}
		}
	}
	check(c, "before Flush")
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	check(NewLocal(f.st), "in a new Local after Flush")
}

// TestLocalBoundsWhatWaits: more records than the writer holds at once all reach the store.
func TestLocalBoundsWhatWaits(t *testing.T) {
	f := newFixture(t)
	c := NewLocal(f.st)
	n := 3*maxPending + 7
	for i := range n {
		if err := c.Put(f.ctx, fmt.Sprint("k", i), &Entry{History: f.steps[2].History}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	fresh := NewLocal(f.st)
	for i := range n {
		if e, err := fresh.Get(f.ctx, fmt.Sprint("k", i)); err != nil || e == nil {
			t.Fatalf("Get(k%d) = %v, %v after Flush", i, e, err)
		}
	}
}

// TestLocalKeepsUnchangedRecords: putting the records the store already holds (a --no-cache
// rebuild of the same steps) writes no new file; a changed record replaces the old one.
func TestLocalKeepsUnchangedRecords(t *testing.T) {
	f := newFixture(t)
	inode := func(key string) uint64 {
		t.Helper()
		sum := sha256.Sum256([]byte(key))
		fi, err := os.Stat(filepath.Join(f.st.Root(), "cache", hex.EncodeToString(sum[:])))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	put := func(s Step) {
		t.Helper()
		c := NewLocal(f.st)
		if err := c.Put(f.ctx, s.Key, &Entry{Layer: s.Layer, History: s.History, Explain: s.Explain}); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	s := f.steps[0]
	put(s)
	entry, explain := inode(s.Key), inode("explain "+s.Key)
	put(s)
	if inode(s.Key) != entry || inode("explain "+s.Key) != explain {
		t.Error("an unchanged record was written again")
	}
	s.History.CreatedBy += " changed"
	put(s)
	if inode(s.Key) == entry {
		t.Error("a changed record was not written")
	}
	if e, err := NewLocal(f.st).Get(f.ctx, s.Key); err != nil || e == nil || e.History.CreatedBy != s.History.CreatedBy {
		t.Errorf("Get after the change = %v, %v", e, err)
	}
}
