package builder

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCopyHardLinkFirstNameReplaced: in COPY a/ b/ c/ /d/, c/k is a hard
// link of a/h and b/ holds an h too. The plan links k to /d/h (its inode's
// first name in this COPY), but b's h has replaced a's at /d/h by then: k
// must get its own content, as in Docker, not b/h's file, symlink or
// directory (the writer tracks which names still hold what it wrote).
func TestCopyHardLinkFirstNameReplaced(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    map[string]string // what b/ holds
	}{
		{"replaced by a file", map[string]string{"b/h": "two"}},
		{"replaced by a symlink", map[string]string{"b/h": "->elsewhere"}},
		{"replaced by a directory", map[string]string{"b/h/y": "two"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestBuild(t, map[string]string{"a/h": "one", "c/x": "x"})
			tb.write(tc.b)
			must(t, os.Link(filepath.Join(tb.dir, "a/h"), filepath.Join(tb.dir, "c/k")))
			res, out, err := tb.build("FROM scratch\nCOPY a/ b/ c/ /d/\n")
			if err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			fi, err := os.Lstat(filepath.Join(rootfs(t, res.Image), "d/k"))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() {
				t.Fatalf("/d/k is %v, want the regular file c/k is", fi.Mode())
			}
			if got, _ := readImageFile(t, res, "d/k"); got != "one" {
				t.Errorf("/d/k holds %q, want c/k's content %q", got, "one")
			}
		})
	}
}
