package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func gzipTar(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, content := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o640, Size: int64(len(content)), Uid: 7, Gid: 8})
		tw.Write([]byte(content))
	}
	tw.Close()
	zw.Close()
	return buf.String()
}

func TestAddLocalArchive(t *testing.T) {
	files := map[string]string{"pkg.tar.gz": gzipTar(t, map[string]string{"x/y.txt": "from archive"})}
	for k, v := range baseFiles {
		files[k] = v
	}
	tb := newTestBuild(t, files)
	res, _ := tb.mustBuild(baseDockerfile + "ADD pkg.tar.gz /opt\nCOPY pkg.tar.gz /copied/\nADD --chown=app pkg.tar.gz /owned/\n")
	root := rootfs(t, res.Image)
	fi, err := os.Stat(filepath.Join(root, "opt/x/y.txt"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("extracted file: %v %v", fi, err)
	}
	if uid, _ := ownerIDs(fi); uid != 7 {
		t.Errorf("extracted file owned by %d, want the archive's 7", uid)
	}
	if fi, err := os.Stat(filepath.Join(root, "owned/x/y.txt")); err != nil {
		t.Error(err)
	} else if uid, gid := ownerIDs(fi); uid != 1000 || gid != 1000 {
		t.Errorf("ADD --chown=app: extracted file owned by %d:%d", uid, gid)
	}
	if _, err := os.Stat(filepath.Join(root, "copied/pkg.tar.gz")); err != nil {
		t.Errorf("COPY extracted the archive: %v", err)
	}
}

func TestAddURL(t *testing.T) {
	body := "remote content\n"
	modified := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", modified.Format(http.TimeFormat))
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(body)))
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild(baseDockerfile + "ADD --checksum=" + sum + " " + srv.URL + "/dir/file.txt /dl/\n")
	fi, err := os.Stat(filepath.Join(rootfs(t, res.Image), "dl/file.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(modified) {
		t.Errorf("mode %o mtime %v, want 0600 and the Last-Modified time", fi.Mode().Perm(), fi.ModTime())
	}
	_, _, err = tb.build(baseDockerfile + "ADD --checksum=sha256:" + strings.Repeat("0", 64) + " " + srv.URL + "/f /f\n")
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("error %v, want a checksum mismatch", err)
	}
}

// TestAddURLChecksumAlgorithms checks --checksum with sha384 and sha512,
// as BuildKit takes them for an HTTP source: a match lands the file, a
// mismatch fails the step, also when the server's content changed under a
// checksum that matched before and the step is in the cache.
func TestAddURLChecksumAlgorithms(t *testing.T) {
	body := "remote content\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
	defer srv.Close()
	tb := newTestBuild(t, baseFiles)
	sums := map[string]string{
		"sha384": fmt.Sprintf("sha384:%x", sha512.Sum384([]byte(body))),
		"sha512": fmt.Sprintf("sha512:%x", sha512.Sum512([]byte(body))),
	}
	for algo, sum := range sums {
		src := baseDockerfile + "ADD --checksum=" + sum + " " + srv.URL + "/f.txt /dl/\n"
		res, _ := tb.mustBuild(src)
		if got, err := readImageFile(t, res, "dl/f.txt"); err != nil || got != body {
			t.Errorf("%s: /dl/f.txt %q, %v", algo, got, err)
		}
		wrong := algo + ":" + strings.Repeat("0", len(sum)-len(algo)-1)
		_, _, err := tb.build(baseDockerfile + "ADD --checksum=" + wrong + " " + srv.URL + "/f.txt /dl/\n")
		if err == nil || !strings.Contains(err.Error(), "Dockerfile:3") || !strings.Contains(err.Error(), "checksum mismatch: want "+wrong+", got "+sum) {
			t.Errorf("%s: error %v, want the mismatch at Dockerfile:3", algo, err)
		}
	}
	body = "changed\n"
	_, _, err := tb.build(baseDockerfile + "ADD --checksum=" + sums["sha512"] + " " + srv.URL + "/f.txt /dl/\n")
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("changed content under a cached checksum: %v, want a checksum mismatch", err)
	}
}

func TestDockerignore(t *testing.T) {
	files := map[string]string{
		".dockerignore":    "*.log\nsecret/\n!keep.log\n",
		"a.txt":            "a",
		"debug.log":        "ignored",
		"keep.log":         "kept",
		"secret/key":       "k",
		"sub/not-root.log": "nested logs are not matched by *.log",
	}
	tb := newTestBuild(t, files)
	res, _ := tb.mustBuild("FROM scratch\nCOPY . /ctx/\n")
	root := rootfs(t, res.Image)
	for p, want := range map[string]bool{"ctx/a.txt": true, "ctx/keep.log": true, "ctx/sub/not-root.log": true, "ctx/debug.log": false, "ctx/secret": false} {
		_, err := os.Lstat(filepath.Join(root, p))
		if (err == nil) != want {
			t.Errorf("%s present %t, want %t", p, err == nil, want)
		}
	}
	_, _, err := tb.build("FROM scratch\nCOPY debug.log /x\n")
	if err == nil || !strings.Contains(err.Error(), "debug.log: no such file") {
		t.Errorf("COPY of an ignored file: %v", err)
	}
}
