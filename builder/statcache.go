package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/strata-build/strata/store"
)

// statCache remembers the content hash of context files between builds,
// git-index style: a hash is reused only when size, mtime, ctime, inode
// and device are all unchanged, and only for files whose ctime was over
// racyWindow old when they were hashed, so a file written again within a
// timestamp tick of its hashing is never taken for unchanged.
type statCache struct {
	racy    time.Duration
	mu      sync.Mutex
	key     string
	entries map[string]statEntry
	dirty   bool
}

type statEntry struct {
	Size  int64  `json:"s"`
	Mtime int64  `json:"m"`
	Ctime int64  `json:"c"`
	Ino   uint64 `json:"i"`
	Dev   uint64 `json:"d"`
	Sum   string `json:"h"`
}

const racyWindow = 2 * time.Second

// loadStatCache reads the cache of the context at the absolute path
// contextDir from the store; a missing or unreadable one is empty. Entries
// are keyed by absolute host paths.
func loadStatCache(st *store.Store, contextDir string) *statCache {
	sum := sha256.Sum256([]byte("statcache " + contextDir))
	c := &statCache{racy: racyWindow, key: hex.EncodeToString(sum[:]), entries: map[string]statEntry{}}
	if b, err := st.CacheGet(c.key); err == nil {
		json.Unmarshal(b, &c.entries)
	}
	return c
}

// sum returns the sha256 of the file e of t, from the cache when its stat
// matches.
func (c *statCache) sum(t srcTree, e entry) (string, error) {
	if s, ok := c.cached(e); ok {
		return s, nil
	}
	s, err := treeSHA256(t, e)
	if err != nil {
		return "", err
	}
	c.learn(e, s)
	return s, nil
}

// cached is the hash recorded for e if its stat is the one recorded.
func (c *statCache) cached(e entry) (string, bool) {
	cur, ok := statOf(e.info)
	if !ok {
		return "", false
	}
	c.mu.Lock()
	old, hit := c.entries[e.host]
	c.mu.Unlock()
	if hit && old.Sum != "" && sameStat(old, cur) {
		return old.Sum, true
	}
	return "", false
}

// learn records sum, read from e after e was stat'ed, unless e's ctime is
// too recent to tell a later write from this one.
func (c *statCache) learn(e entry, sum string) {
	cur, ok := statOf(e.info)
	if !ok || time.Since(time.Unix(0, cur.Ctime)) <= c.racy {
		return
	}
	cur.Sum = sum
	c.mu.Lock()
	c.entries[e.host], c.dirty = cur, true
	c.mu.Unlock()
}

func sameStat(a, b statEntry) bool {
	return a.Size == b.Size && a.Mtime == b.Mtime && a.Ctime == b.Ctime && a.Ino == b.Ino && a.Dev == b.Dev
}

// save writes the cache back when it learned something, dropping entries
// of files outside the context (ADD downloads).
func (c *statCache) save(st *store.Store, contextDir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	for p := range c.entries {
		if !strings.HasPrefix(p, contextDir+string(filepath.Separator)) {
			delete(c.entries, p)
		}
	}
	b, err := json.Marshal(c.entries)
	if err != nil {
		return err
	}
	return st.CachePut(c.key, b)
}

// sumOf hashes a file of t, through the context's stat cache if any.
func sumOf(t srcTree, e entry) (string, error) {
	if c, ok := t.(*contextFS); ok && c.sums != nil {
		return c.sums.sum(t, e)
	}
	return treeSHA256(t, e)
}

// treeSHA256 hashes the content of the file e of t, opened through t.
func treeSHA256(t srcTree, e entry) (string, error) {
	f, err := t.open(e)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return readerSHA256(f, e.rel)
}
