package main

import (
	"archive/tar"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// TestRemoteContext: a context argument that is not a local path is a git
// repository (cloned, #ref:subdir honoured, no .git) or a URL (a tar
// archive, compressed or not, or else the Dockerfile), as docker build
// takes them; a failing clone is one line naming the URL without its
// credentials.
func TestRemoteContext(t *testing.T) {
	gitURL, err := gitRepoURL()
	if err != nil {
		t.Fatal(err)
	}
	archive := tarOf(t, map[string]string{"Dockerfile": "FROM a\n", "sub/Other": "FROM b\n", "f.txt": "x"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ctx.tar.gz":
			w.Write(gzipped(archive))
		case "/Dockerfile":
			w.Write([]byte("FROM c\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	tests := []struct {
		name, arg, file string
		want            string // the Dockerfile; "" wants an error
		ctxFile         string // a file the context must hold
		wantErr         string
	}{
		{"git with ref and subdir", gitURL + "#main:ctx", "", "FROM scratch\nCOPY file /\n", "file", ""},
		{"git whole repository", gitURL, "ctx/Dockerfile", "FROM scratch\nCOPY file /\n", "hello.txt", ""},
		{"tarball", srv.URL + "/ctx.tar.gz", "sub/Other", "FROM b\n", "f.txt", ""},
		{"Dockerfile", srv.URL + "/Dockerfile", "", "FROM c\n", "", ""},
		{"missing URL", srv.URL + "/nothing.tar", "", "", "", "404 Not Found"},
		{"missing repository", strings.Replace(srv.URL, "http://", "http://me:s3cret@", 1) + "/no.git", "", "", "",
			"build context: http://me:xxxxx@127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := &cobra.Command{}
			cmd.SetContext(context.Background())
			dir, src, cleanup, err := readContext(cmd, &buildOptions{file: tt.file}, tt.arg)
			if tt.wantErr != "" {
				t.Log(err)
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			if string(src) != tt.want {
				t.Errorf("Dockerfile %q, want %q", src, tt.want)
			}
			if tt.ctxFile != "" {
				if _, err := os.Stat(filepath.Join(dir, tt.ctxFile)); err != nil {
					t.Errorf("context: %v", err)
				}
			}
			if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
				t.Error("the context holds .git")
			}
		})
	}
}

// TestRemoteContextHostile: what a hostile or failing server sends is one
// line of error, in bounded time, naming the URL without its credentials;
// a context that is no remote one leaves no temporary directory behind.
func TestRemoteContextHostile(t *testing.T) {
	var fifo bytes.Buffer
	tw := tar.NewWriter(&fifo)
	tw.WriteHeader(&tar.Header{Name: "Dockerfile", Typeflag: tar.TypeFifo, Mode: 0o644})
	tw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fifo.tar" {
			w.Write(fifo.Bytes())
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	token := strings.Replace(srv.URL, "http://", "http://s3cret@", 1)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	for _, c := range []struct{ arg, want string }{
		{srv.URL + "/fifo.tar", "not a regular file"},
		{token + "/nothing.tar", "build context http://xxxxx@127.0.0.1"},
		{"http://s3cret@127.0.0.1:1/ctx.tar", `Get "http://xxxxx@127.0.0.1:1/ctx.tar"`},
		{"ftp://127.0.0.1/ctx.tar", "no such file or directory"},
	} {
		cmd := &cobra.Command{}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd.SetContext(ctx)
		done := make(chan error, 1)
		go func() {
			_, _, _, err := readContext(cmd, &buildOptions{}, c.arg)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: error %v, want one line with %q", c.arg, err, c.want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: still reading after 30s", c.arg)
		}
		cancel()
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}
}
