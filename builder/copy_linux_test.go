package builder

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// baseFiles give an image with users, a directory and a symlink to it.
var baseFiles = map[string]string{
	"base/etc/passwd":  "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
	"base/etc/group":   "root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
	"base/real/keep":   "kept",
	"base/link":        "->/real",
	"src/a.txt":        "A",
	"src/b.txt":        "B",
	"src/sub/c.txt":    "C",
	"one.txt":          "one",
	"two.md":           "two",
	"inside-link":      "->src/a.txt",
	"outside-link":     "->../../etc/passwd",
	"absolute-link":    "->/etc/passwd",
	"dir-with-link/ok": "->/etc/passwd",
}

const baseDockerfile = "FROM scratch\nCOPY base/ /\n"

func TestCopySemantics(t *testing.T) {
	tests := []struct {
		name   string
		step   string
		files  map[string]string // path in the image -> content
		absent []string
	}{
		{"directory contents, not the directory", "COPY src /dst/", map[string]string{"dst/a.txt": "A", "dst/sub/c.txt": "C"}, []string{"dst/src"}},
		{"file to a new name", "COPY one.txt /etc/renamed", map[string]string{"etc/renamed": "one"}, nil},
		{"file into a directory by slash", "COPY one.txt /opt/", map[string]string{"opt/one.txt": "one"}, nil},
		{"file into an existing directory", "COPY one.txt /real", map[string]string{"real/one.txt": "one", "real/keep": "kept"}, nil},
		{"wildcard", "COPY *.txt /w/", map[string]string{"w/one.txt": "one"}, []string{"w/two.md"}},
		{"wildcard in a directory", "COPY src/*.txt /w/", map[string]string{"w/a.txt": "A", "w/b.txt": "B"}, []string{"w/c.txt"}},
		{"symlinked destination in the image", "COPY one.txt /link/", map[string]string{"real/one.txt": "one", "real/keep": "kept"}, nil},
		{"top-level source symlink is followed", "COPY inside-link /f", map[string]string{"f": "A"}, nil},
		{"symlink inside a directory is kept", "COPY dir-with-link /d/", nil, nil},
		{"relative destination uses WORKDIR", "WORKDIR /work\nCOPY one.txt sub/", map[string]string{"work/sub/one.txt": "one"}, nil},
		{"heredoc", "COPY <<EOF /etc/hello\nhi there\nEOF", map[string]string{"etc/hello": "hi there\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTestBuild(t, baseFiles)
			res, _ := tb.mustBuild(baseDockerfile + tt.step + "\n")
			root := rootfs(t, res.Image)
			for p, want := range tt.files {
				got, err := os.ReadFile(filepath.Join(root, p))
				if err != nil || string(got) != want {
					t.Errorf("%s: %q, %v; want %q", p, got, err, want)
				}
			}
			for _, p := range tt.absent {
				if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
					t.Errorf("%s exists, want it absent", p)
				}
			}
			if fi, err := os.Lstat(filepath.Join(root, "link")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("/link is no longer a symlink: %v", err)
			}
		})
	}
}

func TestCopyKeepsLinksInsideDirectories(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild(baseDockerfile + "COPY dir-with-link /d/\n")
	target, err := os.Readlink(filepath.Join(rootfs(t, res.Image), "d/ok"))
	if err != nil || target != "/etc/passwd" {
		t.Errorf("d/ok -> %q, %v; want a symlink to /etc/passwd", target, err)
	}
}

func TestCopyOwnership(t *testing.T) {
	tests := []struct {
		step     string
		path     string
		uid, gid uint32
		mode     fs.FileMode
	}{
		{"COPY one.txt /f", "f", 0, 0, 0o644},
		{"COPY --chown=app one.txt /f", "f", 1000, 1000, 0o644},
		{"COPY --chown=app:staff one.txt /f", "f", 1000, 50, 0o644},
		{"COPY --chown=42:43 one.txt /f", "f", 42, 43, 0o644},
		{"COPY --chmod=0751 one.txt /f", "f", 0, 0, 0o751},
		{"COPY --chown=app src /new/dir/", "new/dir", 1000, 1000, 0o755},
		{"COPY --chown=app one.txt /real/", "real", 0, 0, 0o755},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			tb := newTestBuild(t, baseFiles)
			res, _ := tb.mustBuild(baseDockerfile + tt.step + "\n")
			fi, err := os.Lstat(filepath.Join(rootfs(t, res.Image), tt.path))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != tt.uid || st.Gid != tt.gid || fi.Mode().Perm() != tt.mode {
				t.Errorf("%s: %d:%d %o, want %d:%d %o", tt.path, st.Uid, st.Gid, fi.Mode().Perm(), tt.uid, tt.gid, tt.mode)
			}
		})
	}
}

func TestCopyErrors(t *testing.T) {
	tests := []struct {
		step string
		want string
	}{
		{"COPY ../x /x", "../x: path is outside the build context"},
		{"COPY outside-link /x", "symlink outside-link points outside the build context"},
		{"COPY absolute-link /x", "symlink absolute-link points outside the build context"},
		{"COPY missing.txt /x", "missing.txt: no such file or directory in the build context"},
		{"COPY one.txt two.md /notdir", "the destination must be a directory and end with a /"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			tb := newTestBuild(t, baseFiles)
			_, _, err := tb.build(baseDockerfile + tt.step + "\n")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "Dockerfile:3: step 3/3 "+strings.Fields(tt.step)[0]) {
				t.Errorf("error %v does not name the step and line", err)
			}
		})
	}
}

// A wildcard that matches nothing copies nothing (BuildKit's
// AllowEmptyWildcard); a missing plain source still fails (TestCopyErrors).
func TestEmptyWildcardCopiesNothing(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild(baseDockerfile + "COPY *.nothing /x/\nCOPY one.txt *.none /y/\n")
	root := rootfs(t, res.Image)
	if _, err := os.Stat(filepath.Join(root, "y/one.txt")); err != nil {
		t.Errorf("the matching source was not copied: %v", err)
	}
}

func TestCopyKeepsHardlinks(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"tree/a": "same"})
	if err := os.Link(filepath.Join(tb.dir, "tree/a"), filepath.Join(tb.dir, "tree/b")); err != nil {
		t.Fatal(err)
	}
	res, _ := tb.mustBuild("FROM scratch\nCOPY tree /t/\nFROM scratch\nCOPY --from=0 /t /u/\n")
	root := rootfs(t, res.Image)
	a, errA := os.Stat(filepath.Join(root, "u/a"))
	b, errB := os.Stat(filepath.Join(root, "u/b"))
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Errorf("u/a and u/b are not one file: %v %v", errA, errB)
	}
}

func TestRunMountsReachTheRunner(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	tb.mustBuild(baseDockerfile + "RUN --mount=type=tmpfs,target=/scratch --mount=type=bind,source=src,target=/src noop\n")
	spec := tb.runner.(*fakeRunner).runs[0]
	if len(spec.Mounts) != 2 || spec.Mounts[0].Target != "/scratch" || spec.Mounts[1].Target != "/src" || !spec.Mounts[1].ReadOnly {
		t.Errorf("mounts %+v", spec.Mounts)
	}
	// The bind shows a copy of the context's src, the same files.
	if got, want := tb.runner.(*fakeRunner).binds["/src"], listTree(filepath.Join(tb.dir, "src")); !slices.Equal(got, want) || len(got) == 0 {
		t.Errorf("bind shows %q, the context's src holds %q", got, want)
	}
	_, _, err := tb.build(baseDockerfile + "RUN --mount=type=bind,source=../x,target=/x noop\n")
	if err == nil || !strings.Contains(err.Error(), "outside the build context") {
		t.Errorf("bind of ../x: %v", err)
	}
}
