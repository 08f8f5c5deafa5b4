package builder

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/minirootfs"
)

// userFiles is a base image whose user web has uid 1200 and primary gid
// 1300: a rule that gives a name gid = uid shows.
var userFiles = map[string]string{
	"base/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nweb:x:1200:1300:web:/home/web:/bin/sh\n",
	"base/etc/group":  "root:x:0:\nwebgrp:x:1300:\nstaff:x:50:web\n",
	"one.txt":         "one",
}

// ownerIn is the uid:gid of p in the image.
func ownerIn(t *testing.T, root, p string) [2]uint32 {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := ownerIDs(fi)
	return [2]uint32{uid, gid}
}

// COPY --chown and WORKDIR under USER resolve owners as BuildKit's file
// operations do: a name gives its passwd uid and primary gid, a number N
// gives N:N, and a name the image lacks gives 0:0 without an error.
func TestFileOwnersFollowBuildKit(t *testing.T) {
	tests := []struct {
		steps string
		path  string
		want  [2]uint32
	}{
		{"COPY --chown=web one.txt /f", "f", [2]uint32{1200, 1300}},
		{"COPY --chown=web: one.txt /f", "f", [2]uint32{1200, 1300}},
		{"COPY --chown=web:staff one.txt /f", "f", [2]uint32{1200, 50}},
		{"COPY --chown=1500 one.txt /f", "f", [2]uint32{1500, 1500}},
		{"COPY --chown=1500:webgrp one.txt /f", "f", [2]uint32{1500, 1300}},
		{"COPY --chown=ghost one.txt /f", "f", [2]uint32{0, 0}},
		{"COPY --chown=web:ghosts one.txt /f", "f", [2]uint32{1200, 1300}},
		{"COPY --chown=:staff one.txt /f", "f", [2]uint32{0, 50}},
		{"USER web\nWORKDIR /srv/web", "srv/web", [2]uint32{1200, 1300}},
		{"USER web:staff\nWORKDIR /srv/web", "srv/web", [2]uint32{1200, 50}},
		{"USER 1500\nWORKDIR /srv/n", "srv/n", [2]uint32{1500, 1500}},
		{"USER ghost\nWORKDIR /srv/g", "srv/g", [2]uint32{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.steps, func(t *testing.T) {
			tb := newTestBuild(t, userFiles)
			res, out := tb.mustBuild(baseDockerfile + tt.steps + "\n")
			if got := ownerIn(t, rootfs(t, res.Image), tt.path); got != tt.want {
				t.Errorf("%s owned by %d:%d, want %d:%d\n%s", tt.path, got[0], got[1], tt.want[0], tt.want[1], out)
			}
		})
	}
}

// A stage with no /etc/passwd at all: BuildKit takes root as 0 without a
// lookup and a missing file as no entries, so USER root, or any name,
// still lets WORKDIR and COPY --chown work, with 0:0.
func TestFileOwnersWithoutPasswd(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"one.txt": "one"})
	res, out := tb.mustBuild("FROM scratch\nUSER root\nWORKDIR /x\nCOPY --chown=root:root one.txt /x/f\n" +
		"USER app\nWORKDIR /y\nCOPY --chown=app:staff one.txt /y/f\n")
	root := rootfs(t, res.Image)
	for _, p := range []string{"x", "x/f", "y", "y/f"} {
		if got := ownerIn(t, root, p); got != [2]uint32{0, 0} {
			t.Errorf("%s owned by %d:%d, want 0:0\n%s", p, got[0], got[1], out)
		}
	}
}

// A RUN can leave a FIFO (or a device node) at /etc/passwd; the builder
// reads it on the host, where opening a FIFO blocks for good. BuildKit
// refuses a user file that is not a regular file, and so does Strata.
func TestChownRefusesNonRegularPasswd(t *testing.T) {
	needRoot(t)
	lower := t.TempDir()
	if err := os.Mkdir(filepath.Join(lower, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(lower, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := resolveChown("web", mergedFS{lowers: []string{lower}})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, errNotRegular) {
			t.Errorf("--chown with a FIFO /etc/passwd: %v, want a not-a-regular-file error", err)
		}
	case <-time.After(5 * time.Second):
		// Unblock the reader so the test binary can end.
		if f, err := os.OpenFile(filepath.Join(lower, "etc/passwd"), os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("--chown blocked opening a FIFO /etc/passwd")
	}
	// A numeric owner reads nothing, so the FIFO does not matter.
	if own, err := resolveChown("7:8", mergedFS{lowers: []string{lower}}); err != nil || *own != (owner{7, 8}) {
		t.Errorf("--chown=7:8: %v, %v", own, err)
	}
	// A directory at /etc/passwd is refused too; a missing one is not.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc/passwd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveChown("web", mergedFS{lowers: []string{dir}}); !errors.Is(err, errNotRegular) {
		t.Errorf("a directory /etc/passwd: %v", err)
	}
	if own, err := resolveChown("web", mergedFS{lowers: []string{t.TempDir()}}); err != nil || *own != (owner{}) {
		t.Errorf("no /etc/passwd: %v, %v; want 0:0", own, err)
	}
	var pe *fs.PathError
	if _, err := resolveChown("web", mergedFS{lowers: []string{dir}}); !errors.As(err, &pe) || pe.Path != "/etc/passwd" {
		t.Errorf("error %v does not name /etc/passwd", err)
	}
}

// RUN under USER name runs as the name's uid and primary gid, the owner
// WORKDIR gave its directory: both follow passwd, as in docker build.
func TestRunAndWorkdirAgreeOnUser(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(minirootfs.DefaultBusybox); err != nil {
		t.Skip("needs busybox-static's /bin/busybox")
	}
	tb := newTestBuild(t, map[string]string{
		"passwd": userFiles["base/etc/passwd"],
		"group":  userFiles["base/etc/group"],
	})
	tb.runner = executor.New(executor.Options{})
	writeRootfsTarball(t, filepath.Join(tb.dir, "rootfs.tar.gz"))
	res, out := tb.mustBuild(`FROM scratch
ADD rootfs.tar.gz /
COPY passwd group /etc/
USER web
WORKDIR /srv/web
RUN touch made && id -u > ids && id -g >> ids
`)
	root := rootfs(t, res.Image)
	want := [2]uint32{1200, 1300}
	for _, p := range []string{"srv/web", "srv/web/made"} {
		if got := ownerIn(t, root, p); got != want {
			t.Errorf("%s owned by %d:%d, want %d:%d\n%s", p, got[0], got[1], want[0], want[1], out)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "srv/web/ids")); strings.TrimSpace(string(got)) != "1200\n1300" {
		t.Errorf("RUN as web: id -u, id -g = %q, want 1200 and 1300", got)
	}
}
