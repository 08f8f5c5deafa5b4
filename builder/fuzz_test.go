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
		if err != nil {
			return
		}
		host := filepath.Join(c.dir, resolved)
		if host != dir && !strings.HasPrefix(host, dir+string(filepath.Separator)) {
			t.Fatalf("%q through l -> %q resolved to %s, outside %s", src, target, host, dir)
		}
		if e, err := c.lstat(resolved); err == nil && e.info.Mode()&os.ModeSymlink != 0 {
			t.Fatalf("%q resolved to the symlink %s itself", src, resolved)
		}
	})
}
