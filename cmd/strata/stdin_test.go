package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
)

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestStdinContext: "-" is a tar archive (plain or compressed, told by
// its content) whose Dockerfile, or -f's path inside it, is read; anything
// else is the Dockerfile; a broken archive is an error, never taken for a
// Dockerfile.
func TestStdinContext(t *testing.T) {
	archive := tarOf(t, map[string]string{"Dockerfile": "FROM a\n", "sub/Other": "FROM b\n", "f.txt": "x"})
	broken := bytes.Clone(archive)
	copy(broken[148:156], "garbage!") // the first header's checksum
	tests := []struct {
		name, file string
		stdin      []byte
		want       string // the Dockerfile; "" wants an error
		ctxFile    string // a file the context must hold
	}{
		{"tar", "", archive, "FROM a\n", "f.txt"},
		{"tar.gz with -f inside it", "sub/Other", gzipped(archive), "FROM b\n", "sub/Other"},
		{"Dockerfile", "", []byte("FROM c\nRUN true\n"), "FROM c\nRUN true\n", ""},
		{"broken tar", "", broken, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := &cobra.Command{}
			cmd.SetIn(bytes.NewReader(tt.stdin))
			cmd.SetContext(context.Background())
			dir, src, cleanup, err := readContext(cmd, &buildOptions{file: tt.file}, "-")
			if tt.want == "" {
				if err == nil {
					cleanup()
					t.Fatalf("read %d bytes as the Dockerfile, want an error", len(src))
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
		})
	}
}
