package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzContextConfinement plants a symlink with an arbitrary target in a
// context and resolves a source through it: either an error, or a path
// whose every step stays inside the context.
func FuzzContextConfinement(f *testing.F) {
	for _, seed := range [][2]string{
		{"../../etc/passwd", "l"}, {"/etc/passwd", "l/x"}, {"a/../..", "l/../l"}, {"b", "l"},
		{"./a/../b/../../x", "d/../l"}, {"l", "l"}, {"a", "l/../../l"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, target, src string) {
		if strings.ContainsRune(target, 0) || len(target) > 200 || len(src) > 200 {
			return
		}
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
		os.WriteFile(filepath.Join(dir, "b"), []byte("b"), 0o644)
		if err := os.Symlink(target, filepath.Join(dir, "l")); err != nil {
			return
		}
		c, err := openContext(dir)
		if err != nil {
			t.Fatal(err)
		}
		p, err := checkInside(src)
		if err != nil {
			return
		}
		resolved, err := resolvePath(c, p)
		if err == nil {
			checkConfined(t, c, dir, resolved)
		}
		// A wildcard source expands only to paths inside the context too.
		matches, err := glob(c, "/", splitPath(p+"*"))
		if err != nil {
			return
		}
		for _, m := range matches {
			if r, err := resolvePath(c, m); err == nil {
				checkConfined(t, c, dir, r)
			}
		}
	})
}

// checkConfined fails when the context path resolved, with every host
// symlink evaluated, is outside dir or is a symlink itself.
func checkConfined(t *testing.T, c *contextFS, dir, resolved string) {
	t.Helper()
	host := filepath.Join(c.dir, resolved)
	real, err := filepath.EvalSymlinks(host)
	if err != nil {
		// A missing path: what exists of it must be inside.
		if real, err = filepath.EvalSymlinks(filepath.Dir(host)); err != nil {
			return
		}
	}
	root, _ := filepath.EvalSymlinks(dir)
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		t.Fatalf("%s resolved to %s, outside %s", resolved, real, root)
	}
	if e, err := c.lstat(resolved); err == nil && e.info.Mode()&os.ModeSymlink != 0 {
		t.Fatalf("resolved to the symlink %s itself", resolved)
	}
}
