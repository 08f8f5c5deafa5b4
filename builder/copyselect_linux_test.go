package builder

import (
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// selectFiles are the context files of the --parents and --exclude tests.
var selectFiles = map[string]string{
	"src/app/main.go":      "main",
	"src/app/util/u.go":    "u",
	"src/app/util/u.md":    "umd",
	"src/lib/l.go":         "l",
	"src/lib/README.md":    "readme",
	"src/app/esc":          "->../../../etc",
	"src/app/up":           "->../lib",
	"docs/x.md":            "x",
	"top.md":               "top",
	"tool.sh":              "#!/bin/sh\n",
	"dir1/a.png":           "a",
	"dir1/b.txt":           "b",
	"dir2/c.txt":           "c",
	"dir2/keep/d.png":      "d",
	"dir2/keep/e.md":       "e",
	"dir2/skip/f.md":       "f",
	"dir2/skip/g.txt":      "g",
	"base/etc/passwd":      "root:x:0:0:root:/root:/bin/sh\n",
	"base/outside/secret":  "not copied",
	"base/etc/group":       "root:x:0:\n",
	"base/real/keep":       "kept",
	"base/link":            "->/real",
	"base/deep/a/b/c/file": "deep",
}

// TestCopyParentsAndExclude checks what COPY --parents and --exclude land,
// as BuildKit's copier selects it: the pattern below the pivot, parents
// created only for what is selected, excludes relative to each directory
// source (a "!" pattern re-including below an excluded directory), and
// symlinks copied as links, never followed out of the source.
func TestCopyParentsAndExclude(t *testing.T) {
	tests := []struct {
		name string
		step string
		dir  string // the image directory listed
		want []string
	}{
		{"parents of plain paths", "COPY --parents src/app/main.go docs/x.md /p/", "p",
			[]string{"docs", "docs/x.md", "src", "src/app", "src/app/main.go"}},
		{"pivot", "COPY --parents src/./app/util /p/", "p",
			[]string{"app", "app/util", "app/util/u.go", "app/util/u.md"}},
		{"wildcards keep their parents", "COPY --parents src/*/*.go /p/", "p",
			[]string{"src", "src/app", "src/app/main.go", "src/lib", "src/lib/l.go"}},
		{"double star below a pivot", "COPY --parents src/./**/*.md /p/", "p",
			[]string{"app", "app/util", "app/util/u.md", "lib", "lib/README.md"}},
		{"parents with exclude", "COPY --parents --exclude=app/util src/./app /p/", "p",
			[]string{"app", "app/esc", "app/main.go", "app/up"}},
		{"symlinks are copied as links", "COPY --parents src/app/esc src/app/up /p/", "p",
			[]string{"src", "src/app", "src/app/esc", "src/app/up"}},
		{"exclude relative to the directory", "COPY --exclude=*/*.png --exclude=*.md . /e/", "e/dir1",
			[]string{"b.txt"}},
		{"exclude in each matched directory", "COPY --exclude=*.txt --exclude=skip dir* /e/", "e",
			[]string{"a.png", "keep", "keep/d.png", "keep/e.md"}},
		{"re-included below an excluded directory", "ADD --exclude=keep --exclude=skip --exclude=!skip/f.md dir2 /e/", "e",
			[]string{"c.txt", "skip", "skip/f.md"}},
		{"exclude everything", "COPY --exclude=* dir* /e/", "e", nil},
		{"a single file source is not matched", "COPY --exclude=*.md top.md /e/", "e", []string{"top.md"}},
		{"from a stage", "FROM scratch AS s\nCOPY base/ /\nFROM scratch\nCOPY --from=s --parents --exclude=**/group deep/./a/b etc /p/", "p",
			[]string{"a", "a/b", "a/b/c", "a/b/c/file", "etc", "etc/passwd"}},
		{"from a stage, symlinked parent not followed", "FROM scratch AS s\nCOPY base/ /\nFROM scratch\nCOPY --from=s --parents link/keep /p/", "p",
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTestBuild(t, selectFiles)
			src := "FROM scratch\n" + tt.step + "\n"
			if strings.HasPrefix(tt.step, "FROM") {
				src = tt.step + "\n"
			}
			res, out, err := tb.build(src)
			if strings.Contains(tt.name, "not followed") {
				// BuildKit's copier does not follow link: nothing selected, a required path.
				if err == nil || !strings.Contains(err.Error(), "link/keep: no such file or directory in the source image") {
					t.Fatalf("build: %v, want link/keep not found\n%s", err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			root := rootfs(t, res.Image)
			got := listTree(filepath.Join(root, tt.dir))
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s holds %q, want %q", tt.dir, got, tt.want)
			}
			if tt.name == "symlinks are copied as links" {
				if l, err := os.Readlink(filepath.Join(root, "p/src/app/esc")); err != nil || l != "../../../etc" {
					t.Errorf("esc: %q, %v; want the link as written", l, err)
				}
			}
		})
	}
}

// TestCopyParentsErrors checks the errors a user sees before anything is
// written: a path without wildcards must select something, and --parents
// cannot climb out of the context.
func TestCopyParentsErrors(t *testing.T) {
	for step, want := range map[string]string{
		"COPY --parents src/nope.go /p/": "src/nope.go: no such file or directory in the build context",
		// The pattern is cleaned as BuildKit cleans it: it stays inside.
		"COPY --parents ../x /p/":            "x: no such file or directory in the build context",
		"COPY --parents src/./../../x /p/":   "no such file or directory in the build context",
		"COPY --exclude=[ src /p/":           "--exclude: syntax error in pattern",
		"COPY --parents --exclude=* src /p/": "src: no such file or directory in the build context",
	} {
		t.Run(step, func(t *testing.T) {
			tb := newTestBuild(t, selectFiles)
			_, out, err := tb.build("FROM scratch\n" + step + "\n")
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("build: %v, want %q\n%s", err, want, out)
			}
		})
	}
}

// TestCopySymbolicChmod checks symbolic --chmod as chmod(1) applies it to
// each file's own mode: X only for directories and executables.
func TestCopySymbolicChmod(t *testing.T) {
	tb := newTestBuild(t, selectFiles)
	if err := os.Chmod(filepath.Join(tb.dir, "tool.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, _ := tb.mustBuild("FROM scratch\n" +
		"COPY --chmod=u+x,g-r top.md /a/\n" +
		"COPY --chmod=a=rX top.md tool.sh /b/\n" +
		"COPY --chmod=go-rwx,u=rwX src/lib /c/\n" +
		"COPY --chmod=o+w <<EOF /d/doc\nhi\nEOF\n" +
		"COPY --chmod=u+s,+t tool.sh /e/\n")
	root := rootfs(t, res.Image)
	for p, want := range map[string]fs.FileMode{
		"a/top.md":    0o704,
		"b/top.md":    0o444,
		"b/tool.sh":   0o555,
		"c/l.go":      0o600,
		"c/README.md": 0o600,
		"d/doc":       0o646,
		"e/tool.sh":   0o755 | fs.ModeSetuid | fs.ModeSticky,
	} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if got := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
	// A directory of the source gets X: COPY --chmod=a=rX of a tree.
	res, _ = tb.mustBuild("FROM scratch\nCOPY --chmod=a=rX src /s/\n")
	root = rootfs(t, res.Image)
	for p, want := range map[string]fs.FileMode{"s/app": 0o555, "s/app/main.go": 0o444} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want %v", p, fi.Mode(), err, want)
		}
	}
}

// TestCopySelectionMissesCache checks that a changed --exclude pattern,
// --parents or symbolic --chmod is a new key, and the same one a hit.
func TestCopySelectionMissesCache(t *testing.T) {
	tb := newTestBuild(t, selectFiles)
	steps := []string{
		"COPY --exclude=*.png dir1 /d/",
		"COPY --exclude=*.txt dir1 /d/",
		"COPY --exclude=*.txt --exclude=*.png dir1 /d/",
		"COPY --parents dir1 /d/",
		"COPY --chmod=u+x dir1 /d/",
		"COPY --chmod=g+x dir1 /d/",
		"COPY --chmod=0755 dir1 /d/",
	}
	seen := map[string]string{}
	for i, step := range steps {
		res, _ := tb.mustBuild("FROM scratch\n" + step + "\n")
		d, err := res.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := seen[d.String()]; ok {
			t.Errorf("%q and %q build the same image", prev, step)
		}
		seen[d.String()] = step
		_, out := tb.mustBuild("FROM scratch\n" + step + "\n")
		if !strings.Contains(out, "CACHED") {
			t.Errorf("step %d %q rebuilt unchanged:\n%s", i, step, out)
		}
	}
}

// TestAddUnpack checks ADD --unpack: false keeps a local archive packed,
// true unpacks a download (left packed without the flag), and the choice
// is keyed.
func TestAddUnpack(t *testing.T) {
	archive := gzipTar(t, map[string]string{"x/y.txt": "from archive"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, archive) }))
	defer srv.Close()
	files := map[string]string{"pkg.tar.gz": archive}
	tb := newTestBuild(t, files)
	res, _ := tb.mustBuild("FROM scratch\nADD --unpack=false pkg.tar.gz /packed/\nADD --unpack=true pkg.tar.gz /local/\n" +
		"ADD " + srv.URL + "/dl.tar.gz /plain/\nADD --unpack=true " + srv.URL + "/dl.tar.gz /unpacked\n")
	root := rootfs(t, res.Image)
	got := listTree(root)
	want := []string{"local", "local/x", "local/x/y.txt", "packed", "packed/pkg.tar.gz", "plain", "plain/dl.tar.gz", "unpacked", "unpacked/x", "unpacked/x/y.txt"}
	if !slices.Equal(got, want) {
		t.Errorf("image holds %q, want %q", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(root, "unpacked/x/y.txt")); err != nil || string(b) != "from archive" {
		t.Errorf("unpacked download: %q, %v", b, err)
	}
	// Only the flag differs: another key, another layer.
	a, _ := tb.mustBuild("FROM scratch\nADD pkg.tar.gz /d/\n")
	b, out := tb.mustBuild("FROM scratch\nADD --unpack=false pkg.tar.gz /d/\n")
	da, _ := a.Image.Digest()
	db, _ := b.Image.Digest()
	if da == db || strings.Contains(out, "CACHED") {
		t.Errorf("--unpack=false hit the cache of the unpacking ADD:\n%s", out)
	}
}

// TestDockerfileIgnoreWins checks that the Dockerfile's own ignore file
// replaces the context's .dockerignore, and that it changes the key.
func TestDockerfileIgnoreWins(t *testing.T) {
	tb := newTestBuild(t, map[string]string{".dockerignore": "keep.txt\n", "keep.txt": "k", "secret.txt": "s"})
	const src = "FROM scratch\nCOPY . /ctx/\n"
	res, _ := tb.mustBuild(src)
	if got := listTree(filepath.Join(rootfs(t, res.Image), "ctx")); !slices.Equal(got, []string{".dockerignore", "secret.txt"}) {
		t.Errorf("with .dockerignore: %q", got)
	}
	own := &IgnoreFile{Name: "Dockerfile.dockerignore", Data: []byte("secret.txt\n")}
	res, out := tb.mustBuild(src, func(o *Options) { o.Dockerignore = own })
	if got := listTree(filepath.Join(rootfs(t, res.Image), "ctx")); !slices.Equal(got, []string{".dockerignore", "keep.txt"}) {
		t.Errorf("with Dockerfile.dockerignore: %q", got)
	}
	if strings.Contains(out, "CACHED") {
		t.Errorf("another ignore file hit the cache:\n%s", out)
	}
}
